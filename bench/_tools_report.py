"""Tables and the plot of the tool-output bench (from the raw figures :func:`bench.bench_tools.run` returns)."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

from .common import markdown_table


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _families(raw: dict[str, Any]) -> list[str]:
    return [*raw["families"], "total", "macro"]


def markdown_report(raw: dict[str, Any]) -> str:
    """``tools.md``: evidence kept per family and method at each rate, then tokens, budgets, parsing, speed."""
    figs = raw["figures"]
    methods = [m for m in raw["methods"] if m in figs]
    fams = _families(raw)
    first = figs[methods[0]][str(raw["rates"][0])] if methods else {}
    lines = [
        "# Tool-output bench: evidence kept in real agent tool outputs (issue 13)",
        "",
        f"Produced by `{raw['command']}` on {dt.date.today().isoformat()} ({platform.machine()}, Python "
        f"{platform.python_version()}, engine at commit {raw.get('commit') or '?'}): {raw['split']} split, {raw['cases']} cases, budgets in {raw['tokenizer']}, "
        f"{raw['seconds']} s. Cells are percentages: mean over cases of the share of evidence strings (values that "
        "later ground-truth steps need) still in the output. `total` = mean over all cases; `macro` = mean of the "
        "family means. `clear` (LangChain `ClearToolUsesEdit`, trigger 0, keep 0, clear_at_least = (1 − rate) × the "
        "task's tool tokens, oldest first) applies to trajectory families only.",
        "",
        "Cases per family: " + ", ".join(f"{f} {first[f]['n']}" for f in raw["families"] if f in first) + ".",
        "",
    ]
    for rate in raw["rates"]:
        rows = []
        for m in methods:
            cell = figs[m].get(str(rate), {})
            rows.append([m, *[_pct(cell[f]["evidence_kept"]) if f in cell else "–" for f in fams]])
        lines += [f"## Evidence kept at {100 * rate:g}% of tokens", "", markdown_table(["method", *fams], rows)]
    rows = []
    for m in methods:
        for rate in raw["rates"]:
            t = figs[m][str(rate)]["total"]
            rows.append([m, f"{100 * rate:g}%", t["n"], _pct(t["evidence_kept"]), _pct(t["tokens_kept"]),
                         "–" if t["over_budget"] is None else t["over_budget"], f"{_pct(t['parse_rate'])} (n={t['parse_n']})",
                         f"{1000 * t['seconds_per_case']:.1f}", t["errors"]])
    lines += ["## All cases: tokens kept, budgets, structure, speed", "",
              markdown_table(["method", "rate", "results", "evidence kept %", "tokens kept %", "over budget",
                              "parses % (JSON/JSONL/YAML/CSV/TSV)", "ms per case", "errors"], rows)]
    if raw.get("margins"):
        lines += _margin_section(raw)
    if methods:
        lines += ["## Per format: evidence kept % / parses % (all families)", "", _format_table(raw, methods)]
    if raw.get("errors"):
        lines += ["Errors seen (first 20 distinct):", "", *[f"- `{e}`" for e in raw["errors"]], ""]
    return "\n".join(lines)


def _margin_section(raw: dict[str, Any]) -> list[str]:
    """auto minus each baseline per family and rate: mean [95% paired bootstrap interval], in points."""
    fams = [*raw["families"], "total"]
    rows = []
    for other, by_rate in raw["margins"].items():
        for rate in raw["rates"]:
            cell = by_rate.get(str(rate), {})
            rows.append([f"auto − {other}", f"{100 * rate:g}%", *[
                f"{100 * cell[f]['mean']:+.1f} [{100 * cell[f]['lo']:+.1f}, {100 * cell[f]['hi']:+.1f}]" if f in cell else "–"
                for f in fams]])
    return ["## Margins: auto minus a baseline, points of evidence kept (mean [95% interval])", "",
            "Paired by case; the interval is the 2.5-97.5 percentile of 2,000 bootstrap resamples of the cases "
            "(seed 0). The bootstrap says little about a family of a few cases (three cases with equal margins give "
            "a zero-width interval).", "",
            markdown_table(["margin", "rate", *fams], rows)]


def _format_table(raw: dict[str, Any], methods: list[str]) -> str:
    figs = raw["figures"]
    formats = sorted({k[4:] for m in methods for v in figs[m].values() for k in v if k.startswith("fmt:")})
    first = figs[methods[0]][str(raw["rates"][0])]
    headers = ["method", "rate", *[f"{f} (n={first.get(f'fmt:{f}', {}).get('n', 0)})" for f in formats]]
    rows = []
    for m in methods:
        for rate in raw["rates"]:
            cell = {k[4:]: v for k, v in figs[m][str(rate)].items() if k.startswith("fmt:")}
            rows.append([m, f"{100 * rate:g}%", *[
                f"{_pct(cell[f]['evidence_kept'])} / {_pct(cell[f]['parse_rate'])}" if f in cell else "–"
                for f in formats]])
    return markdown_table(headers, rows)


def plot_evidence(raw: dict[str, Any], path: Path) -> None:
    """Evidence kept vs tokens kept, one line per method (its rates), total and one small panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = raw["figures"]
    methods = [m for m in raw["methods"] if m in figs]
    panels = ["total", *raw["families"]]
    cols = 4
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.4 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for m in methods:
            pts = [(figs[m][str(r)][panel]["tokens_kept"], figs[m][str(r)][panel]["evidence_kept"])
                   for r in raw["rates"] if panel in figs[m].get(str(r), {})]
            if pts:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, marker="o", label=m, linewidth=2.2 if m == "auto" else 1.2)
        n = figs[methods[0]][str(raw["rates"][0])].get(panel, {}).get("n", 0) if methods else 0
        ax.set_title(f"{panel} (n={n})", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_xlabel("tokens kept")
        ax.set_ylabel("evidence kept")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Evidence kept vs tokens kept ({raw['split']} split, `{raw['command']}`)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
