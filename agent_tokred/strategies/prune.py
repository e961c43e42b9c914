"""The prune strategy: keep the best units that fit the budget exactly, in their original order.

The plan is computed once (:func:`plan_prune`) and applied by a renderer the caller supplies, so the
same selection logic serves plain text, log lines and JSON trees. Budgets are checked on the
*rendered* text in the caller's tokenizer, because token counts of joined pieces are not additive.

Selection: protected units first, then by score. A binary search finds the longest prefix of that
order whose rendering fits; a bounded greedy pass then fills the remaining room with further units
that still fit (so the budget is used, not just respected).

Example:
    >>> from agent_tokred.units import segment
    >>> from agent_tokred.tokens import resolve_counter
    >>> units = segment("one two three four five", "word")
    >>> plan = plan_prune(units, [5, 1, 4, 2, 3], budget_tokens=3, counter=resolve_counter(),
    ...                   render=lambda keep: "".join(units[i].text for i in keep))
    >>> plan.keep
    (0, 2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..criteria.base import Scores
from ..tokens import TokenCounter
from ..units import Unit

Renderer = Callable[[Sequence[int]], str]

_FILL_TRIES = 24


@dataclass(frozen=True)
class KeepPlan:
    """Which units to keep (sorted indices) and what the rendering costs."""

    keep: tuple[int, ...]
    tokens: int
    text: str


def selection_order(units: Sequence[Unit], scores: Scores) -> list[int]:
    """Indices by priority: protected units first, then by descending score, ties by position."""
    arr = np.asarray(scores, dtype=np.float64)
    protected = np.asarray([u.protected for u in units], dtype=bool)
    # lexsort sorts by the last key first: protected desc, score desc, index asc.
    idx = np.arange(len(units))
    return [int(i) for i in np.lexsort((idx, -arr, ~protected))]


def plan_prune(
    units: Sequence[Unit],
    scores: Scores,
    *,
    budget_tokens: int,
    counter: TokenCounter,
    render: Renderer,
    threshold: float | None = None,
    unit_costs: Sequence[int] | None = None,
) -> KeepPlan:
    """Choose the units to keep so that ``counter.count(render(keep)) <= budget_tokens``.

    Args:
        units: the units of one input.
        scores: one score per unit (higher = keep).
        budget_tokens: the most tokens the rendered result may have (``>= 0``).
        counter: the caller's token counter.
        render: maps sorted kept indices to the result text.
        threshold: if given, only units whose min-max normalised score is ``>=`` it are candidates
            (protected units always are).
        unit_costs: token estimates per unit (computed with ``counter`` when omitted).

    Returns:
        A :class:`KeepPlan`; ``keep`` may be empty when nothing fits.
    """
    n = len(units)
    if n == 0:
        text = render(())
        return KeepPlan((), counter.count(text), text)
    order = selection_order(units, scores)
    if threshold is not None:
        arr = np.asarray(scores, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        norm = (arr - lo) / (hi - lo) if hi > lo else np.ones_like(arr)
        order = [i for i in order if units[i].protected or norm[i] >= threshold]
    costs = list(unit_costs) if unit_costs is not None else estimate_costs(units, counter)

    def fits(keep: Sequence[int]) -> tuple[bool, int, str]:
        text = render(sorted(keep))
        tokens = counter.count(text)
        return tokens <= budget_tokens, tokens, text

    # Upper bound for the search: where estimated costs pass the budget with a generous margin.
    hi = 0
    running = 0
    limit = budget_tokens * 1.25 + 16
    while hi < len(order) and running + costs[order[hi]] <= limit:
        running += costs[order[hi]]
        hi += 1
    hi = min(len(order), hi + 1)

    best_k, best = 0, fits(())
    lo_k, hi_k = 1, hi
    while lo_k <= hi_k:
        mid = (lo_k + hi_k) // 2
        result = fits(order[:mid])
        if result[0]:
            best_k, best = mid, result
            lo_k = mid + 1
        else:
            hi_k = mid - 1
    if not best[0]:
        # Even the empty rendering is over budget (a renderer skeleton larger than the budget).
        return KeepPlan((), best[1], best[2])

    keep = list(order[:best_k])
    tokens, text = best[1], best[2]
    tries = 0
    for i in order[best_k:]:
        slack = budget_tokens - tokens
        if slack <= 0 or tries >= _FILL_TRIES:
            break
        if costs[i] > slack + 1:
            continue
        tries += 1
        ok, t, txt = fits([*keep, i])
        if ok:
            keep.append(i)
            tokens, text = t, txt
    return KeepPlan(tuple(sorted(keep)), tokens, text)


def estimate_costs(units: Sequence[Unit], counter: TokenCounter, exact_up_to: int = 4000) -> list[int]:
    """Token cost per unit: exact for small inputs, from a measured chars-per-token ratio for large ones.

    Estimates only bound the search; the budget itself is always checked exactly on the rendering.
    """
    if len(units) <= exact_up_to:
        return [counter.count(u.text) for u in units]
    step = max(1, len(units) // 2000)
    sample = units[::step]
    chars = sum(len(u.text) for u in sample)
    ratio = chars / max(1, sum(counter.count(u.text) for u in sample))
    return [max(1, round(len(u.text) / ratio)) for u in units]


def render_text(units: Sequence[Unit], keep: Sequence[int], gap_marker: str = "") -> str:
    """Join kept text units in order, inserting ``gap_marker`` where units were dropped.

    The marker is not added at the end of the text when only trailing units were dropped.
    """
    parts: list[str] = []
    prev = -1
    for i in keep:
        if gap_marker and i != prev + 1:
            parts.append(gap_marker)
        parts.append(units[i].text)
        prev = i
    if gap_marker and keep and prev != len(units) - 1:
        parts.append(gap_marker.rstrip() or gap_marker)
    return "".join(parts)
