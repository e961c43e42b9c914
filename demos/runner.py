"""Run the demos, print the summary table, write the plots, the HTML report and the raw numbers.

``python -m demos [--quick] [--out DIR] [--model provider:name] [--only NAME]`` (also
``agent-tokred demo``). Offline by default; a demo whose data or dependency is missing is skipped with
the reason, and one that fails is reported without stopping the others.

Writes to ``--out`` (default ``demos/out/latest``): ``summary.md`` (the table), ``summary.json`` (raw
numbers), ``context_tokens.png`` (context tokens per step, with vs without), ``component_savings.png``
(tokens saved per component) and ``report.html`` (one static page: every reduced item with the
dropped text greyed out, the per-step charts and the totals).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import ROOT, DemoResult, DemoSkipped

DEMOS: dict[str, str] = {
    "tools": "demos.tools_agent",
    "rag": "demos.rag_agent",
    "reasoning": "demos.reasoning_agent",
    "fewshot": "demos.fewshot",
}
DEFAULT_OUT = ROOT / "demos" / "out" / "latest"
HEADERS = ("demo", "mode", "steps", "context tokens without", "with agent-tokred", "saved", "success signal",
           "without", "with", "seconds")


def table_rows(results: dict[str, DemoResult]) -> list[list[str]]:
    rows = []
    for res in results.values():
        r = res.run
        short_mode = r.mode.split(" (")[0]
        rows.append([r.title, short_mode, str(len(r.steps)), f"{r.tokens_without:,}", f"{r.tokens_with:,}",
                     f"{r.saved_share:.1%}", res.signal, res.without, res.with_, f"{r.seconds:.0f}"])
    return rows


def markdown(rows: list[list[str]], caption: str) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + f"\n\n{caption}\n"


def plain_table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 1, 6) else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*HEADERS), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)])


def limit_torch_threads() -> int:
    """Use ``$AGENT_TOKRED_DEMO_THREADS`` torch threads (default 1).

    The demos embed a few sentences at a time; on a small shared CPU, torch's default of one thread
    per core spins against other processes and is many times slower than a single thread.
    """
    import os

    n = int(os.environ.get("AGENT_TOKRED_DEMO_THREADS", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        try:
            import torch
        except ImportError:
            return n
        torch.set_num_threads(n)
    return n


def _run_one(name: str, quick: bool, model: str | None) -> tuple[DemoResult | None, str]:
    try:
        module = importlib.import_module(DEMOS[name])
    except ImportError as exc:
        return None, f"skipped: {exc}"
    try:
        return module.run(quick, model), "ok"
    except DemoSkipped as exc:
        return None, f"skipped: {exc}"
    except ImportError as exc:  # a dependency module of the demo is missing
        return None, f"skipped: {exc}"
    except Exception as exc:  # one failing demo must not stop the others
        traceback.print_exc(limit=6, file=sys.stderr)
        return None, f"failed: {type(exc).__name__}: {exc}"


def run_all(quick: bool, out_dir: Path, model: str | None = None, only: Sequence[str] = ()) -> dict[str, Any]:
    """Run the demos and write their outputs to ``out_dir``; return the raw summary (also in summary.json).

    Args:
        quick: the short version of each demo (for tests and a first look).
        out_dir: where the table, plots and report go.
        model: ``"provider:name"`` to drive the agents with a real chat model (``init_chat_model``).
        only: demo names to run (default all: ``tools``, ``rag``, ``reasoning``, ``fewshot``).

    Raises:
        ValueError: an unknown name in ``only`` (the message lists the valid ones).
    """
    unknown = [n for n in only if n not in DEMOS]
    if unknown:
        raise ValueError(f"unknown demo {unknown[0]!r}; valid: {', '.join(DEMOS)}")
    names = list(only) or list(DEMOS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    limit_torch_threads()
    results: dict[str, DemoResult] = {}
    status: dict[str, str] = {}
    for i, name in enumerate(names, 1):
        print(f"[demo {i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        res, status[name] = _run_one(name, quick, model)
        if res is not None:
            results[name] = res
        print(f"[demo {i}/{len(names)}] {name}: {status[name]}"
              + (f" ({res.run.seconds:.0f}s)" if res else ""), file=sys.stderr, flush=True)
    total = time.perf_counter() - started
    paths: dict[str, str] = {}
    rows = table_rows(results)
    how = (f"agents driven by {model} (demo 3 replays recorded traces)" if model else
           "offline: demos 1 and 3 replay recorded model outputs, demos 2 and 4 run deterministic offline "
           "models with the embedded MiniLM")
    caption = (f"`agent-tokred demo{' --quick' if quick else ''}` on {dt.date.today().isoformat()}, "
               f"{how}; o200k_base tokens summed over all model calls; total {total:.0f}s.")
    if rows:
        (out_dir / "summary.md").write_text(markdown(rows, caption), encoding="utf-8")
        paths["summary"] = str(out_dir / "summary.md")
        runs = [r.run for r in results.values()]
        images: list[tuple[str, Path]] = []
        try:
            from agent_tokred.report.plots import plot_component_savings, plot_context_tokens

            ctx = plot_context_tokens(runs, out_dir / "context_tokens.png")
            comp = plot_component_savings(runs, out_dir / "component_savings.png")
            images = [("Context tokens per step", ctx), ("Tokens saved per component", comp)]
            paths["context_plot"], paths["component_plot"] = str(ctx), str(comp)
        except Exception as exc:  # e.g. matplotlib missing: the report still has its SVG charts
            print(f"plots skipped: {exc}", file=sys.stderr)
        from agent_tokred.report.html import write_report

        page = write_report(out_dir / "report.html", runs, title="agent-tokred demo report",
                            subtitle=caption.replace("`", ""), images=images)
        paths["report"] = str(page)
    summary: dict[str, Any] = {
        "quick": quick, "model": model, "seconds": round(total, 1), "status": status, "paths": paths,
        "demos": {
            name: {"title": r.run.title, "mode": r.run.mode, "steps": len(r.run.steps),
                   "tokens_without": r.run.tokens_without, "tokens_with": r.run.tokens_with,
                   "saved_share": round(r.run.saved_share, 4), "signal": r.signal, "signal_without": r.without,
                   "signal_with": r.with_, "seconds": round(r.run.seconds, 1),
                   "components": {k: list(v) for k, v in r.run.component_totals().items()}, "raw": r.raw}
            for name, r in results.items()
        },
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str),
                                          encoding="utf-8")
    paths["json"] = str(out_dir / "summary.json")
    print()
    if rows:
        print(plain_table(rows))
        print(f"\n{caption.replace('`', '')}")
    for name, s in status.items():
        if s != "ok":
            print(f"  {name}: {s}")
    print()
    for label, p in paths.items():
        print(f"  {label:<15} {p}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demos", description="Run the agent-tokred demos.")
    parser.add_argument("--quick", action="store_true", help="a short version of each demo")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--model", default=None, metavar="PROVIDER:NAME",
                        help="drive the agents with a real chat model via init_chat_model (keys from the environment)")
    parser.add_argument("--only", action="append", default=[], choices=list(DEMOS), help="run only this demo")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 when every selected demo ran, 1 when one failed or none ran."""
    args = build_parser().parse_args(argv)
    if args.model and ":" not in args.model:
        print(f"--model must be provider:name (e.g. openai:gpt-4o-mini), got {args.model!r}", file=sys.stderr)
        return 2
    summary = run_all(args.quick, args.out, args.model, args.only)
    failed = [n for n, s in summary["status"].items() if s.startswith("failed")]
    return 1 if failed or not summary["demos"] else 0
