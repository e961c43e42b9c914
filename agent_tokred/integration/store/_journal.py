"""All-or-nothing multi-item writes over a store that only promises single-item writes.

A consolidation changes many items (live view, index, archive). It is written first as one journal
record (a single put, atomic in every store), then applied, then the record is deleted. A crash
before the record lands changes nothing; a crash after it is finished by :func:`recover`, which
replays the record: every write in it is a put or delete of a fixed value, so replaying is idempotent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from langgraph.store.base import BaseStore, Item, PutOp, SearchOp

from ...store._layout import Namespace, journal_ns

logger = logging.getLogger(__name__)

Op = tuple[Namespace, str, dict[str, Any] | None]
Batch = Callable[[list[Any]], list[Any]]
PAGE = 1000


def _encode(ops: Sequence[Op]) -> dict[str, Any]:
    return {"ops": [[list(ns), key, value] for ns, key, value in ops]}


def _decode(record: dict[str, Any]) -> list[Op]:
    return [(tuple(ns), key, value) for ns, key, value in record["ops"]]


def commit(store: BaseStore, ns: Namespace, ops: Sequence[Op]) -> None:
    """Apply ``ops`` atomically (after a crash, :func:`recover` completes them)."""
    if not ops:
        return
    key = uuid.uuid4().hex
    store.batch([PutOp(journal_ns(ns), key, _encode(ops))])
    store.batch([PutOp(n, k, v) for n, k, v in ops])
    store.batch([PutOp(journal_ns(ns), key, None)])


def scan(store: BaseStore, prefix: Namespace) -> list[tuple[Namespace, str, dict[str, Any]]]:
    """Every item under ``prefix`` (all pages), as (namespace, key, value)."""
    out: list[tuple[Namespace, str, dict[str, Any]]] = []
    offset = 0
    while True:
        page = cast(list[Item], store.batch([SearchOp(prefix, None, PAGE, offset)])[0])
        out.extend((tuple(it.namespace), it.key, it.value) for it in page)
        if len(page) < PAGE:
            return out
        offset += PAGE


def recover(store: BaseStore, ns: Namespace) -> list[Op]:
    """Finish every consolidation of ``ns`` left in flight; returns the writes replayed."""
    replayed: list[Op] = []
    for jns, key, record in scan(store, journal_ns(ns)):
        ops = _decode(record)
        logger.warning("finishing an interrupted consolidation of %s (%d writes)", ns, len(ops))
        store.batch([PutOp(n, k, v) for n, k, v in ops])
        store.batch([PutOp(jns, key, None)])
        replayed.extend(ops)
    return replayed
