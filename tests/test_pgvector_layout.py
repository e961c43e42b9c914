"""The pgvector layout and search statement: namespace-ordered covering index, one statement a search.

Needs PostgreSQL with pgvector at ``AGENT_TOKRED_POSTGRES_URI`` (see tests/test_pgvector.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from agent_tokred.store import _pgsql
from agent_tokred.store import _pgvector as pgv
from tests.test_pgvector import inner_stores, merging, uri  # noqa: F401  (the uri fixture)
from tests.test_store import memories

pytestmark = pytest.mark.server

NS, SUB, SIBLING = ("u", "1"), ("u", "1", "sub"), ("u", "1-x")  # "1-x" sorts between "1" and "1."/"1/"


def _fill(store: Any) -> None:
    for ns in (NS, SUB, SIBLING):
        for key, value in memories(6, topics=("alpha", "beta")).items():
            store.put(ns, key, value)


def _plan(store: Any, prefix: tuple[str, ...]) -> str:
    pg = store._pg
    sql, args = _pgsql._exact_statement(pg.table(64), prefix, pg.exact_rows)
    q = pgv.vector_literal(np.ones(64, dtype=np.float32) / 8.0)
    with pgv._cursor(store.store) as cur:
        cur.execute(f"VACUUM ANALYZE {pg.table(64)}")  # what autovacuum does: the visibility map, statistics
        cur.execute("SET enable_seqscan = off")  # a tiny table: ask which plan the indexes allow
        cur.execute("SET enable_bitmapscan = off")
        cur.execute("EXPLAIN " + sql, [q if a is None else a for a in args] + [pg.exact_rows, 10, 5])
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("RESET enable_seqscan")
        cur.execute("RESET enable_bitmapscan")
    return plan


def test_own_namespace_ranking_is_an_index_only_scan_of_the_covering_index(uri: str) -> None:  # noqa: F811
    with inner_stores(uri) as (inner,):
        store = merging(inner, recent_items=100)
        _fill(store)
        plan = _plan(store, NS)
        ranking = plan.split("One-Time Filter")[1]  # the ranking's arms, below the gate
        assert f"Index Only Scan using {store._pg.table(64)}_ns" in ranking


def test_prefix_ranges_take_descendants_and_leave_siblings_out(uri: str) -> None:  # noqa: F811
    with inner_stores(uri) as (inner,):
        store = merging(inner, recent_items=100)
        _fill(store)
        found = {tuple(it.namespace) for it in store.search(NS, query="alpha event", limit=50)}
        assert found == {NS, SUB}
        assert {tuple(it.namespace) for it in store.search(SIBLING, query="alpha", limit=50)} == {SIBLING}
        hits = store._pg.search(NS, store._embed_query("alpha event"), 50)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_search_is_one_statement_with_its_results(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    with inner_stores(uri) as (inner,):
        store = merging(inner, recent_items=100)
        _fill(store)
        want = [(it.key, it.value, it.score) for it in store.search(NS, query="beta thing", limit=4)]
        executed: list[str] = []
        real = pgv._cursor

        class Counting:
            def __init__(self, cur: Any) -> None:
                self.cur = cur

            def execute(self, query: str, *args: Any) -> Any:
                executed.append(query)
                return self.cur.execute(query, *args)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.cur, name)

        @contextmanager
        def counting(s: Any, **kw: Any) -> Iterator[Any]:
            with real(s, **kw) as cur:
                yield Counting(cur)

        reads: list[Any] = []
        monkeypatch.setattr(pgv, "_cursor", counting)
        monkeypatch.setattr(store, "_inner", lambda ops: reads.extend(ops) or [])
        got = [(it.key, it.value, it.score) for it in store.search(NS, query="beta thing", limit=4)]
        assert len(executed) == 1 and reads == []  # the live rows came joined in
        assert got == want


def test_a_table_of_the_earlier_layout_gets_its_covering_index(uri: str) -> None:  # noqa: F811
    with inner_stores(uri) as (inner,):
        store = merging(inner, recent_items=100)
        _fill(store)
        table = store._pg.table(64)
        want = [(it.namespace, it.key, it.score) for it in store.search(NS, query="alpha", limit=5)]
        with pgv._cursor(inner) as cur:
            cur.execute(f"DROP INDEX {table}_ns")
        again = merging(inner, recent_items=100)  # opening the store builds it once
        with pgv._cursor(inner) as cur:
            cur.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", (f"{table}_ns",))
            assert cur.fetchone() is not None
        assert [(it.namespace, it.key, it.score) for it in again.search(NS, query="alpha", limit=5)] == want
