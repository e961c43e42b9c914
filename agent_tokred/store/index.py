"""The in-process vector index of one namespace, rebuilt from its index records.

Each live item has one index record (tier state, provenance, vectors by field path). The index keeps
the vectors in one growable float32 matrix, so a search is one matrix-vector product and a
max-pool over each item's rows (LangGraph's rule for items indexed under several fields).

It is a cache: the records in the wrapped store are the truth, and
:meth:`NamespaceIndex.apply` takes exactly the writes the store makes to them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._layout import (
    PASSAGE_PATH,
    SOURCE_PASSAGE_PATH,
    SOURCE_PATH,
    STATE_MERGED,
    STATE_PLAIN,
    Namespace,
    decode_vector,
    path_rank,
)


@dataclass
class ItemMeta:
    """What the store knows about one live item without reading its value."""

    key: str
    seq: int
    kind: str | None
    state: str
    settled: bool
    tokens: int
    raw_tokens: int
    size: int
    sources: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    rows: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # the index path of each row

    @property
    def is_memory(self) -> bool:
        return self.state != STATE_PLAIN

    @classmethod
    def from_record(cls, key: str, rec: Mapping[str, Any]) -> ItemMeta:
        return cls(
            key=key,
            seq=int(rec.get("seq", 0)),
            kind=rec.get("kind"),
            state=str(rec.get("state", STATE_PLAIN)),
            settled=bool(rec.get("settled", False)),
            tokens=int(rec.get("tokens", 0)),
            raw_tokens=int(rec.get("raw_tokens", 0)),
            size=int(rec.get("size", 1)),
            sources=tuple(rec.get("sources", ())),
            record=dict(rec),
        )


class NamespaceIndex:
    """Vectors and tier metadata of the live items of one namespace (thread-safe)."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.meta: dict[str, ItemMeta] = {}
        self.source_of: dict[str, str] = {}  # source key -> merged key that holds it
        self._lock = threading.Lock()
        self._mat = np.zeros((0, 0), dtype=np.float32)
        self._owner = np.zeros(0, dtype=np.int64)  # row -> ordinal of the item it belongs to
        self._keys: list[str] = []  # ordinal -> key (a re-put item gets a new ordinal)
        self._alive = np.zeros(0, dtype=bool)
        self._unscored: set[str] = set()
        self._identity = True  # every row's owner ordinal equals its row index
        self._n = 0
        self._dead = 0

    def __len__(self) -> int:
        return len(self.meta)

    def apply(self, key: str, record: Mapping[str, Any] | None) -> None:
        """Mirror one write of an index record (``None``: the item is gone)."""
        with self._lock:
            old = self.meta.pop(key, None)
            self._unscored.discard(key)
            if old is not None:
                for row in old.rows:
                    self._alive[row] = False
                self._dead += len(old.rows)
                for src in old.sources:
                    if self.source_of.get(src) == key:
                        del self.source_of[src]
            if record is None:
                self._maybe_compact()
                return
            meta = ItemMeta.from_record(key, record)
            vecs = record.get("vecs") or {}
            ordinal = len(self._keys)
            self._keys.append(key)
            # The primary vector (a memory's text, a merged memory's weighted mean) comes first, then
            # a long memory's passages, then a merged memory's source vectors and their passages
            # ("src."), so search still finds each source and what lies deep inside it.
            for path in sorted(vecs, key=lambda p: (path_rank(p), p)):
                meta.rows.append(self._append(ordinal, decode_vector(vecs[path])))
                meta.paths.append(path)
            if not meta.rows:
                self._unscored.add(key)
            self.meta[key] = meta
            if meta.state == STATE_MERGED:
                for src in meta.sources:
                    self.source_of[src] = key
            self._maybe_compact()

    def load(self, records: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        for key, rec in records:
            self.apply(key, rec)

    def _append(self, ordinal: int, vec: np.ndarray) -> int:
        vec = np.asarray(vec, dtype=np.float32).ravel()
        if self._mat.shape[1] != vec.shape[0]:
            if self._n - self._dead > 0 and self._mat.shape[1]:
                raise ValueError(
                    f"embedding has {vec.shape[0]} dimensions, namespace {self.ns} has {self._mat.shape[1]}"
                )
            self._mat = np.zeros((16, vec.shape[0]), dtype=np.float32)
            self._alive = np.zeros(16, dtype=bool)
            self._owner = np.zeros(16, dtype=np.int64)
            self._n, self._dead, self._identity = 0, 0, True
            for m in self.meta.values():
                m.rows.clear()
                m.paths.clear()
        if self._n == self._mat.shape[0]:
            grow = max(16, self._n)
            self._mat = np.concatenate([self._mat, np.zeros((grow, self._mat.shape[1]), np.float32)])
            self._alive = np.concatenate([self._alive, np.zeros(grow, dtype=bool)])
            self._owner = np.concatenate([self._owner, np.zeros(grow, dtype=np.int64)])
        norm = float(np.linalg.norm(vec))
        self._mat[self._n] = vec / norm if norm > 0 else vec
        self._alive[self._n] = True
        self._owner[self._n] = ordinal
        self._identity = self._identity and ordinal == self._n
        self._n += 1
        return self._n - 1

    def _maybe_compact(self) -> None:
        if self._dead < 1024 or self._dead * 2 < self._n:
            return
        keep = np.flatnonzero(self._alive[: self._n])
        remap = {int(old): new for new, old in enumerate(keep)}
        keys = list(self.meta)
        ordinal = {k: i for i, k in enumerate(keys)}
        owner = np.empty(len(keep), dtype=np.int64)
        for key, m in self.meta.items():
            m.rows = [remap[r] for r in m.rows]
            owner[m.rows] = ordinal[key]
        self._mat, self._owner, self._keys = self._mat[keep].copy(), owner, keys
        self._n, self._dead = len(keep), 0
        self._alive = np.ones(len(keep), dtype=bool)
        self._identity = bool(np.array_equal(owner, np.arange(len(keep)))) and len(keys) == len(keep)

    def scores(self, query: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
        """Cosine similarity of every scored item (max over its rows), and the unscored keys.

        Returns ``(keys, ordinals, scores, unscored)``: item ``keys[ordinals[i]]`` scores ``scores[i]``
        (``keys`` is looked up lazily, so ranking 10k items costs no Python loop).
        """
        with self._lock:
            n = self._n
            mat, alive, owner, keys = self._mat[:n], self._alive[:n], self._owner[:n], self._keys
            m, identity = len(keys), self._identity
            unscored = list(self._unscored)
        empty = np.zeros(0, dtype=np.int64)
        if n == 0 or not alive.any():
            return keys, empty, np.zeros(0, dtype=np.float32), unscored
        q = np.asarray(query, dtype=np.float32).ravel()
        qn = float(np.linalg.norm(q))
        if mat.shape[1] != q.shape[0]:
            raise ValueError(f"query embedding has {q.shape[0]} dimensions, the index {mat.shape[1]}")
        # einsum, not BLAS: a multi-threaded gemv on 2 busy cores waits whole scheduler ticks (8 ms
        # seen at 10k items); this single-threaded loop takes ~0.5 ms at 10k items on any load
        raw = np.einsum("ij,j->i", mat, (q / qn if qn > 0 else q).astype(np.float32))
        raw[~alive] = -np.inf
        if identity and m == n:  # row i belongs to item ordinal i: nothing to pool
            best = raw
        else:
            best = np.full(m, -np.inf, dtype=np.float32)
            np.maximum.at(best, owner, raw)
        ordinals = np.flatnonzero(best > -np.inf)
        return keys, ordinals, best[ordinals], unscored

    def primary_vector(self, key: str) -> np.ndarray | None:
        """The first vector of an item (a memory's whole text; a merged memory's weighted mean)."""
        with self._lock:
            m = self.meta.get(key)
            if m is None or not m.rows:
                return None
            return self._mat[m.rows[0]].copy()

    def primary_vectors(self, keys: list[str]) -> list[np.ndarray | None]:
        """:meth:`primary_vector` of many items under one lock."""
        with self._lock:
            out: list[np.ndarray | None] = []
            for key in keys:
                m = self.meta.get(key)
                out.append(self._mat[m.rows[0]].copy() if m is not None and m.rows else None)
            return out

    def source_vectors(self, key: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """What a merge carries over from an item: its whole-text vectors and its passage vectors.

        A merged memory gives its sources' vectors and their passages, any other item its primary
        vector and its own passages.
        """
        with self._lock:
            m = self.meta.get(key)
            if m is None or not m.rows:
                return [], []
            if m.state != STATE_MERGED or len(m.rows) == 1:
                own = [self._mat[r].copy() for r, p in zip(m.rows, m.paths, strict=True) if p.startswith(PASSAGE_PATH)]
                return [self._mat[m.rows[0]].copy()], own
            wholes: list[np.ndarray] = []
            passages: list[np.ndarray] = []
            for row, path in zip(m.rows, m.paths, strict=True):
                if path.startswith(SOURCE_PASSAGE_PATH):
                    passages.append(self._mat[row].copy())
                elif path.startswith(SOURCE_PATH):
                    wholes.append(self._mat[row].copy())
            return wholes, passages

    def passage_vectors(self, key: str) -> list[np.ndarray]:
        """A memory's own passage vectors, best first (none for short or merged memories)."""
        with self._lock:
            m = self.meta.get(key)
            if m is None:
                return []
            return [self._mat[r].copy() for r, p in zip(m.rows, m.paths, strict=True) if p.startswith(PASSAGE_PATH)]

    def vector_count(self) -> int:
        """Live vectors in the index (rows searched per query)."""
        with self._lock:
            return self._n - self._dead

    def memories(self) -> list[ItemMeta]:
        """Live memories, newest first."""
        with self._lock:
            items = [m for m in self.meta.values() if m.is_memory]
        items.sort(key=lambda m: (m.seq, m.key), reverse=True)
        return items
