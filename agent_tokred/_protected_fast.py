"""The protected-span pattern, specialised per text to the alternatives that can match in it.

:data:`agent_tokred._patterns.PROTECTED` is an ordered alternation (URL, e-mail, UUID, date, hex,
path, three kinds of code names, time, number). Trying every alternative at every position is what
makes lexical scoring slow on prose (the e-mail and code alternatives rescan each word). An
alternative that cannot match anywhere in a text contributes nothing to a leftmost-first search, so
dropping it gives the same matches. Each alternative here has a necessary condition that costs a
substring test or one short search (characters every match contains: a separator followed by a
letter for dotted names, a lower-case letter before an upper-case one for camelCase, seven hex
digits in a row for hex ids); :func:`protected_for` compiles, once per subset, the alternation of
those that pass, in the original order.

Example:
    >>> protected_for("plain words only").pattern == protected_for("more words").pattern
    True
    >>> protected_for("call foo.bar() at 12:30").findall("call foo.bar() at 12:30")
    ['foo.bar()', '12:30']
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import lru_cache
from operator import itemgetter
from typing import Any

from . import _patterns as p
from ._patterns import CJK

_DIGIT = re.compile(r"\d")
_SEP_LETTER = re.compile(r"[.:/>][A-Za-z_]")  # a dotted name's separator (., ::, ->, /) and the name after it
_LOWER_UPPER = re.compile(r"[a-z][A-Z]")  # camelCase
_HEX_RUN = re.compile(r"[0-9a-fA-F][0-9a-fA-F]{6}")  # = [0-9a-fA-F]{7}, with a first character class to skip to


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
    (p._HEX, lambda t, d: d and _HEX_RUN.search(t) is not None),
    (p._PATH, lambda t, d: "/" in t),
    (_CODE_DOTTED, lambda t, d: _SEP_LETTER.search(t) is not None),
    (_CODE_SNAKE, lambda t, d: "_" in t),
    (_CODE_CAMEL, lambda t, d: _LOWER_UPPER.search(t) is not None),
    (p._TIME, lambda t, d: d and ":" in t),
    (p._NUMBER, lambda t, d: d),
)
_TERM_TAIL = rf"{CJK.pattern}|\w+"

# The same alternatives, rewritten so that each branch starts by consuming a character class (the word
# boundary or look-behind moves after it: ``\bX`` = ``X(?<!\w.)`` for a word character ``X``), split
# where a branch had optional leading parts. The regex engine tests a branch's first character class
# before entering it, so at most word starts only the branches that can start there are tried. Same
# matches as :data:`ALTERNATIVES` (a test compares them on generated text).
_H = "[0-9a-fA-F]"
_URL_TAIL = r"://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
_NUM_TAIL = r"(?:[,_]\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?%?(?![\w])"
_FAST: tuple[tuple[str, ...], ...] = (
    (rf"https?{_URL_TAIL}", rf"f(?:tp|ile){_URL_TAIL}"),
    (r"[\w.+-][\w.+-]*@[\w-]+(?:\.[\w-]+)+",),
    (rf"{_H}(?<!\w.){_H}{{7}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}\b",),
    (r"\d(?<!\w.)\d{3}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b",),
    (rf"{_H}(?<!\w.)(?:(?<=0)x(?={_H}*\d)(?={_H}*[a-fA-F]){_H}{{7,}}\b"
     rf"|(?:(?<=[0-9])|(?={_H}*\d))(?:(?<=[a-fA-F])|(?={_H}*[a-fA-F])){_H}{{6,}}\b)",),
    (r"~(?<!\w.)(?:/[\w.@-]+){2,}/?", r"\.(?<!\w.)\.?(?:/[\w.@-]+){2,}/?", r"/(?<!\w.)[\w.@-]+(?:/[\w.@-]+)+/?"),
    (r"[A-Za-z_](?<!\w.)\w*(?:(?:\.|::|->|/)[A-Za-z_]\w*)+(?:\(\))?",),
    (r"[A-Za-z](?<!\w.)[A-Za-z]*_\w+\b",),
    (r"[a-z](?<!\w.)[a-z]*[A-Z]\w*\b",),
    (r"\d(?<!\w.)\d?:\d{2}(?::\d{2})?\b",),
    (rf"[-+](?<![\w.].)[$€£]?\d+{_NUM_TAIL}", rf"[$€£](?<![\w.].)\d+{_NUM_TAIL}", rf"\d(?<![\w.].)\d*{_NUM_TAIL}"),
)
if len(_FAST) != len(ALTERNATIVES):  # pragma: no cover - guards an edit of ALTERNATIVES
    raise RuntimeError("_FAST must rewrite every alternative of ALTERNATIVES")


def fast_alternation(mask: int) -> str:
    """The alternation of the alternatives in ``mask`` (bits as in :data:`ALTERNATIVES`), in their fast form."""
    return "|".join(pat for bit, pats in enumerate(_FAST) if mask >> bit & 1 for pat in pats)


def reference_mask(text: str) -> int:
    """The bits of the alternatives whose necessary condition holds in ``text`` (the conditions as listed)."""
    digit = _DIGIT.search(text) is not None
    mask = 0
    for bit, (_, possible) in enumerate(ALTERNATIVES):
        if possible(text, digit):
            mask |= 1 << bit
    return mask


def _mask(text: str) -> int:
    """:func:`reference_mask`, the conditions written out (no call per alternative; a test compares them)."""
    mask = 0
    if "://" in text:
        mask |= 1
    if "@" in text:
        mask |= 2
    if "/" in text:
        mask |= 32
    if "_" in text:
        mask |= 128
    if _SEP_LETTER.search(text) is not None:
        mask |= 64
    if _LOWER_UPPER.search(text) is not None:
        mask |= 256
    if _DIGIT.search(text) is None:
        return mask | (4 if "-" in text else 0)
    mask |= 1024
    if "-" in text:
        mask |= 4 | 8
    if ":" in text:
        mask |= 512
    if _HEX_RUN.search(text) is not None:
        mask |= 16
    return mask


@lru_cache(maxsize=2048)
def _compiled(mask: int, terms: bool) -> re.Pattern[str]:
    alts = fast_alternation(mask)
    if terms:
        return re.compile(f"(?:{alts})|{_TERM_TAIL}" if alts else _TERM_TAIL)
    return re.compile(alts or "(?!)")


def protected_for(text: str) -> re.Pattern[str]:
    """A pattern with the same matches in ``text`` as ``PROTECTED`` (only there: it is specialised)."""
    return _compiled(_mask(text), False)


def term_pattern_for(text: str) -> re.Pattern[str]:
    """The lexical criterion's term pattern (protected span | CJK character | word), specialised to ``text``."""
    return _compiled(_mask(text), True)


