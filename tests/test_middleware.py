"""TokenReductionMiddleware end to end in create_agent with a scripted fake tool-calling model."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware.types import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from langsmith import RunTree
from langsmith.run_helpers import tracing_context

from agent_tokred.integration._content import MessageTally, content_text
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.messages import orphaned_tool_calls
from agent_tokred.integration.middleware import StickyTokenReductionMiddleware, TokenReductionMiddleware
from agent_tokred.integration.report import StepReport
from agent_tokred.tokens import resolve_counter

TALLY = MessageTally(resolve_counter(None))
LOG = (
    "\n".join(
        f"2024-05-01 12:{i // 60:02d}:{i % 60:02d} INFO api-{i} request served in {i % 40} ms"
        for i in range(400)
    )
    + "\n2024-05-01 12:59:59 ERROR api-77 disk full on /var/data"
)
ORDERS = json.dumps({"orders": [{"id": f"ORD-{i}", "total": i * 2.5} for i in range(150)]})


@tool
def read_logs(service: str) -> str:
    """Read a service's logs."""
    return LOG


@tool
def list_orders(customer: str) -> str:
    """List a customer's orders as JSON."""
    return ORDERS


@tool
def read_screen(name: str) -> list:
    """A screenshot with its OCR text (content blocks)."""
    return [{"type": "text", "text": LOG}, {"type": "image", "url": "https://example.invalid/s.png"}]


@tool
def empty(name: str) -> str:
    """Returns nothing."""
    return ""


@tool
def as_dict(name: str) -> dict:
    """Returns a dict (non-string result)."""
    return {"rows": [{"n": i, "text": f"row number {i}"} for i in range(300)]}


def _broken(name: str) -> str:
    """Always fails."""
    raise ToolException("Error: backend unreachable\n" + "  at frame\n" * 400)


broken = StructuredTool.from_function(_broken, name="broken", handle_tool_error=True)


@tool
def via_command(name: str, runtime: Any = None) -> Command:
    """Returns a Command that writes a ToolMessage."""
    return Command(update={"messages": [ToolMessage(LOG, tool_call_id="c-cmd", name="via_command")]})


TOOLS = [read_logs, list_orders, read_screen, empty, as_dict, broken]


def calls(*names: str, start: int = 0) -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[
            {
                "name": n,
                "args": {"service": "api"}
                if n == "read_logs"
                else {"customer": "c"}
                if n == "list_orders"
                else {"name": "x"},
                "id": f"c{start + i}",
            }
            for i, n in enumerate(names)
        ],
    )


def recall_latest(messages: list[BaseMessage]) -> AIMessage:
    """Scripted step: recall the handle of the latest compressed tool output it was shown."""
    handle = next(
        m.response_metadata["agent_tokred"]["handle"]
        for m in reversed(messages)
        if isinstance(m, ToolMessage) and "agent_tokred" in m.response_metadata
    )
    return AIMessage("", tool_calls=[{"name": "recall", "args": {"handle": handle}, "id": "c-recall"}])


def assert_pairs_intact(model: ScriptedChatModel) -> None:
    for seen in model.received:
        assert orphaned_tool_calls(seen) == []


