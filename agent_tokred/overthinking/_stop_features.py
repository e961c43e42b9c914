"""Features of the online stop rule: phrase patterns, number words, the fitted weights.

Kept apart from :mod:`.online` so the rule's logic reads on its own; the weights are refitted with
``python -m bench._overthinking_tune`` (on the dev half of the real traces only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

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
)

#: Fitted on the even half of the dev traces (``python -m bench._overthinking_tune``); a stop is a score > 0.5.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "bias": -8.084,
        "reflection": 0.682,
        "check_turn": 0.399,
        "support": 0.155,
        "mentions": 1.367,
        "strong": 4.171,
        "has_answer": 1.614,
        "prev_concluded": -0.175,
        "prev_confirms": 0.886,
        "prev_redundancy": -0.438,
        "age": 0.252,
        "recent_values": 0.399,
        "ask_overlap": 2.617,
        "length": 0.733,
        "reflection_share": -1.023,
        "question_number": 0.13,
        "answer_word": 0.35,
        "agrees_weak": -0.56,
        "coverage": 0.691,
        "after_coverage": -0.591,
        "since_coverage": 0.723,
        "explore_turn": -0.509,
        "stable": -1.5,
        "checks_since": 2.246,
        "check_x_support": 0.86,
        "reflection_x_mentions": -0.19,
    }
)


def word_numbers(text: str) -> set[str]:
    return {_NUMBER_WORDS[w] for w in _WORD.findall(text.lower()) if w in _NUMBER_WORDS}


def sentence_at(text: str, pos: int) -> str:
    """The sentence of ``text`` around offset ``pos``."""
    a = max(text.rfind(". ", 0, pos), text.rfind("\n", 0, pos)) + 1
    ends = [i for i in (text.find(". ", pos), text.find("\n", pos)) if i >= 0]
    return text[a : min(ends) + 1 if ends else len(text)]
