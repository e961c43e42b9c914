"""Features of the online stop rule: phrase patterns, number words, the fitted weights.

Kept apart from :mod:`.online` so the rule's logic reads on its own; the weights are refitted with
``python -m bench._overthinking_tune`` (on the dev half of the real traces only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from ._dataflow import DATAFLOW_FEATURES

CHECK = re.compile(
    r"double[- ]?check|verif|confirm|make sure|re-?check|\bcheck|cross-?check|another (?:way|approach|method)|"
    r"alternatively|to be (?:sure|safe|thorough)|re-?calculat|recomput",
    re.IGNORECASE,
)
CONFIRM = re.compile(
    r"that(?:'s| is| seems| looks)? (?:correct|right)|makes sense|checks out|consistent|\byes\b|"
    r"seems (?:correct|right)|looks (?:correct|right|good)|i think that's|confirms?\b|confirmed|same (?:answer|result)",
    re.IGNORECASE,
)
EXPLORE = re.compile(r"alternatively|maybe|perhaps|another (?:interpretation|reading)|ambigu|hmm", re.IGNORECASE)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "  # noqa: SIM905
        "sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000", "dozen": "12"}
_WORD = re.compile(r"[a-z]+")
ANSWER_WORD = re.compile(r"\b(?:answer|total|altogether|in all|final)\b", re.IGNORECASE)
ASK = re.compile(r"[^.?!]*\?")

FEATURES = (
    "bias",
    "reflection",
    "check_turn",
    "support",
    "mentions",
    "strong",
    "has_answer",
    "prev_concluded",
    "prev_confirms",
    "prev_redundancy",
    "age",
    "recent_values",
    "ask_overlap",
    "length",
    "reflection_share",
    "question_number",
    "answer_word",
    "agrees_weak",
    "coverage",
    "after_coverage",
    "since_coverage",
    "explore_turn",
    "stable",
    "checks_since",
    "check_x_support",
    "reflection_x_mentions",
    *DATAFLOW_FEATURES,
)

#: Fitted on the even half of the dev traces (``python -m bench._overthinking_tune``): a logistic fit, its
#: bias shifted to the strictest model's dev calibration; a stop is a score > 0.5 (the default threshold).
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "bias": -8.73,
        "reflection": 0.698,
        "check_turn": 0.316,
        "support": 0.191,
        "mentions": 0.93,
        "strong": 2.701,
        "has_answer": 0.621,
        "prev_concluded": -0.129,
        "prev_confirms": 0.506,
        "prev_redundancy": -0.508,
        "age": 0.152,
        "recent_values": 0.119,
        "ask_overlap": 1.216,
        "length": 0.542,
        "reflection_share": -0.078,
        "question_number": 0.193,
        "answer_word": 0.35,
        "agrees_weak": -0.455,
        "coverage": 1.564,
        "after_coverage": -0.476,
        "since_coverage": 0.282,
        "explore_turn": -0.407,
        "stable": -1.412,
        "checks_since": 1.867,
        "check_x_support": 0.805,
        "reflection_x_mentions": -0.208,
        "open_results": -0.664,
        "open_any": 1.035,
        "latest_used": 0.341,
        "n_results": 1.115,
        "used_coverage": -0.917,
        "since_used_coverage": 0.741,
    }
)

#: Per-model stop thresholds calibrated on the dev half (the most thinking removed with the gold answer
#: kept in >= 99% of that model's dev traces); any other model gets the default 0.5 (the strictest).
MODEL_THRESHOLDS: Mapping[str, float] = MappingProxyType({"deepseek-r1": 0.1824, "qwq-32b": 0.5})


DEFAULT_THRESHOLD = 0.5


def model_threshold(model: str | None) -> float:
    """The calibrated stop threshold of a model name (:data:`DEFAULT_THRESHOLD` when it has none)."""
    name = (model or "").lower()
    if "qwq" in name:
        return MODEL_THRESHOLDS["qwq-32b"]
    if ("deepseek-r1" in name or "deepseek-reasoner" in name) and "distill" not in name:
        return MODEL_THRESHOLDS["deepseek-r1"]
    return DEFAULT_THRESHOLD


def word_numbers(text: str) -> set[str]:
    return {_NUMBER_WORDS[w] for w in _WORD.findall(text.lower()) if w in _NUMBER_WORDS}


def sentence_at(text: str, pos: int) -> str:
    """The sentence of ``text`` around offset ``pos``."""
    a = max(text.rfind(". ", 0, pos), text.rfind("\n", 0, pos)) + 1
    ends = [i for i in (text.find(". ", pos), text.find("\n", pos)) if i >= 0]
    return text[a : min(ends) + 1 if ends else len(text)]