def make_agent(script: list, mw: TokenReductionMiddleware, **kwargs: Any) -> tuple[Any, ScriptedChatModel]:
    model = ScriptedChatModel(script=script)
    agent = create_agent(model, TOOLS, middleware=[mw], system_prompt="You are an SRE assistant.", **kwargs)
    return agent, model


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_tool_outputs_compressed_and_recall_returns_exact_original(use_async: bool) -> None:
    reports: list[StepReport] = []
    mw = TokenReductionMiddleware(message_budget=150, criterion="lexical", on_report=reports.append)
    store = InMemoryStore()
    agent, model = make_agent(
        [calls("read_logs"), recall_latest, AIMessage("api-77 is out of disk")],
        mw,
        store=store,
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "t-1"}}
    inp = {"messages": [HumanMessage("Which api instance logged an ERROR?")]}
    out = await agent.ainvoke(inp, cfg) if use_async else agent.invoke(inp, cfg)
    shown = model.received[1][-1]
    assert isinstance(shown, ToolMessage) and TALLY.content(shown) <= 150 and "ERROR api-77" in shown.content
    recalled = out["messages"][-2]
    assert recalled.name == "recall" and recalled.content == LOG  # the exact original, whole
    assert recalled.response_metadata["agent_tokred"]["action"] == "recall"
    assert TALLY.content(model.received[2][-1]) > 150  # recall output is never compressed again
    handle = shown.response_metadata["agent_tokred"]["handle"]
    assert StoreArchive(store, ("thread", "t-1")).get(handle) == LOG
    assert StoreArchive(store, ("thread", "t-2")).get(handle) is None
    assert any(r.kind == "tool_output" and r.changed for r in reports) and list(mw.reports) == reports
    assert_pairs_intact(model)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_model_call_view_holds_call_budget_and_leaves_state_alone(use_async: bool) -> None:
    mw = TokenReductionMiddleware(
        message_budget=800,
        call_budget=1500,
        criterion="lexical",
        compress_tool_outputs=False,
        protect_last_n_turns=1,
    )
    script = [
        calls("read_logs"),
        calls("list_orders", start=1),
        calls("read_logs", start=2),
        AIMessage("done"),
    ]
    agent, model = make_agent(script, mw)
    inp = {"messages": [HumanMessage("Summarise the api errors and orders")]}
    out = await agent.ainvoke(inp) if use_async else agent.invoke(inp)
    saved = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [m.content for m in saved] == [LOG, ORDERS, LOG]  # saved state unchanged
    assert TALLY.total(out["messages"]) > 6000
    reports = [r for r in mw.reports if r.kind == "model_call"]
    assert len(reports) == len(model.received) == 4 and all(r.within_budget for r in reports)
    for seen in model.received:  # the model's input includes the system prompt
        assert isinstance(seen[0], SystemMessage) and TALLY.total(seen) <= 1500
        assert all(TALLY.content(m) <= 800 for m in seen if isinstance(m, ToolMessage))
    last = model.received[-1]
    assert last[-1].response_metadata["agent_tokred"]["action"] == "compressed"  # latest: per-message only
    assert {
        m.response_metadata["agent_tokred"]["action"] for m in last[2:5] if isinstance(m, ToolMessage)
    } == {"squeezed"}
    assert_pairs_intact(model)


@pytest.mark.parametrize("tool_name", ["read_screen", "empty", "as_dict", "broken"])
async def test_odd_tool_results_never_crash_and_lose_nothing(tool_name: str) -> None:
    mw = TokenReductionMiddleware(message_budget=100, criterion="lexical")
    agent, model = make_agent([calls(tool_name), AIMessage("ok")], mw)
    out = await agent.ainvoke({"messages": [HumanMessage("look")]})
    msg = out["messages"][2]
    assert isinstance(msg, ToolMessage) and out["messages"][-1].content == "ok"
    mark = msg.response_metadata.get("agent_tokred")
    if tool_name == "broken":
        assert msg.status == "error" and mark is None and "backend unreachable" in msg.content  # kept whole
    elif tool_name == "empty":
        assert mark is None and msg.content == ""
    else:
        assert mark is not None and TALLY.content(msg) <= 100
        original = mw.engine.archive(config={"configurable": {}}).get(mark["handle"])
        assert original is not None and len(original) > len(content_text(msg.content))
    if tool_name == "read_screen":
        assert {"type": "image", "url": "https://example.invalid/s.png"} in msg.content
    assert_pairs_intact(model)


def test_tool_returning_command_is_compressed() -> None:
    mw = TokenReductionMiddleware(message_budget=100, criterion="lexical")
    model = ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[{"name": "via_command", "args": {"name": "x"}, "id": "c-cmd"}]),
            AIMessage("ok"),
        ]
    )
    agent = create_agent(model, [via_command], middleware=[mw])
    out = agent.invoke({"messages": [HumanMessage("go")]})
    assert TALLY.content(out["messages"][2]) <= 100 and "agent_tokred" in out["messages"][2].response_metadata


