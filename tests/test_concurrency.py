"""Concurrency: many threads and asyncio tasks compressing and archiving at once.

The shared parts (one :class:`Compressor`, one middleware, one store) must give every caller the
result the sequential run gives, and lose no original: the archive holds every one of them under
the handle its caller was given. The merging memory store (when present) keeps every write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware.types import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from agent_tokred import Compressor, InMemoryArchive, make_budget
from agent_tokred.integration._content import marker
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.messages import orphaned_tool_calls
from agent_tokred.integration.middleware import TokenReductionMiddleware
from agent_tokred.strategies.text_merge import hashed_embeddings
from tests.strategies import TEXT_KINDS, make_text, tally

THREADS = 8
TASKS = 50


def inputs(n: int, small: bool = False) -> list[tuple[str, str | None, int]]:
    """``n`` different (text, query, budget) jobs of every kind, small to mid-sized."""
    jobs = []
    for i in range(n):
        kind = TEXT_KINDS[i % 11]  # every kind but empty/blank
        text = make_text(kind, 1000 + i, "m" if i % 3 and not small else "s") + f"\nmarker {i}"
        jobs.append((text, f"marker {i}" if i % 2 else None, 20 + (i * 7) % 200))
    return jobs


def run_jobs(comp: Compressor, jobs: list[tuple[str, str | None, int]]) -> list[tuple[str, int, str]]:
    return [_one(comp, job) for job in jobs]


def _one(comp: Compressor, job: tuple[str, str | None, int]) -> tuple[str, int, str]:
    text, query, budget = job
    r = comp.compress(text, query=query, budget=make_budget(target_tokens=budget))
    return r.text, r.tokens_after, r.handle


@pytest.fixture
def hashed_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent_tokred.strategies.text_merge._embed", lambda texts, embedder: hashed_embeddings(texts))


@pytest.mark.parametrize(("strategy", "criterion"), [
    ("auto", "lexical"), ("merge", "lexical"),
    pytest.param("auto", "relevance", marks=pytest.mark.model), pytest.param("merge", "lexical", marks=pytest.mark.model),
], ids=["lexical", "merge-hashed", "relevance-minilm", "merge-minilm"])
def test_threads_sharing_one_compressor_match_the_sequential_run(
    strategy: str, criterion: str, request: pytest.FixtureRequest
) -> None:
    model = "minilm" in request.node.callspec.id
    if not model:
        request.getfixturevalue("hashed_merge")
    jobs = inputs(8, small=True) if model else inputs(24)
    seq_archive, par_archive = InMemoryArchive(), InMemoryArchive()
    sequential = run_jobs(Compressor(criterion=criterion, strategy=strategy, archive=seq_archive), jobs)  # type: ignore[arg-type]
    shared = Compressor(criterion=criterion, strategy=strategy, archive=par_archive)  # type: ignore[arg-type]
    with ThreadPoolExecutor(THREADS) as pool:
        parallel = list(pool.map(lambda job: _one(shared, job), jobs))
    assert parallel == sequential
    lost = sum(par_archive.get(h) != job[0] for (_, _, h), job in zip(parallel, jobs))
    assert lost == 0 and len(par_archive) == len(jobs)
    tally("concurrency:threads x compressor", cases=len(jobs), lost=lost, mismatches=0)


async def test_asyncio_tasks_sharing_one_compressor_match_the_sequential_run() -> None:
    jobs = inputs(TASKS)
    sequential = run_jobs(Compressor(criterion="lexical", archive=InMemoryArchive()), jobs)
    archive = InMemoryArchive()
    shared = Compressor(criterion="lexical", archive=archive)
    parallel = await asyncio.gather(*(asyncio.to_thread(_one, shared, job) for job in jobs))
    assert list(parallel) == sequential
    lost = sum(archive.get(h) != job[0] for (_, _, h), job in zip(parallel, jobs))
    assert lost == 0
    tally("concurrency:tasks x compressor", cases=len(jobs), lost=lost, mismatches=0)


def conversation(i: int) -> list[BaseMessage]:
    out = make_text(TEXT_KINDS[i % 11], 2000 + i, "m") + f"\nneedle-{i}"
    return [
        SystemMessage("You are terse."),
        HumanMessage(f"find needle-{i}"),
        AIMessage("", tool_calls=[{"name": "search", "args": {"q": str(i)}, "id": f"c{i}"}]),
        ToolMessage(out, tool_call_id=f"c{i}", name="search"),
        AIMessage(f"step {i}: " + make_text("prose", i, "m")),
        HumanMessage("and now?"),
    ]


def view_of(mw: TokenReductionMiddleware, msgs: list[BaseMessage]) -> list[BaseMessage]:
    seen: list[ModelRequest] = []

    def handler(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        return ModelResponse(result=[AIMessage("ok")])

    mw.wrap_model_call(ModelRequest(model=ScriptedChatModel(), messages=cast(Any, msgs[1:]),
                                    system_message=cast(Any, msgs[0]), state=cast(Any, {"messages": msgs})), handler)
    return [seen[0].system_message, *seen[0].messages]  # type: ignore[list-item]


async def aview_of(mw: TokenReductionMiddleware, msgs: list[BaseMessage]) -> list[BaseMessage]:
    seen: list[ModelRequest] = []

    async def handler(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        await asyncio.sleep(0)
        return ModelResponse(result=[AIMessage("ok")])

    await mw.awrap_model_call(ModelRequest(model=ScriptedChatModel(), messages=cast(Any, msgs[1:]),
                                           system_message=cast(Any, msgs[0]), state=cast(Any, {"messages": msgs})),
                              handler)
    return [seen[0].system_message, *seen[0].messages]  # type: ignore[list-item]


def make_mw(store: Any) -> TokenReductionMiddleware:
    return TokenReductionMiddleware(message_budget=60, call_budget=300, criterion="lexical", store=store,
                                    protect_last_n_turns=1)


def check_views(views: list[list[BaseMessage]], convs: list[list[BaseMessage]], store: Any) -> int:
    """Every view pair-intact, every reduced message's original in the shared archive; returns losses."""
    arc = StoreArchive(store, ("thread", "default"))
    lost = 0
    for view, conv in zip(views, convs):
        assert orphaned_tool_calls(view) == []
        originals = {m.id or i: m.content for i, m in enumerate(conv)}
        for m in view:
            mark = marker(m) or {}
            if mark.get("action") in ("compressed", "squeezed"):
                lost += arc.get(str(mark["handle"])) not in originals.values()
            elif mark.get("action") == "dropped_pair":
                lost += arc.get(str(mark["handle"])) is None
    return lost