@lru_cache(maxsize=2048)
def _grouped(mask: int) -> re.Pattern[str]:
    alts = fast_alternation(mask)
    return re.compile(f"({alts or '(?!)'})|({_TERM_TAIL})")


def terms_and_protected(text: str) -> tuple[tuple[str, ...], int]:
    """The lexical terms of ``text`` (lower-cased) and its number of ``PROTECTED`` matches, from one scan.

    The term pattern tries the protected alternatives first at every position it visits; the only
    positions the protected scan alone visits on top are inside a word it consumed, where nothing but
    a URL can start (every other alternative starts at a word boundary or after a non-word character,
    and an e-mail that matched inside a word would have matched at its start). So without ``://`` the
    protected terms are exactly the protected matches; with it the protected scan runs on its own.

    Example:
        >>> terms_and_protected("Call foo.bar() at 12:30")
        (('call', 'foo.bar()', 'at', '12:30'), 2)
    """
    mask = _mask(text)
    pairs: list[tuple[str, str]] = _grouped(mask).findall(text)
    if not pairs:
        return (), 0
    # Lower-cased together: no term holds a newline, and a newline stops the context of a final sigma.
    terms = tuple("\n".join(map(max, pairs)).lower().split("\n"))  # max: the one non-empty group
    if "://" in text:
        return terms, len(_compiled(mask, False).findall(text))
    return terms, len(pairs) - list(map(_first, pairs)).count("")


_first = itemgetter(0)
_SPACE = re.compile(r"\s")


@lru_cache(maxsize=8192)
def _chunk_spans(chunk: str) -> tuple[list[int], list[int]]:
    spans = [m.span() for m in protected_for(chunk).finditer(chunk)]
    return [a for a, _ in spans], [b for _, b in spans]


def _delimits(text: str, i: int) -> bool:
    """``text[i]`` (white space) ends every ``PROTECTED`` match: only a date's one space between digits does not."""
    return not (text[i] == " " and 0 < i < len(text) - 1 and text[i - 1].isdecimal() and text[i + 1].isdecimal())


def strictly_inside_protected(text: str) -> Callable[[int, int], bool]:
    """A test ``inside(p, q)``: is ``p`` or ``q`` strictly inside (not at the start of) a ``PROTECTED`` match?

    The matches are those of ``PROTECTED.finditer(text)``, found only where asked: no match holds
    white space except a date's one space between digits, so the text falls into chunks between
    the other white space, and no match crosses a chunk's edge; the scan of the whole text reaches
    each chunk afresh, and the patterns see white space around it as they see a string's ends. So
    a chunk's matches are those of the chunk scanned on its own (cached per chunk text). ``p`` and
    ``q`` must lie in one chunk and calls must come in increasing order (sentence-end candidates).

    Example:
        >>> inside = strictly_inside_protected("see /usr/lib. and x. now")
        >>> inside(12, 12), inside(19, 19)
        (True, False)
    """
    n = len(text)
    chunk: list[Any] = [0, 0, ([], [])]  # [start, end, spans relative to start] of the chunk last asked about

    def inside(p: int, q: int) -> bool:
        a, b, spans = chunk
        if not a <= p < b:
            a = p
            while a > b and not (text[a - 1].isspace() and _delimits(text, a - 1)):
                a -= 1  # back to the chunk's start (never before the last chunk's end: O(n) in all)
            b = q + 1
            while True:
                m = _SPACE.search(text, b)
                if m is None:
                    b = n
                    break
                b = m.start()
                if _delimits(text, b):
                    break
                b += 1
            spans = _chunk_spans(text[a:b])
            chunk[:] = [a, b, spans]
        starts, ends = spans
        if not starts:
            return False
        for x in (p - a, q - a):
            k = bisect.bisect_left(starts, x) - 1  # matches do not overlap: only the last one starting before x
            if k >= 0 and x < ends[k]:
                return True
        return False

    return inside


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
