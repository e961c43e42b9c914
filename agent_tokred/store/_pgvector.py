"""Vector search, atomic writes and namespace locks in PostgreSQL, for a store over ``PostgresStore``.

When the wrapped store is LangGraph's ``PostgresStore`` and its server has pgvector, the merging
store keeps no vectors in process. Instead:

* every index record's vectors are mirrored, in the same transaction as the record itself, into
  ``tokred_vectors_<dims>`` (one row per item and index path, an HNSW index on cosine distance),
  so a crash can never leave the two apart;
* a search ranks there in one statement (one round trip): exactly when the namespace prefix holds
  at most ``exact_rows`` vectors, else through the HNSW index with pgvector's iterative scan. The
  exact ranking reads a namespace's vectors from a covering btree ordered by namespace
  (``(prefix, key, path) INCLUDE (embedding)``), so they lie on a few adjacent index pages
  instead of one heap page each (rows of all namespaces interleave in the table as writes come);
* writes to one namespace from any process are serialised by a PostgreSQL advisory lock, and
  ``tokred_ns_state`` counts each namespace's committed write transactions, so a process sees that
  its cached tier metadata of a namespace is stale and reloads it.

Only psycopg is used here (no LangGraph import): the rows written to LangGraph's ``store`` table
are the ones its ``PostgresStore`` writes (same table, columns and conflict rule).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError, TokredError
from ._layout import ROOT, VEC, Namespace, decode_vector, user_ns_of
from ._pgsql import (
    LOCK_CLASS,
    _cursor,
    _ensure_cover,
    _exact_statement,
    _like_escape,
    _own_connection,
    _prefix_match,
    _transaction,
    is_postgres_store,
    ns_text,
    vector_literal,
)

__all__ = ["Hit", "NamespaceLockTimeoutError", "PgVectors", "choose_vector_search", "ns_text", "probe_pgvector"]

logger = logging.getLogger(__name__)

EXACT_ROWS = 20_000  # a prefix with at most this many vectors is searched exactly
EF_SEARCH = 100
LOCK_TIMEOUT_S = 120.0
WriteOp = tuple[Namespace, str, Mapping[str, Any] | None]


LiveRow = tuple[dict[str, Any], Any, Any]  # value, created_at, updated_at of LangGraph's ``store`` table


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: an item and its score; ``read`` says ``row`` was looked up (``None``: not live)."""

    namespace: Namespace
    key: str
    score: float
    read: bool = False
    row: LiveRow | None = None


def _row(value: Any, created_at: Any, updated_at: Any) -> LiveRow | None:
    return None if value is None else (value, created_at, updated_at)


class NamespaceLockTimeoutError(TokredError, TimeoutError):
    """Another process held a namespace's write lock for longer than the timeout."""


def probe_pgvector(store: Any) -> str | None:
    """pgvector's version on the store's server (created if missing and allowed), else ``None``.

    An extension this store creates is first tried on a connection of its own with a distance over
    384 dimensions: a pgvector built for another CPU (AVX-512 in a wheel, say) kills the backend
    there, and is then dropped and not used.
    """
    with _cursor(store) as cur:
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cur.fetchone()
        if row:
            return str(row[0])
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cur.fetchone() is None:
            return None
    try:
        with _transaction(store) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cur.fetchone()
    except Exception as exc:  # no privilege to create it: the in-process index it is
        logger.warning("pgvector is available but could not be created (%s)", exc)
        return None
    try:
        with _own_connection(store) as conn:
            conn.execute("SELECT array_fill(1, ARRAY[384])::vector <=> array_fill(2, ARRAY[384])::vector")
    except Exception as exc:
        logger.error("pgvector %s fails on this server (%s): dropped, vectors searched in process", row, exc)
        time.sleep(2.0)  # a killed backend restarts the server
        with _own_connection(store) as conn:
            conn.execute("DROP EXTENSION IF EXISTS vector")
        return None
    return str(row[0]) if row else None


