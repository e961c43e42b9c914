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
from collections import Counter
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
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from ..errors import InvalidInputError
from ..tokens import resolve_counter
from . import _journal
from ._layout import (
    JOURNAL,
    MARK,
    ROOT,
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
from ._support import (
    EmbedFn,
    SafeCounter,
    can_push_down,
    engine_compressor,
    matches_filter,
    resolve_embeddings,
)
from ._writes import WritesMixin
from .index import NamespaceIndex
from .policy import MergePolicy, make_policy

logger = logging.getLogger(__name__)
_LIST_PAGE = 500


class MergingStore(WritesMixin, BaseStore):
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

    # -- reads -------------------------------------------------------------------------------------
    def _get_many(self, gets: list[GetOp]) -> list[Item | None]:
        inner: list[Op] = [GetOp(g.namespace, g.key, False) for g in gets]  # no TTLs here
        inner += [GetOp(archive_ns(g.namespace), g.key, False) for g in gets]
        res = self._inner(inner)
        out: list[Item | None] = []
        for j, g in enumerate(gets):
            live, arch = cast(Item | None, res[j]), cast(Item | None, res[len(gets) + j])
            state = _state(live)
            if live is not None and state != STATE_COMPRESSED:
                out.append(live)
            elif arch is not None:
                out.append(archived_item(g.namespace, g.key, arch.value))
            else:
                out.append(live)
        return out

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if not op.query:
            return self._search_live(op)
        query = np.asarray(self.embeddings.embed_query(op.query), dtype=np.float32)
        parts: list[tuple[Namespace, list[str], np.ndarray]] = []
        scores: list[np.ndarray] = []
        unscored: list[tuple[Namespace, str]] = []
        for idx in self._indexes_under(op.namespace_prefix):
            keys, ordinals, sc, un = idx.scores(query)
            parts.append((idx.ns, keys, ordinals))
            scores.append(sc)
            unscored.extend((idx.ns, k) for k in un)
        flat = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        part_of = np.repeat(np.arange(len(parts)), [len(s) for s in scores]) if parts else np.zeros(0, int)
        local = np.concatenate([np.arange(len(s)) for s in scores]) if parts else np.zeros(0, int)
        need = max(op.offset, 0) + max(op.limit, 0)
        # Rank only the head unless the filter keeps reading past it (then everything).
        head = min(len(flat), 4 * need + 64)
        order = _top_order(flat, head)

        def ranked(i: int) -> tuple[tuple[Namespace, str], float | None]:
            nonlocal order
            if i >= len(order):
                order = np.argsort(-flat, kind="stable")
            j = order[i]
            ns, keys, ordinals = parts[part_of[j]]
            return (ns, keys[ordinals[local[j]]]), float(flat[j])

        found = self._fetch(ranked, len(flat), need, op.filter)
        page = found[op.offset : op.offset + op.limit]
        if len(page) < op.limit and unscored:
            page += self._fetch(lambda i: (unscored[i], None), len(unscored), op.limit - len(page), op.filter)
        return page

    def _fetch(
        self,
        ranked: Callable[[int], tuple[tuple[Namespace, str], float | None]],
        total: int,
        need: int,
        flt: dict[str, Any] | None,
    ) -> list[SearchItem]:
        """Read ranked candidates in chunks until ``need`` pass the filter (stale ones skipped)."""
        out: list[SearchItem] = []
        pos = 0
        while len(out) < need and pos < total:
            missing = need - len(out)
            size = missing if not flt else max(4 * missing, 64)
            chunk = [ranked(i) for i in range(pos, min(total, pos + size))]
            pos += len(chunk)
            items = self._inner([GetOp(ns, key, False) for (ns, key), _ in chunk])
            for (_, score), item in zip(chunk, items, strict=True):
                if not isinstance(item, Item) or not matches_filter(item.value, flt):
                    continue
                out.append(_search_item(item, score))
                if len(out) == need:
                    break
        return out

    def _search_live(self, op: SearchOp) -> list[SearchItem]:
        # Filters every backend evaluates alike go down to it; others (dotted paths, NaN, NUL
        # bytes, lists) are evaluated here, so results do not depend on the wrapped store.
        pushdown = not op.filter or can_push_down(op.filter)
        plain = SearchOp(op.namespace_prefix, op.filter if pushdown else None, op.limit, op.offset, None)
        if op.namespace_prefix and pushdown:
            return cast(list[SearchItem], self._inner([plain])[0])
        # Otherwise page through (the empty prefix also reaches the bookkeeping root: hide it).
        out: list[SearchItem] = []
        offset, need, page_size = 0, op.offset + op.limit, max(256, 2 * (op.offset + op.limit))
        while len(out) < need:
            page = cast(list[SearchItem], self._inner([plain._replace(limit=page_size, offset=offset)])[0])
            for it in page:
                if it.namespace and it.namespace[0] == ROOT:
                    continue
                if pushdown or matches_filter(it.value, op.filter):
                    out.append(it)
            if len(page) < page_size:
                break
            offset += page_size
        return out[op.offset : op.offset + op.limit]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[Namespace]:
        conds = op.match_conditions or ()
        if any(c.match_type == "prefix" and c.path and c.path[0] not in ("*", ROOT) for c in conds):
            return cast(list[Namespace], self._inner([op])[0])
        out: list[Namespace] = []
        offset, need = 0, op.offset + op.limit
        while len(out) < need:
            page = cast(list[Namespace], self._inner([op._replace(limit=_LIST_PAGE, offset=offset)])[0])
            out.extend(ns for ns in page if not (ns and ns[0] == ROOT))
            if len(page) < _LIST_PAGE:
                break
            offset += _LIST_PAGE
        return out[op.offset : op.offset + op.limit]

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


def _top_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first (ties: lower position first)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    head = np.argpartition(-scores, k - 1)[:k]
    return head[np.lexsort((head, -scores[head]))]


def _state(item: Item | None) -> str | None:
    if item is None:
        return None
    mark = item.value.get(MARK)
    return mark.get("state") if isinstance(mark, Mapping) else None


def _search_item(item: Item, score: float | None) -> SearchItem:
    return SearchItem(
        namespace=tuple(item.namespace),
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=score,
    )
