"""``MergingStore``: a LangGraph ``BaseStore`` that merges old memories instead of forgetting them.

It wraps any ``BaseStore`` (``InMemoryStore``, ``SqliteStore``, ``PostgresStore``) and adds embedding
search (the shipped MiniLM by default), tiers by age (recent memories verbatim, older ones compressed
by the engine, the oldest merged with similar ones of the same kind and namespace), provenance of
every merged memory and an exact :meth:`MergingStore.expand` back to its sources.

Reads and writes follow LangGraph's contract: ``get`` returns exactly what was put (for compressed or
merged memories, the archived original); ``search`` returns the *live view*: recent memories,
compressed ones and merged ones, each merged value carrying ``_tokred.sources``. A merged memory is
ranked by the best of its sources' vectors (LangGraph's max over an item's vectors), so merging
never hides a memory from the query that would have found it; the size-weighted mean decides merges.
A long memory also gets a few passage vectors (:mod:`agent_tokred.store._passages`), so search finds
details past what the embedding model reads of a whole text; merged memories keep them too.

Semantics worth knowing: a batch's reads see the state before its writes; writes to one namespace
are serialised (threads and asyncio tasks), consolidations are all-or-nothing (journal); deleting a
source takes it out of its merged memory (the rest is re-fused), deleting a merged memory deletes
its sources.

Where the vectors live is chosen once per store (``vector_search``): over LangGraph's
``PostgresStore`` on a server with pgvector, in PostgreSQL (:mod:`agent_tokred.store._pgvector`:
vector rows written in the same transaction as their records, HNSW or exact search, writes to a
namespace serialised across processes by an advisory lock, stale metadata reloaded), so any number
of processes share one database; otherwise in an in-process index, which assumes this process is
the only writer (call :meth:`MergingStore.refresh` after another process wrote). The choice is logged.

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from agent_tokred.integration.store import MergingStore
    >>> store = MergingStore(InMemoryStore(), embed=lambda texts: [[1.0, len(t)] for t in texts])
    >>> store.put(("user", "1"), "k1", {"text": "likes green tea"})
    >>> store.get(("user", "1"), "k1").value
    {'text': 'likes green tea'}
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, cast

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from ...errors import InvalidInputError
from ...store._layout import (
    JOURNAL,
    STATE_COMPRESSED,
    STATE_MERGED,
    VEC,
    Namespace,
    archive_ns,
    check_key,
    shadow_pattern,
    user_ns_of,
    vec_ns,
)
from ...store._pgvector import PgVectors, choose_vector_search
from ...store.index import NamespaceIndex
from ...store.policy import MergePolicy, make_policy
from ...tokens import resolve_counter
from . import _journal
from ._ops import archived_item, as_tuples, check_namespace, validate_op
from ._reads import _LIST_PAGE, ReadsMixin
from ._support import (
    EmbedFn,
    SafeCounter,
    engine_compressor,
    resolve_embeddings,
)
from ._writes import WritesMixin

logger = logging.getLogger(__name__)


class MergingStore(ReadsMixin, WritesMixin, BaseStore):
    """A ``BaseStore`` wrapper that consolidates old memories by merging them (ToMe-style).

    Args:
        store: the store that persists everything (default: a new ``InMemoryStore``).
        index: LangGraph-style index config (``dims``, ``embed``, ``fields``), for drop-in use.
        embed: embeddings instead of ``index``: LangChain ``Embeddings``, a ``texts -> vectors``
            callable, or a provider string. Default: the shipped MiniLM (384-d).
        policy: a :class:`~agent_tokred.store.policy.MergePolicy` or dict; keyword overrides too.
        compressor: ``(text, rate, target_tokens) -> text`` for the compressed tier (default: the
            engine with the lexical criterion, budgets met in ``tokenizer``).
        tokenizer: what token counts and budgets are measured in (default ``o200k_base``).
        vector_search: ``"auto"`` (pgvector when ``store`` is a ``PostgresStore`` whose server has
            it, else in process), ``"postgres"`` (pgvector or an error) or ``"process"``.

    Raises:
        InvalidInputError: an invalid policy, index, embed or vector_search argument.

    Example:
        >>> store = MergingStore(embed=lambda t: [[1.0, 0.0] for _ in t], recent_items=2, compress_items=0)
        >>> for i in range(6):
        ...     store.put(("u",), f"m{i}", {"text": f"same thing {i}"})
        >>> stats = store.stats(("u",))
        >>> (stats.memories, stats.merged, stats.merged_sources)
        (3, 1, 4)
    """

    supports_ttl = False

    def __init__(
        self,
        store: BaseStore | None = None,
        *,
        index: IndexConfig | Mapping[str, Any] | None = None,
        embed: Embeddings | EmbedFn | str | None = None,
        policy: MergePolicy | dict[str, Any] | None = None,
        compressor: Callable[[str, float | None, int | None], str] | None = None,
        tokenizer: Any = None,
        vector_search: Literal["auto", "postgres", "process"] = "auto",
        **policy_overrides: Any,
    ) -> None:
        if isinstance(store, MergingStore):
            raise InvalidInputError("a MergingStore cannot wrap another MergingStore")
        if store is not None and not isinstance(store, BaseStore):
            raise InvalidInputError(f"store must be a langgraph BaseStore, got {type(store).__name__}")
        self.store: BaseStore = store if store is not None else InMemoryStore()
        self.policy = make_policy(policy, **policy_overrides)
        self.index_config, self.embeddings, self._fields = resolve_embeddings(index, embed)
        self.counter = SafeCounter(resolve_counter(tokenizer))
        self._compress = compressor or engine_compressor(self.counter)
        self._indexes: dict[Namespace, NamespaceIndex] = {}
        self._discovered: set[Namespace] = set()
        self._locks: dict[Namespace, threading.RLock] = {}
        self._guard = threading.Lock()
        self._load_lock = threading.RLock()
        self._writes: Counter[Namespace] = Counter()
        self._last_seq = 0
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache_owner: Any = None
        self._pg = choose_vector_search(self.store, vector_search)
        self._io: BaseStore = _PgWriteThrough(self.store, self._pg) if self._pg is not None else self.store
        self._depth: Counter[Namespace] = Counter()  # guard nesting per namespace (under its lock)

    # -- plumbing ----------------------------------------------------------------------------------
    def _lock(self, ns: Namespace) -> threading.RLock:
        with self._guard:
            lock = self._locks.get(ns)
            if lock is None:
                lock = self._locks[ns] = threading.RLock()
            return lock

    @contextmanager
    def _ns_guard(self, ns: Namespace) -> Iterator[None]:
        """Hold ``ns``'s write lock: this process's, and with pgvector every process's.

        On PostgreSQL the outermost entry takes the namespace's advisory lock and compares its
        committed write count with what the cached index reflects: another process wrote, so the
        index is dropped (and reloaded, interrupted consolidations finished, under the lock).
        """
        with self._lock(ns):
            pg = self._pg
            if pg is None:
                yield
                return
            outer = self._depth[ns] == 0
            if outer:
                version = pg.lock(ns)
                if pg.known.get(ns) != version:
                    self._invalidate(ns)
                    pg.known[ns] = version
            self._depth[ns] += 1
            try:
                yield
            finally:
                self._depth[ns] -= 1
                if outer:
                    pg.unlock(ns)

    def _next_seq(self) -> int:
        with self._guard:
            self._last_seq = max(time.time_ns(), self._last_seq + 1)
            return self._last_seq

    def _inner(self, ops: list[Op]) -> list[Result]:
        return self._io.batch(ops) if ops else []

    def _embed_documents(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        vecs = self.embeddings.embed_documents(texts)
        if len(vecs) != len(texts):
            raise InvalidInputError(f"embeddings returned {len(vecs)} vectors for {len(texts)} texts")
        return [np.asarray(v, dtype=np.float32) for v in vecs]

    def _loaded(self, ns: Namespace) -> NamespaceIndex:
        """The index of ``ns``, loaded (after finishing any interrupted consolidation) if needed."""
        if self._pg is not None:
            with self._ns_guard(ns):  # checks that the cached index is current
                return self._load(ns)
        return self._load(ns)

    def _load(self, ns: Namespace) -> NamespaceIndex:
        idx = self._indexes.get(ns)
        if idx is not None:
            return idx
        with self._lock(ns), self._load_lock:
            idx = self._indexes.get(ns)
            if idx is None:
                _journal.recover(self._io, ns)
                idx = NamespaceIndex(ns)
                idx.load((key, value) for _, key, value in _journal.scan(self._io, vec_ns(ns)))
                self._indexes[ns] = idx
            return idx

    def _invalidate(self, ns: Namespace) -> None:
        with self._guard:
            self._indexes.pop(ns, None)

    def _indexes_under(self, prefix: Namespace) -> list[NamespaceIndex]:
        n = len(prefix)
        if self._pg is not None:  # other processes add namespaces: discover them every time
            for ns in self._shadow_namespaces(prefix):
                self._loaded(ns)
            with self._guard:
                return [idx for ns, idx in self._indexes.items() if ns[:n] == prefix]
        with self._guard:
            known = any(prefix[: len(d)] == d for d in self._discovered)
        if not known:
            with self._load_lock:
                for ns in self._shadow_namespaces(prefix):
                    self._loaded(ns)
                with self._guard:
                    self._discovered.add(prefix)
        with self._guard:
            return [idx for ns, idx in self._indexes.items() if ns[:n] == prefix]

    def _shadow_namespaces(self, prefix: Namespace) -> list[Namespace]:
        """User namespaces under ``prefix`` that have index records or consolidations in flight."""
        found: set[Namespace] = set()
        for part in (VEC, JOURNAL):
            found.update(user_ns_of(s) for s in self._list_all(shadow_pattern(part, prefix)))
        return sorted(found)

    def _list_all(self, pattern: Namespace) -> list[Namespace]:
        out: list[Namespace] = []
        offset = 0
        while True:
            op = ListNamespacesOp(match_conditions=(_prefix(pattern),), limit=_LIST_PAGE, offset=offset)
            page = cast(list[Namespace], self._inner([op])[0])
            out.extend(tuple(p) for p in page)
            if len(page) < _LIST_PAGE:
                return out
            offset += _LIST_PAGE

    # -- BaseStore ---------------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run a batch: reads see the state before the batch's writes, as in LangGraph's stores.

        Raises:
            InvalidNamespaceError: a malformed or reserved namespace (nothing is applied).
            InvalidInputError: a malformed key or value (nothing is applied).
        """
        ops = [as_tuples(op) for op in ops]
        for op in ops:
            validate_op(op, self.policy.max_value_bytes)
        results: list[Result] = [None] * len(ops)
        gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
        if gets:
            for (i, _), item in zip(gets, self._get_many([op for _, op in gets]), strict=True):
                results[i] = item
        for i, op in enumerate(ops):
            if isinstance(op, SearchOp):
                results[i] = self._search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = self._list_namespaces(op)
        puts: dict[tuple[Namespace, str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                puts.pop((op.namespace, op.key), None)
                puts[(op.namespace, op.key)] = op
        if puts:
            self._write(list(puts.values()))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async twin of :meth:`batch` (the same core, run off the event loop)."""
        ops = list(ops)
        return await asyncio.to_thread(self.batch, ops)

    # -- memory API --------------------------------------------------------------------------------
    def expand(self, namespace: tuple[str, ...], key: str) -> list[Item]:
        """The exact original items a live item stands for (oldest first).

        A merged memory expands to all its sources, a compressed one to its original, a verbatim
        item to itself, and a source key (merged away) to its own original. Unknown keys: ``[]``.

        Example:
            >>> store = MergingStore(embed=lambda t: [[1.0, 0.0] for _ in t])
            >>> store.put(("u",), "a", {"text": "hi"})
            >>> [it.value for it in store.expand(("u",), "a")]
            [{'text': 'hi'}]
        """
        check_namespace(namespace, for_write=False)
        check_key(key)
        meta = self._loaded(namespace).meta.get(key)
        if meta is not None and meta.state not in (STATE_MERGED, STATE_COMPRESSED):
            item = self._get_many([GetOp(namespace, key)])[0]
            return [item] if item is not None else []
        sources = list(meta.sources) if meta is not None and meta.state == STATE_MERGED else [key]
        res = self._inner([GetOp(archive_ns(namespace), s, False) for s in sources])
        items = [
            archived_item(namespace, s, it.value) for s, it in zip(sources, res, strict=True) if isinstance(it, Item)
        ]
        items.sort(key=lambda it: it.created_at)
        return items

    async def aexpand(self, namespace: tuple[str, ...], key: str) -> list[Item]:
        """Async twin of :meth:`expand`."""
        return await asyncio.to_thread(self.expand, namespace, key)

    def refresh(self) -> None:
        """Forget the in-process index, so the next read reloads it (after another process wrote).

        Not needed with pgvector: there every access checks the index against the database.
        """
        with self._load_lock, self._guard:
            self._indexes.clear()
            self._discovered.clear()

    @property
    def vector_search(self) -> str:
        """Where vectors are searched: ``"postgres"`` (pgvector) or ``"process"``."""
        return "postgres" if self._pg is not None else "process"

    def close(self) -> None:
        """Release what the store opened itself (the PostgreSQL lock connection); the wrapped store stays open."""
        if self._pg is not None:
            self._pg.close()


class _PgWriteThrough(BaseStore):
    """The wrapped ``PostgresStore``: reads go to it, puts and deletes to :meth:`PgVectors.write`
    (one transaction each, index records' vectors mirrored into pgvector)."""

    def __init__(self, store: BaseStore, pg: PgVectors) -> None:
        self.store = store
        self.pg = pg

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        results: list[Result] = [None] * len(ops)
        reads = [(i, op) for i, op in enumerate(ops) if not isinstance(op, PutOp)]
        if reads:
            for (i, _), res in zip(reads, self.store.batch([op for _, op in reads]), strict=True):
                results[i] = res
        puts = [(tuple(op.namespace), op.key, op.value) for op in ops if isinstance(op, PutOp)]
        if puts:
            self.pg.write(puts)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))


def _prefix(path: Namespace) -> Any:
    from langgraph.store.base import MatchCondition

    return MatchCondition(match_type="prefix", path=path)