def test_threads_sharing_one_middleware_match_the_sequential_run() -> None:
    convs = [conversation(i) for i in range(40)]
    sequential = [view_of(make_mw(InMemoryStore()), c) for c in convs]
    store = InMemoryStore()
    mw = make_mw(store)
    with ThreadPoolExecutor(THREADS) as pool:
        parallel = list(pool.map(lambda c: view_of(mw, c), convs))
    assert parallel == sequential
    lost = check_views(parallel, convs, store)
    assert lost == 0 and len(mw.reports) == len(convs)
    tally("concurrency:threads x middleware", cases=len(convs), lost=lost, mismatches=0)


async def test_asyncio_tasks_sharing_one_middleware_match_the_sequential_run() -> None:
    convs = [conversation(i) for i in range(TASKS)]
    sequential = [view_of(make_mw(InMemoryStore()), c) for c in convs]
    store = InMemoryStore()
    mw = make_mw(store)
    parallel = await asyncio.gather(*(aview_of(mw, c) for c in convs))
    assert list(parallel) == sequential
    lost = check_views(list(parallel), convs, store)
    assert lost == 0
    tally("concurrency:tasks x middleware", cases=len(convs), lost=lost, mismatches=0)


@tool
def search(q: str) -> str:
    """Search the logs of job ``q``."""
    n = int(q)
    return make_text("logs", 3000 + n, "m") + f"\nERROR job-{n} failed"


