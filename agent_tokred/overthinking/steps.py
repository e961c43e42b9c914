"""Segmentation of reasoning text into steps: the units of the overthinking detector.

A step is a paragraph, or the part of a paragraph that starts with a reflection turn ("Wait, ...",
"Alternatively, ...", "Let me double-check ...", "等等，..."). Display equations (``\\[ ... \\]``,
``$$ ... $$``) stay inside their step and never split it. Steps tile the text exactly, each with its
trailing white space, so joining any prefix of them gives a prefix of the text.

Example:
    >>> from agent_tokred.overthinking.steps import segment_steps
    >>> [s.text for s in segment_steps("So 3*4 = 12. Wait, let me check. 3*4 is 12.")]
    ['So 3*4 = 12. ', 'Wait, let me check. 3*4 is 12.']
"""

from __future__ import annotations

import itertools
import re

from ..units import Unit

# Reflection turns at the start of a sentence: re-checking, hesitating, switching method.
_REFLECTION_EN = (
    r"wait|but wait|hold on|hmm+|alternatively|actually|oh|oops|"
    r"(?:but |so |now |okay,? |ok,? |well,? )?let me (?:just )?"
    r"(?:double[- ]?check|check|re-?check|verify|confirm|"
    r"make sure|re-?examine|re-?calculate|re-?compute|re-?verify|re-?read|think again|see again|"
    r"go (?:through|over)|try (?:another|a different)|cross-?check|ensure)|"
    r"(?:just )?to (?:double[- ]?check|verify|confirm|be (?:sure|safe|thorough)|make sure|cross-?check)|"
    r"double[- ]?check(?:ing)?|re-?check(?:ing)?|verif(?:y|ying|ication)|checking|"
    r"another (?:way|approach|check|method)|is there (?:another|any other)|"
    r"but (?:is|are|does|did|could|should|what if|maybe|perhaps|let me)|"
    r"i (?:think|should|need to|want to) (?:double[- ]?check|verify|confirm|make sure|check)"
)
_REFLECTION_ZH = r"等等|等一下|不过|但是|让我(?:再)?(?:检查|验证|确认|想想)|再(?:检查|验证|确认)|验证一下|或者|嗯"
REFLECTION = re.compile(rf"(?:\*\*)?(?:(?:{_REFLECTION_EN})\b|{_REFLECTION_ZH})", re.IGNORECASE)

_PARA_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Where a sentence may start inside a paragraph: after an end mark and spaces, or after a newline.
_SENTENCE_START = re.compile(r"(?:(?<=[.!?。！？])[ \t]+|\n[ \t]*|(?<=[。！？]))(?=\S)")
_MATH_BLOCK = re.compile(r"\\\[.*?\\\]|\$\$.*?\$\$", re.DOTALL)


def is_reflection(text: str) -> bool:
    """True when a step opens with a reflection turn ("Wait", "Let me verify", "Alternatively", ...)."""
    return REFLECTION.match(text.lstrip(" \t\n*#>-")) is not None


def segment_steps(text: str, offset: int = 0) -> list[Unit]:
    """Split reasoning text into step units that tile it exactly.

    Args:
        text: the thinking part of a trace (may be empty: no steps).
        offset: added to every unit's ``start`` (the thinking's offset in a larger text).

    Returns:
        ``Unit(kind="step")`` items in order; ``group`` is the paragraph index.
    """
    if not text:
        return []
    math = [(m.start(), m.end()) for m in _MATH_BLOCK.finditer(text)]
    para_starts = [0, *(m.end() for m in _PARA_BREAK.finditer(text))]
    cuts = set(para_starts)
    for a, b in zip(para_starts, [*para_starts[1:], len(text)]):
        for m in _SENTENCE_START.finditer(text, a, b):
            pos = m.end()
            if pos < b and not any(x < pos < y for x, y in math) and is_reflection(text[pos : pos + 80]):
                cuts.add(pos)
    bounds = sorted(c for c in cuts if 0 < c < len(text))
    bounds = [0, *bounds, len(text)]
    steps: list[Unit] = []
    p = 0
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        while p + 1 < len(para_starts) and para_starts[p + 1] <= a:
            p += 1
        steps.append(Unit(text=text[a:b], start=offset + a, kind="step", index=i, group=p))
    return steps