def choose_vector_search(store: Any, mode: str) -> PgVectors | None:
    """pgvector search over ``store`` when it can and ``mode`` allows it, else ``None`` (in process).

    Raises:
        InvalidInputError: an unknown ``mode``, or ``"postgres"`` where pgvector is not available.
    """
    if mode not in ("auto", "postgres", "process"):
        raise InvalidInputError(f"vector_search must be one of 'auto', 'postgres', 'process', got {mode!r}")
    name = type(store).__name__
    if mode == "process":
        logger.info("merging store over %s: vectors searched in process (vector_search='process')", name)
        return None
    version = None
    if is_postgres_store(store) and getattr(store, "pipe", None) is None:
        version = probe_pgvector(store)
        if version is not None:
            logger.info("merging store over %s: vectors searched in PostgreSQL (pgvector %s)", name, version)
            return PgVectors(store, version)
        reason = "its server has no pgvector extension"
        logger.warning("merging store over %s: %s; vectors searched in process (one writer process only)", name, reason)
    elif is_postgres_store(store):
        reason = "it runs in pipeline mode"
        logger.warning("merging store over %s: %s; vectors searched in process (one writer process only)", name, reason)
    else:
        reason = "it is not LangGraph's PostgresStore"
        logger.info("merging store over %s: vectors searched in process", name)
    if mode == "postgres":
        raise InvalidInputError(f"vector_search='postgres' needs pgvector, but the wrapped {name}: {reason}")
    return None


