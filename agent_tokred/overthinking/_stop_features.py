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
        "bias": -8.111,
        "reflection": 0.653,
        "check_turn": 0.412,
        "support": -0.129,
        "mentions": 1.376,
        "strong": 4.101,
        "has_answer": 1.723,
        "prev_concluded": -0.061,
        "prev_confirms": 0.755,
        "prev_redundancy": -0.422,
        "age": 0.289,
        "recent_values": 0.389,
        "ask_overlap": 2.637,
        "length": 0.8,
        "reflection_share": -1.298,
        "question_number": 0.123,
        "answer_word": 0.324,
        "agrees_weak": -0.569,
        "coverage": 0.898,
        "after_coverage": -0.52,
        "since_coverage": 0.662,
        "explore_turn": -0.538,
        "stable": -1.54,
        "checks_since": 2.352,
        "check_x_support": 0.861,
        "reflection_x_mentions": -0.153,
    }
)


def word_numbers(text: str) -> set[str]:
    return {_NUMBER_WORDS[w] for w in _WORD.findall(text.lower()) if w in _NUMBER_WORDS}


def sentence_at(text: str, pos: int) -> str:
    """The sentence of ``text`` around offset ``pos``."""
    a = max(text.rfind(". ", 0, pos), text.rfind("\n", 0, pos)) + 1
    ends = [i for i in (text.find(". ", pos), text.find("\n", pos)) if i >= 0]
    return text[a : min(ends) + 1 if ends else len(text)]
