"""The write side of :class:`~agent_tokred.integration.store.MergingStore`: puts, deletes, consolidation.

Every write to a namespace runs under that namespace's lock (threads and asyncio tasks alike: the
async API runs this same code in worker threads; with pgvector, other processes too, through a
PostgreSQL advisory lock), so a consolidation never interleaves with a put to the same namespace. Multi-item changes (consolidation, detaching a source from a merged memory,
deleting a merged memory) are committed through the journal, so they are all-or-nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, GetOp, Item, Op, PutOp, Result

from ...store._layout import (
    MERGED_PREFIX,
    STATE_COMPRESSED,
    STATE_MERGED,
    STATE_PLAIN,
    STATE_VERBATIM,
    Namespace,
    archive_ns,
    decode_vector,
    encode_vector,
    merged_key,
    merged_vectors,
    passage_path,
    vec_ns,
)
from ...store._passages import memory_passages
from ...store.consolidate import (
    ConsolidationReport,
    MergeCounts,
    build_ops,
    fuse_to_budget,
    merged_value,
    select_work,
)
from ...store.index import NamespaceIndex
from ...store.policy import MergePolicy
from ...store.stats import MemoryStats
from ...tokens import TokenCounter
from . import _journal
from ._support import Fields, texts_for_index

logger = logging.getLogger(__name__)
JournalOp = tuple[Namespace, str, dict[str, Any] | None]


class WritesMixin:
    store: BaseStore
    _io: BaseStore
    policy: MergePolicy
    embeddings: Embeddings
    counter: TokenCounter
    _fields: Fields | None
    _compress: Callable[[str, float | None, int | None], str]
    _writes: Counter[Namespace]
    _guard: threading.Lock

    if TYPE_CHECKING:  # provided by MergingStore

        def _lock(self, ns: Namespace) -> threading.RLock: ...
        def _ns_guard(self, ns: Namespace) -> AbstractContextManager[None]: ...
        def _loaded(self, ns: Namespace) -> NamespaceIndex: ...
        def _invalidate(self, ns: Namespace) -> None: ...
        def _next_seq(self) -> int: ...
        def _inner(self, ops: list[Op]) -> list[Result]: ...
        def _embed_documents(self, texts: list[str]) -> list[np.ndarray]: ...
        def _indexes_under(self, prefix: Namespace) -> list[NamespaceIndex]: ...

    # -- puts and deletes --------------------------------------------------------------------------
    def _write(self, puts: list[PutOp]) -> None:
        by_ns: dict[Namespace, list[PutOp]] = {}
        for op in puts:
            by_ns.setdefault(tuple(op.namespace), []).append(op)
        for ns in sorted(by_ns):
            with self._ns_guard(ns):
                self._write_ns(ns, by_ns[ns])
                self._after_write(ns, len(by_ns[ns]))

    def _write_ns(self, ns: Namespace, ops: list[PutOp]) -> None:
        idx = self._loaded(ns)
        plain: list[PutOp] = []
        for op in ops:
            meta = idx.meta.get(op.key)
            if op.key.startswith(MERGED_PREFIX) and meta is not None and meta.state == STATE_MERGED:
                self._commit(ns, idx, self._cascade_ops(ns, meta.sources, op.key))
                continue
            holder = idx.source_of.get(op.key)
            if holder is not None:
                self._commit(ns, idx, self._detach_ops(ns, idx, holder, op.key))
            plain.append(op)
        tf = self.policy.text_field
        texts: list[tuple[int, str, str]] = []
        tokens: dict[int, int] = {}
        for i, op in enumerate(plain):
            if op.value is None:
                continue
            text = op.value.get(tf)
            if isinstance(text, str):
                tokens[i] = self.counter.count(text)
            if op.index is False:
                continue
            pairs = texts_for_index(op.value, op.index, self._fields, tf)
            texts.extend((i, path, t) for path, t in pairs)
            if isinstance(text, str) and op.index is None and self._fields is None:
                # A memory in the default layout: long ones also get passage vectors.
                p = self.policy
                parts = memory_passages(text, tokens[i], p.passage_tokens, p.max_passages)
                texts.extend((i, passage_path(j), part) for j, part in enumerate(parts))
        vectors = self._embed_documents([t for _, _, t in texts])
        vecs: dict[int, dict[str, str]] = {}
        for (i, path, _), vec in zip(texts, vectors, strict=True):
            vecs.setdefault(i, {})[path] = encode_vector(vec)
        inner: list[Op] = []
        records: list[tuple[str, dict[str, Any] | None]] = []
        for i, op in enumerate(plain):
            old = idx.meta.get(op.key)
            if op.value is None or (old is not None and old.state == STATE_COMPRESSED):
                inner.append(PutOp(archive_ns(ns), op.key, None))
            if op.value is None:
                inner += [PutOp(ns, op.key, None), PutOp(vec_ns(ns), op.key, None)]
                records.append((op.key, None))
                continue
            rec = self._record(op.value, vecs.get(i, {}), tokens.get(i, 0))
            inner += [PutOp(vec_ns(ns), op.key, rec, index=False), PutOp(ns, op.key, op.value, index=False)]
            records.append((op.key, rec))
        self._inner(inner)
        for key, record in records:
            idx.apply(key, record)

    def _record(self, value: Any, vecs: dict[str, str], tokens: int) -> dict[str, Any]:
        is_memory = isinstance(value.get(self.policy.text_field), str)
        kind = value.get(self.policy.kind_field)
        return {
            "seq": self._next_seq(),
            "kind": (kind if isinstance(kind, str) else "memory") if is_memory else None,
            "state": STATE_VERBATIM if is_memory else STATE_PLAIN,
            "settled": False,
            "tokens": tokens,
            "raw_tokens": tokens,
            "size": 1,
            "vecs": vecs,
        }

    def _commit(self, ns: Namespace, idx: NamespaceIndex, ops: list[JournalOp]) -> None:
        try:
            _journal.commit(self._io, ns, ops)
        except BaseException:
            self._invalidate(ns)  # reloaded (and the journal replayed) on the next touch
            raise
        vns = vec_ns(ns)
        for n, key, value in ops:
            if n == vns:
                idx.apply(key, value)

    def _cascade_ops(self, ns: Namespace, sources: tuple[str, ...], key: str) -> list[JournalOp]:
        """Deleting a merged memory forgets everything it stands for."""
        ops: list[JournalOp] = [(ns, key, None), (vec_ns(ns), key, None)]
        return ops + [(archive_ns(ns), s, None) for s in sources]

    def _detach_ops(self, ns: Namespace, idx: NamespaceIndex, holder: str, source: str) -> list[JournalOp]:
        """Take one source out of a merged memory; the rest is re-fused (or restored if alone)."""
        meta = idx.meta[holder]
        rest = [s for s in meta.sources if s != source]
        found = self._inner([GetOp(archive_ns(ns), s, False) for s in rest])
        records = {s: it.value for s, it in zip(rest, found, strict=True) if isinstance(it, Item)}
        rest = [s for s in rest if s in records]
        ops: list[JournalOp] = [(archive_ns(ns), source, None), (ns, holder, None)]
        ops.append((vec_ns(ns), holder, None))
        tf = self.policy.text_field
        vec_of = {s: records[s]["vec"] for s in rest if records[s].get("vec")}
        if len(rest) == 1:
            rec = records[rest[0]]
            tokens = int(rec.get("tokens", 0))
            vecs = {tf: vec_of[rest[0]]} if rest[0] in vec_of else {}
            vecs.update({passage_path(j): v for j, v in enumerate(rec.get("passages") or [])})
            restored = {
                "seq": int(rec.get("seq", 0)),
                "kind": rec.get("kind") or "memory",
                "state": STATE_VERBATIM,
                "settled": False,
                "tokens": tokens,
                "raw_tokens": tokens,
                "size": 1,
                "vecs": vecs,
            }
            ops += [(ns, rest[0], dict(rec["value"])), (vec_ns(ns), rest[0], restored)]
            ops.append((archive_ns(ns), rest[0], None))
        elif len(rest) > 1:
            texts = [str(records[s].get("live_text", "")) for s in rest]
            raw = sum(int(records[s].get("tokens", 0)) for s in rest)
            text = fuse_to_budget(texts, self.policy, self.counter.count, self._compress, raw)
            key = merged_key(ns, rest)
            ops.append((ns, key, merged_value(self.policy, meta.kind, text, rest, len(rest), raw)))
            vectors = [decode_vector(v) for v in vec_of.values()]
            passages = [decode_vector(v) for s in rest for v in records[s].get("passages") or []]
            cap = self.policy.max_merged_passages
            merged = {
                "seq": max(int(records[s].get("seq", 0)) for s in rest),
                "kind": meta.kind,
                "state": STATE_MERGED,
                "settled": True,
                "tokens": self.counter.count(text),
                "raw_tokens": raw,
                "size": len(rest),
                "sources": rest,
                "vecs": (
                    merged_vectors(tf, np.mean(vectors, axis=0), vectors, passages, max_passages=cap) if vectors else {}
                ),
            }
            ops.append((vec_ns(ns), key, merged))
        return ops

    # -- consolidation -----------------------------------------------------------------------------
    def _after_write(self, ns: Namespace, n: int) -> None:
        mode = self.policy.mode
        with self._guard:
            self._writes[ns] += n
            due = mode == "write" or (mode == "batched" and self._writes[ns] >= self.policy.batch_every)
            if due:
                self._writes[ns] = 0
        if not due:
            return
        try:
            self._consolidate_ns(ns)
        except Exception:
            # The write itself is committed; the consolidation is retried on the next write.
            logger.exception("consolidation of %s failed; it is retried on the next write", ns)

    def _consolidate_ns(self, ns: Namespace) -> ConsolidationReport:
        start = time.perf_counter()
        with self._ns_guard(ns):
            idx = self._loaded(ns)
            before = _live_counts(idx)
            work = select_work(idx, self.policy)
            counts = MergeCounts()
            if not work.empty:
                keys = work.keys_to_read()
                found = self._inner([GetOp(ns, k, False) for k in keys])
                live = {k: cast(Item, it) for k, it in zip(keys, found, strict=True) if isinstance(it, Item)}
                ops, counts = build_ops(
                    ns,
                    work,
                    live,
                    idx,
                    self.policy,
                    self.counter.count,
                    self._compress,
                )
                self._commit(ns, idx, ops)
            after = _live_counts(idx)
        return ConsolidationReport(
            namespace=ns,
            items_before=before[0],
            items_after=after[0],
            tokens_before=before[1],
            tokens_after=after[1],
            seconds=time.perf_counter() - start,
            counts=counts,
        )

    def consolidate(self, namespace: tuple[str, ...] | None = None) -> list[ConsolidationReport]:
        """Consolidate one namespace (or every namespace under the prefix, ``None``: all) now.

        Raises:
            Exception: whatever the engine or the wrapped store raised; the consolidation is then
                either not applied at all or finished on the next access (journal).

        Example:
            >>> from agent_tokred.integration.store import MergingStore
            >>> store = MergingStore(embed=lambda t: [[1.0, 0.0] for _ in t], mode="manual", recent_items=1,
            ...                      compress_items=0)
            >>> for i in range(3):
            ...     store.put(("u",), f"m{i}", {"text": f"note {i}"})
            >>> store.consolidate(("u",))[0].counts.merged
            1
        """
        prefix = namespace or ()
        targets = [idx.ns for idx in self._indexes_under(prefix)]
        if namespace is not None and namespace not in targets:
            targets.append(namespace)
        return [self._consolidate_ns(ns) for ns in sorted(targets)]

    async def aconsolidate(self, namespace: tuple[str, ...] | None = None) -> list[ConsolidationReport]:
        """Async twin of :meth:`consolidate`."""
        return await asyncio.to_thread(self.consolidate, namespace)

    def stats(self, namespace_prefix: tuple[str, ...] = ()) -> MemoryStats:
        """Counts and token totals of the live view under ``namespace_prefix``."""
        idxs = self._indexes_under(namespace_prefix)
        metas = [m for idx in idxs for m in list(idx.meta.values())]
        mems = [m for m in metas if m.is_memory]
        merged = [m for m in mems if m.state == STATE_MERGED]
        return MemoryStats(
            namespaces=sum(1 for idx in idxs if len(idx)),
            items=len(metas),
            memories=len(mems),
            compressed=sum(1 for m in mems if m.state == STATE_COMPRESSED),
            merged=len(merged),
            merged_sources=sum(m.size for m in merged),
            live_tokens=sum(m.tokens for m in mems),
            raw_tokens=sum(m.raw_tokens for m in mems),
            vectors=sum(idx.vector_count() for idx in idxs),
        )

    async def astats(self, namespace_prefix: tuple[str, ...] = ()) -> MemoryStats:
        """Async twin of :meth:`stats`."""
        return await asyncio.to_thread(self.stats, namespace_prefix)


def _live_counts(idx: NamespaceIndex) -> tuple[int, int]:
    metas = list(idx.meta.values())
    return len(metas), sum(m.tokens for m in metas if m.is_memory)