def test_messages_without_ids_in_a_direct_request() -> None:
    mw = TokenReductionMiddleware(message_budget=100, criterion="lexical")
    msgs = [HumanMessage("q"), calls("read_logs"), ToolMessage(LOG, tool_call_id="c0")]
    assert all(m.id is None for m in msgs)
    seen: list[ModelRequest] = []

    def handler(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        return ModelResponse(result=[AIMessage("fine")])

    request = ModelRequest(
        model=ScriptedChatModel(), messages=msgs, system_message=SystemMessage("s"), state={"messages": msgs}
    )
    mw.wrap_model_call(request, handler)
    assert TALLY.content(seen[0].messages[-1]) <= 100 and seen[0].system_message == SystemMessage("s")
    assert msgs[-1].content == LOG and request.messages is msgs  # the request itself is not modified


def test_a_failing_reduction_passes_the_request_through(monkeypatch: pytest.MonkeyPatch) -> None:
    mw = TokenReductionMiddleware(message_budget=100, criterion="lexical")
    monkeypatch.setattr(mw.engine, "reduce", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    agent, model = make_agent([calls("read_logs"), AIMessage("ok")], mw)
    out = agent.invoke({"messages": [HumanMessage("look")]})
    assert out["messages"][-1].content == "ok" and len(model.received) == 2


def test_sticky_history_edits_are_stable() -> None:
    mw = StickyTokenReductionMiddleware(
        message_budget=None,
        context_budget=1500,
        criterion="lexical",
        compress_tool_outputs=False,
        protect_last_n_turns=1,
    )
    script = [
        calls("read_logs"),
        calls("list_orders", start=1),
        AIMessage("first answer"),
        calls("read_logs", start=2),
        AIMessage("second answer"),
    ]
    agent, model = make_agent(script, mw, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "sticky"}}
    first = agent.invoke({"messages": [HumanMessage("check api")]}, cfg)["messages"]
    second = agent.invoke({"messages": [HumanMessage("and again")]}, cfg)["messages"]
    assert orphaned_tool_calls(first) == [] and orphaned_tool_calls(second) == []
    assert TALLY.content(first[2]) < TALLY.text(LOG)  # the saved history itself was rewritten
    history = [m for m in model.received[-1] if "agent_tokred" in m.response_metadata]
    assert history and all(m in second for m in history)
    reduced_first = [m for m in first if "agent_tokred" in m.response_metadata]
    assert all(m in second for m in reduced_first)  # stable prefix: never re-reduced
    assert_pairs_intact(model)


def test_report_goes_to_langsmith_metadata_when_tracing() -> None:
    mw = TokenReductionMiddleware(criterion="lexical")
    run = RunTree(name="hook", run_type="chain")
    report = StepReport(kind="model_call", tokens_before=10, tokens_after=5, seconds=0.001)
    with tracing_context(parent=run, enabled=True):
        mw.emit(report)
    assert run.metadata["agent_tokred"]["saved_tokens"] == 5
    mw.emit(report)  # no tracing: no error


def test_recall_tool_can_be_disabled() -> None:
    assert TokenReductionMiddleware(recall=False).tools == []
    assert [t.name for t in TokenReductionMiddleware(recall_tool_name="fetch_original").tools] == [
        "fetch_original"
    ]


@pytest.mark.model
def test_default_auto_criterion_is_the_learned_scorer() -> None:
    mw = TokenReductionMiddleware(message_budget=200)
    prose = " ".join(f"Note {i}: the cafeteria menu on day {i} had soup and bread." for i in range(80))
    prose += " The production database password rotates every 90 days."

    @tool
    def read_notes(service: str) -> str:
        """Read notes."""
        return prose

    model = ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[{"name": "read_notes", "args": {"service": "x"}, "id": "c0"}]),
            AIMessage("ok"),
        ]
    )
    agent = create_agent(model, [read_notes], middleware=[mw])
    agent.invoke({"messages": [HumanMessage("How often does the database password rotate?")]})
    shown = model.received[1][-1]
    assert TALLY.content(shown) <= 200 and "90 days" in shown.content
    assert "learned" in next(r for r in mw.reports if r.changed).messages[0].criterion


PASSAGE = " ".join(f"Archive note {i}: the {w} warehouse ships order batch {i} on day {i + 2} by rail."
                   for i, w in enumerate(["north", "south", "east", "west", "river", "harbour", "hill", "airport"] * 2))


@tool
def search(query: str) -> str:
    """Search the archive notes."""
    return PASSAGE


def test_long_research_session_holds_the_call_budget_at_every_call() -> None:
    """Demo 2's defects: notes piling up (one per pair) pushed late calls over ``call_budget``."""
    mw = TokenReductionMiddleware(message_budget=None, call_budget=1000, criterion="lexical")
    script: list[Any] = []
    for q in range(3):
        script += [AIMessage("", tool_calls=[{"name": "search", "args": {"query": f"batch {q} {k}"},
                                               "id": f"q{q}c{k}"}]) for k in range(6)]
        script.append(AIMessage(f"Batch {q} ships by rail."))
    model = ScriptedChatModel(script=script)
    agent = create_agent(model, [search], middleware=[mw], system_prompt="Answer from the archive.",
                         checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "research"}}
    for q in range(3):
        agent.invoke({"messages": [HumanMessage(f"When does batch {q} ship?")]}, cfg)
    reports = [r for r in mw.reports if r.kind == "model_call"]
    assert len(model.received) == 21 and max(TALLY.total(seen) for seen in model.received) <= 1000
    assert all(r.within_budget and r.note == "" for r in reports)
    for seen in model.received:  # one note per run of dropped messages, never a pile of them
        notes = ["agent_tokred" in m.response_metadata and
                 m.response_metadata["agent_tokred"]["action"] == "dropped_pair" for m in seen]
        assert not any(a and b for a, b in itertools.pairwise(notes))
    assert_pairs_intact(model)
