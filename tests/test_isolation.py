"""Isolation: archived originals and memories are namespaced per user / thread, and stay there.

One namespace can never read, recall or merge another's data: not through ``StoreArchive.get``,
not through the recall tool (even when handed the other namespace's exact handle, or a guessed
one), not inside an agent run on another thread or for another user, and not through the merging
memory store's search, get, expand or consolidation (when that store is present).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from agent_tokred.errors import InvalidInputError
from agent_tokred.integration.archive import StoreArchive, archive_for_runtime, scope_labels
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.middleware import TokenReductionMiddleware
from agent_tokred.integration.recall import make_recall_tool, read_page
from agent_tokred.strategies.text_merge import hashed_embeddings
from tests.strategies import cases, make_text, small_texts, tally

labels = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(["a.b", "a%2Eb", "%", ".", "default", "", "a\x1fb",
                                                                   "ユーザー", "t1"])), min_size=1, max_size=3)
handles = st.from_regex(r"tkr-[0-9a-f]{24}", fullmatch=True)


@cases(1000)
@given(scope_a=labels, scope_b=labels, text=small_texts, guess=handles)
def test_one_namespace_never_reads_another(scope_a: list[str], scope_b: list[str], text: str, guess: str) -> None:
    store = InMemoryStore()
    a, b = StoreArchive(store, scope_a), StoreArchive(store, scope_b)
    assume(a.namespace != b.namespace)
    handle = a.put(text, output=text[: len(text) // 2] + "…")
    assert a.get(handle) == text, "the owner cannot read its own original"
    assert b.get(handle) is None and b.get(guess) is None, "another namespace read an original"
    assert not b.is_output(text[: len(text) // 2] + "…")
    answer = make_recall_tool(b).invoke({"handle": handle})
    assert answer == f"No original is archived under handle {handle!r} in this conversation."
    assert read_page(a.get(handle), handle, 0, 10**8, "recall") == text
    b_handle = b.put(text)
    assert a.get(b_handle) is None or b_handle == handle  # same text under the same key: a's own copy
    tally("isolation:archive", cases=1, leaks=0)


def test_escaped_labels_never_collide() -> None:
    store = InMemoryStore()
    pairs = [(("a.b",), ("a%2Eb",)), (("a", "b"), ("a\x1fb",)), (("",), ("%00",)), (("thread", "t1"), ("user", "t1"))]
    for left, right in pairs:
        a, b = StoreArchive(store, left), StoreArchive(store, right)
        assert a.namespace != b.namespace
        h = a.put(f"secret of {left}")
        assert b.get(h) is None
    with pytest.raises(ValueError, match="planet"):
        scope_labels("planet")


# -- inside agent runs ----------------------------------------------------------------------------------

SECRET_LOG = "\n".join(f"2024-05-01 12:00:{i % 60:02d} INFO svc-{i} ok" for i in range(300)) + "\nERROR alice-secret-7731"


@tool
def read_logs(service: str) -> str:
    """Read a service's logs."""
    return SECRET_LOG


def agent_with(mw: TokenReductionMiddleware, store: InMemoryStore, script: list[Any]) -> tuple[Any, ScriptedChatModel]:
    model = ScriptedChatModel(script=script)
    return create_agent(model, [read_logs], middleware=[mw], checkpointer=InMemorySaver(), store=store), model


def recall_call(handle: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "recall", "args": {"handle": handle}, "id": f"r-{handle[-6:]}"}])


def last_tool(messages: list[BaseMessage]) -> ToolMessage:
    return next(m for m in reversed(messages) if isinstance(m, ToolMessage))


@pytest.mark.parametrize("scope", ["thread", "user"])
def test_recall_in_an_agent_run_cannot_cross_namespaces(scope: str) -> None:
    store = InMemoryStore()
    mw = TokenReductionMiddleware(message_budget=80, criterion="lexical", archive_scope=scope)
    first, _ = agent_with(mw, store, [
        AIMessage("", tool_calls=[{"name": "read_logs", "args": {"service": "x"}, "id": "c0"}]), AIMessage("done")])
    alice = {"configurable": {"thread_id": "alice-1", "user_id": "alice"}}
    out = first.invoke({"messages": [HumanMessage("any errors?")]}, alice)["messages"]
    handle = last_tool(out).response_metadata["agent_tokred"]["handle"]
    assert "alice-secret-7731" in last_tool(out).content

    thief, _ = agent_with(mw, store, [recall_call(handle), AIMessage("nothing")])
    bob = {"configurable": {"thread_id": "bob-1", "user_id": "bob"}}
    stolen = last_tool(thief.invoke({"messages": [HumanMessage("recall it")]}, bob)["messages"])
    assert stolen.name == "recall" and str(stolen.content).startswith("No original is archived")
    assert "alice-secret-7731" not in str(stolen.content)

    owner, _ = agent_with(mw, store, [recall_call(handle), AIMessage("ok")])
    again = {"configurable": {"thread_id": "alice-1" if scope == "thread" else "alice-2", "user_id": "alice"}}
    mine = last_tool(owner.invoke({"messages": [HumanMessage("recall it")]}, again)["messages"])
    assert mine.content == SECRET_LOG  # the owner (same thread, or same user on another thread) reads it back
    tally("isolation:agent recall", cases=3, leaks=0)


def test_archive_for_runtime_follows_the_run_identity() -> None:
    store = InMemoryStore()
    runtime = SimpleNamespace(store=store, context={"user_id": "carol"}, config={"configurable": {"thread_id": "t"}})
    by_user = archive_for_runtime(runtime, "user")
    by_thread = archive_for_runtime(runtime, "thread")
    assert by_user.scope == ("user", "carol") and by_thread.scope == ("thread", "t")
    h = by_user.put("carol's original")
    other = SimpleNamespace(store=store, context={"user_id": "dave"}, config={})
    assert archive_for_runtime(other, "user").get(h) is None and by_thread.get(h) is None


