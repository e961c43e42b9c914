"""MemoryMiddleware and memory_node: messages leave the window into a MergingStore and come back.

Offline: a topic embedding and a scripted chat model; a real ``create_agent`` run end to end.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from agent_tokred.errors import InvalidInputError
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.memory import (
    MemoryMiddleware,
    MemoryPolicy,
    memory_node,
    message_tokens,
    pack_memories,
    select_evictions,
)
from agent_tokred.integration.store import MergingStore
from agent_tokred.tokens import resolve_counter

COUNTER = resolve_counter(None)


def word_embed(texts: list[str]) -> np.ndarray:
    """Bag of hashed words: texts sharing words are similar."""
    out = np.zeros((len(texts), 128), dtype=np.float32)
    for i, text in enumerate(texts):
        for w in text.lower().replace(":", " ").split():
            out[i, hashlib.sha256(w.encode()).digest()[0] % 128] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def conversation(turns: int) -> list[BaseMessage]:
    msgs: list[BaseMessage] = [SystemMessage("You are helpful.", id="sys")]
    for t in range(turns):
        msgs.append(HumanMessage(f"turn {t}: list the files in folder f{t}", id=f"h{t}"))
        msgs.append(AIMessage("", id=f"a{t}", tool_calls=[{"name": "ls", "args": {"dir": f"f{t}"}, "id": f"c{t}"}]))
        msgs.append(ToolMessage(" ".join(f"file{t}_{j}.txt" for j in range(40)), tool_call_id=f"c{t}", id=f"t{t}"))
        msgs.append(AIMessage(f"Folder f{t} holds 40 files.", id=f"r{t}"))
    return msgs


@pytest.mark.parametrize("turns", [3, 8, 20])
@pytest.mark.parametrize("keep_last", [0, 1, 2, 5])
def test_evictions_keep_pairs_system_and_tail(turns: int, keep_last: int) -> None:
    msgs = conversation(turns)
    policy = MemoryPolicy(context_tokens=300, keep_tokens=150, keep_last_messages=keep_last)
    groups = select_evictions(msgs, policy, COUNTER)
    moved = {i for g in groups for i in g}
    assert 0 not in moved  # the system message stays
    assert not moved & set(range(len(msgs) - keep_last, len(msgs)))
    assert len(msgs) - 4 not in moved  # the latest human request stays
    assert moved == set(range(1, 1 + len(moved)))  # the oldest go first, contiguously
    for g in groups:  # an AI tool call and its result move together
        ids = {msgs[i].id for i in g}
        assert ({i for i in ids if i and i[0] in "at"} == set()) or any(i.startswith("a") for i in ids) == any(
            i.startswith("t") for i in ids
        )
    if sum(COUNTER.count(str(m.content)) for m in msgs) <= 300:
        assert groups == []


def test_before_model_moves_old_turns_into_the_store() -> None:
    store = MergingStore(embed=word_embed)
    mw = MemoryMiddleware(store, namespace=("mem", "t1"), context_tokens=400, keep_tokens=200, keep_last_messages=2)
    msgs = conversation(10)
    update = mw.before_model({"messages": msgs}, None)
    assert update is not None
    removed = [m.id for m in update["messages"] if isinstance(m, RemoveMessage)]
    assert removed and "sys" not in removed
    stored = store.search(("mem", "t1"), limit=100)
    stored_ids = [i for it in stored for i in it.value["message_ids"]]
    assert sorted(stored_ids) == sorted(removed)
    for item in stored:  # tool pairs stored whole, with the exact messages
        ids = item.value["message_ids"]
        assert any(i.startswith("a") for i in ids) == any(i.startswith("t") for i in ids)
        assert [m["data"]["id"] for m in item.value["messages"]] == ids
    remaining = [m for m in msgs if m.id not in set(removed)]
    # Moved until it fits, except that the last pair reaches into the protected tail and stays whole.
    assert [m.id for m in remaining] == ["sys", "h9", "a9", "t9", "r9"]
    assert sum(message_tokens(m, COUNTER) for m in remaining[:2]) <= 200


def test_recall_adds_relevant_memories_under_budget() -> None:
    store = MergingStore(embed=word_embed)
    ns = ("mem", "t1")
    store.put(ns, "a", {"text": "the launch code for project falcon is 7731", "kind": "human"})
    store.put(ns, "b", {"text": "weather was sunny on monday", "kind": "human"})
    block = pack_memories(store.search(ns, query="project falcon launch code", limit=5), 60, COUNTER, None)
    assert "7731" in block and COUNTER.count(block) <= 60
    assert pack_memories(store.search(ns, query="x", limit=5), 0, COUNTER, None) == ""


def test_create_agent_end_to_end() -> None:
    store = MergingStore(embed=word_embed)

    @tool
    def lookup(topic: str) -> str:
        """Look a topic up."""
        return f"{topic}: " + " ".join(f"detail{j}" for j in range(60))

    script: list[Any] = [AIMessage("noted")]
    for t in range(6):
        script.append(AIMessage("", tool_calls=[{"name": "lookup", "args": {"topic": f"topic{t}"}, "id": f"c{t}"}]))
        script.append(AIMessage(f"done with topic{t}"))
    script.append(AIMessage("the secret is 4242"))
    model = ScriptedChatModel(script=script)
    mw = MemoryMiddleware(store, context_tokens=300, keep_tokens=150, keep_last_messages=2, recall_tokens=200)
    agent = create_agent(model, tools=[lookup], middleware=[mw], checkpointer=InMemorySaver(), store=store)
    config = {"configurable": {"thread_id": "t1"}}
    agent.invoke({"messages": [HumanMessage("remember: the secret number is 4242")]}, config)
    for t in range(6):
        agent.invoke({"messages": [HumanMessage(f"research topic{t}")]}, config)
    final = agent.invoke({"messages": [HumanMessage("what is the secret number?")]}, config)
    assert final["messages"][-1].content == "the secret is 4242"
    saved = final["messages"]
    assert all(m.id for m in saved)
    ns = ("memory", "thread", "t1")
    assert store.search(ns, limit=100), "old turns moved to memory"
    last_seen = model.received[-1]
    system = next(m for m in last_seen if isinstance(m, SystemMessage))
    assert "4242" in str(system.content)  # recalled into the last call
    calls = {c["id"] for m in last_seen if isinstance(m, AIMessage) for c in m.tool_calls}
    results = {m.tool_call_id for m in last_seen if isinstance(m, ToolMessage)}
    assert calls == results  # no orphans reach the model


async def test_memory_node_async() -> None:
    store = MergingStore(embed=word_embed)
    node = memory_node(store, namespace=("m",), context_tokens=300, keep_tokens=100)
    update = await node.ainvoke({"messages": conversation(6)})
    assert update["messages"] and store.search(("m",), limit=100)


def test_bad_policy_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        MemoryMiddleware(context_tokens=100, keep_tokens=200)
    with pytest.raises(InvalidInputError):
        MemoryMiddleware(scope="galaxy")


@pytest.mark.parametrize(("source", "found"), [("human", False), ("plan", True), ("human+plan", True), ("none", False)])
def test_recall_honours_query_source(source: str, found: bool) -> None:
    """The memory query comes from the engine's one query derivation, with the policy's ``query_source``."""
    from agent_tokred.integration.memory import MemoryMiddleware

    store = MergingStore(embed=word_embed)
    store.put(("mem", "t1"), "a", {"text": "the launch code for project falcon is 7731", "kind": "human"})
    mw = MemoryMiddleware(store, namespace=("mem", "t1"), recall_tokens=200, query_source=source, min_score=0.3)
    msgs = [HumanMessage("weather on monday?"), AIMessage("I will look up the project falcon launch code")]
    block = mw.memory.recall(msgs)
    assert ("7731" in block) is found
