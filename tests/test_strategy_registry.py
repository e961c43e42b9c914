"""The compressor dispatches text strategies through the registry (agent_tokred.strategies)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agent_tokred.archive import InMemoryArchive
from agent_tokred.budget import Budget
from agent_tokred.compressor import Compressor
from agent_tokred.errors import UnknownNameError
from agent_tokred.strategies import STRATEGIES, StrategySpec, register_strategy, resolve_strategy

TEXT = " ".join(f"Sentence {i} is about topic {i % 3} and nothing else at all." for i in range(40))


@pytest.fixture
def registry() -> Iterator[dict[str, StrategySpec]]:
    """The registry, restored after the test (tests may register or replace entries)."""
    saved = dict(STRATEGIES)
    yield STRATEGIES
    STRATEGIES.clear()
    STRATEGIES.update(saved)


def _compressor(strategy: str) -> Compressor:
    return Compressor(criterion="lexical", strategy=strategy, unit="sentence",  # type: ignore[arg-type]
                      tokenizer="approx", archive=InMemoryArchive())


def test_a_registered_strategy_is_what_runs(registry: dict[str, StrategySpec]) -> None:
    calls: list[int] = []

    def topic_one_only(units: Sequence[Any], scores: Any) -> tuple[list[int], dict[int, tuple[int, ...]]]:
        calls.append(len(units))
        return [i for i, u in enumerate(units) if "topic 1 " in u.text], {}

    register_strategy(StrategySpec("topic_one", "only sentences about topic 1", select=topic_one_only))
    result = _compressor("topic_one").compress(TEXT, budget=Budget(rate=0.5))
    assert calls == [40]
    assert result.strategy == "topic_one" and result.tokens_after <= result.budget_tokens
    kept = [TEXT[a:b] for a, b in result.kept_spans]
    assert kept and all("topic 1 " in span for span in kept)
    assert all(f"Sentence {i} " not in result.text for i in range(40) if i % 3 != 1)


def test_replacing_merge_replaces_what_merge_runs(registry: dict[str, StrategySpec]) -> None:
    seen: list[str] = []

    def first_two(units: Sequence[Any], scores: Any) -> tuple[list[int], dict[int, tuple[int, ...]]]:
        seen.append("called")
        return [0, 1], {0: (2, 3)}

    register_strategy(StrategySpec("merge", "test double", select=first_two))
    result = _compressor("merge").compress(TEXT, budget=Budget(rate=0.9))
    assert seen == ["called"]
    assert result.text.startswith("Sentence 0 ") and "Sentence 1 " in result.text
    assert "Sentence 2 " not in result.text and result.units_kept == 4  # two kept, standing for two more


def test_prune_and_compact_choose_among_every_unit() -> None:
    for name in ("prune", "compact"):
        assert resolve_strategy(name).select_units(["a", "b", "c"], [0.1, 0.2, 0.3]) == ([0, 1, 2], {})


def test_select_by_module_path_is_imported_on_use() -> None:
    spec = StrategySpec("merge_copy", "", select="agent_tokred.strategies.text_merge:plan_text_merge")
    assert spec.select_units([], []) == ([], {})


@pytest.mark.parametrize("bad", ["", "a+b"])
def test_register_rejects_names_a_mix_could_not_say(bad: str) -> None:
    with pytest.raises(UnknownNameError):
        register_strategy(StrategySpec(bad, "bad"))


def test_an_unregistered_strategy_is_refused_at_construction() -> None:
    with pytest.raises(UnknownNameError, match="valid names: auto, compact, merge, prune"):
        _compressor("shrink")
