"""Issue 3's bench: per-call context reduction on real agent trajectories (BFCL v4 long context).

For every model call of every replayed trajectory (:mod:`bench.bfcl`) the context the model sees is all
messages so far. It is measured in o200k_base tokens (:mod:`bench.bfcl_probes`) raw, with agent-tokred
(``reduce_tool_message`` when a tool output arrives, then ``reduce_messages`` at every model call: what
``TokenReductionMiddleware`` does) and with LangChain's
``ContextEditingMiddleware(edits=[ClearToolUsesEdit])`` (run through its ``wrap_model_call`` with a
handler that captures the messages). Quality is **argument survival**: the share of later ground-truth
arguments copied from earlier tool outputs that are still in the context at the call that needs them.
Clearing is swept over a (trigger, keep) grid and compared with agent-tokred at equal or fewer tokens.

Run: ``python -m bench.bench_middleware [--quick] [--limit N] [--out bench/out]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._middleware_tables import MethodResult, StepInfo, breakdown, bucket, lost_probes, render, time_by_tool
from .bfcl import Step, Trajectory, load_trajectories, steps, to_messages
from .bfcl_probes import ArgProbe, argument_probes, context_tokens, survived
from .common import OUT, write_outputs

NAME = "bench_middleware"
QUICK_TRAJECTORIES = 20
Reducer = Callable[[list[Any], Step], list[Any]]

CLEARING_GRID = [(t, k) for t in (0, 2_000, 4_000, 8_000, 16_000) for k in (0, 1, 2, 3, 5, 8)]
TOKRED_CONFIGS: list[dict[str, Any]] = [
    {"message_budget": 1000, "criterion": "lexical"},
    {"message_budget": 2000, "criterion": "lexical"},
    {"message_budget": 500, "criterion": "lexical"},
    {"message_budget": 1000, "call_budget": 3000, "criterion": "lexical"},
    {"message_budget": 1000, "criterion": "auto"},
]


# -- methods ---------------------------------------------------------------------------------------
def raw_reducer(messages: list[Any], step: Step) -> list[Any]:
    return messages


def clearing_reducer(trigger: int, keep: int) -> Reducer:
    """LangChain's ContextEditingMiddleware, through ``wrap_model_call``, counting in o200k_base."""
    from langchain.agents.middleware import ClearToolUsesEdit, ContextEditingMiddleware
    from langchain.agents.middleware.types import ModelRequest
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    middleware: Any = ContextEditingMiddleware(
        edits=[ClearToolUsesEdit(trigger=trigger, keep=keep)], token_counter=context_tokens
    )
    model = GenericFakeChatModel(messages=iter(()))

    def reduce(messages: list[Any], step: Step) -> list[Any]:
        captured: list[list[Any]] = []
        middleware.wrap_model_call(
            ModelRequest(model=model, messages=messages),
            lambda request: captured.append(list(request.messages)),
        )
        return captured[0]

    return reduce


def tokred_reducer(mode: str = "arrival", **options: Any) -> Reducer:
    """agent-tokred through the middleware's own engine (``ReductionEngine``, ``ContextPolicy(**options)``).

    ``mode="arrival"`` is what ``TokenReductionMiddleware`` does: ``wrap_tool_call`` holds each tool output
    to ``message_budget`` once, when it arrives (query: the latest user request plus the call's
    arguments), and ``wrap_model_call`` reduces every model call's messages (query: the latest user
    request). ``mode="call"``: only the per-call view, over the raw history at every call.
    """
    from langchain_core.messages import ToolMessage
    from langgraph.store.memory import InMemoryStore

    from agent_tokred.integration.engine import ReductionEngine

    if mode not in ("arrival", "call"):
        raise ValueError(f"unknown mode {mode!r}; valid: arrival, call")
    crit = options.get("criterion", "auto")
    options = {**options, "criterion": crit}
    engine = ReductionEngine(options, store=InMemoryStore())
    held: dict[str, Any] = {}

    def reduce(messages: list[Any], step: Step) -> list[Any]:
        if mode == "arrival":
            args = {c["id"]: c["args"] for m in messages for c in getattr(m, "tool_calls", None) or ()}
            for i, m in enumerate(messages):
                if isinstance(m, ToolMessage):
                    if m.tool_call_id not in held:
                        held[m.tool_call_id] = engine.reduce_tool(
                            m, query=step.query, call_args=args.get(m.tool_call_id)
                        )[0]
                    messages[i] = held[m.tool_call_id]
        out, _report = engine.reduce(messages, query=step.query)
        return list(out)

    return reduce


# -- running ---------------------------------------------------------------------------------------


def step_infos(trajectories: Sequence[Trajectory]) -> list[StepInfo]:
    out = []
    for traj in trajectories:
        full = to_messages(traj)
        for s in steps(traj):
            last = full[s.n_messages - 1]
            out.append(
                StepInfo(
                    traj.id,
                    traj.main_backend,
                    s.index,
                    str(getattr(last, "name", "") or "") if last.type == "tool" else "",
                )
            )
    return out