class PgVectors:
    """pgvector search, atomic mirrored writes and namespace locks over one ``PostgresStore``.

    Args:
        store: LangGraph's ``PostgresStore`` (set up; its ``store`` table exists).
        version: pgvector's version (from :func:`probe_pgvector`), for the log.
        exact_rows: prefixes with at most this many vectors are ranked exactly, others by HNSW.
        ef_search: HNSW candidate list size (raised to the rows a search asks for).
    """

    def __init__(self, store: Any, version: str, *, exact_rows: int = EXACT_ROWS, ef_search: int = EF_SEARCH) -> None:
        self.store = store
        self.version = version
        self.exact_rows = exact_rows
        self.ef_search = ef_search
        self.known: dict[Namespace, int] = {}  # namespace -> write count its cached metadata reflects
        self._dims: set[int] = set()
        self._ddl = threading.Lock()
        self._lock_conn: Any = None
        self._lock_guard = threading.Lock()
        with _transaction(store) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
            cur.execute("CREATE TABLE IF NOT EXISTS tokred_ns_state (prefix text PRIMARY KEY, version bigint NOT NULL)")
            cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'tokred\\_vectors\\_%%'")
            self._dims.update(int(r[0].rsplit("_", 1)[1]) for r in cur.fetchall())
            for dims in sorted(self._dims):  # tables of an earlier layout get their covering index once
                _ensure_cover(cur, self.table(dims), dims)

    # -- tables ------------------------------------------------------------------------------------
    @staticmethod
    def table(dims: int) -> str:
        return f"tokred_vectors_{int(dims)}"

    def ensure_table(self, dims: int) -> str:
        """The vector table for ``dims`` dimensions, created (with its HNSW index) if missing."""
        name = self.table(dims)
        with self._ddl:
            if dims in self._dims:
                return name
            with _transaction(self.store) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} (prefix text NOT NULL, key text NOT NULL, "
                    f"path text NOT NULL, embedding vector({int(dims)}) NOT NULL, PRIMARY KEY (prefix, key, path))"
                )
                cur.execute(f"CREATE INDEX IF NOT EXISTS {name}_prefix ON {name} (prefix text_pattern_ops)")
                cur.execute(
                    f"CREATE INDEX IF NOT EXISTS {name}_hnsw ON {name} USING hnsw (embedding vector_cosine_ops)"
                )
                _ensure_cover(cur, name, dims)
            self._dims.add(dims)
            return name

    # -- writes ------------------------------------------------------------------------------------
    def write(self, ops: Sequence[WriteOp]) -> None:
        """Apply puts (value) and deletes (``None``) in one transaction, with their vector rows.

        Rows of LangGraph's ``store`` table are written as ``PostgresStore`` writes them; an index
        record (under the bookkeeping root's ``v`` part) also replaces its item's vector rows; each
        user namespace touched gets its write count raised (recorded in :attr:`known`).
        """
        from psycopg.types.json import Jsonb

        last: dict[tuple[Namespace, str], Mapping[str, Any] | None] = {}
        for ns, key, value in ops:
            last.pop((ns, key), None)
            last[(ns, key)] = value
        vec_rows: list[tuple[str, str, str, str]] = []
        vec_keys: list[tuple[str, str]] = []
        touched: set[Namespace] = set()
        dims: int | None = None
        for (ns, key), value in last.items():
            if ns[:1] == (ROOT,):
                user = user_ns_of(ns)
                touched.add(user)
                if ns[1] == VEC:
                    vec_keys.append((ns_text(user), key))
                    for path, data in ((value or {}).get("vecs") or {}).items():
                        vec = decode_vector(data)
                        dims = dims or len(vec)
                        vec_rows.append((ns_text(user), key, path, vector_literal(vec)))
            else:
                touched.add(ns)
        tables = {self.ensure_table(dims)} if dims else set()
        tables |= {self.table(d) for d in self._dims}
        deletes = [(ns_text(ns), key) for (ns, key), v in last.items() if v is None]
        puts = [(ns_text(ns), key, Jsonb(dict(v))) for (ns, key), v in last.items() if v is not None]
        with _transaction(self.store) as cur:
            if deletes:
                cur.executemany("DELETE FROM store WHERE prefix = %s AND key = %s", deletes)
            if puts:
                cur.executemany(
                    "INSERT INTO store (prefix, key, value, created_at, updated_at, expires_at, ttl_minutes) "
                    "VALUES (%s, %s, %s, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, NULL, NULL) "
                    "ON CONFLICT (prefix, key) DO UPDATE SET value = EXCLUDED.value, updated_at = CURRENT_TIMESTAMP, "
                    "expires_at = EXCLUDED.expires_at, ttl_minutes = EXCLUDED.ttl_minutes",
                    puts,
                )
            for table in sorted(tables):
                if vec_keys:
                    cur.executemany(f"DELETE FROM {table} WHERE prefix = %s AND key = %s", vec_keys)  # noqa: S608
            if vec_rows and dims:
                cur.executemany(
                    f"INSERT INTO {self.table(dims)} (prefix, key, path, embedding) VALUES (%s, %s, %s, %s::vector)",  # noqa: S608
                    vec_rows,
                )
            versions: dict[Namespace, int] = {}
            for ns in sorted(touched):
                cur.execute(
                    "INSERT INTO tokred_ns_state (prefix, version) VALUES (%s, 1) ON CONFLICT (prefix) "
                    "DO UPDATE SET version = tokred_ns_state.version + 1 RETURNING version",
                    (ns_text(ns),),
                )
                versions[ns] = int(cur.fetchone()[0])
        self.known.update(versions)

    # -- reads -------------------------------------------------------------------------------------
    def search(self, prefix: Namespace, query: np.ndarray, items: int, fetch: int = 0) -> list[Hit]:
        """The ``items`` best items under ``prefix`` by cosine similarity (max over an item's rows).

        A prefix with at most ``exact_rows`` vectors is ranked exactly, in one statement (one
        round trip) that also reads the live rows of the best ``fetch`` items; a larger one goes
        through the HNSW index (a second statement, in a transaction with its settings).
        """
        dims = int(np.asarray(query).size)
        if dims not in self._dims:
            return []
        table = self.table(dims)
        q = vector_literal(query)
        sql, args = _exact_statement(table, prefix, self.exact_rows)
        with _cursor(self.store) as cur:
            cur.execute(sql, [q if a is None else a for a in args] + [self.exact_rows, items, fetch])
            found = cur.fetchall()
        head = next(r for r in found if r[0] is None)
        if int(head[2]) <= self.exact_rows:
            hits = [
                Hit(tuple(p.split(".")), k, float(sc), rank <= fetch, _row(v, c, u))
                for p, k, sc, rank, v, c, u in found
                if p is not None
            ]
            hits.sort(key=lambda h: (-h.score, ns_text(h.namespace), h.key))
            return hits
        rows = 4 * items + 16  # an item has several rows (passages, merged sources'): ask for more
        where, params = _prefix_match("prefix", prefix)
        with _transaction(self.store) as cur:
            cur.execute(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, min(rows, 1000))}")
            cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cur.execute(
                f"SELECT prefix, key, 1 - (embedding <=> %s::vector) FROM {table} "  # noqa: S608
                f"WHERE {where} ORDER BY embedding <=> %s::vector LIMIT %s",
                [q, *params, q, rows],
            )
            scanned = cur.fetchall()
        best: dict[tuple[str, str], float] = {}
        for p, k, sc in scanned:
            best[(p, k)] = max(float(sc), best.get((p, k), -2.0))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:items]
        return [Hit(tuple(p.split(".")), k, sc) for (p, k), sc in ranked]

    def unscored(self, prefix: Namespace, limit: int) -> list[tuple[Namespace, str]]:
        """Live items under ``prefix`` that have no vector (no text to index), in key order."""
        where, params = _prefix_match("s.prefix", prefix)
        absent = " ".join(
            f"AND NOT EXISTS (SELECT 1 FROM {self.table(d)} v WHERE v.prefix = s.prefix AND v.key = s.key)"  # noqa: S608
            for d in sorted(self._dims)
        )
        with _cursor(self.store) as cur:
            cur.execute(
                f"SELECT s.prefix, s.key FROM store s WHERE {where} AND s.prefix NOT LIKE %s {absent} "  # noqa: S608
                "ORDER BY s.prefix, s.key LIMIT %s",
                [*params, _like_escape(ROOT) + "%", limit],
            )
            return [(tuple(p.split(".")), k) for p, k in cur.fetchall()]

    # -- namespace locks ---------------------------------------------------------------------------
    def _lock_connection(self) -> Any:
        if self._lock_conn is None or self._lock_conn.closed:
            import psycopg

            with _cursor(self.store) as cur:
                info = cur.connection.info
                conninfo = psycopg.conninfo.make_conninfo(info.dsn, password=info.password)
            self._lock_conn = psycopg.connect(conninfo, autocommit=True)  # held: its session owns the locks
        return self._lock_conn

    def lock(self, ns: Namespace, timeout_s: float = LOCK_TIMEOUT_S) -> int:
        """Take ``ns``'s write lock (shared by every process); returns its committed write count.

        Polls ``pg_try_advisory_lock`` (a blocking wait on the shared lock connection would stall
        this process's other namespaces).

        Raises:
            NamespaceLockTimeoutError: not acquired within ``timeout_s``.
        """
        text = ns_text(ns)
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        while True:
            with self._lock_guard:
                conn = self._lock_connection()
                got = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, text)).fetchone()[0]
                if got:  # read after the lock is held: a snapshot that sees the last holder's commit
                    row = conn.execute("SELECT version FROM tokred_ns_state WHERE prefix = %s", (text,)).fetchone()
                    return int(row[0]) if row else 0
            if time.monotonic() > deadline:
                raise NamespaceLockTimeoutError(f"namespace {ns} stayed locked by another writer for {timeout_s:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def unlock(self, ns: Namespace) -> None:
        with self._lock_guard:
            conn = self._lock_conn
            if conn is not None and not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, ns_text(ns)))

    def close(self) -> None:
        """Close the lock connection (its locks are released with it)."""
        with self._lock_guard:
            if self._lock_conn is not None:
                self._lock_conn.close()
                self._lock_conn = None
