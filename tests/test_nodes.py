"""LangGraph nodes, the pre_model_hook, the document compressor and reasoning reduction."""

from __future__ import annotations

import json
import warnings
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.store.memory import InMemoryStore

from agent_tokred import Compressor, InMemoryArchive
from agent_tokred.integration._content import MessageTally
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.documents import TokredDocumentCompressor, reduce_documents
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.messages import orphaned_tool_calls
from agent_tokred.integration.nodes import (
    compress_documents_node,
    compress_reasoning_node,
    compress_tool_messages_node,
    make_pre_model_hook,
)
from agent_tokred.integration.reasoning import reduce_reasoning
from agent_tokred.integration.recall import make_recall_tool
from agent_tokred.tokens import resolve_counter

TALLY = MessageTally(resolve_counter(None))
LOG = "\n".join(f"2024-05-01 10:{i // 60:02d}:{i % 60:02d} INFO db-{i} vacuum ok" for i in range(300)) + (
    "\n2024-05-01 10:59:59 ERROR db-42 replication lag 93s"
)


@tool
def read_logs(service: str) -> str:
    """Read logs."""
    return LOG


def recall_latest(messages: list) -> AIMessage:
    handle = next(
        m.response_metadata["agent_tokred"]["handle"]
        for m in reversed(messages)
        if isinstance(m, ToolMessage) and "agent_tokred" in m.response_metadata
    )
    return AIMessage("", tool_calls=[{"name": "recall", "args": {"handle": handle}, "id": "c-recall"}])


def build_graph(model: ScriptedChatModel, store: InMemoryStore) -> Any:
    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    b = StateGraph(MessagesState)
    b.add_node("call_model", call_model)
    b.add_node("tools", ToolNode([read_logs, make_recall_tool()]))
    b.add_node("compress", compress_tool_messages_node(message_budget=120, criterion="lexical"))
    b.add_edge(START, "call_model")
    b.add_conditional_edges("call_model", tools_condition)
    b.add_edge("tools", "compress")
    b.add_edge("compress", "call_model")
    return b.compile(checkpointer=InMemorySaver(), store=store)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_hand_built_graph_compresses_in_place_and_recalls(use_async: bool) -> None:
    store = InMemoryStore()
    model = ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[{"name": "read_logs", "args": {"service": "db"}, "id": "c0"}]),
            recall_latest,
            AIMessage("db-42 lags"),
        ]
    )
    graph = build_graph(model, store)
    cfg = {"configurable": {"thread_id": "hb"}}
    inp = {"messages": [HumanMessage("Which db instance has replication lag?")]}
    out = await graph.ainvoke(inp, cfg) if use_async else graph.invoke(inp, cfg)
    tool_msg = out["messages"][2]
    assert TALLY.content(tool_msg) <= 120 and "ERROR db-42" in tool_msg.content
    assert model.received[1][-1] == tool_msg  # the model saw the compressed one
    assert len([m for m in out["messages"] if m.id == tool_msg.id]) == 1  # replaced in place, not appended
    recalled = out["messages"][-2]
    assert recalled.content == LOG and recalled.response_metadata["agent_tokred"]["action"] == "recall"
    handle = tool_msg.response_metadata["agent_tokred"]["handle"]
    assert StoreArchive(store, ("thread", "hb")).get(handle) == LOG
    assert all(orphaned_tool_calls(seen) == [] for seen in model.received)


DOCS = [
    Document(
        "Shipping. "
        + "Our policies are reviewed each year by the operations team. " * 12
        + "Standard delivery in France takes 3 to 5 working days. "
        + "Thanks for reading. " * 5,
        metadata={"source": "shipping.md"},
    ),
    Document(
        "Refunds. "
        + "Our policies are reviewed each year by the operations team. " * 12
        + "Refunds are issued within 14 days. ",
        metadata={"source": "refunds.md"},
    ),
    Document("Warranty. Two years, manufacturing defects only.", metadata={"source": "warranty.md"}),
]
QUESTION = "How long does standard delivery take in France?"


