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
its sources; the in-process vector index assumes this process is the only writer (call
:meth:`MergingStore.refresh` after another process wrote).

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> from agent_tokred.store import MergingStore
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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

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

from ..errors import InvalidInputError
from ..tokens import resolve_counter
from . import _journal
from ._layout import (
    JOURNAL,
    STATE_COMPRESSED,
    STATE_MERGED,
    VEC,
    Namespace,
    archive_ns,
    archived_item,
    check_key,
    check_namespace,
    shadow_pattern,
    user_ns_of,
    vec_ns,
)
from ._ops import as_tuples, validate_op
from ._reads import _LIST_PAGE, ReadsMixin
from ._support import (
    EmbedFn,
    SafeCounter,
    engine_compressor,
    resolve_embeddings,
)
from ._writes import WritesMixin
from .index import NamespaceIndex
from .policy import MergePolicy, make_policy

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

    Raises:
        InvalidInputError: an invalid policy, index or embed argument.

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

    # -- plumbing ----------------------------------------------------------------------------------
    def _lock(self, ns: Namespace) -> threading.RLock:
        with self._guard:
            lock = self._locks.get(ns)
            if lock is None:
                lock = self._locks[ns] = threading.RLock()
            return lock

    def _next_seq(self) -> int:
        with self._guard:
            self._last_seq = max(time.time_ns(), self._last_seq + 1)
            return self._last_seq

    def _inner(self, ops: list[Op]) -> list[Result]:
        return self.store.batch(ops) if ops else []

    def _embed_documents(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        vecs = self.embeddings.embed_documents(texts)
        if len(vecs) != len(texts):
            raise InvalidInputError(f"embeddings returned {len(vecs)} vectors for {len(texts)} texts")
        return [np.asarray(v, dtype=np.float32) for v in vecs]

    def _loaded(self, ns: Namespace) -> NamespaceIndex:
        """The index of ``ns``, loaded (after finishing any interrupted consolidation) if needed."""
        idx = self._indexes.get(ns)
        if idx is not None:
            return idx
        with self._lock(ns), self._load_lock:
            idx = self._indexes.get(ns)
            if idx is None:
                _journal.recover(self.store, ns)
                idx = NamespaceIndex(ns)
                idx.load((key, value) for _, key, value in _journal.scan(self.store, vec_ns(ns)))
                self._indexes[ns] = idx
            return idx

    def _invalidate(self, ns: Namespace) -> None:
        with self._guard:
            self._indexes.pop(ns, None)

    def _indexes_under(self, prefix: Namespace) -> list[NamespaceIndex]:
        n = len(prefix)
        with self._guard:
            known = any(prefix[: len(d)] == d for d in self._discovered)
        if not known:
            with self._load_lock:
                found: set[Namespace] = set()
                for part in (VEC, JOURNAL):
                    found.update(user_ns_of(s) for s in self._list_all(shadow_pattern(part, prefix)))
                for ns in sorted(found):
                    self._loaded(ns)
                with self._guard:
                    self._discovered.add(prefix)
        with self._guard:
            return [idx for ns, idx in self._indexes.items() if ns[:n] == prefix]

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
        """Forget the in-process index, so the next read reloads it (after another process wrote)."""
        with self._load_lock, self._guard:
            self._indexes.clear()
            self._discovered.clear()


def _prefix(path: Namespace) -> Any:
    from langgraph.store.base import MatchCondition

    return MatchCondition(match_type="prefix", path=path)
