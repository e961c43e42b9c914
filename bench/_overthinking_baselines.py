"""The overthinking bench's baselines: cut at the first "Wait" after the answer appears, or at a fixed share.

A method maps a trace record to its kept thinking (``None``: not a trace); a cut puts the detector's
marker, with the removed token count, where the thinking was cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agent_tokred.overthinking import OverthinkingConfig, segment_steps, split_trace
from agent_tokred.overthinking.answers import final_answer, mentions
from agent_tokred.tokens import resolve_counter

COUNTER = resolve_counter()
MARKER = OverthinkingConfig().marker
_WAIT = re.compile(r"[\s*#>-]*(?:but\s+)?wait\b", re.IGNORECASE)

# A method maps (record) -> kept thinking (None: not a trace).
Method = Callable[[dict[str, Any]], "str | None"]


def _cut_at(thinking: str, char: int | None) -> str:
    if char is None:
        return thinking
    removed = COUNTER.count(thinking[char:])
    return thinking[:char] + MARKER.replace("{tokens}", str(removed)) if removed else thinking


def wait_after_first_answer(r: dict[str, Any]) -> str | None:
    """Baseline: cut at the first step opening with "Wait" after the conclusion's answer first appears."""
    split = split_trace(r["trace"])
    if split.form == "not_a_trace":
        return None
    answer = final_answer(split.answer)
    first = mentions(split.thinking, answer)[0] if answer and mentions(split.thinking, answer) else None
    if first is None:
        return split.thinking
    for step in segment_steps(split.thinking):
        if step.start > first and _WAIT.match(step.text):
            return _cut_at(split.thinking, step.start)
    return split.thinking


def fixed_fraction(frac: float) -> Method:
    """Baseline: cut at the first step boundary past ``frac`` of the thinking tokens."""

    def run(r: dict[str, Any]) -> str | None:
        split = split_trace(r["trace"])
        if split.form == "not_a_trace":
            return None
        steps = segment_steps(split.thinking)
        total = COUNTER.count(split.thinking)
        acc = 0
        for step in steps:
            if acc >= frac * total and step.start > 0:
                return _cut_at(split.thinking, step.start)
            acc += COUNTER.count(step.text)
        return split.thinking

    return run
