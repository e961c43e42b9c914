"""The ``agent-tokred`` command line.

Sub-commands: ``compress`` (here), and those registered by other modules (``overthinking``,
``bench``, ``demo``, ``train``). Each module exposes ``register(subparsers)``; a missing optional
module only removes its command.

Example:
    $ echo '{"items": [1, 2, 3]}' | agent-tokred compress - --target-tokens 8 --json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from .errors import TokredError

_COMMAND_MODULES = (
    "agent_tokred.overthinking.cli",
    "agent_tokred.learned.cli",
    "agent_tokred._cli_apps",
)


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as fh:
        return fh.read()


def _cmd_compress(args: argparse.Namespace) -> int:
    from .budget import make_budget
    from .compressor import Compressor

    budget = make_budget(rate=args.rate, target_tokens=args.target_tokens)
    data = _read_input(args.file)
    bar = None
    if len(data) > 100_000 and not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=3, desc=f"compress {len(data):,} bytes", unit="stage", file=sys.stderr, leave=False)

    def advance(stage: str) -> None:
        if bar is not None:
            bar.set_postfix_str(stage)
            if stage != "counting":
                bar.update(1)

    compressor = Compressor(criterion=args.criterion, strategy=args.strategy, tokenizer=args.tokenizer,
                            unit=args.unit, progress=advance)
    try:
        result = compressor.compress(data, query=args.query, budget=budget)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        record = asdict(result)
        if not args.include_original:
            record.pop("original")
        record.pop("kept_spans")
        print(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(result.text)
        if not result.text.endswith("\n"):
            sys.stdout.write("\n")
        if not args.quiet:
            print(
                f"[agent-tokred] {result.tokens_before} -> {result.tokens_after} tokens "
                f"(budget {result.budget_tokens}, {result.tokenizer}; criterion={result.criterion}, "
                f"strategy={result.strategy}; {result.seconds:.2f}s){' ' + result.note if result.note else ''}",
                file=sys.stderr,
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-tokred", description="Token reduction for LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compress", help="compress a text, JSON tool output or log under a token budget")
    p.add_argument("file", nargs="?", default="-", help="input file, or - for standard input (default)")
    p.add_argument("--query", "-q", default=None, help="the task or question the result must serve")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--rate", type=float, help="share of tokens to keep, in (0, 1]")
    size.add_argument("--target-tokens", type=int, help="the most tokens the result may have")
    p.add_argument("--criterion", default="auto", help="lexical, relevance, attention, self_information, learned, "
                   "a+b mixes, or auto (default)")
    p.add_argument("--strategy", default="auto", choices=["auto", "prune", "compact", "merge"])
    p.add_argument("--unit", default="auto", choices=["auto", "word", "sentence", "line", "paragraph"])
    p.add_argument("--tokenizer", default=None, help="o200k_base (default), cl100k_base, approx, hf:<model>")
    p.add_argument("--json", action="store_true", help="print the full result record as JSON")
    p.add_argument("--include-original", action="store_true", help="with --json, include the original text")
    p.add_argument("--quiet", action="store_true", help="no summary line on stderr")
    p.set_defaults(func=_cmd_compress)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TokredError as exc:
        print(f"agent-tokred: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"agent-tokred: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
