"""A RAG agent (hand-built ``StateGraph``) with query-aware document compression by agent-tokred.

Served by ``langgraph dev`` as ``rag_agent`` (see ``langgraph.json``): ``retrieve`` picks the
passages of a small built-in handbook that share the most words with the question,
``compress_documents`` keeps what answers the question in each (200 tokens a passage, 600 in
all; originals archived in the store), and ``generate`` answers from them. The whole graph is
then passed through :func:`agent_tokred.integration.wrap`, so the ``generate`` model call
also sees a reduced conversation once it grows past 4,000 tokens.

The model is an offline rule-based fake by default; set ``AGENT_TOKRED_MODEL="provider:name"`` to
use a real one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypedDict

from langchain_core.documents import Document
from langchain_core.messages import AnyMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agent_tokred.integration import wrap
from agent_tokred.integration.fake_model import RuleBasedToolModel, chat_model_from_env
from agent_tokred.integration.nodes import compress_documents_node
from agent_tokred.tokens import resolve_counter

_TOPICS = {
    "refunds": "Refunds are issued to the original payment method within 14 days of the return "
    "being received.",
    "shipping": "Orders ship from the Lyon warehouse; standard delivery takes 3 to 5 working days in France.",
    "warranty": "Every device carries a two-year warranty covering manufacturing defects but not "
    "water damage.",
    "accounts": "Accounts are locked after five failed sign-in attempts and unlock automatically "
    "after 30 minutes.",
    "invoices": "Invoices are emailed on the first day of each month and can be downloaded as PDF "
    "from settings.",
    "support": "Support is open Monday to Friday, 8:00 to 18:00 CET, by chat and by phone on "
    "+33 4 72 00 00 00.",
}
_FILLER = (
    "This section of the handbook was last reviewed by the operations team. Policies may change; the "
    "version published on the help centre is the one that applies. Customers are informed by email of "
    "any change at least thirty days in advance. "
)
CORPUS = [
    Document(
        page_content=f"{topic.capitalize()}. " + _FILLER * 3 + fact + " " + _FILLER * 2,
        metadata={"source": f"handbook/{topic}.md"},
    )
    for topic, fact in _TOPICS.items()
]
_WORD = re.compile(r"[a-z0-9]{3,}")


class RagState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    documents: list[Document]


def retrieve(state: RagState) -> dict[str, Any]:
    """The three passages sharing the most words with the latest question."""
    question = str(state["messages"][-1].content).lower()
    words = set(_WORD.findall(question))
    ranked = sorted(CORPUS, key=lambda d: -len(words & set(_WORD.findall(d.page_content.lower()))))
    return {"documents": ranked[:3]}


def make_graph():  # type: ignore[no-untyped-def]
    """Build the graph (a function so tests can build fresh copies)."""
    model = chat_model_from_env(RuleBasedToolModel(tool_name="", count=resolve_counter(None).count))

    def generate(state: RagState) -> dict[str, Any]:
        context = "\n\n".join(
            f"[{d.metadata.get('source', '?')}]\n{d.page_content}" for d in state.get("documents", [])
        )
        prompt = SystemMessage(f"Answer from this context only.\n\n{context}")
        return {"messages": [model.invoke([prompt, *state["messages"]])]}

    builder = StateGraph(RagState)
    builder.add_node("retrieve", retrieve)
    builder.add_node(
        "compress_documents",
        compress_documents_node(document_budget=200, total_budget=600, criterion="lexical"),
    )
    builder.add_node("generate", generate)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "compress_documents")
    builder.add_edge("compress_documents", "generate")
    builder.add_edge("generate", END)
    return wrap(
        builder.compile(name="rag_agent"),
        model_nodes=["generate"],
        tool_nodes=[],
        call_budget=4000,
        criterion="lexical",
    )


graph = make_graph()