def test_reduce_documents_budgets_order_and_archive() -> None:
    arc = InMemoryArchive()
    out, report = reduce_documents(
        DOCS,
        query=QUESTION,
        compressor=Compressor(criterion="lexical"),
        archive=arc,
        document_budget=60,
        total_budget=100,
        min_tokens=20,
    )
    counter = resolve_counter(None)
    assert sum(counter.count(d.page_content) for d in out) <= 100 and report.within_budget
    assert all(counter.count(d.page_content) <= 60 for d in out)
    assert "3 to 5 working days" in out[0].page_content  # the relevant document keeps its answer
    for d in out:
        mark = d.metadata.get("agent_tokred")
        if mark:
            assert arc.get(mark["handle"]) == next(
                x.page_content
                for x in DOCS
                if x.metadata == {k: v for k, v in d.metadata.items() if k != "agent_tokred"}
            )
    dropped = report.dropped_handles
    assert len(out) + len(dropped) == len(DOCS)
    assert all(arc.get(h) is not None for h in dropped)
    assert [d.metadata["source"] for d in out] == [
        d.metadata["source"] for d in DOCS if d.metadata["source"] in {x.metadata["source"] for x in out}
    ]  # order kept


class FixedRetriever(BaseRetriever):
    """Returns the same documents for every query."""

    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return list(self.docs)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_document_compressor_in_contextual_compression_retriever(use_async: bool) -> None:
    retrievers = pytest.importorskip("langchain_classic.retrievers")
    arc = InMemoryArchive()
    comp = TokredDocumentCompressor(document_budget=50, criterion="lexical", archive=arc)
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=comp, base_retriever=FixedRetriever(docs=DOCS)
    )
    docs = await retriever.ainvoke(QUESTION) if use_async else retriever.invoke(QUESTION)
    counter = resolve_counter(None)
    assert len(docs) == 3 and all(counter.count(d.page_content) <= 50 for d in docs)
    assert "3 to 5 working days" in docs[0].page_content
    assert arc.get(docs[0].metadata["agent_tokred"]["handle"]) == DOCS[0].page_content
    assert docs[2] == DOCS[2]  # short documents are left whole
    assert comp.last_report is not None and comp.last_report.kind == "documents"


class RagState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    documents: list[Any]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_compress_documents_node_in_a_graph(use_async: bool) -> None:
    store = InMemoryStore()
    b = StateGraph(RagState)
    b.add_node("compress", compress_documents_node(document_budget=40, criterion="lexical"))
    b.add_edge(START, "compress")
    b.add_edge("compress", END)
    graph = b.compile(store=store)
    inp = {"messages": [HumanMessage(QUESTION)], "documents": [DOCS[0], DOCS[1].page_content]}
    out = await graph.ainvoke(inp) if use_async else graph.invoke(inp)
    first, second = out["documents"]
    assert isinstance(first, Document) and isinstance(second, str)
    assert "3 to 5 working days" in first.page_content and resolve_counter(None).count(second) <= 40
    arc = StoreArchive(store, ("thread", "default"))
    assert arc.get(first.metadata["agent_tokred"]["handle"]) == DOCS[0].page_content


THINK = (
    "<think>We need 3 sprints x 3 times = 9 sprints. So 9 * 60 = 540 meters.\n\n"
    "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, 540.\n\n"
    "Alternatively, maybe a sprint is a round trip? No. So 540 it is. Let me verify once more: "
    "9 sprints of 60 m is 540 m. Definitely 540.</think>He runs **540** meters a week."
)


