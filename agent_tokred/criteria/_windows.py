"""Token windows shared by the model criteria: window starts, padded batches, pooling onto units.

Criteria that run a model over the joined text of their units (attention, self-information) cut it
into windows, batch them, and pool per-token scores back onto units by character offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError


def window_starts(n: int, cap: int, overlap: int) -> list[int]:
    """Starts of windows of ``cap`` tokens over ``n`` tokens, consecutive ones sharing ``overlap``."""
    if cap < 8 or not 0 <= overlap < cap:
        raise InvalidInputError(f"window leaves {cap} context tokens; raise window or shorten the query")
    starts = [0]
    while starts[-1] + cap < n:
        starts.append(starts[-1] + cap - overlap)
    return starts


def pad_batch(seqs: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    """Right-padded ``(ids, attention_mask)`` long tensors for a batch of id lists."""
    import torch

    ids = torch.full((len(seqs), max(len(q) for q in seqs)), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, q in enumerate(seqs):
        ids[i, : len(q)] = torch.tensor(list(q), dtype=torch.long)
        mask[i, : len(q)] = 1
    return ids, mask


def pool_token_scores(
    text: str,
    offsets: Sequence[tuple[int, int]],
    token_scores: np.ndarray,
    spans: Sequence[tuple[int, int]],
    pooling: Literal["mean", "max_mean", "max", "sum"] = "mean",
) -> list[float]:
    """Pool per-token scores onto units by character offsets.

    A token's span is trimmed of white space (byte-level BPE tokens carry the space before a word,
    which belongs to the previous unit); a token that still straddles units counts for each of them.
    Units without tokens (white space only) get the lowest score of the call.

    Example:
        >>> pool_token_scores("ab cd", [(0, 2), (2, 5)], np.array([1.0, 3.0]), [(0, 3), (3, 5)])
        [1.0, 3.0]
    """
    n = len(spans)
    tok, unit = token_owners(text, offsets, spans)
    vals = np.asarray(token_scores, dtype=np.float64)[tok] if tok.size else np.zeros(0)
    ok = np.isfinite(vals)
    unit, vals = unit[ok], vals[ok]
    total = np.bincount(unit, weights=vals, minlength=n).astype(np.float64)[:n]
    count = np.bincount(unit, minlength=n).astype(np.float64)[:n]
    best = np.full(n, -np.inf)
    np.maximum.at(best, unit, vals)
    has = count > 0
    mean = np.divide(total, count, out=np.zeros(n), where=has)
    if pooling == "mean":
        out = mean
    elif pooling == "sum":
        out = total
    elif pooling == "max":
        out = np.where(has, best, 0.0)
    else:
        out = np.where(has, 0.5 * (mean + np.where(has, best, 0.0)), 0.0)
    floor = float(out[has].min()) if has.any() else 0.0
    return [float(x) for x in np.where(has, out, floor)]


def token_owners(
    text: str, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """(token index, unit index) pairs: which units each token's trimmed span overlaps.

    A token's span is trimmed of white space first; a token that still straddles units belongs to each.

    Example:
        >>> [a.tolist() for a in token_owners("ab cd", [(0, 2), (2, 5)], [(0, 3), (3, 5)])]
        [[0, 1], [0, 1]]
    """
    starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    toks: list[int] = []
    units: list[int] = []
    for t, (a, b) in enumerate(offsets):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a >= b:
            continue
        first = max(0, int(np.searchsorted(starts, a, side="right")) - 1)
        last = max(first, int(np.searchsorted(starts, b - 1, side="right")) - 1)
        for u in range(first, last + 1):
            if spans[u][0] < b and a < spans[u][1]:
                toks.append(t)
                units.append(u)
    return np.asarray(toks, dtype=np.int64), np.asarray(units, dtype=np.int64)


def add_block_score(scores: Sequence[float] | np.ndarray, groups: Sequence[int], weight: float) -> np.ndarray:
    """Each unit's score plus ``weight`` times the best score in its block (units sharing a ``group``).

    Example:
        >>> add_block_score([1.0, 3.0, 2.0], [0, 0, 1], 0.5).tolist()
        [2.5, 4.5, 3.0]
    """
    arr = np.asarray(scores, dtype=np.float64)
    if weight <= 0 or arr.size < 2:
        return arr
    _, block = np.unique(np.asarray(groups), return_inverse=True)
    best = np.full(int(block.max()) + 1, -np.inf)
    np.maximum.at(best, block, arr)
    return np.asarray(arr + weight * best[block])
