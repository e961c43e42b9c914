"""PNG plots of runs (matplotlib, Agg backend, imported only when a plot is drawn).

* :func:`plot_context_tokens`: context tokens per step, without vs with agent-tokred, one panel per run.
* :func:`plot_component_savings`: tokens per component (tool outputs, history, documents ...) without
  vs with agent-tokred, one panel per run.

Install the ``viz`` extra (``pip install agent-tokred[viz]``) for matplotlib.

Example:
    >>> from agent_tokred.report.records import ComponentTokens, RunRecord, StepRecord
    >>> import tempfile, pathlib
    >>> run = RunRecord("a", "A", (StepRecord(0, (ComponentTokens("tool outputs", 900, 300),)),))
    >>> p = plot_context_tokens([run], pathlib.Path(tempfile.mkdtemp()) / "ctx.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, ModelNotAvailableError
from .html import WITH_COLOUR, WITHOUT_COLOUR
from .records import RunRecord


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelNotAvailableError("plots need matplotlib: pip install 'agent-tokred[viz]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _thousands(value: float, _pos: int = 0) -> str:
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:.0f}"


def _short(value: float) -> str:
    return f"{value / 1000:.1f}k" if abs(value) >= 1000 else f"{value:.0f}"


def _panel_title(run: RunRecord, extra: str) -> str:
    mode = run.mode.split(" (")[0].split(":")[0]
    return f"{run.title}\n{mode} · {extra}"


def _panels(runs: Sequence[RunRecord], what: str, width: float, height: float) -> tuple[Any, Any, list[Any], list[Any]]:
    """(pyplot, figure, axes, runs shown): one panel per run that has steps."""
    shown = [r for r in runs if r.steps]
    if not shown:
        raise InvalidInputError(f"{what} needs at least one run with steps")
    plt = _pyplot()
    fig, axes = _grid(plt, len(shown), width, height)
    return plt, fig, axes, shown


def _thousands_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(_thousands))


def _grid(plt: Any, n: int, width: float, height: float) -> tuple[Any, list[Any]]:
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(plt: Any, fig: Any, path: str | Path, dpi: int) -> Path:
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def plot_context_tokens(runs: Sequence[RunRecord], path: str | Path, *, dpi: int = 110) -> Path:
    """One panel per run: context tokens of each model call without vs with agent-tokred.

    Args:
        runs: runs with at least one step each (runs without steps are left out).
        path: where the PNG goes (folders are created).
        dpi: resolution.

    Returns:
        The PNG path.
    """
    plt, fig, axes, shown = _panels(runs, "plot_context_tokens", 6.4, 3.7)
    for ax, run in zip(axes, shown):
        xs = [s.index for s in run.steps]
        before = [s.tokens_before for s in run.steps]
        after = [s.tokens_after for s in run.steps]
        ax.plot(xs, before, color=WITHOUT_COLOUR, marker="o", markersize=3, label="without agent-tokred")
        ax.plot(xs, after, color=WITH_COLOUR, marker="o", markersize=3, label="with agent-tokred")
        ax.fill_between(xs, after, before, color=WITHOUT_COLOUR, alpha=0.08)
        for m in run.group_starts():
            ax.axvline((xs[m - 1] + xs[m]) / 2, color="#aab7b8", linestyle=":", linewidth=1)
        ax.set_title(_panel_title(run, f"saved {run.saved_share:.0%} of context tokens"), fontsize=9.5)
        ax.set_xlabel("step (model call)" + (" · dotted: next task" if run.group_starts() else ""), fontsize=9)
        ax.set_ylabel("context tokens", fontsize=9)
        _thousands_axis(ax.yaxis)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(plt, fig, path, dpi)


def plot_component_savings(runs: Sequence[RunRecord], path: str | Path, *, dpi: int = 110) -> Path:
    """One panel per run: tokens per component over all steps, without vs with agent-tokred.

    Each panel has its own scale; the label gives the tokens and the share saved.

    Args:
        runs: the runs (runs without steps are left out).
        path: where the PNG goes.
        dpi: resolution.

    Returns:
        The PNG path.
    """
    plt, fig, axes, shown = _panels(runs, "plot_component_savings", 6.4, 2.9)
    for ax, run in zip(axes, shown):
        totals = [(name, b, a) for name, (b, a) in run.component_totals().items() if b > 0]
        ys = list(range(len(totals)))[::-1]
        h = 0.38
        ax.barh([y + h / 2 for y in ys], [b for _, b, _ in totals], height=h, color=WITHOUT_COLOUR,
                label="without agent-tokred")
        ax.barh([y - h / 2 for y in ys], [a for _, _, a in totals], height=h, color=WITH_COLOUR,
                label="with agent-tokred")
        ax.set_yticks(ys, [name for name, _, _ in totals], fontsize=8.5)
        for y, (_, b, a) in zip(ys, totals):
            saved = f"saved {_short(b - a)} ({(b - a) / b:.0%})" if b > a else "unchanged"
            ax.text(b, y + h / 2, f"  {_short(b)} → {_short(a)}: {saved}", va="center", fontsize=7.5, color="#333333")
        ax.set_title(_panel_title(run, f"saved {run.tokens_without - run.tokens_with:,} tokens"), fontsize=9.5)
        ax.set_xlabel("tokens over all model calls", fontsize=9)
        _thousands_axis(ax.xaxis)
        ax.margins(x=0.55)
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right")
    return _save(plt, fig, path, dpi)