@pytest.mark.parametrize("mode", ["cut", "drop"])
def test_reduce_reasoning_forms(mode: str) -> None:
    comp, arc = Compressor(criterion="lexical"), InMemoryArchive()
    text_msg = AIMessage(THINK)
    new, rec = reduce_reasoning(
        text_msg,
        mode=mode,
        compressor=comp,
        archive=arc,  # type: ignore[arg-type]
        question="How many meters does he run a week?",
    )
    assert rec is not None and new.content.endswith("He runs **540** meters a week.")
    assert len(new.content) < len(THINK) and arc.get(rec.handle) == THINK
    blocks = [
        {"type": "reasoning", "reasoning": THINK[7 : THINK.index("</think>")]},
        {"type": "text", "text": "He runs 540 meters."},
    ]
    new, rec = reduce_reasoning(AIMessage(blocks), mode=mode, compressor=comp, archive=arc)  # type: ignore[arg-type]
    assert rec is not None and new.content[-1] == blocks[-1]
    assert json.loads(arc.get(rec.handle)) == blocks
    signed = [
        {"type": "thinking", "thinking": "secret chain", "signature": "abc"},
        {"type": "text", "text": "42"},
    ]
    new, rec = reduce_reasoning(AIMessage(signed), mode=mode, compressor=comp, archive=arc)  # type: ignore[arg-type]
    assert new.content == [{"type": "text", "text": "42"}] and rec is not None  # signed blocks dropped whole
    rc = AIMessage("540 m", additional_kwargs={"reasoning_content": THINK[7 : THINK.index("</think>")]})
    new, rec = reduce_reasoning(rc, mode=mode, compressor=comp, archive=arc)  # type: ignore[arg-type]
    assert new.content == "540 m" and rec is not None
    assert len(new.additional_kwargs.get("reasoning_content", "")) < len(
        rc.additional_kwargs["reasoning_content"]
    )
    plain = AIMessage("no thinking here")
    assert reduce_reasoning(plain, mode=mode, compressor=comp, archive=arc) == (plain, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_compress_reasoning_node_touches_earlier_turns_only(use_async: bool) -> None:
    b = StateGraph(MessagesState)
    b.add_node("reason", compress_reasoning_node("drop", criterion="lexical"))
    b.add_edge(START, "reason")
    b.add_edge("reason", END)
    graph = b.compile()
    msgs = [HumanMessage("first"), AIMessage(THINK), HumanMessage("second"), AIMessage(THINK)]
    out = await graph.ainvoke({"messages": msgs}) if use_async else graph.invoke({"messages": msgs})
    assert out["messages"][1].content == "He runs **540** meters a week."
    assert out["messages"][3].content == THINK  # the latest turn keeps its thinking
    assert len(out["messages"]) == 4


def test_pre_model_hook_with_create_react_agent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        model = ScriptedChatModel(
            script=[
                AIMessage("", tool_calls=[{"name": "read_logs", "args": {"service": "db"}, "id": "c0"}]),
                AIMessage("done"),
            ]
        )
        hook = make_pre_model_hook(message_budget=100, criterion="lexical")
        agent = create_react_agent(model, [read_logs], pre_model_hook=hook)
    out = agent.invoke({"messages": [HumanMessage("Which db lags?")]})
    assert TALLY.content(model.received[1][-1]) <= 100
    assert out["messages"][2].content == LOG  # saved state unchanged


def test_node_options_wire_the_node_and_the_rest_refine_the_policy() -> None:
    reports: list[Any] = []
    node = compress_documents_node(
        "docs", messages_key="history", on_report=[reports.append], name="shrink_docs",
        document_budget=40, criterion="lexical", min_tokens=8,
    )
    assert node.name == "shrink_docs"
    out = node.invoke({"history": [HumanMessage(QUESTION)], "docs": [DOCS[0]]})
    assert len(reports) == 1 and reports[0].query_chars == len(QUESTION)  # the query came from "history"
    assert resolve_counter(None).count(out["docs"][0].page_content) <= 40
    assert compress_tool_messages_node().name == "compress_tool_messages"
    assert make_pre_model_hook(name="hook").name == "hook"


@pytest.mark.parametrize("factory", [compress_tool_messages_node, compress_documents_node,
                                     compress_reasoning_node, make_pre_model_hook])
def test_an_unknown_node_option_is_refused(factory: Any) -> None:
    from agent_tokred.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="messages_kye"):
        factory(messages_kye="history")