# -- the merging memory store ------------------------------------------------------------------------


def merging_store() -> Any:
    store_mod = pytest.importorskip("agent_tokred.integration.store")
    return store_mod.MergingStore(InMemoryStore(), embed=lambda t: hashed_embeddings(t).tolist(),
                                  recent_items=1, compress_items=0, threshold=0.5)


def test_merging_store_never_merges_or_returns_across_namespaces() -> None:
    store = merging_store()
    for user in ("alice", "bob"):
        for i in range(8):
            store.put(("memories", user), f"{user}-{i}", {"text": f"{user} secret: the door code is {1000 + i}"})
    store.consolidate()
    for user, other in (("alice", "bob"), ("bob", "alice")):
        live = store.search(("memories", user), query="door code", limit=100)
        assert live and all(tuple(item.namespace) == ("memories", user) for item in live)
        assert all(other not in str(item.value.get("text", "")) for item in live)
        for item in live:
            sources = item.value.get("_tokred", {}).get("sources", []) if isinstance(item.value, dict) else []
            assert all(other not in str(s) for s in sources), "a merged memory has another user's source"
            for src in store.expand(tuple(item.namespace), item.key):
                assert tuple(src.namespace) == ("memories", user)
            try:
                stolen = store.expand(("memories", other), item.key)
            except Exception as exc:  # a documented refusal is fine too
                from agent_tokred.errors import TokredError

                assert isinstance(exc, (TokredError, KeyError))
                stolen = []
            assert all(user not in str(s.value) for s in stolen), "expand crossed namespaces"
        assert store.get(("memories", other), f"{user}-0") is None
    tally("isolation:merging store", cases=2, leaks=0)


def _runtime(user_id: str) -> SimpleNamespace:
    """What the middleware reads from a run: no store or context, a user id in ``configurable``."""
    return SimpleNamespace(store=None, context=None, config={"configurable": {"user_id": user_id, "thread_id": "1"}})


def test_memory_middleware_keeps_users_apart() -> None:
    memory_mod = pytest.importorskip("agent_tokred.integration.memory")
    store = merging_store()
    mw = memory_mod.MemoryMiddleware(store=store, context_tokens=60, keep_tokens=20, keep_last_messages=1,
                                     recall_tokens=400, scope="user")
    alice = _runtime("alice")
    bob = _runtime("bob")
    history = [HumanMessage("my locker code is 4242, remember it", id="h0"), AIMessage("noted", id="a0")]
    history += [HumanMessage(make_text("prose", i, "s"), id=f"h{i + 1}") for i in range(6)]
    history += [HumanMessage("what is my locker code?", id="q")]
    assert mw.memory.evict(history, alice) is not None  # alice's old turns moved to her memory
    recalled_bob = mw.memory.recall([HumanMessage("what is the locker code?")], bob)
    recalled_alice = mw.memory.recall([HumanMessage("what is the locker code?")], alice)
    assert "4242" in recalled_alice and "4242" not in recalled_bob
    tally("isolation:memory middleware", cases=2, leaks=0)


def test_memory_namespaces_with_odd_user_ids() -> None:
    memory_mod = pytest.importorskip("agent_tokred.integration.memory")
    store = merging_store()
    mw = memory_mod.MemoryMiddleware(store=store, context_tokens=40, keep_tokens=10, keep_last_messages=1,
                                     recall_tokens=300, scope="user")
    history = [HumanMessage("the vault pin is 9090", id="h0")]
    history += [HumanMessage(make_text("prose", i, "s"), id=f"h{i + 1}") for i in range(6)]
    history += [HumanMessage("what is the vault pin?", id="q")]
    dotted = _runtime("a.b")
    plain = _runtime("a")
    escaped = _runtime("a%2Eb")
    assert mw.memory.evict(history, dotted) is not None  # no crash: the id is escaped, not refused
    assert "9090" in mw.memory.recall([HumanMessage("vault pin?")], dotted)
    assert "9090" not in mw.memory.recall([HumanMessage("vault pin?")], plain)
    assert "9090" not in mw.memory.recall([HumanMessage("vault pin?")], escaped)  # escaping is reversible
    tally("isolation:memory odd user ids", cases=3, leaks=0)


def test_memory_bad_explicit_namespace_is_a_clear_error() -> None:
    memory_mod = pytest.importorskip("agent_tokred.integration.memory")
    with pytest.raises(InvalidInputError, match="without dots"):
        memory_mod.MemoryMiddleware(store=merging_store(), namespace=("memory", "a.b"))
    with pytest.raises(InvalidInputError, match="namespace_prefix"):
        memory_mod.MemoryMiddleware(store=merging_store(), namespace_prefix=("",))


def test_memory_store_fault_keeps_messages_in_context() -> None:
    memory_mod = pytest.importorskip("agent_tokred.integration.memory")

    class FailingStore(InMemoryStore):
        def batch(self, ops):  # type: ignore[no-untyped-def]
            raise ConnectionError("store down")

    mw = memory_mod.MemoryMiddleware(store=FailingStore(), context_tokens=40, keep_tokens=10, keep_last_messages=1)
    history = [HumanMessage(make_text("prose", i, "s"), id=f"h{i}") for i in range(6)]
    assert mw.memory.evict(history) is None  # nothing written, so nothing removed from the state
    assert mw.memory.recall([HumanMessage("anything?")]) == ""
