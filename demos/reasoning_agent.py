"""Demo 3: a reasoning agent whose earlier thinking is cut by the overthinking detector.

A ``create_agent`` agent answers GSM8K questions one after another in one conversation. Its replies
are **replayed** real reasoning-model outputs (DeepSeek-R1 and QwQ-32B traces from
``../shared/data/reasoning_traces_dev.jsonl.gz``: thinking, ``</think>``, answer), so every later call
carries all earlier thinking. ``OverthinkingMiddleware`` cuts, in what each call sees, the redundant
re-checking at the end of every earlier turn's thinking (after the answer had settled); the latest turn
and all answers stay whole. Task-success signal: **answer kept**, the share of cut turns whose final
answer is unchanged and whose kept thinking still derives the settled answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from agent_tokred.report.records import ItemRecord, RunRecord, StepRecord

from ._agent import Recorder
from ._common import DemoResult, context_by_component, count, pct, progress, read_jsonl_gz, split_thinking

NAME = "reasoning"
TITLE = "3. Reasoning agent (GSM8K, R1 / QwQ traces)"
_GOLD = re.compile(r"####\s*([-\d.,]+)")


def pick_traces(rows: Sequence[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """R1 and QwQ traces, alternating, on different questions, skipping records that are not traces."""
    per_model = 3 if quick else 8
    good = {m: [r for r in rows if r["model"] == m and "</think>" in r["trace"]] for m in ("deepseek-r1", "qwq-32b")}
    r1 = good["deepseek-r1"][:per_model]
    qwq = good["qwq-32b"][per_model : 2 * per_model]  # the files list the same questions in the same order
    return [r for pair in zip(r1, qwq) for r in pair]


def segments_of(trace: str, removed: str) -> tuple[tuple[str, bool], ...]:
    """The trace as (text, kept) pieces: the removed re-checking is the one dropped stretch."""
    at = trace.find(removed) if removed else -1
    if at < 0:
        return ((trace, True),)
    pieces = ((trace[:at], True), (removed, False), (trace[at + len(removed) :], True))
    return tuple(p for p in pieces if p[0])


def run(quick: bool, model: str | None = None) -> DemoResult:
    """Run the demo; see the module docstring (``model`` is not used: the traces are recorded)."""
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver

    from agent_tokred.integration.fake_model import ScriptedChatModel
    from agent_tokred.integration.overthinking import OverthinkingMiddleware
    from agent_tokred.overthinking import detect_overthinking

    rows = read_jsonl_gz("reasoning_traces_dev.jsonl.gz")
    traces = pick_traces(rows, quick)
    started = time.perf_counter()
    chat = ScriptedChatModel(script=[AIMessage(r["trace"]) for r in traces])
    rec = Recorder()
    agent = create_agent(chat, [], middleware=[OverthinkingMiddleware(), rec.middleware],
                         checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "math"}}
    for r in progress(traces, "demo 3: questions"):
        agent.invoke({"messages": [HumanMessage(r["question"])]}, config)
    steps = [
        StepRecord.from_counts(i, context_by_component(rec.raw_view(i), reasoning=True),
                               context_by_component(view, reasoning=True), label=f"question {i + 1}")
        for i, view in enumerate(rec.views)
    ]
    # The last call saw every turn but the latest two (the newest AI turn is never cut): were answers kept?
    last_view = rec.views[-1]
    ai_seen = [m for m in last_view if isinstance(m, AIMessage)][:-1]
    items: list[ItemRecord] = []
    cut = kept = 0
    for i, (r, seen) in enumerate(zip(traces, ai_seen)):
        if seen.content == r["trace"]:
            continue
        result = detect_overthinking(r["trace"], question=r["question"])
        answer_same = split_thinking(str(seen.content))[1] == split_thinking(r["trace"])[1]
        cut += 1
        kept += int(answer_same and result.answer_kept)
        gold = _GOLD.search(r["gold"])
        items.append(ItemRecord(
            title=f"turn {i + 1} ({r['model']}): {r['question'][:90]}",
            segments=segments_of(r["trace"], result.removed_text if result.cut else ""),
            tokens_before=count(r["trace"]), tokens_after=count(str(seen.content)), step=len(rec.views) - 1,
            kind="reasoning",
            note=(f"cut ({result.reason}) after the answer settled at {result.stable_answer!r}"
                  + (f"; GSM8K gold answer {gold.group(1)}" if gold else "")
                  + f"; final answer unchanged: {answer_same}"),
        ))
    share = kept / cut if cut else 1.0
    run_record = RunRecord(
        name=NAME, title=TITLE, steps=tuple(steps), items=tuple(items),
        mode="replayed (recorded DeepSeek-R1 / QwQ-32B outputs)",
        description=(f"{len(traces)} GSM8K questions in one conversation; create_agent + OverthinkingMiddleware "
                     "(earlier turns' re-checking cut in each call's view; answers unchanged)."),
        metrics=(("answer kept", f"100.0% → {pct(share)}"),
                 ("earlier turns cut (last call)", f"{cut} of {len(ai_seen)}")),
        seconds=time.perf_counter() - started,
    )
    raw = {"traces": len(traces), "earlier_turns": len(ai_seen), "cut": cut, "answer_kept": share,
           "models": sorted({r["model"] for r in traces})}
    return DemoResult(run_record, "answer kept", "100.0%", pct(share), raw)
