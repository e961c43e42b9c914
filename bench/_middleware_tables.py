"""Tables of :mod:`bench.bench_middleware`: per-step records, group breakdowns and the markdown report."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .bfcl_probes import ArgProbe
from .common import markdown_table

STEP_BUCKETS = ((0, 1), (2, 4), (5, 9), (10, 14), (15, 10_000))


@dataclass
class MethodResult:
    """Per-step tokens and seconds, and per-probe survival (aligned across methods)."""

    name: str
    config: dict[str, Any]
    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    survived: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class StepInfo:
    trajectory: str
    backend: str
    position: int  # model-call index within the trajectory
    arrived: str  # tool whose output arrived just before this call ("" after a user message)


def bucket(position: int) -> str:
    """The label of a model-call position's group (1-based)."""
    lo, hi = next(b for b in STEP_BUCKETS if b[0] <= position <= b[1])
    return f"{lo + 1}+" if hi >= 10_000 else f"{lo + 1}-{hi + 1}"


def breakdown(
    infos: Sequence[StepInfo],
    key: Callable[[StepInfo], str],
    raw: MethodResult,
    ours: MethodResult,
    clear: MethodResult,
) -> list[dict[str, Any]]:
    """Mean context tokens per step in groups of steps (raw, agent-tokred, clearing at equal tokens)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, info in enumerate(infos):
        groups[key(info)].append(i)
    return [
        {
            "group": g,
            "steps": len(ix),
            "raw": statistics.mean(raw.tokens[i] for i in ix),
            "tokred": statistics.mean(ours.tokens[i] for i in ix),
            "clear": statistics.mean(clear.tokens[i] for i in ix),
        }
        for g, ix in groups.items()
    ]


def time_by_tool(infos: Sequence[StepInfo], r: MethodResult) -> list[dict[str, Any]]:
    """Where agent-tokred's time goes: step seconds grouped by the tool whose output just arrived."""
    groups: dict[str, list[float]] = defaultdict(list)
    for info, s in zip(infos, r.seconds):
        groups[info.arrived or "(user message)"].append(s)
    rows = [
        {
            "tool": t,
            "steps": len(v),
            "seconds_total": sum(v),
            "ms_median": 1000 * statistics.median(v),
            "ms_max": 1000 * max(v),
        }
        for t, v in groups.items()
    ]
    return sorted(rows, key=lambda x: -x["seconds_total"])


def lost_probes(r: MethodResult, probes: Sequence[ArgProbe]) -> list[dict[str, Any]]:
    return [
        {
            "trajectory": p.trajectory,
            "step": p.step,
            "arg": p.label,
            "value": p.value[:80],
            "from": p.source_call,
            "passage": p.passage,
        }
        for s, p in zip(r.survived, probes)
        if not s
    ]


def _cfg(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "-"


def render(raw: dict[str, Any], quick: bool, limit: int | None) -> str:
    """The markdown report."""
    cmd = "python -m bench.bench_middleware" + (" --quick" if quick else "") + (f" --limit {limit}" if limit else "")
    caption = (
        f"BFCL v4 multi_turn_long_context, {raw['trajectories']} trajectories, {raw['steps']} model calls, "
        f"{raw['probes'] - raw['probes_passages']} identifier probes + {raw['probes_passages']} copied "
        f"passages; o200k_base. Command: `{cmd}`"
    )
    rows = [
        [
            r["method"],
            _cfg(r["config"]),
            f"{r['tokens_total']:,}",
            f"{r['reduction']:.1%}",
            f"{r['tokens_median_step']:,.0f}",
            f"{r['tokens_max_step']:,}",
            f"{r['survival_identifiers']:.1%}",
            f"{r['survival_passages']:.0%}",
            f"{r['ms_median_step']:.2f}",
            f"{r['ms_p99_step']:.0f}",
        ]
        for r in raw["rows"]
    ]
    text = "## Context the model sees, summed over all model calls\n\n" + markdown_table(
        [
            "method",
            "config",
            "tokens",
            "reduction",
            "median/call",
            "max/call",
            "arg survival",
            "passages",
            "ms/call p50",
            "ms/call p99",
        ],
        rows,
        caption,
    )
    eq = [
        [
            _cfg(m["tokred"]["config"]),
            f"{m['tokred']['reduction']:.1%}",
            f"{m['tokred']['survival_identifiers']:.1%}",
            "-" if m["clear"] is None else _cfg(m["clear"]["config"]),
            "-" if m["clear"] is None else f"{m['clear']['reduction']:.1%}",
            "-" if m["clear"] is None else f"{m['clear']['survival_identifiers']:.1%}",
        ]
        for m in raw["equal_tokens"]
    ]
    best98 = raw["best_clearing_at_98"]
    note = "Best clearing config with >= 98% survival: " + (
        f"{_cfg(best98['config'])}, {best98['reduction']:.1%} reduction." if best98 else "none in the grid."
    )
    text += "\n## Equal tokens: the clearing config (grid) with the best survival at no more tokens (+2%)\n\n"
    text += markdown_table(
        ["agent-tokred", "reduction", "survival", "ClearToolUsesEdit", "reduction", "survival"], eq, note
    )
    if "by_step" in raw:
        for title, key in (("model call position in the trajectory", "by_step"), ("backend", "by_backend")):
            body = [
                [g["group"], g["steps"], f"{g['raw']:,.0f}", f"{g['tokred']:,.0f}", f"{g['clear']:,.0f}"]
                for g in raw[key]
            ]
            text += f"\n## Mean context tokens per call, by {title}\n\n"
            text += "First agent-tokred config; clearing at equal tokens.\n\n"
            text += markdown_table([title.split()[0], "calls", "raw", "agent-tokred", "clearing"], body)
        body = [
            [
                t["tool"],
                t["steps"],
                f"{t['seconds_total']:.2f}",
                f"{t['ms_median']:.2f}",
                f"{t['ms_max']:.0f}",
            ]
            for t in raw["time_by_tool"][:8]
        ]
        text += "\n## Where agent-tokred's time goes (first config)\n\n"
        text += "Model calls grouped by the tool output that just arrived.\n\n"
        text += markdown_table(["arrived", "calls", "seconds", "ms p50", "ms max"], body)
    return text
