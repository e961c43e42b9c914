"""SQL text and connections of the pgvector backend (:mod:`._pgvector`): prefix ranges, the exact
search statement, the covering index, cursors on the wrapped ``PostgresStore``'s connection.

Only psycopg is used (no LangGraph import).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from ._layout import Namespace

logger = logging.getLogger(__name__)

LOCK_CLASS = 74_230_115  # first key of the two-int advisory locks the backend takes
COVER_MAX_DIMS = 512  # vectors up to this size are also kept in the namespace-ordered covering index


def ns_text(ns: Namespace) -> str:
    """LangGraph's ``prefix`` column text of a namespace (labels never contain a period)."""
    return ".".join(ns)


def vector_literal(vec: np.ndarray) -> str:
    """pgvector's text form of a float32 vector (exact: float32 values print as doubles)."""
    return "[" + ",".join(map(repr, np.asarray(vec, dtype=np.float32).astype(np.float64).tolist())) + "]"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix_match(column: str, prefix: Namespace) -> tuple[str, list[Any]]:
    if not prefix:
        return "TRUE", []
    text = ns_text(prefix)
    return f"({column} = %s OR {column} LIKE %s)", [text, _like_escape(text) + ".%"]


def _under(table: str, prefix: Namespace, columns: str, *, limit: bool = False) -> tuple[list[str], list[list[Any]]]:
    """SELECTs of the rows of ``table`` under ``prefix`` as index range scans with no filter.

    The namespace itself (``prefix = p``) and its descendants (``p.`` up to ``p/``: ``/`` is the
    byte after ``.``, and the ``text_pattern_ops`` operators compare bytes) are two ranges of the
    namespace-ordered indexes; with ``limit`` each arm ends in ``LIMIT %s`` (the caller's cap).
    """
    tail = " LIMIT %s" if limit else ""
    if not prefix:
        return [f"SELECT {columns} FROM {table}{tail}"], [[]]  # noqa: S608
    text = ns_text(prefix)
    return (
        [
            f"SELECT {columns} FROM {table} WHERE prefix = %s{tail}",  # noqa: S608
            f"SELECT {columns} FROM {table} WHERE prefix ~>=~ %s AND prefix ~<~ %s{tail}",  # noqa: S608
        ],
        [[text], [text + ".", text + "/"]],
    )


def _exact_statement(table: str, prefix: Namespace, exact_rows: int) -> tuple[str, list[Any]]:
    """The exact search statement for rows of ``table`` under ``prefix``, and its prefix parameters.

    ``n`` counts the rows (each arm capped at ``exact_rows + 1``) and is the first row returned;
    the ranking runs only when ``n <= exact_rows`` (PostgreSQL skips it through a one-time filter
    otherwise). The best ``fetch`` items come with their live row (value, created_at, updated_at)
    from LangGraph's ``store`` table, so a search needs no second round trip for its results.
    Returns the statement and its parameters with ``None`` in place of the query vector; then
    come exact_rows, items and fetch (the caller's, in that order).
    """
    arms, params = _under(table, prefix, "prefix, key, embedding")
    count_arms, count_params = _under(table, prefix, "1", limit=True)
    counts = " + ".join(f"(SELECT count(*) FROM ({a}) c)" for a in count_arms)  # noqa: S608
    sql = (
        # set_config is parallel-unsafe, so the plan stays serial: starting workers for a big
        # prefix costs more than the count they would share (the ranking is skipped there anyway)
        f"WITH n AS MATERIALIZED (SELECT {counts} AS rows, "  # noqa: S608
        "set_config('max_parallel_workers_per_gather', '0', true) AS serial), "
        f"top AS (SELECT prefix, key, 1 - min(embedding <=> %s::vector) AS score FROM ({' UNION ALL '.join(arms)}) u "
        "WHERE (SELECT rows FROM n) <= %s GROUP BY prefix, key ORDER BY score DESC, prefix, key LIMIT %s), "
        "ranked AS (SELECT prefix, key, score, row_number() OVER (ORDER BY score DESC, prefix, key) AS rank FROM top) "
        "SELECT NULL, NULL, rows::float8, NULL::bigint, NULL::jsonb, NULL::timestamptz, NULL::timestamptz FROM n "
        "UNION ALL SELECT r.prefix, r.key, r.score, r.rank, s.value, s.created_at, s.updated_at FROM ranked r "
        "LEFT JOIN store s ON r.rank <= %s AND s.prefix = r.prefix AND s.key = r.key"
    )
    args = [x for p in count_params for x in (*p, exact_rows + 1)]
    return sql, [*args, None, *[x for p in params for x in p]]


def _ensure_cover(cur: Any, table: str, dims: int) -> None:
    """Create ``table``'s covering index ordered by namespace if missing (vectors up to ``COVER_MAX_DIMS``:
    a btree entry must fit in a third of a page)."""
    if dims > COVER_MAX_DIMS:
        return
    cur.execute("SELECT 1 FROM pg_indexes WHERE tablename = %s AND indexname = %s", (table, f"{table}_ns"))
    if cur.fetchone() is None:
        logger.info("building %s_ns (vectors in namespace order, once per table)", table)
        cur.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_ns ON {table} (prefix text_pattern_ops, key, path) INCLUDE (embedding)"
        )


def is_postgres_store(store: object) -> bool:
    """LangGraph's sync ``PostgresStore`` (checked by duck typing: no import of LangGraph here)."""
    module = type(store).__module__
    return module.startswith("langgraph.store.postgres") and hasattr(store, "conn") and hasattr(store, "lock")


@contextmanager
def _own_connection(store: Any) -> Iterator[Any]:
    """A new autocommit connection to the store's database (same user and password)."""
    import psycopg

    with _cursor(store) as cur:
        info = cur.connection.info
        conninfo = psycopg.conninfo.make_conninfo(info.dsn, password=info.password)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


@contextmanager
def _cursor(store: Any, *, transaction: bool = False) -> Iterator[Any]:
    """A tuple-row cursor on the store's connection (its lock held when it is a single connection)."""
    conn = store.conn
    if hasattr(conn, "getconn"):  # a psycopg_pool pool: one connection per use, no lock needed
        with conn.connection() as c:
            yield from _cursor_on(c, transaction)
        return
    with store.lock:
        yield from _cursor_on(conn, transaction)


def _cursor_on(conn: Any, transaction: bool) -> Iterator[Any]:
    from psycopg.rows import tuple_row

    with conn.transaction() if transaction else nullcontext(), conn.cursor(row_factory=tuple_row) as cur:
        yield cur


def _transaction(store: Any) -> Any:
    return _cursor(store, transaction=True)
