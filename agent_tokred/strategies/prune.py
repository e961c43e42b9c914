"""The prune strategy: keep the best units that fit the budget exactly, in their original order.

The plan is computed once (:func:`plan_prune`) and applied by a renderer the caller supplies, so the
same selection logic serves plain text, log lines and JSON trees. Budgets are checked on the
*rendered* text in the caller's tokenizer, because token counts of joined pieces are not additive.

Selection: protected units first, then by score. Each unit is counted once; additive estimates
(calibrated by each exact check) find the longest prefix of that order whose rendering fits, with a
binary search only over the narrow bracket they leave; batched fill rounds then add further units that
still fit (so the budget is used, not just respected). Every returned plan was counted exactly.

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

_GUIDED_STEPS = 4  # estimate-guided exact checks before the bracket is binary-searched
_FILL_ROUNDS = 3
_MAX_CHECKS = 40  # a bound on exact checks in the fill phase (each renders and counts the result)


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

    Units are counted once; the cut in the selection order is found on additive estimates (the
    empty rendering plus the kept units' costs, scaled by what the exact checks measure), so only a
    handful of renderings are counted exactly, however long the input.

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
    costs = np.asarray(list(unit_costs) if unit_costs is not None else estimate_costs(units, counter), dtype=np.int64)
    check = _Checker(render, counter, budget_tokens)
    empty = check(())
    if not empty.fits:
        # Even the empty rendering is over budget (a renderer skeleton larger than the budget).
        return KeepPlan((), empty.tokens, empty.text)
    best_k, best = _longest_fitting_prefix(order, costs, check, empty)
    keep, best = _fill(order, best_k, costs, check, best)
    return KeepPlan(tuple(sorted(keep)), best.tokens, best.text)


@dataclass(frozen=True)
class _Check:
    fits: bool
    tokens: int
    text: str


class _Checker:
    """Renders a selection and counts it exactly: the only place the budget search counts."""

    def __init__(self, render: Renderer, counter: TokenCounter, budget: int) -> None:
        self.render, self.counter, self.budget = render, counter, budget
        self.calls = 0
        self._seen: dict[tuple[int, ...], _Check] = {}

    def __call__(self, keep: Sequence[int]) -> _Check:
        key = tuple(sorted(keep))
        known = self._seen.get(key)
        if known is not None:
            return known
        self.calls += 1
        text = self.render(key)
        tokens = self.counter.count(text)
        result = self._seen[key] = _Check(tokens <= self.budget, tokens, text)
        return result


def _longest_fitting_prefix(
    order: Sequence[int], costs: np.ndarray, check: _Checker, empty: _Check
) -> tuple[int, _Check]:
    """The longest prefix of ``order`` whose rendering fits, found from estimates with few exact checks.

    Estimates are ``empty + scale * cost(prefix)``; ``scale`` is re-measured at every check, so a
    renderer's separators and markers and the non-additivity of token counts are learnt, not assumed.
    Once the estimate has bracketed the cut, a binary search over the (narrow) bracket finishes it.
    """
    budget, base = check.budget, empty.tokens
    prefix = np.cumsum(costs[np.asarray(order, dtype=np.int64)]) if len(order) else np.zeros(0, np.int64)
    lo_k, lo = 0, empty  # the longest prefix known to fit
    hi_k = len(order) + 1  # the shortest prefix known not to fit
    scale = 1.0
    for step in range(_GUIDED_STEPS):
        if hi_k - lo_k <= 1:
            break
        # aim a little under the budget after the first check, so one probe usually lands on each side
        aim = budget - (0 if step % 2 == 0 else max(2, (budget - base) // 64))
        k = int(np.searchsorted(prefix, (aim - base) / scale, side="right"))
        k = min(max(k, lo_k + 1), hi_k - 1)
        result = check(order[:k])
        if prefix[k - 1] > 0 and result.tokens > base:
            scale = (result.tokens - base) / float(prefix[k - 1])
        if result.fits:
            lo_k, lo = k, result
        else:
            hi_k = k
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        result = check(order[:mid])
        if result.fits:
            lo_k, lo = mid, result
        else:
            hi_k = mid
    return lo_k, lo


def _fill(
    order: Sequence[int], start: int, costs: np.ndarray, check: _Checker, best: _Check
) -> tuple[list[int], _Check]:
    """Fill the room left after the cut with later units whose estimated cost fits, in batches.

    Each round adds, in selection order, every unit that still fits the estimated slack, checks the
    batch exactly once, and on overflow keeps the longest fitting part of the batch (binary search).
    """
    keep = list(order[:start])
    rest = list(order[start:])
    for _ in range(_FILL_ROUNDS):
        slack = check.budget - best.tokens
        if slack <= 0 or not rest:
            break
        batch, room = [], slack
        for i in rest:
            c = int(costs[i])
            if c <= room:
                batch.append(i)
                room -= c
        if not batch:
            break
        taken, result = _longest_fitting_batch(keep, batch, check)
        if taken == 0:
            break
        keep.extend(batch[:taken])
        best = result
        chosen = set(batch[:taken])
        rest = [i for i in rest if i not in chosen]
    return keep, best


def _longest_fitting_batch(keep: list[int], batch: list[int], check: _Checker) -> tuple[int, _Check]:
    full = check([*keep, *batch])
    if full.fits:
        return len(batch), full
    lo_k, lo, hi_k = 0, _Check(False, 0, ""), len(batch)
    while hi_k - lo_k > 1 and check.calls < _MAX_CHECKS:
        mid = (lo_k + hi_k) // 2
        result = check([*keep, *batch[:mid]])
        if result.fits:
            lo_k, lo = mid, result
        else:
            hi_k = mid
    return lo_k, lo


def estimate_costs(units: Sequence[Unit], counter: TokenCounter, exact_up_to: int = 250_000) -> list[int]:
    """Token cost per unit: exact (one count per unit), from a measured chars-per-token ratio past ``exact_up_to``.

    Estimates only guide the search; the budget itself is always checked exactly on the rendering.
    """
    if len(units) <= exact_up_to:
        count = counter.count
        return [count(u.text) for u in units]
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
