"""Incremental step segmentation: the steps of :func:`segment_steps`, found as the text streams in.

Text is fed in chunks of any size. Only the open step (from the last boundary on) is kept and only
its tail is scanned, so a chunk costs time in its own length plus a bounded look-back, never in the
length of the prefix. A boundary is confirmed once the text after it decides it (the next
non-blank character after a blank line; enough characters after a sentence start to tell whether it
opens a reflection turn), so closed steps never change. On the real traces the closed steps are
the steps of :func:`~agent_tokred.overthinking.steps.segment_steps` on the whole text.

Example:
    >>> seg = IncrementalSteps()
    >>> closed = [s for part in ("So 3*4 = 12. Wa", "it, let me check. ", "3*4 is 12.") for s in seg.feed(part)]
    >>> [s.text for s in closed + seg.finish()]
    ['So 3*4 = 12. ', 'Wait, let me check. 3*4 is 12.']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .steps import REFLECTION

_PARA = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_START = re.compile(r"(?:(?<=[.!?。！？])[ \t]+|\n[ \t]*|(?<=[。！？]))(?=\S)")
_MATH_OPEN = re.compile(r"\\\[|\$\$")
_MATH_BLOCK = re.compile(r"\\\[.*?\\\]|\$\$.*?\$\$", re.DOTALL)
_STRIP = " \t\n*#>-"
_HEAD_WINDOW = 80  # segment_steps reads a sentence start's next 80 characters


@dataclass(frozen=True, slots=True)
class StreamStep:
    """A closed step: its text and offset in the streamed text, and whether it opens a reflection turn."""

    text: str
    start: int
    index: int
    reflection: bool


def head_is_reflection(text: str, *, final: bool) -> bool | None:
    """Whether ``text`` opens with a reflection turn; ``None`` while more text could change the answer.

    ``text`` is the raw window after a sentence start (at most ``_HEAD_WINDOW`` characters, as
    :func:`~agent_tokred.overthinking.steps.segment_steps` reads it): once the window is full, or
    ``final``, the answer is decided. (The window is measured before stripping list bullets and
    emphasis: measured after, a "- item" line would never be decided and the stream would stall.)
    """
    complete = final or len(text) >= _HEAD_WINDOW
    t = text.lstrip(_STRIP)
    m = REFLECTION.match(t)
    if m is not None and (m.end() < len(t) or complete):
        return True
    if m is None and complete:
        return False
    return None


class IncrementalSteps:
    """Finds step boundaries in streamed text; closed steps come out of :meth:`feed` in order."""

    def __init__(self) -> None:
        self.open = ""  # the open step's text so far
        self.open_start = 0  # its offset in the whole text
        self.index = 0  # index of the open step
        self.open_reflection: bool | None = None  # decided once its head is known
        self._scan = 0  # candidate boundaries before this offset (in ``open``) are resolved

    @property
    def length(self) -> int:
        """Characters fed so far."""
        return self.open_start + len(self.open)

    def feed(self, text: str) -> list[StreamStep]:
        """Add text; returns the steps this text closed (possibly none)."""
        if not text:
            return []
        self.open += text
        return self._advance(final=False)

    def finish(self) -> list[StreamStep]:
        """The stream ended: close the open step (returns the remaining steps)."""
        out = self._advance(final=True)
        if self.open:
            out.append(self._close(len(self.open), final=True))
        return out

    def head_reflection(self, final: bool = False) -> bool | None:
        """Whether the open step opens with a reflection turn (``None``: not decided yet)."""
        if self.open_reflection is None:
            self.open_reflection = head_is_reflection(self.open[:_HEAD_WINDOW], final=final)
        return self.open_reflection

    def _advance(self, final: bool) -> list[StreamStep]:
        out: list[StreamStep] = []
        while True:
            found = self._next_boundary(final)
            if found is None:
                return out
            pos, next_reflection = found
            out.append(self._close(pos, final=False))
            self.open_reflection = next_reflection

    def _close(self, pos: int, final: bool) -> StreamStep:
        text = self.open[:pos]
        refl = self.open_reflection
        if refl is None:
            refl = head_is_reflection(text[:_HEAD_WINDOW], final=True)
        step = StreamStep(text, self.open_start, self.index, bool(refl))
        self.open = self.open[pos:]
        self.open_start += pos
        self.index += 1
        self._scan = 0
        self.open_reflection = None
        return step

    def _next_boundary(self, final: bool) -> tuple[int, bool | None] | None:
        """The next confirmed boundary in ``open`` and whether the step it opens is a reflection turn.

        ``None`` when no boundary is confirmed yet (``_scan`` moves past what is resolved).
        """
        text = self.open
        start = self._scan
        while start > 0 and text[start - 1].isspace():
            start -= 1
        para = [m for m in _PARA.finditer(text, start) if m.end() >= max(self._scan, 1)]
        para_end = None
        limit = len(text)
        for m in para:
            if m.end() < len(text) and m.end() > 0:
                para_end = m.end()
                break
            limit = m.start()  # blank run reaching the end: the next step's start is not known yet
            break
        stop = para_end if para_end is not None else limit
        spans = self._math_spans(text, stop, final)
        for m in _SENTENCE_START.finditer(text, start, stop):
            pos = m.end()
            if pos < max(self._scan, 1) or pos >= stop:
                continue
            if spans is None or any(a < pos < b for a, b in spans):
                if spans is None and para_end is None:
                    self._scan = pos
                    return None
                continue
            refl = head_is_reflection(text[pos : pos + _HEAD_WINDOW], final=final)
            if refl is None:
                self._scan = pos
                return None
            if refl:
                return pos, True
        if para_end is not None:
            return para_end, None
        self._scan = max(self._scan, min(stop, len(text)))
        return None

    @staticmethod
    def _math_spans(text: str, stop: int, final: bool) -> list[tuple[int, int]] | None:
        """Display-math spans in ``text``; ``None`` when a block is still open (positions undecided)."""
        if "\\[" not in text and "$$" not in text:
            return []
        spans = [(m.start(), m.end()) for m in _MATH_BLOCK.finditer(text)]
        last_end = spans[-1][1] if spans else 0
        if not final and _MATH_OPEN.search(text, last_end, stop) is not None:
            return None
        return spans
