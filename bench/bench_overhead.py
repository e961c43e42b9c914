"""Issue 3's overhead bench: time agent-tokred adds to an agent step.

* **No-op steps** (nothing over budget): the time ``TokenReductionMiddleware`` spends in
  ``wrap_model_call`` (a handler that returns at once stands in for the model) and in
  ``wrap_tool_call`` (a small tool output), over a conversation growing to ``--turns`` turns; and a
  whole ``create_agent`` step with vs without the middleware (offline scripted model).
* **Compressing steps**: one tool output of 2k / 8k / 20k tokens (log lines, JSON records, prose)
  held to 500 tokens in ``wrap_tool_call``; and one model call whose history is squeezed to a
  call budget.

Figures are medians over repeats (ms per step).
Run: ``python -m bench.bench_overhead [--quick] [--out bench/out]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware.types import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt.tool_node import ToolCallRequest

from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.middleware import TokenReductionMiddleware
from agent_tokred.tokens import resolve_counter

from .common import OUT, markdown_table, write_outputs

NAME = "bench_overhead"
COUNTER = resolve_counter("o200k_base")


def _log(tokens: int) -> str:
    lines, i = [], 0
    while COUNTER.count("\n".join(lines)) < tokens:
        lines.extend(
            f"2024-05-01 12:{i // 60 % 60:02d}:{i % 60:02d} INFO api-{i % 9} req {1000 + i} ok {i % 97} ms"
            for i in range(i, i + 50)
        )
        i += 50
    return "\n".join(lines)


def _json(tokens: int) -> str:
    rows: list[dict[str, Any]] = []
    while COUNTER.count(json.dumps(rows)) < tokens:
        n = len(rows)
        rows.extend(
            {"id": f"ORD-{k}", "customer": f"c{k % 31}", "total": round(k * 3.7, 2), "status": "shipped"}
            for k in range(n, n + 40)
        )
    return json.dumps({"orders": rows})


def _prose(tokens: int) -> str:
    parts, k = [], 0
    while COUNTER.count(" ".join(parts)) < tokens:
        parts.extend(
            f"Report {j}: the team reviewed ticket {j * 7} and found the cache warm-up slow on node {j % 5}."
            for j in range(k, k + 20)
        )
        k += 20
    return " ".join(parts)


def _conversation(turns: int) -> list[BaseMessage]:
    msgs: list[BaseMessage] = [HumanMessage("Check the api health and summarise.")]
    for t in range(turns):
        msgs.append(
            AIMessage(
                f"Step {t}: checking.", tool_calls=[{"name": "status", "args": {"n": t}, "id": f"c{t}"}]
            )
        )
        msgs.append(
            ToolMessage(f"status {t}: ok, p99 {40 + t} ms, 0 errors", tool_call_id=f"c{t}", name="status")
        )
    return msgs


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _model_request(msgs: list[BaseMessage]) -> ModelRequest:
    return ModelRequest(
        model=ScriptedChatModel(),
        messages=msgs,
        system_message=SystemMessage("You are an SRE."),
        state={"messages": msgs},
    )


def _tool_request(msgs: list[BaseMessage]) -> ToolCallRequest:
    return ToolCallRequest(
        tool_call={"name": "status", "args": {"n": 1}, "id": "c-x"},
        tool=None,
        state={"messages": msgs},
        runtime=None,
    )  # type: ignore[arg-type]


def noop_overhead(turns: int, repeats: int) -> dict[str, Any]:
    mw = TokenReductionMiddleware(message_budget=1000, call_budget=100_000, criterion="lexical")
    response = ModelResponse(result=[AIMessage("ok")])
    small = ToolMessage("status: ok, p99 41 ms, 0 errors", tool_call_id="c-x", name="status")
    per_turn_model, per_turn_tool = [], []
    history = _conversation(turns)
    for n in range(1, turns + 1):
        msgs = history[: 1 + 2 * n]
        request = _model_request(msgs)
        per_turn_model.append(
            _median_ms(lambda r=request: mw.wrap_model_call(r, lambda _: response), repeats)
        )
        treq = _tool_request(msgs)
        per_turn_tool.append(_median_ms(lambda r=treq: mw.wrap_tool_call(r, lambda _: small), repeats))
    assert not any(r.changed for r in mw.reports), "the no-op bench must not compress anything"
    return {
        "turns": turns,
        "messages_at_end": 1 + 2 * turns,
        "wrap_model_call_ms_median": statistics.median(per_turn_model),
        "wrap_model_call_ms_at_end": per_turn_model[-1],
        "wrap_tool_call_ms_median": statistics.median(per_turn_tool),
        "step_ms_median": statistics.median(a + b for a, b in zip(per_turn_model, per_turn_tool)),
    }


@tool
def status(n: int) -> str:
    """Service status."""
    return f"status {n}: ok, p99 {40 + n} ms, 0 errors"


class _TimedMiddleware(TokenReductionMiddleware):
    """Records the time spent in the hooks themselves (hook time minus the handler's time)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_ms: list[float] = []
        self.tool_ms: list[float] = []

    def _timed(
        self, hook: Callable[..., Any], request: Any, handler: Callable[[Any], Any], sink: list[float]
    ) -> Any:
        inner = [0.0]

        def timed_handler(r: Any) -> Any:
            t = time.perf_counter()
            out = handler(r)
            inner[0] += time.perf_counter() - t
            return out

        t = time.perf_counter()
        out = hook(request, timed_handler)
        sink.append((time.perf_counter() - t - inner[0]) * 1000)
        return out

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        return self._timed(super().wrap_model_call, request, handler, self.model_ms)

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        return self._timed(super().wrap_tool_call, request, handler, self.tool_ms)


def agent_step_overhead(steps: int, repeats: int) -> dict[str, Any]:
    """Inside real ``create_agent`` runs: the hooks' own time per step, and whole steps with and without."""
    timed = _TimedMiddleware(message_budget=1000, call_budget=100_000, criterion="lexical")

    def run(middleware: list[Any]) -> float:
        script: list[Any] = [
            AIMessage("", tool_calls=[{"name": "status", "args": {"n": i}, "id": f"c{i}"}])
            for i in range(steps)
        ]
        model = ScriptedChatModel(script=[*script, AIMessage("all good")])
        agent = create_agent(model, [status], middleware=middleware)
        t = time.perf_counter()
        agent.invoke({"messages": [HumanMessage("check")]}, {"recursion_limit": 4 * steps + 10})
        return (time.perf_counter() - t) * 1000 / (steps + 1)

    run([timed]), run([])  # warm up
    timed.model_ms.clear()
    timed.tool_ms.clear()
    base, with_mw = [], []
    for _ in range(repeats):
        base.append(run([]))
        with_mw.append(run([timed]))
    per_step = [m + t for m, t in zip(timed.model_ms, timed.tool_ms)]
    return {
        "steps": steps,
        "hook_ms_per_step_median": statistics.median(per_step),
        "hook_ms_per_step_p90": sorted(per_step)[int(0.9 * (len(per_step) - 1))],
        "agent_step_ms_without": statistics.median(base),
        "agent_step_ms_with": statistics.median(with_mw),
        "agent_step_difference_ms": statistics.median(with_mw) - statistics.median(base),
    }


def compress_costs(sizes: list[int], repeats: int, criteria: list[str]) -> list[dict[str, Any]]:
    rows = []
    makers = {"log": _log, "json": _json, "prose": _prose}
    history = _conversation(3)
    for criterion in criteria:
        for form, make in makers.items():
            # "auto" only differs from lexical on prose (relevance+lexical with MiniLM); keep it short
            for size in sizes if criterion == "lexical" else sizes[:2]:
                if criterion != "lexical" and form != "prose":
                    continue
                text = make(size)
                times, after = [], 0
                for _ in range(repeats):
                    mw = TokenReductionMiddleware(message_budget=500, criterion=criterion)  # fresh: no memo
                    msg = ToolMessage(text, tool_call_id="c-x", name="status")
                    t = time.perf_counter()
                    out = mw.wrap_tool_call(_tool_request(history), lambda _, m=msg: m)
                    times.append((time.perf_counter() - t) * 1000)
                    after = COUNTER.count(str(out.content))
                rows.append(
                    {
                        "criterion": criterion,
                        "form": form,
                        "tokens_before": COUNTER.count(text),
                        "tokens_after": after,
                        "ms_median": statistics.median(times),
                    }
                )
    return rows


def call_budget_cost(repeats: int) -> dict[str, Any]:
    msgs: list[BaseMessage] = [HumanMessage("Find the api errors.")]
    for t in range(6):
        msgs.append(AIMessage("", tool_calls=[{"name": "logs", "args": {"part": t}, "id": f"c{t}"}]))
        msgs.append(ToolMessage(_log(900), tool_call_id=f"c{t}", name="logs"))
    times = []
    for _ in range(repeats):
        mw = TokenReductionMiddleware(message_budget=1000, call_budget=2500, criterion="lexical")
        request = _model_request(msgs)
        t = time.perf_counter()
        mw.wrap_model_call(request, lambda r: ModelResponse(result=[AIMessage("ok")]))
        times.append((time.perf_counter() - t) * 1000)
    report = mw.reports[-1]
    return {
        "tokens_before": report.tokens_before,
        "tokens_after": report.tokens_after,
        "budget": 2500,
        "ms_median": statistics.median(times),
    }


def run(quick: bool, out_dir: Path) -> dict[str, Any]:
    """Run the bench; write ``bench_overhead.md`` / ``.json`` to ``out_dir``; return the raw numbers."""
    turns, repeats = (20, 30) if quick else (50, 200)
    noop = noop_overhead(turns, repeats)
    agent = agent_step_overhead(steps=5 if quick else 10, repeats=5 if quick else 15)
    sizes = [2000, 8000] if quick else [2000, 8000, 20000]
    criteria = ["lexical"]
    from agent_tokred.criteria.auto import models_installed

    if not quick and models_installed():
        criteria.append("auto")
    compress_rows = compress_costs(sizes, 3 if quick else 5, criteria)
    squeeze = call_budget_cost(3 if quick else 5)
    cmd = "python -m bench.bench_overhead" + (" --quick" if quick else "")
    md = "## Middleware overhead per agent step (no-op: nothing over budget)\n\n" + markdown_table(
        ["measure", "ms (median)"],
        [
            [
                f"wrap_model_call, history of 1..{noop['messages_at_end']} messages",
                noop["wrap_model_call_ms_median"],
            ],
            [f"wrap_model_call at {noop['messages_at_end']} messages", noop["wrap_model_call_ms_at_end"]],
            ["wrap_tool_call, small output", noop["wrap_tool_call_ms_median"]],
            ["one step (model call + tool call)", noop["step_ms_median"]],
            [
                f"in create_agent runs: hooks' own time per step ({agent['steps']}-step runs)",
                agent["hook_ms_per_step_median"],
            ],
            ["in create_agent runs: same, 90th percentile", agent["hook_ms_per_step_p90"]],
            ["whole create_agent step without middleware", agent["agent_step_ms_without"]],
            ["whole create_agent step with middleware", agent["agent_step_ms_with"]],
        ],
        caption=f"Produced by `{cmd}` (o200k_base tokens; offline scripted model; medians over "
        f"{repeats} repeats per history length). Whole-step times include LangGraph's own work "
        "(thread start-up of the tool node dominates on this shared 2-core machine) and are noisy; "
        "the hooks' own time is the overhead.",
    )
    md += "\n## Compressing steps: one tool output held to 500 tokens in wrap_tool_call\n\n" + markdown_table(
        ["criterion", "form", "tokens before", "tokens after", "ms (median)"],
        [
            [r["criterion"], r["form"], r["tokens_before"], r["tokens_after"], r["ms_median"]]
            for r in compress_rows
        ],
        caption=f"Produced by `{cmd}`. A fresh middleware per repeat (no token memo carried over).",
    )
    md += "\n## Compressing steps: one model call squeezed to a call budget\n\n" + markdown_table(
        ["tokens before", "tokens after", "call budget", "ms (median)"],
        [[squeeze["tokens_before"], squeeze["tokens_after"], squeeze["budget"], squeeze["ms_median"]]],
        caption=f"Produced by `{cmd}`: 6 log outputs of ~900 tokens, message_budget 1000, lexical criterion.",
    )
    raw = {"command": cmd, "noop": noop, "agent": agent, "compress": compress_rows, "call_budget": squeeze}
    write_outputs(out_dir, NAME, md, raw)
    print(md)
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer turns, sizes and repeats")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default bench/out)")
    args = parser.parse_args(argv)
    run(args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
