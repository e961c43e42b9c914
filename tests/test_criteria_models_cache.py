"""The criteria bench's on-disk unit scores: scored once, reused, keyed by query and units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agent_tokred.units import Unit, segment
from bench._criteria_cache import DiskCachedCriterion


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, units: Sequence[Unit], query: str | None) -> list[float]:
        self.calls += 1
        return [float(len(u.text)) + (1.0 if query else 0.0) for u in units]


@pytest.fixture
def cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DiskCachedCriterion, Counting]:
    monkeypatch.setenv("AGENT_TOKRED_CACHE", str(tmp_path))
    inner = Counting()
    return DiskCachedCriterion("counting", "counting-v1", inner), inner


def test_scores_once_and_reuses(cached: tuple[DiskCachedCriterion, Counting]) -> None:
    crit, inner = cached
    units = segment("One sentence. Another, longer sentence.", "sentence")
    first = crit(units, "q")
    assert crit.has(units, "q")
    again = crit(units, "q")
    np.testing.assert_array_equal(first, again)
    assert inner.calls == 1 and crit.fresh_calls == 1 and crit.cached_calls == 1
    # a second wrapper on the same tag reads the same file
    other = DiskCachedCriterion("counting", "counting-v1", inner)
    np.testing.assert_array_equal(other(units, "q"), first)
    assert inner.calls == 1


@pytest.mark.parametrize("query", [None, "another query"])
def test_other_query_or_units_are_scored_fresh(cached: tuple[DiskCachedCriterion, Counting], query: str | None) -> None:
    crit, inner = cached
    units = segment("One sentence. Another, longer sentence.", "sentence")
    crit(units, "q")
    assert not crit.has(units, query)
    crit(units, query)
    crit(units[:1], "q")
    assert inner.calls == 3