def run_method(
    name: str,
    config: dict[str, Any],
    reducer: Reducer,
    trajectories: Sequence[Trajectory],
    probes: dict[str, list[ArgProbe]],
) -> MethodResult:
    result = MethodResult(name, config)
    for traj in trajectories:
        full = to_messages(traj)
        by_step: dict[int, list[ArgProbe]] = defaultdict(list)
        for p in probes[traj.id]:
            by_step[p.step].append(p)
        for step in steps(traj):
            started = time.perf_counter()
            seen = reducer(list(full[: step.n_messages]), step)
            result.seconds.append(time.perf_counter() - started)
            result.tokens.append(context_tokens(seen))
            if step.index in by_step:
                result.survived.extend(survived(seen, by_step[step.index]))
    return result


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 1.0


def summarize(r: MethodResult, raw: MethodResult, probes: Sequence[ArgProbe]) -> dict[str, Any]:
    total, raw_total = sum(r.tokens), sum(raw.tokens)
    return {
        "method": r.name,
        "config": r.config,
        "tokens_total": total,
        "reduction": 1 - total / raw_total if raw_total else 0.0,
        "tokens_median_step": statistics.median(r.tokens),
        "tokens_max_step": max(r.tokens),
        "survival_identifiers": _share([s for s, p in zip(r.survived, probes) if not p.passage]),
        "survival_passages": _share([s for s, p in zip(r.survived, probes) if p.passage]),
        "ms_median_step": 1000 * statistics.median(r.seconds),
        "ms_p99_step": 1000 * float(np.percentile(r.seconds, 99)),
        "seconds_total": sum(r.seconds),
    }


def select(trajectories: Sequence[Trajectory], n: int | None) -> list[Trajectory]:
    """``n`` trajectories evenly spaced over the set (tasks are grouped by backend), or all of them."""
    if n is None or n >= len(trajectories):
        return list(trajectories)
    return [trajectories[i * len(trajectories) // n] for i in range(n)]


def run(
    quick: bool,
    out_dir: Path,
    limit: int | None = None,
    tokred_configs: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the bench; write ``bench_middleware.md`` and ``.json`` to ``out_dir``; return the raw numbers."""
    started = time.perf_counter()
    trajectories = select(load_trajectories(), QUICK_TRAJECTORIES if quick and limit is None else limit)
    probes = {t.id: argument_probes(t) for t in trajectories}
    flat = [p for t in trajectories for p in probes[t.id]]
    infos = step_infos(trajectories)
    raw = run_method("raw", {}, raw_reducer, trajectories, probes)
    default = run_method(
        "clear (LangChain default)",
        {"trigger": 100_000, "keep": 3},
        clearing_reducer(100_000, 3),
        trajectories,
        probes,
    )
    grid = [
        run_method("clear", {"trigger": t, "keep": k}, clearing_reducer(t, k), trajectories, probes)
        for t, k in CLEARING_GRID
    ]
    configs = list(TOKRED_CONFIGS if tokred_configs is None else tokred_configs)
    ours = [run_method("agent-tokred", dict(c), tokred_reducer(**c), trajectories, probes) for c in configs]
    grid_rows = [summarize(r, raw, flat) for r in grid]
    matched: list[dict[str, Any]] = []
    matched_index: list[int | None] = []
    for r in ours:
        row = summarize(r, raw, flat)
        fair = [i for i, g in enumerate(grid_rows) if g["tokens_total"] <= row["tokens_total"] * 1.02]
        best = max(
            fair,
            key=lambda i: (grid_rows[i]["survival_identifiers"], -grid_rows[i]["tokens_total"]),
            default=None,
        )
        matched.append({"tokred": row, "clear": None if best is None else grid_rows[best]})
        matched_index.append(best)
    safe = [g for g in grid_rows if g["survival_identifiers"] >= 0.98]
    out: dict[str, Any] = {
        "trajectories": len(trajectories),
        "steps": len(raw.tokens),
        "probes": len(flat),
        "probes_passages": sum(p.passage for p in flat),
        "rows": [summarize(r, raw, flat) for r in [raw, default, *ours]],
        "equal_tokens": matched,
        "best_clearing_at_98": max(safe, key=lambda g: g["reduction"], default=None),
        "clearing_grid": grid_rows,
        "dropped": {str(r.config): lost_probes(r, flat) for r in ours},
    }
    if ours:
        first = matched_index[0]
        best_clear = grid[first] if first is not None else default
        out["by_step"] = breakdown(infos, lambda i: bucket(i.position), raw, ours[0], best_clear)
        out["by_backend"] = breakdown(infos, lambda i: i.backend, raw, ours[0], best_clear)
        out["time_by_tool"] = time_by_tool(infos, ours[0])
    out["bench_seconds"] = time.perf_counter() - started
    write_outputs(out_dir, NAME, render(out, quick, limit), out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TRAJECTORIES} trajectories spread over the set")
    parser.add_argument("--limit", type=int, default=None, help="N trajectories spread over the set")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    run(args.quick, args.out, args.limit)
    print((args.out / f"{NAME}.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
