"""Tests of the online stop rule's dataflow features and its per-model thresholds (and their tuning)."""

from __future__ import annotations

import numpy as np
import pytest

from agent_tokred.errors import InvalidInputError
from agent_tokred.overthinking import OnlineStopRule, StopRuleConfig
from agent_tokred.overthinking._dataflow import DATAFLOW_FEATURES, Dataflow
from agent_tokred.overthinking._stop_features import (
    DEFAULT_THRESHOLD,
    DEFAULT_WEIGHTS,
    FEATURES,
    MODEL_THRESHOLDS,
    model_threshold,
)
from agent_tokred.overthinking.answers import extract_candidates
from bench._overthinking_tune import calibrate, objective

# A settled answer and one re-check, without a question: the default (strictest) threshold waits,
# the threshold calibrated on R1's dev traces stops at the re-check.
SETTLED = (
    "He runs 3 * 3 = 9 sprints. So 9 * 60 = 540 meters.\n\nSo the total is 540 meters a week.\n\n"
    "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, that's correct: 540 meters.\n\n"
    "So the answer is 540.\n\nWait, let me verify the whole thing once more from the start."
)


def _close_all(flow: Dataflow, steps: list[str], first: int = 0, start: int = 0) -> None:
    for i, text in enumerate(steps, first):
        flow.close(text, start, i, extract_candidates(text, start))
        start += len(text)


def test_a_result_stays_open_until_a_later_step_uses_it() -> None:
    flow = Dataflow(frozenset({"12", "4.5", "10", "2.5"}))
    _close_all(flow, ["So 12 * 4.5 = 54 miles. ", "Stanley: 10 * 2.5 = 25. "])
    assert sorted(flow.open) == ["25", "54"] and flow.used_coverage == 1.0
    assert flow.features("25", None, 2)["open_any"] == 1.0  # 54 waits to be used
    _close_all(flow, ["Total: 54 + 25 = 79. "], first=2, start=60)
    assert sorted(flow.open) == ["79"] and flow.used == {"54", "25"}
    f = flow.features("79", None, 3)
    assert f["open_any"] == 0.0 and f["open_results"] == 0.0 and f["latest_used"] == 0.0
    assert flow.features("54", None, 3)["latest_used"] == 1.0  # an intermediate, not the answer


def test_restating_the_problem_uses_no_input() -> None:
    flow = Dataflow(frozenset({"57", "4", "650"}))
    _close_all(flow, ["I need the wheels for all the cars, then subtract that from 650 to find what is left. "])
    assert flow.used_coverage == 0.0 and flow.coverage_step is None
    _close_all(flow, ["57 * 4 = 228 wheels. ", "650 - 228 = 422. "], first=1, start=90)
    assert flow.used_coverage == 1.0 and flow.coverage_step == 2
    assert flow.features("422", None, 3)["since_used_coverage"] == pytest.approx(np.log1p(1))


def test_the_question_numbers_are_inputs_not_results() -> None:
    flow = Dataflow(frozenset({"30"}))
    _close_all(flow, ["So June has 30 days. ", "So 6000 * 30 = 180000 meters. "])
    assert "30" not in flow.open and "180000" in flow.open and "30" in flow.inputs_used


def test_every_feature_has_a_shipped_weight() -> None:
    assert set(DATAFLOW_FEATURES) <= set(FEATURES)
    assert set(DEFAULT_WEIGHTS) == set(FEATURES)
    feats = OnlineStopRule(question="How many?").features(0, 0, False, "")
    assert set(feats) == set(FEATURES)


@pytest.mark.parametrize(
    ("name", "threshold"),
    [
        ("deepseek-r1", MODEL_THRESHOLDS["deepseek-r1"]),
        ("deepseek-reasoner", MODEL_THRESHOLDS["deepseek-r1"]),
        ("DeepSeek-R1", MODEL_THRESHOLDS["deepseek-r1"]),
        ("Qwen/QwQ-32B", MODEL_THRESHOLDS["qwq-32b"]),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", DEFAULT_THRESHOLD),  # not calibrated on it
        ("claude-sonnet-4", DEFAULT_THRESHOLD),
        (None, DEFAULT_THRESHOLD),
    ],
)
def test_model_thresholds(name: str | None, threshold: float) -> None:
    assert model_threshold(name) == threshold
    assert StopRuleConfig.for_model(name, probe_k=3) == StopRuleConfig(threshold=threshold, probe_k=3)


def test_the_default_is_the_strictest_threshold() -> None:
    assert max(MODEL_THRESHOLDS.values()) == DEFAULT_THRESHOLD
    assert MODEL_THRESHOLDS["deepseek-r1"] < DEFAULT_THRESHOLD


def test_a_looser_model_threshold_stops_where_the_default_waits() -> None:
    chunks = [SETTLED[i : i + 8] for i in range(0, len(SETTLED), 8)]
    strict = OnlineStopRule()
    loose = OnlineStopRule(config=StopRuleConfig.for_model("deepseek-r1"))
    assert not any(strict.feed(c) for c in chunks)
    decision = next(d for d in (loose.feed(c) for c in chunks) if d)
    assert decision.answer == "540" and SETTLED[decision.cut_char :].startswith("Wait, let me verify")
    assert strict.scores == loose.scores  # same weights, only the threshold differs


def test_for_model_rejects_bad_options() -> None:
    with pytest.raises(InvalidInputError):
        StopRuleConfig.for_model("qwq-32b", probe_k=0)


def _trail(z: list[float], starts: list[int], first_gold: int, total: int = 100) -> dict[str, object]:
    """A one-feature (bias only plus a score column) trail as the tuning script builds them."""
    x = np.array([[1.0, v] for v in z])
    return {
        "x": x,
        "has": np.ones(len(z), dtype=bool),
        "starts": starts,
        "tokens_at": starts,
        "total": total,
        "first_gold": first_gold,
    }


def test_calibrate_picks_the_loosest_shift_that_keeps_the_answer() -> None:
    # Opening scores 1, 2, 3 at tokens 10, 50, 80; the gold appears at 40. A stop at 10 loses it.
    traces = [_trail([1.0, 2.0, 3.0], [10, 50, 80], 40)]
    w = np.array([0.0, 1.0])
    (shift,) = calibrate([traces], w, min_kept=100.0)
    trial = w.copy()
    trial[0] += shift
    removed, kept = objective([traces], trial)
    assert kept == 100.0 and removed == 50.0  # stops at 50: score 2 + shift > 0 >= 1 + shift
    assert -2.0 < shift <= -1.0
