"""wrap(): agent-tokred inserted into existing graphs (create_agent and hand-built StateGraphs)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.store.memory import InMemoryStore
from pydantic import BaseModel

from agent_tokred.errors import InvalidInputError
from agent_tokred.integration import wrap
from agent_tokred.integration._content import MessageTally
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.messages import orphaned_tool_calls
from agent_tokred.integration.report import StepReport
from agent_tokred.tokens import resolve_counter

TALLY = MessageTally(resolve_counter(None))
ROWS = json.dumps([{"sku": f"SKU-{i}", "stock": i % 9, "warehouse": "Lyon"} for i in range(250)])


@tool
def inventory(sku: str) -> str:
    """List the inventory as JSON."""
    return ROWS


def script(n_calls: int = 1) -> ScriptedChatModel:
    steps: list[Any] = [
        AIMessage("", tool_calls=[{"name": "inventory", "args": {"sku": "SKU-123"}, "id": f"c{i}"}])
        for i in range(n_calls)
    ]
    return ScriptedChatModel(script=[*steps, AIMessage("SKU-123 has 6 in stock")])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_wrap_create_agent(use_async: bool) -> None:
    model = script()
    store = InMemoryStore()
    agent = create_agent(model, [inventory], checkpointer=InMemorySaver(), store=store, name="inv")
    reports: list[StepReport] = []
    wrapped = wrap(agent, message_budget=150, criterion="lexical", on_report=reports.append)
    assert wrapped is not agent and wrapped.name == "inv" and wrapped.store is store
    cfg = {"configurable": {"thread_id": "w1"}}
    inp = {"messages": [HumanMessage("How many SKU-123 are in stock?")]}
    out = await wrapped.ainvoke(inp, cfg) if use_async else wrapped.invoke(inp, cfg)
    saved = out["messages"][2]
    assert isinstance(saved, ToolMessage) and TALLY.content(saved) <= 150 and 'SKU-123"' in saved.content
    assert model.received[1][-1].content == saved.content
    handle = saved.response_metadata["agent_tokred"]["handle"]
    assert StoreArchive(store, ("thread", "w1")).get(handle) == ROWS
    assert reports and reports[0].kind == "tool_output"
    assert all(orphaned_tool_calls(seen) == [] for seen in model.received)


def test_wrap_leaves_the_original_graph_alone() -> None:
    model = script()
    agent = create_agent(model, [inventory])
    wrap(agent, message_budget=150, criterion="lexical")
    out = agent.invoke({"messages": [HumanMessage("How many SKU-7?")]})
    assert out["messages"][2].content == ROWS


def hand_built(model: ScriptedChatModel, **compile_kwargs: Any) -> Any:
    def decide(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke([SystemMessage("Be brief."), *state["messages"]])]}

    b = StateGraph(MessagesState)
    b.add_node("decide", decide)
    b.add_node("act", ToolNode([inventory]))
    b.add_edge(START, "decide")
    b.add_conditional_edges("decide", tools_condition, {"tools": "act", END: END})
    b.add_edge("act", "decide")
    return b.compile(**compile_kwargs)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_wrap_hand_built_graph_view_only(use_async: bool) -> None:
    model = script(n_calls=3)
    graph = hand_built(model, checkpointer=InMemorySaver())
    wrapped = wrap(
        graph,
        model_nodes=["decide"],
        tool_nodes=[],
        message_budget=300,
        call_budget=700,
        criterion="lexical",
        protect_last_n_turns=1,
    )
    cfg = {"configurable": {"thread_id": "hb"}}
    inp = {"messages": [HumanMessage("How many SKU-123 are in stock?")]}
    out = await wrapped.ainvoke(inp, cfg) if use_async else wrapped.invoke(inp, cfg)
    assert [m.content for m in out["messages"] if isinstance(m, ToolMessage)] == [ROWS] * 3  # state unchanged
    for seen in model.received[1:]:
        assert TALLY.total(seen[1:]) <= 700  # what the node passed on (its own system prompt aside)
        assert orphaned_tool_calls(seen) == []
    assert wrapped.checkpointer is graph.checkpointer


def test_wrap_uncompiled_builder_and_bound_graph() -> None:
    model = script()
    b = StateGraph(MessagesState)
    b.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    b.add_node("tools", ToolNode([inventory]))
    b.add_edge(START, "model")
    b.add_conditional_edges("model", tools_condition)
    b.add_edge("tools", "model")
    compiled = wrap(b, message_budget=100, criterion="lexical")
    out = compiled.invoke({"messages": [HumanMessage("SKU-7?")]})
    assert TALLY.content(out["messages"][2]) <= 100
    bound = wrap(b.compile().with_config(recursion_limit=10), message_budget=100, criterion="lexical")
    assert bound.config["recursion_limit"] == 10
    model2 = script()
    b2 = StateGraph(MessagesState)
    b2.add_node("model", lambda state: {"messages": [model2.invoke(state["messages"])]})
    b2.add_node("tools", ToolNode([inventory]))
    b2.add_edge(START, "model")
    b2.add_conditional_edges("model", tools_condition)
    b2.add_edge("tools", "model")
    out = wrap(b2.compile().with_config(recursion_limit=10), message_budget=100, criterion="lexical").invoke(
        {"messages": [HumanMessage("SKU-7?")]}
    )
    assert TALLY.content(out["messages"][2]) <= 100


class PydState(BaseModel):
    messages: list[Any]


def test_wrap_pydantic_state_view() -> None:
    seen: list[int] = []

    def model_node(state: PydState) -> dict[str, Any]:
        seen.append(TALLY.content(state.messages[-1]))
        return {}

    b = StateGraph(PydState)
    b.add_node("model", model_node)
    b.add_edge(START, "model")
    g = wrap(b.compile(), message_budget=100, criterion="lexical")
    msgs = [
        HumanMessage("SKU-7?"),
        AIMessage("", tool_calls=[{"name": "inventory", "args": {}, "id": "c0"}]),
        ToolMessage(ROWS, tool_call_id="c0"),
    ]
    out = g.invoke({"messages": msgs})
    assert seen == [pytest.approx(seen[0])] and seen[0] <= 100 and out["messages"][2].content == ROWS


def test_wrap_errors_name_the_problem() -> None:
    with pytest.raises(InvalidInputError, match="StateGraph"):
        wrap(lambda x: x)
    b = StateGraph(MessagesState)
    b.add_node("model", lambda s: {})
    b.add_edge(START, "model")
    with pytest.raises(InvalidInputError, match="no node named 'nope'"):
        wrap(b.compile(), model_nodes=["nope"])

    class NoMessages(BaseModel):
        text: str

    b2 = StateGraph(NoMessages)
    b2.add_node("model", lambda s: {})
    b2.add_edge(START, "model")
    with pytest.raises(InvalidInputError, match="messages"):
        wrap(b2.compile())
    b3 = StateGraph(MessagesState)
    b3.add_node("step", lambda s: {})
    b3.add_edge(START, "step")
    with pytest.raises(InvalidInputError, match="model_nodes"):
        wrap(b3.compile())
