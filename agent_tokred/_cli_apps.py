"""The ``demo`` and ``bench`` commands of ``agent-tokred``.

``demos/`` and ``bench/`` live in the repository, not in the wheel: these commands find the repository
root next to the installed package (editable install) or in the current folder (or a parent of it),
put it on ``sys.path`` and run ``demos.run_all`` / ``bench.__main__.run_all``. When neither place has
them they exit with status 2 and say where to run them from.

Example:
    $ agent-tokred demo --quick            # the four demos, short version, offline
    $ agent-tokred bench --quick --only engine
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_NOT_FOUND = (
    "agent-tokred: error: the {what} live in the agent-tokred repository, not in the installed package. "
    "Run this command from a clone of the repository (with `pip install -e .`), e.g. "
    "`git clone <repo> && cd agent-tokred && make demo`."
)


def find_repo_root(package: str, start: Path | None = None) -> Path | None:
    """The folder holding ``<package>/__init__.py``: next to the installed package, else cwd or a parent."""
    candidates = [Path(__file__).resolve().parent.parent]
    here = (start or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    for root in candidates:
        if (root / package / "__init__.py").is_file():
            return root
    return None


def _import_from_repo(package: str, module: str, what: str) -> Any:
    root = find_repo_root(package)
    if root is None:
        print(_NOT_FOUND.format(what=what), file=sys.stderr)
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import importlib

    return importlib.import_module(module)


def _cmd_demo(args: argparse.Namespace) -> int:
    demos = _import_from_repo("demos", "demos", "demos")
    if demos is None:
        return 2
    main = demos.main
    argv = [*(["--quick"] if args.quick else []), *(["--out", str(args.out)] if args.out else []),
            *(["--model", args.model] if args.model else []), *[x for name in args.only for x in ("--only", name)]]
    return int(main(argv))


def _cmd_bench(args: argparse.Namespace) -> int:
    runner = _import_from_repo("bench", "bench.__main__", "benches")
    if runner is None:
        return 2
    argv = [*(["--quick"] if args.quick else []), *(["--out", str(args.out)] if args.out else []),
            *[x for name in args.only for x in ("--only", name)]]
    return int(runner.main(argv))


def register(subparsers: Any) -> None:
    """Add the ``demo`` and ``bench`` sub-commands to the ``agent-tokred`` parser."""
    p = subparsers.add_parser(
        "demo",
        help="run the demo agents offline and write plots and an HTML report",
        description="Run the demo agents (BFCL tool agent, RAG agent, reasoning agent, few-shot selection) "
        "with and without agent-tokred; print a summary table, write PNG plots and an HTML report.",
    )
    p.add_argument("--quick", action="store_true", help="a short version of each demo (about a minute)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default demos/out/latest)")
    p.add_argument("--model", default=None, metavar="PROVIDER:NAME",
                   help="drive the agents with a real chat model through init_chat_model (keys from the "
                   "environment) instead of replaying recorded calls")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this demo (repeatable): tools, rag, reasoning, fewshot")
    p.set_defaults(func=_cmd_demo)

    b = subparsers.add_parser("bench", help="run the benchmarks and write bench/out/SUMMARY.md and summary.json")
    b.add_argument("--quick", action="store_true", help="small subsets, for CI")
    b.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this bench (repeatable): engine, middleware, overhead, overthinking, examples, ...")
    b.add_argument("--out", type=Path, default=None, help="output folder (default bench/out)")
    b.set_defaults(func=_cmd_bench)
