"""pytest plugin: run LangGraph's own store tests against ``MergingStore``.

Loaded with ``-p lg_store_plugin`` when pytest runs the downloaded upstream test files. It swaps the
store class each upstream module builds its stores from (``InMemoryStore`` in langgraph-checkpoint's
tests, ``SqliteStore`` in langgraph-checkpoint-sqlite's) for a ``MergingStore`` over a real backend,
and deselects the tests listed in :data:`DESELECTED`, each with its reason.

Backend (``TOKRED_LG_BACKEND``): ``native`` (default: the store each upstream file tests, so
``InMemoryStore`` under the core tests and ``SqliteStore`` under the SQLite tests) or ``postgres``
(``PostgresStore`` at ``AGENT_TOKRED_POSTGRES_URI``, its tables emptied for each new store).
The default policy is used (merging on writes); without an ``index`` config the stores embed with a
small deterministic hashing embedding instead of MiniLM, so the suite runs without models.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore as _InMemoryStore
from langgraph.store.sqlite import SqliteStore as _SqliteStore

from agent_tokred.integration.store import MergingStore

BACKEND = os.environ.get("TOKRED_LG_BACKEND", "native")

# Upstream tests that check the behaviour of one specific implementation, not the BaseStore
# contract: (distribution folder prefix, test name) -> reason, printed in the summary.
DESELECTED: dict[tuple[str, str], str] = {
    ("langgraph-checkpoint-sqlite-", "test_vector_store_initialization"): (
        "inspects SqliteStore's own sqlite-vec tables through store.conn; MergingStore keeps vectors in "
        "its own index records (the config assertions before that pass)"
    ),
    ("langgraph-checkpoint-sqlite-", "test_nonnull_migrations"): (
        "checks SqliteStore.MIGRATIONS, a class attribute of the SQLite store"
    ),
}


def hashing_embed(texts: list[str]) -> np.ndarray:
    """A deterministic 64-d bag-of-character-trigrams embedding (no model needed)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        padded = f"  {text.lower()} "
        for j in range(len(padded) - 2):
            h = int.from_bytes(hashlib.blake2b(padded[j : j + 3].encode(), digest_size=4).digest(), "little")
            out[i, h % 64] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def _postgres_inner() -> Iterator[BaseStore]:
    from langgraph.store.postgres import PostgresStore

    uri = os.environ["AGENT_TOKRED_POSTGRES_URI"]
    with PostgresStore.from_conn_string(uri) as store:
        store.setup()
        with store._cursor() as cur:  # a clean slate per store, as a fresh SQLite file would be
            cur.execute("TRUNCATE store")
            cur.execute(  # and the merging store's pgvector tables, when it made them
                "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE "
                "'tokred%' LOOP EXECUTE 'TRUNCATE ' || quote_ident(t); END LOOP; END $$"
            )
        yield store


@contextmanager
def _inner(conn_string: str | None = None) -> Iterator[BaseStore]:
    if BACKEND == "postgres":
        yield from _postgres_inner()
    elif conn_string is not None:
        with _SqliteStore.from_conn_string(conn_string) as store:
            store.setup()
            yield store
    else:
        yield _InMemoryStore()


class InMemoryMergingStore(MergingStore):
    """Stands in for ``InMemoryStore(index=...)`` in langgraph-checkpoint's tests."""

    def __init__(self, *, index: Any = None) -> None:
        self._ctx = _inner()  # left open for the test's lifetime, as InMemoryStore would be
        inner = self._ctx.__enter__()
        if index:
            super().__init__(inner, index=index)
        else:
            super().__init__(inner, embed=hashing_embed)


class SqliteMergingStore(MergingStore):
    """Stands in for ``SqliteStore`` in langgraph-checkpoint-sqlite's tests."""

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str, *, index: Any = None, **_: Any) -> Iterator[MergingStore]:
        with _inner(conn_string) as inner:
            yield cls(inner, index=index) if index else cls(inner, embed=hashing_embed)

    def setup(self) -> None:
        setup = getattr(self.store, "setup", None)
        if callable(setup):
            setup()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        module = getattr(item, "module", None)
        if module is not None:
            if getattr(module, "InMemoryStore", None) is _InMemoryStore:
                module.InMemoryStore = InMemoryMergingStore
            if getattr(module, "SqliteStore", None) is _SqliteStore:
                module.SqliteStore = SqliteMergingStore
        dist = item.path.parent.parent.name
        name = item.name.split("[")[0]
        reason = next((r for (d, n), r in DESELECTED.items() if dist.startswith(d) and n == name), None)
        (drop if reason else keep).append(item)
        if reason:
            config._tokred_deselected = [*getattr(config, "_tokred_deselected", []), (item.nodeid, reason)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = getattr(config, "_tokred_deselected", [])
    terminalreporter.write_sep("=", f"MergingStore ({BACKEND}): {len(rows)} upstream tests deselected")
    for nodeid, reason in rows:
        terminalreporter.write_line(f"{nodeid}: {reason}")
