"""The store ``langgraph.json`` serves under "store": a MergingStore over SQLite or PostgreSQL.

``make_store()`` is a context manager (the LangGraph server enters it once and closes it on exit):

* default: SQLite in ``memory/store.sqlite`` (``AGENT_TOKRED_SQLITE_PATH`` moves it);
* PostgreSQL when ``AGENT_TOKRED_POSTGRES_URI`` (or a PostgreSQL ``DATABASE_URI``) holds a connection string;
  vectors are then searched in PostgreSQL when the server has pgvector (any number of server
  processes can share the database), else in process (the log says which).

The file is loaded by path by the server, so it imports only absolute names.

Example:
    >>> from memory.store import make_store  # doctest: +SKIP
    >>> with make_store() as store:  # doctest: +SKIP
    ...     store.put(("user", "1"), "k", {"text": "prefers tea"})
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent_tokred.integration.store import MergingStore

DEFAULT_SQLITE_PATH = Path(__file__).resolve().parent / "store.sqlite"


def postgres_uri() -> str | None:
    """The configured PostgreSQL connection string, if any.

    ``AGENT_TOKRED_POSTGRES_URI`` is always PostgreSQL. ``DATABASE_URI`` (what LangGraph's server
    images set) counts only when it is a PostgreSQL URI or key/value string: ``langgraph dev`` sets
    it to ``":memory:"`` for its in-memory runtime, which must not be mistaken for a server.
    """
    explicit = os.environ.get("AGENT_TOKRED_POSTGRES_URI")
    if explicit:
        return explicit
    shared = (os.environ.get("DATABASE_URI") or "").strip()
    if shared.startswith(("postgres://", "postgresql://")) or "dbname=" in shared or "host=" in shared:
        return shared
    return None


@contextmanager
def make_store(**options: Any) -> Iterator[MergingStore]:
    """Open the served memory store; ``options`` go to :class:`~agent_tokred.integration.store.MergingStore`."""
    uri = postgres_uri()
    if uri:
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(uri) as inner:
            inner.setup()
            store = MergingStore(inner, **options)
            try:
                yield store
            finally:
                store.close()
        return
    from langgraph.store.sqlite import SqliteStore

    path = Path(os.environ.get("AGENT_TOKRED_SQLITE_PATH") or DEFAULT_SQLITE_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    with SqliteStore.from_conn_string(str(path)) as inner:
        inner.setup()
        # WAL: readers do not block the writer; NORMAL sync: a commit is one write, not two fsyncs.
        inner.conn.execute("PRAGMA journal_mode=WAL")
        inner.conn.execute("PRAGMA synchronous=NORMAL")
        yield MergingStore(inner, **options)
