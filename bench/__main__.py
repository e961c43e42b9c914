"""Run every bench of the project: ``python -m bench [--quick] [--only NAME ...] [--out DIR]``.

Each bench module in ``bench/`` that exposes ``run(quick: bool, out_dir: Path) -> dict`` is run in turn
(one failing bench is reported, not fatal). Each writes its own markdown table(s) and JSON to ``--out``;
this runner then writes ``SUMMARY.md`` (their markdown tables, concatenated, in the order run) and
``summary.json`` (each bench's raw numbers, status and wall time). The README quotes ``SUMMARY.md``.

Exit status: 0 when every selected bench ran, 1 when one failed, 2 for an unknown ``--only`` name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "out"
# The order the README presents them in; a module missing from disk is simply not run.
BENCHES: tuple[str, ...] = (
    "bench_engine",
    "bench_middleware",
    "bench_overhead",
    "bench_overthinking",
    "bench_examples",
    "bench_memory",
    "bench_learned",
    "bench_tools",
    "bench_speed",
)


def available() -> list[str]:
    """The bench modules present in ``bench/``, in :data:`BENCHES` order."""
    here = Path(__file__).resolve().parent
    return [name for name in BENCHES if (here / f"{name}.py").exists()]


def _snapshot(out_dir: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in out_dir.glob("*.md") if p.name != "SUMMARY.md"} if out_dir.exists() else {}


def run_one(name: str, quick: bool, out_dir: Path) -> dict[str, Any]:
    """Import and run one bench; never raises (a failure is recorded with its traceback)."""
    before = _snapshot(out_dir)
    started = time.perf_counter()
    record: dict[str, Any] = {"name": name, "status": "ok"}
    try:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            raise TypeError(f"bench.{name} has no run(quick, out_dir) function")
        result = run(quick, out_dir)
        record["raw"] = result if isinstance(result, dict) else {"result": repr(result)}
    except Exception as exc:  # one failing bench must not stop the others
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=8)
    except SystemExit as exc:  # a bench that calls sys.exit is a failure too, not the runner's exit
        record["status"] = "failed"
        record["error"] = f"SystemExit({exc.code})"
    record["seconds"] = round(time.perf_counter() - started, 2)
    after = _snapshot(out_dir)
    record["markdown_files"] = sorted(p.name for p, m in after.items() if before.get(p) != m)
    return record


def summary_markdown(records: Sequence[dict[str, Any]], out_dir: Path, quick: bool, only: Sequence[str] = ()) -> str:
    """The tables of every bench that ran, each under its name, plus a status table."""
    cmd = f"python -m bench{' --quick' if quick else ''}" + "".join(f" --only {n.removeprefix('bench_')}" for n in only)
    lines = [
        "# agent-tokred benchmarks",
        "",
        f"Produced by `{cmd}` on {dt.date.today().isoformat()} ({platform.machine()}, "
        f"Python {platform.python_version()}). Each table's caption names the command for that bench alone.",
        "",
        "| bench | status | seconds | tables |",
        "|---|---|---|---|",
    ]
    for r in records:
        status = r["status"] if r["status"] == "ok" else f"failed: {r.get('error', '')[:120]}"
        lines.append(f"| {r['name']} | {status} | {r['seconds']:.1f} | {', '.join(r['markdown_files']) or '-'} |")
    for r in records:
        for md in r["markdown_files"]:
            lines += ["", f"## {r['name']} ({md})", "", (out_dir / md).read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"


def run_all(quick: bool, out_dir: Path, only: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Run the selected benches (all present ones by default); write SUMMARY.md and summary.json."""
    names = list(only) or available()
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for i, name in enumerate(names, 1):
        print(f"[bench {i}/{len(names)}] {name}{' (quick)' if quick else ''} ...", file=sys.stderr, flush=True)
        record = run_one(name, quick, out_dir)
        note = "ok" if record["status"] == "ok" else f"FAILED ({record['error']})"
        print(f"[bench {i}/{len(names)}] {name}: {note} in {record['seconds']:.1f}s", file=sys.stderr, flush=True)
        records.append(record)
    (out_dir / "SUMMARY.md").write_text(summary_markdown(records, out_dir, quick, only), encoding="utf-8")
    summary = {
        "quick": quick,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "benches": {r["name"]: r for r in records},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str),
                                          encoding="utf-8")
    return records


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="small subsets, for CI (minutes)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only this bench (repeatable; with or without the bench_ prefix): {', '.join(BENCHES)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    return parser


def resolve_names(only: Sequence[str]) -> list[str]:
    """``--only`` values as module names; raises ValueError naming the valid ones."""
    present = available()
    names = []
    for raw in only:
        name = raw if raw.startswith("bench_") else f"bench_{raw}"
        if name not in present:
            raise ValueError(f"unknown bench {raw!r}; available: {', '.join(present) or 'none'}")
        names.append(name)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        names = resolve_names(args.only)
    except ValueError as exc:
        print(f"python -m bench: error: {exc}", file=sys.stderr)
        return 2
    records = run_all(args.quick, args.out, names)
    print((args.out / "SUMMARY.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out / 'SUMMARY.md'} and {args.out / 'summary.json'}", file=sys.stderr)
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
