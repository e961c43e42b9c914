"""An order of bench items in which consecutive items share many units (for per-unit model caches).

The NQ items of ``build_nq`` draw their 19 hard distractors from one pool of passages, so 57% of the
sentence units of the 200 items occur in more than one item. A criterion that caches per-unit model
states (self-information's key/value states) reuses more of them when items that share passages run
one after another. The order changes no score, only how often the cache hits.

Example:
    >>> overlap_order([{"a", "b"}, {"c"}, {"b", "a", "d"}])
    [0, 2, 1]
"""

from __future__ import annotations

from collections.abc import Sequence


def overlap_order(unit_sets: Sequence[set[str]], recent: int = 5) -> list[int]:
    """Greedy order: next the item with the most units among the last ``recent`` items' (ties: first)."""
    if not unit_sets:
        return []
    left = list(range(1, len(unit_sets)))
    order = [0]
    while left:
        seen = set().union(*(unit_sets[j] for j in order[-recent:]))
        best = max(left, key=lambda j: (len(unit_sets[j] & seen), -j))
        order.append(best)
        left.remove(best)
    return order
