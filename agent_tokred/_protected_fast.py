"""The protected-span pattern, specialised per text to the alternatives that can match in it.

:data:`agent_tokred._patterns.PROTECTED` is an ordered alternation (URL, e-mail, UUID, date, hex,
path, three kinds of code names, time, number). Trying every alternative at every position is what
makes lexical scoring slow on prose (the e-mail and code alternatives rescan each word). An
alternative that cannot match anywhere in a text contributes nothing to a leftmost-first search, so
dropping it gives the same matches. Each alternative here has a necessary condition that costs a
substring test (a character every match contains); :func:`protected_for` compiles, once per subset,
the alternation of those that pass, in the original order.

Example:
    >>> protected_for("plain words only").pattern == protected_for("more words").pattern
    True
    >>> protected_for("call foo.bar() at 12:30").findall("call foo.bar() at 12:30")
    ['foo.bar()', '12:30']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from . import _patterns as p
from ._patterns import CJK

_DIGIT = re.compile(r"\d")


def split_top_level(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression (``|`` outside groups and classes)."""
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":  # a leading "]" is literal
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _code_parts() -> tuple[str, str, str]:
    parts = split_top_level(p._CODE)
    if len(parts) != 3:  # pragma: no cover - guards an edit of _patterns._CODE
        raise RuntimeError("_patterns._CODE changed shape; update _protected_fast")
    return parts[0], parts[1], parts[2]


_CODE_DOTTED, _CODE_SNAKE, _CODE_CAMEL = _code_parts()

# (pattern, necessary condition on the text given whether it holds a digit), in PROTECTED's order.
ALTERNATIVES: tuple[tuple[str, Callable[[str, bool], bool]], ...] = (
    (p._URL, lambda t, d: "://" in t),
    (p._EMAIL, lambda t, d: "@" in t),
    (p._UUID, lambda t, d: "-" in t),
    (p._DATE, lambda t, d: d and "-" in t),
    (p._HEX, lambda t, d: d),
    (p._PATH, lambda t, d: "/" in t),
    (_CODE_DOTTED, lambda t, d: "." in t or "/" in t or ":" in t or "->" in t),
    (_CODE_SNAKE, lambda t, d: "_" in t),
    (_CODE_CAMEL, lambda t, d: True),
    (p._TIME, lambda t, d: d and ":" in t),
    (p._NUMBER, lambda t, d: d),
)
_TERM_TAIL = rf"{CJK.pattern}|\w+"


def _mask(text: str) -> int:
    digit = _DIGIT.search(text) is not None
    mask = 0
    for bit, (_, possible) in enumerate(ALTERNATIVES):
        if possible(text, digit):
            mask |= 1 << bit
    return mask


@lru_cache(maxsize=2048)
def _compiled(mask: int, terms: bool) -> re.Pattern[str]:
    alts = "|".join(pat for bit, (pat, _) in enumerate(ALTERNATIVES) if mask >> bit & 1)
    if terms:
        return re.compile(f"(?:{alts})|{_TERM_TAIL}" if alts else _TERM_TAIL)
    return re.compile(alts or "(?!)")


def protected_for(text: str) -> re.Pattern[str]:
    """A pattern with the same matches in ``text`` as ``PROTECTED`` (only there: it is specialised)."""
    return _compiled(_mask(text), False)


def term_pattern_for(text: str) -> re.Pattern[str]:
    """The lexical criterion's term pattern (protected span | CJK character | word), specialised to ``text``."""
    return _compiled(_mask(text), True)


def protected_spans_of(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every ``PROTECTED`` match in ``text``, line by line with specialised patterns.

    No alternative matches across a newline, so scanning each line on its own (the pattern still sees
    the characters around the line for its look-behinds and word boundaries) finds the same matches.
    """
    spans: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start)
        end = n if end < 0 else end
        if end > start:
            line = text[start:end]
            spans.extend(m.span() for m in protected_for(line).finditer(text, start, end))
        start = end + 1
    return spans
