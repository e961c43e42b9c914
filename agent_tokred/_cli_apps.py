"""The ``demo`` and ``bench`` commands of ``agent-tokred``.

``demos/`` and ``bench/`` live in the repository, not in the wheel: these commands find the repository
root next to the installed package (editable install) or in the current folder (or a parent of it)
and run ``python -m demos`` / ``python -m bench`` there, in a child process: the installed library
never imports the applications (imports point down, see docs/ARCHITECTURE.md). When neither place
has them they exit with status 2 and say where to run them from.

Example:
    $ agent-tokred demo --quick            # the four demos, short version, offline
    $ agent-tokred bench --quick --only engine
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
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


def run_app(package: str, argv: Sequence[str], what: str) -> int:
    """Run ``python -m <package> <argv>`` from the repository root; 2 when there is no repository."""
    root = find_repo_root(package)
    if root is None:
        print(_NOT_FOUND.format(what=what), file=sys.stderr)
        return 2
    return subprocess.run([sys.executable, "-m", package, *argv], cwd=root, check=False).returncode


def _common_args(args: argparse.Namespace) -> list[str]:
    out = str(Path(args.out).resolve()) if args.out else None  # the child runs in the repository root
    return [*(["--quick"] if args.quick else []), *(["--out", out] if out else []),
            *[x for name in args.only for x in ("--only", name)]]


def _cmd_demo(args: argparse.Namespace) -> int:
    return run_app("demos", [*_common_args(args), *(["--model", args.model] if args.model else [])], "demos")


def _cmd_bench(args: argparse.Namespace) -> int:
    return run_app("bench", _common_args(args), "benches")


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
