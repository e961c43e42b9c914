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

_GUIDED_STEPS = 5  # estimate-guided exact checks before the bracket is binary-searched
_FILL_ROUNDS = 3
_MAX_CHECKS = 32  # a bound on exact checks (each renders and counts the result)


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
    margin = (budget_tokens - empty.tokens) // 128  # close enough: the fill uses the rest
    best_k, best = _longest_fitting_prefix(order, costs, check, 0, empty, margin)
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
    order: Sequence[int], costs: np.ndarray, check: _Checker, start: int, fitting: _Check, margin: int
) -> tuple[int, _Check]:
    """A long prefix of ``order`` (at least ``start`` long) whose rendering fits, in few exact checks.

    ``fitting`` is the check of ``order[:start]``. Each probe is placed on estimates: extrapolated
    from the fitting end with the slope (tokens per unit of estimated cost) the checks have measured,
    then interpolated inside the bracket once a probe is over. A renderer's separators and omission
    markers and the non-additivity of token counts are thus learnt, not assumed. The search stops
    once the fitting end is within ``margin`` tokens of the budget (the fill uses the rest); a binary
    search over what is left of the bracket guarantees the end otherwise.
    """
    budget = check.budget
    prefix = np.cumsum(costs[np.asarray(order, dtype=np.int64)]) if len(order) else np.zeros(0, np.int64)
    lo_k, lo, hi_k = start, fitting, len(order) + 1
    lo_pt, hi_pt = (float(prefix[start - 1]) if start else 0.0, float(fitting.tokens)), None
    slope = 1.0
    for step in range(_GUIDED_STEPS):
        if hi_k - lo_k <= 1 or 0 < budget - lo.tokens <= margin or check.calls >= _MAX_CHECKS:
            break
        if hi_pt is None:  # extrapolate from the fitting end: just under the budget first, then at it
            want = lo_pt[0] + (budget - (margin // 2 if step == 0 else 0) - lo_pt[1]) / slope
        else:  # interpolate inside the bracket (regula falsi), just under the budget
            rise = hi_pt[1] - lo_pt[1]
            want = lo_pt[0] + (budget - margin // 2 - lo_pt[1]) * (hi_pt[0] - lo_pt[0]) / rise if rise > 0 else 0.0
        k = min(max(int(np.searchsorted(prefix, want, side="right")), lo_k + 1), hi_k - 1)
        result = check(order[:k])
        point = (float(prefix[k - 1]), float(result.tokens))
        if point[0] > lo_pt[0] and point[1] > lo_pt[1]:
            slope = (point[1] - lo_pt[1]) / (point[0] - lo_pt[0])
        if result.fits:
            lo_k, lo, lo_pt = k, result, point
        else:
            hi_k, hi_pt = k, point
    while hi_k - lo_k > 1 and not 0 < budget - lo.tokens <= margin and check.calls < _MAX_CHECKS:
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

    Each round takes, in selection order, every unit that fits the estimated slack and keeps the
    longest part of that batch whose rendering fits (the same estimate-guided search as the cut).
    """
    keep = list(order[:start])
    rest = list(order[start:])
    for _ in range(_FILL_ROUNDS):
        slack = check.budget - best.tokens
        if slack <= 0 or not rest or check.calls >= _MAX_CHECKS:
            break
        batch, room = [], slack
        for i in rest:
            c = int(costs[i])
            if c <= room:
                batch.append(i)
                room -= c
        if not batch:
            break
        taken, best = _longest_fitting_prefix([*keep, *batch], costs, check, len(keep), best, 0)
        taken -= len(keep)
        if taken <= 0:
            break
        keep.extend(batch[:taken])
        chosen = set(batch[:taken])
        rest = [i for i in rest if i not in chosen]
    return keep, best


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
