"""Parsing JSON and JSON-like tool output without ever evaluating code."""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

_FENCE = re.compile(r"^\s*```(?:json|javascript|js|python)?\s*\n(.*?)\n\s*```\s*$", re.S | re.I)
_MAX_LITERAL_CHARS = 2_000_000


def looks_like_json(text: str) -> bool:
    """True when the text starts like a JSON object or array (after white space / a code fence)."""
    s = text.lstrip()
    if s.startswith("```"):
        m = _FENCE.match(text)
        s = m.group(1).lstrip() if m else s
    return s[:1] in ("{", "[")


class RawNumber:
    """A JSON number kept as written (``1.50``, ``1e999``, ``NaN``) where a float would change it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _exact_float(literal: str) -> float | RawNumber:
    value = float(literal)
    return value if repr(value) == literal else RawNumber(literal)


def _literal(text: str) -> Any:
    """``ast.literal_eval`` without the parser's warnings (``'\\d'`` in a tool output is data, not a bug
    in the caller's code; Python 3.12+ would print a SyntaxWarning for it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.literal_eval(text)


def parse_json_like(text: str, exact_numbers: bool = False) -> tuple[Any, str] | None:
    """Parse JSON, fenced JSON, JSON lines or a Python literal (``ast.literal_eval``, never ``eval``).

    Returns:
        ``(value, form)`` with form ``"json"``, ``"jsonl"`` or ``"pyliteral"``, or ``None`` when the
        text is not structured data (including invalid JSON that merely looks like JSON).
    With ``exact_numbers``, a JSON number that a float would print differently (``1.50``, ``1e999``)
    or a ``NaN``/``Infinity`` constant is kept as a :class:`RawNumber`; Python literals whose floats
    are not finite are not parsed (they have no JSON form).
    """
    loads: Any = json.loads
    if exact_numbers:
        def loads(s: str) -> Any:
            return json.loads(s, parse_float=_exact_float, parse_constant=RawNumber)

    m = _FENCE.match(text)
    body = m.group(1) if m else text
    stripped = body.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = loads(stripped)
        return (value, "json") if isinstance(value, (dict, list)) else None
    except (ValueError, RecursionError):
        pass
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    if len(lines) > 1 and all(ln.lstrip()[:1] == "{" for ln in lines):
        try:
            return [loads(ln) for ln in lines], "jsonl"
        except (ValueError, RecursionError):
            pass
    if len(stripped) <= _MAX_LITERAL_CHARS:
        try:
            value = _literal(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        if isinstance(value, (dict, list)):
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                return None
            return value, "pyliteral"
    return None
