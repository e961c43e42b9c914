"""The read side of :class:`~agent_tokred.store.MergingStore`: get, search, list namespaces.

``get`` returns exactly what was put (the archived original of a compressed or merged memory);
``search`` with a query ranks the in-process vector index, or pgvector in PostgreSQL when the
store uses it (the best of a merged memory's source vectors either way), and reads the winners
from the wrapped store in chunks until the filter is satisfied;
without a query it pages through the wrapped store's live view. Query vectors are cached (the
last ``QUERY_CACHE`` queries): an agent that asks again pays no model call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import GetOp, Item, ListNamespacesOp, Op, Result, SearchItem, SearchOp

from ...store._layout import MARK, ROOT, STATE_COMPRESSED, Namespace, archive_ns
from ...store._pgvector import Hit, PgVectors
from ...store.index import NamespaceIndex
from ._ops import archived_item
from ._support import can_push_down, matches_filter

QUERY_CACHE = 256  # query vectors remembered per store
_LIST_PAGE = 500


class ReadsMixin:
    embeddings: Embeddings
    _guard: threading.Lock
    _query_cache: OrderedDict[str, np.ndarray]
    _query_cache_owner: Any
    _pg: PgVectors | None

    if TYPE_CHECKING:  # provided by MergingStore

        def _inner(self, ops: list[Op]) -> list[Result]: ...
        def _indexes_under(self, prefix: Namespace) -> list[NamespaceIndex]: ...

    def _embed_query(self, text: str) -> np.ndarray:
        """The query's vector; the last ``QUERY_CACHE`` queries are remembered (an agent asks again)."""
        with self._guard:
            if self._query_cache_owner is not self.embeddings:  # embeddings swapped: forget
                self._query_cache.clear()
                self._query_cache_owner = self.embeddings
            hit = self._query_cache.get(text)
            if hit is not None:
                self._query_cache.move_to_end(text)
                return hit
        vec = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
        vec.setflags(write=False)
        with self._guard:
            self._query_cache[text] = vec
            while len(self._query_cache) > QUERY_CACHE:
                self._query_cache.popitem(last=False)
        return vec

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
        query = self._embed_query(op.query)
        if self._pg is not None:
            return self._search_pg(self._pg, op, query)
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

    def _search_pg(self, pg: PgVectors, op: SearchOp, query: np.ndarray) -> list[SearchItem]:
        need = max(op.offset, 0) + max(op.limit, 0)
        asked = 4 * need + 64
        while True:  # ask PostgreSQL for more candidates only when the filter rejects too many
            # without a filter the best `need` come with their live rows (no second round trip)
            hits = pg.search(op.namespace_prefix, query, asked, fetch=0 if op.filter else need)
            known = {(h.namespace, h.key): _live_item(h) for h in hits if h.read}
            ranked = [((h.namespace, h.key), h.score) for h in hits]
            found = self._fetch(ranked.__getitem__, len(hits), need, op.filter, known)
            if len(found) >= need or len(hits) < asked:
                break
            asked *= 8
        page = found[op.offset : op.offset + op.limit]
        if len(page) < op.limit:
            unscored = pg.unscored(op.namespace_prefix, 4 * op.limit + 64)
            page += self._fetch(lambda i: (unscored[i], None), len(unscored), op.limit - len(page), op.filter)
        return page

    def _fetch(
        self,
        ranked: Callable[[int], tuple[tuple[Namespace, str], float | None]],
        total: int,
        need: int,
        flt: dict[str, Any] | None,
        known: Mapping[tuple[Namespace, str], Item | None] | None = None,
    ) -> list[SearchItem]:
        """Read ranked candidates in chunks until ``need`` pass the filter (stale ones skipped).

        ``known`` holds candidates already read (``None``: not live), which are not read again.
        """
        out: list[SearchItem] = []
        pos = 0
        known = known or {}
        while len(out) < need and pos < total:
            missing = need - len(out)
            size = missing if not flt else max(4 * missing, 64)
            chunk = [ranked(i) for i in range(pos, min(total, pos + size))]
            pos += len(chunk)
            unread = [(ns, key) for (ns, key), _ in chunk if (ns, key) not in known]
            read = dict(zip(unread, self._inner([GetOp(ns, key, False) for ns, key in unread]), strict=True))
            for ref, score in chunk:
                item = known[ref] if ref in known else read[ref]
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


def _live_item(hit: Hit) -> Item | None:
    if hit.row is None:
        return None
    value, created_at, updated_at = hit.row
    return Item(value=value, key=hit.key, namespace=hit.namespace, created_at=created_at, updated_at=updated_at)


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
