"""Segmentation of text into units: words, sentences, lines, paragraphs.

Units of one segmentation tile the text exactly: ``"".join(u.text for u in units) == text``. Each
unit carries its trailing white space, so keeping every unit gives the input back byte for byte, and
keeping a subset never glues two words together. Words never split inside URLs, ids, numbers, dates
or code names; scripts written without spaces (CJK) split per character, never per byte.

Example:
    >>> from agent_tokred.units import segment
    >>> [u.text for u in segment("See https://x.org/a.b. Then stop.", "sentence")]
    ['See https://x.org/a.b. ', 'Then stop.']
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ._patterns import ABBREVIATIONS, CJK, PROTECTED, WORD
from ._protected_fast import strictly_inside_protected

Granularity = Literal["word", "sentence", "line", "paragraph"]
GRANULARITIES: tuple[Granularity, ...] = ("word", "sentence", "line", "paragraph")

UnitKind = Literal["word", "sentence", "line", "paragraph", "field", "item", "row", "document", "message", "step"]


@dataclass(frozen=True, slots=True)
class Unit:
    """One scorable piece of an input.

    Attributes:
        text: the exact text of the unit (for text segmentations, including trailing white space).
        start: offset of the unit in its source text (``-1`` for units that are not spans of a text).
        kind: what the unit is.
        index: position among its siblings.
        group: index of the enclosing block (paragraph, document, JSON container) for context.
        path: location in structured data (``$.items[3].name``), empty for plain text.
        protected: force-kept: kept whenever anything at all can be kept.
    """

    text: str
    start: int = -1
    kind: UnitKind = "word"
    index: int = 0
    group: int = 0
    path: str = ""
    protected: bool = False

    @property
    def end(self) -> int:
        return self.start + len(self.text)


_PARA_BREAK = re.compile(r"\n[ \t]*\n\s*")
#: = ``(?:[.!?…]+["'”’)\]]*|[。！？]+[」』）]*)(?=\s|$)|[。！？]+[」』）]*|\n``, written to start with one character
#: class (the branches then tell by look-behind which one it was), so the engine skips to candidates.
_SENT_END = re.compile(
    r"[.!?…。！？\n](?:(?<=[.!?…])[.!?…]*[\"'”’)\]]*(?=\s|$)|(?<=[。！？])[。！？]*[」』）]*(?=\s|$)"
    r"|(?<=[。！？])[。！？]*[」』）]*|(?<=\n))"
)


def segment(text: str, granularity: Granularity = "sentence") -> list[Unit]:
    """Split ``text`` into units that tile it exactly.

    Args:
        text: any text; may be empty (gives no units).
        granularity: ``"word"``, ``"sentence"``, ``"line"`` or ``"paragraph"``.

    Returns:
        Units in order, each with ``group`` set to its paragraph index.

    Raises:
        ValueError: unknown granularity.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
    if not text:
        return []
    cuts = {"word": _word_cuts, "sentence": _sentence_cuts, "line": _line_cuts, "paragraph": _para_cuts}[
        granularity
    ](text)
    return _units_from_cuts(text, cuts, granularity)


def _units_from_cuts(text: str, cuts: Sequence[int], kind: Granularity) -> list[Unit]:
    bounds = sorted({0, *(c for c in cuts if 0 < c < len(text)), len(text)})
    para_starts = [0, *(m.end() for m in _PARA_BREAK.finditer(text))]
    units: list[Unit] = []
    p = 0
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        while p + 1 < len(para_starts) and para_starts[p + 1] <= a:
            p += 1
        units.append(Unit(text=text[a:b], start=a, kind=kind, index=i, group=p))
    return units


def _absorb_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _word_cuts(text: str) -> list[int]:
    # A unit starts at each word; leading white space of the text joins the first unit.
    return [m.start() for m in WORD.finditer(text)]


def _is_abbreviation(text: str, end: int) -> bool:
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:end].rstrip(".").lower()
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _sentence_cuts(text: str) -> list[int]:
    # A sentence end inside a protected span (a URL, path or name holding its punctuation) is no cut.
    # Only the candidates' own chunks are scanned for spans; a newline is never inside one.
    inside = strictly_inside_protected(text)
    cuts: list[int] = []
    for m in _SENT_END.finditer(text):
        start, end = m.span()
        if text[start] != "\n" and inside(start, end - 1):
            continue
        if text[start] == "." and _is_abbreviation(text, start + 1):
            continue
        cuts.append(_absorb_space(text, end))
    return cuts


def _line_cuts(text: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\n", text)]


def _para_cuts(text: str) -> list[int]:
    return [m.end() for m in _PARA_BREAK.finditer(text)]


def protected_spans(text: str) -> list[str]:
    """Return the atomic spans (URLs, ids, numbers, dates, code names) found in ``text``."""
    return [m.group() for m in PROTECTED.finditer(text)]


def has_cjk(text: str) -> bool:
    """True when ``text`` contains characters of scripts written without spaces."""
    return CJK.search(text) is not None