def agent_for(store: InMemoryStore) -> tuple[Any, TokenReductionMiddleware]:
    def reply(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            q = str(last.content).split()[-1]
            return AIMessage("", tool_calls=[{"name": "search", "args": {"q": q}, "id": f"call-{q}"}])
        return AIMessage(f"seen {len(str(last.content))} chars")

    model = ScriptedChatModel(script=[reply] * 10_000)  # the same reply rule for every call of every task
    mw = TokenReductionMiddleware(message_budget=80, criterion="lexical", store=store)
    return create_agent(model, [search], middleware=[mw], checkpointer=InMemorySaver(), store=store), mw


async def test_asyncio_agent_runs_in_parallel_threads_of_conversation() -> None:
    """50 conversations (one thread id each) through one agent at once: same states as one by one."""
    seq_agent, _ = agent_for(InMemoryStore())
    sequential = [seq_agent.invoke({"messages": [HumanMessage(f"job {i}")]},
                                   {"configurable": {"thread_id": f"t{i}"}})["messages"] for i in range(TASKS)]
    store = InMemoryStore()
    agent, _ = agent_for(store)
    parallel = await asyncio.gather(*(agent.ainvoke({"messages": [HumanMessage(f"job {i}")]},
                                                    {"configurable": {"thread_id": f"t{i}"}}) for i in range(TASKS)))
    lost = 0
    for i, (seq, par) in enumerate(zip(sequential, parallel)):
        msgs = par["messages"]
        assert [(type(m), m.content) for m in msgs] == [(type(m), m.content) for m in seq]
        tool_msg = next(m for m in msgs if isinstance(m, ToolMessage))
        handle = tool_msg.response_metadata["agent_tokred"]["handle"]
        lost += StoreArchive(store, ("thread", f"t{i}")).get(handle) != search.invoke({"q": str(i)})
        assert StoreArchive(store, ("thread", f"t{(i + 1) % TASKS}")).get(handle) is None
    assert lost == 0
    tally("concurrency:tasks x agent runs", cases=TASKS, lost=lost, mismatches=0)


def test_threads_writing_a_sqlite_archive() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    texts = [make_text(TEXT_KINDS[i % 11], 4000 + i, "s") + f" #{i}" for i in range(200)]
    archives = [StoreArchive(store, ("thread", f"t{i % THREADS}")) for i in range(len(texts))]
    with ThreadPoolExecutor(THREADS) as pool:
        handles = list(pool.map(lambda i: archives[i].put(texts[i], output=f"out {i}"), range(len(texts))))
    lost = sum(a.get(h) != t for a, h, t in zip(archives, handles, texts))
    assert lost == 0 and all(a.is_output(f"out {i}") for i, a in enumerate(archives))
    tally("concurrency:threads x sqlite archive", cases=len(texts), lost=lost, mismatches=0)


def test_threads_and_tasks_writing_the_merging_memory_store() -> None:
    store_mod = pytest.importorskip("agent_tokred.integration.store")
    store = store_mod.MergingStore(InMemoryStore(), embed=lambda texts: hashed_embeddings(texts).tolist(),
                                   recent_items=4, compress_items=4)
    writes = [(("user", f"u{i % 4}"), f"k{i}", {"text": f"user {i % 4} likes topic {i % 7}: " +
                                                make_text("prose", 5000 + i, "s")}) for i in range(120)]

    async def async_writes(chunk: list[Any]) -> None:
        await asyncio.gather(*(store.aput(ns, key, value) for ns, key, value in chunk))

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(store.put, ns, key, value) for ns, key, value in writes[:80]]
        asyncio.run(async_writes(writes[80:]))
        for f in futures:
            f.result()
    lost = 0
    for ns, key, value in writes:
        item = store.get(ns, key)
        lost += item is None or json.dumps(item.value, sort_keys=True) != json.dumps(value, sort_keys=True)
    assert lost == 0, f"{lost} memories lost under concurrent writes"
    for ns in {w[0] for w in writes}:  # every live memory stays in its own namespace
        for hit in store.search(ns, limit=1000):
            assert tuple(hit.namespace) == ns
    tally("concurrency:threads+tasks x merging store", cases=len(writes), lost=lost, mismatches=0)
