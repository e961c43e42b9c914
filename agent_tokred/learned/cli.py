"""``agent-tokred train``: (re)train the learned criterion on NQ-format or your own agent logs.

Example:
    $ agent-tokred train --data ../shared/data/nq_oracle_dev.jsonl.gz --out my.safetensors --seed 0
    $ agent-tokred compress log.txt -q "why did the job fail" --rate 0.2 --criterion learned  # shipped weights
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(
        data=tuple(Path(p) for p in args.data or ()),
        out=Path(args.out),
        seed=args.seed,
        epochs=args.epochs,
        hidden=args.hidden,
        lr=args.lr,
        val_fraction=args.val_fraction,
        teacher=args.teacher,
        teacher_weight=args.teacher_weight,
        synthetic_kv=args.synthetic_kv,
        vectors=args.vectors,
        distractors=args.distractors,
        holdout_bench=not args.no_holdout_bench,
        limit=args.limit,
        progress=not args.quiet,
    )
    result = train(config)
    summary = {"weights": str(result.path), "metadata": str(result.path.with_suffix(".json")),
               "size_bytes": result.path.stat().st_size, **result.metrics}
    print(json.dumps(summary, indent=2))
    if not args.quiet:
        print(f"[agent-tokred] use it with: criterion=LearnedCriterion({str(result.path)!r}) "
              f"or --criterion learned after copying it to the package's data folder", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command to the ``agent-tokred`` parser."""
    p = subparsers.add_parser(
        "train", help="train the learned criterion (NQ-format data or {query, text, keep} JSONL agent logs)",
        description="Train the learned criterion's head on question/answer data or agent logs. User records are "
        'JSON lines {"query": ..., "text": ..., "keep": [strings the answer needed]}.',
    )
    p.add_argument("--data", action="append", metavar="FILE",
                   help="training file (.jsonl or .jsonl.gz, NQ or user format); repeat for several")
    p.add_argument("--out", required=True, help="weights file to write (.safetensors; metadata .json next to it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=16, help="hidden units of the head")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--val-fraction", type=float, default=0.2, help="inputs held out to pick the best epoch")
    p.add_argument("--teacher", default=None, help="criterion to distil from (relevance, attention, ...)")
    p.add_argument("--teacher-weight", type=float, default=0.3)
    p.add_argument("--synthetic-kv", type=int, default=100, help="generated key/value JSON lookups to add")
    p.add_argument("--vectors", default="shipped", choices=["shipped", "minilm", "minilm-input"],
                   help="static vectors: reuse the shipped ones (default) or distil them from MiniLM again")
    p.add_argument("--distractors", default="minilm", choices=["minilm", "static"],
                   help="how NQ distractor passages are chosen")
    p.add_argument("--no-holdout-bench", action="store_true",
                   help="also train on the NQ rows the engine bench evaluates on (off by default)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many records per file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)
