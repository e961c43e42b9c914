"""The criterion contract: ``E(X)`` in ``X' = P(X, E(X))``.

A criterion scores units; a higher score means "keep this". It is any callable

    criterion(units: Sequence[Unit], query: str | None) -> Sequence[float]

returning one finite float per unit. Scores are compared within one call only, so their scale is
free; :func:`rank_normalize` maps them onto ``[0, 1]`` when criteria are mixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np

from ..units import Unit

#: What a criterion returns: one float per unit (a list or a 1-d array).
Scores: TypeAlias = "Sequence[float] | np.ndarray"

Criterion: TypeAlias = Callable[[Sequence[Unit], "str | None"], Scores]


def rank_normalize(scores: Scores) -> np.ndarray:
    """Map scores to ``[0, 1]`` by rank (ties share the mean rank); robust to any scale."""
    arr = np.asarray(scores, dtype=np.float64)
    n = arr.size
    if n == 0:
        return arr
    if n == 1:
        return np.ones(1)
    order = arr.argsort(kind="stable")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    # Average ties so equal scores stay equal after normalisation.
    uniq, inverse = np.unique(arr, return_inverse=True)
    if uniq.size < n:
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks / (n - 1)


def minmax_normalize(scores: Scores) -> np.ndarray:
    """Map scores linearly to ``[0, 1]`` (all-equal scores map to 1)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        return arr
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-12:
        return np.ones_like(arr)
    return (arr - lo) / (hi - lo)


def check_scores(scores: Scores, n: int, name: str) -> np.ndarray:
    """Validate a criterion's output: one finite float per unit (NaN counts as lowest)."""
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ValueError(f"criterion {name!r} returned {arr.size} scores for {n} units")
    if not np.all(np.isfinite(arr)):
        finite = arr[np.isfinite(arr)]
        floor = float(finite.min()) - 1.0 if finite.size else 0.0
        arr = np.where(np.isnan(arr) | np.isneginf(arr), floor, arr)
        arr = np.where(np.isposinf(arr), (float(finite.max()) + 1.0) if finite.size else 1.0, arr)
    return arr


def unit_texts_with_offsets(units: Sequence[Unit]) -> tuple[str, list[tuple[int, int]]]:
    """Join unit texts and give each unit's ``(start, end)`` in the joined text.

    Criteria that score tokens in context (attention, self-information) run the model over this
    joined text and pool token scores back onto units with these offsets.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    parts: list[str] = []
    for u in units:
        t = u.text
        if parts and not parts[-1][-1:].isspace() and t[:1] and not t[:1].isspace() and u.start < 0:
            parts.append(" ")
            pos += 1
        spans.append((pos, pos + len(t)))
        parts.append(t)
        pos += len(t)
    return "".join(parts), spans
