"""``agent-tokred overthinking FILE``: cut redundant re-checking in reasoning traces.

FILE is a text file holding one trace (``-`` reads standard input), or a ``.jsonl`` / ``.jsonl.gz``
file of records with a ``trace`` field (and optionally ``question``). A text trace prints the
truncated trace (or, with ``--json``, a summary); JSONL input prints one JSON summary per record.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["overthinking", "trace.txt", "--k", "2"]).k
    2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import TokredError
from ..learned.data import read_jsonl
from .detect import PRESETS, OverthinkingConfig, OverthinkingResult, detect_overthinking
from .trace import Untagged


def register(subparsers: Any) -> None:
    """Add the ``overthinking`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "overthinking",
        help="cut the redundant re-checking at the end of reasoning traces",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("file", help="a trace (text), a .jsonl / .jsonl.gz of {trace, question}, or - for stdin")
    p.add_argument("--question", default=None, help="the question the trace answers (text input)")
    p.add_argument("--k", type=int, default=None, help="online re-derivations before a cut (no conclusion)")
    p.add_argument("--k-anchored", type=int, default=None, help="derivations of the conclusion's answer")
    p.add_argument("--no-conclusion", action="store_true", help="ignore the conclusion (online mode)")
    p.add_argument("--preset", choices=PRESETS, default="default",
                   help="max_removal: cut at the first re-check once the answer is mentioned (more removed, "
                        "the kept thinking derives the answer less often)")
    p.add_argument("--thinking-only", action="store_true", help="read untagged text as thinking")
    p.add_argument("--tokenizer", default=None, help="token counter (default o200k_base)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the truncated trace")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> OverthinkingConfig:
    base = OverthinkingConfig.preset(args.preset)
    return dataclasses.replace(
        base,
        k=args.k if args.k is not None else base.k,
        k_anchored=args.k_anchored if args.k_anchored is not None else base.k_anchored,
        use_conclusion=not args.no_conclusion,
    )


def summary(result: OverthinkingResult) -> dict[str, Any]:
    """The JSON-ready summary of a result (the truncated trace under ``text``)."""
    return {
        "reason": result.reason,
        "cut_index": result.cut_index,
        "cut_char": result.cut_char,
        "n_steps": result.n_steps,
        "thinking_tokens_before": result.thinking_tokens_before,
        "thinking_tokens_after": result.thinking_tokens_after,
        "stable_answer": result.stable_answer,
        "evidence": list(result.evidence),
        "text": result.text,
    }


def _records(path: Path) -> Iterator[dict[str, Any]]:
    for n, rec in enumerate(read_jsonl(path), 1):
        if not isinstance(rec.get("trace"), (str, list)):
            raise TokredError(f"{path}: record {n} needs a 'trace' string or content-block list")
        yield rec


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 on unreadable input or bad options."""
    try:
        cfg = _config(args)
        untagged: Untagged = "thinking" if args.thinking_only else "answer"
        name = str(args.file)
        if name.endswith((".jsonl", ".jsonl.gz")):
            for rec in _records(Path(name)):
                res = detect_overthinking(
                    rec["trace"],
                    question=rec.get("question"),
                    config=cfg,
                    tokenizer=args.tokenizer,
                    untagged=untagged,
                )
                print(json.dumps({"id": rec.get("id"), **summary(res)}, ensure_ascii=False))
            return 0
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        res = detect_overthinking(text, question=args.question, config=cfg, tokenizer=args.tokenizer, untagged=untagged)
    except (OSError, UnicodeDecodeError, TokredError, ValueError) as exc:
        print(f"agent-tokred overthinking: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary(res), ensure_ascii=False))
    else:
        sys.stdout.write(res.text)
        print(
            f"\n[overthinking: {res.reason}; thinking tokens {res.thinking_tokens_before} -> "
            f"{res.thinking_tokens_after}]",
            file=sys.stderr,
        )
    return 0
