"""Parsing JSON and JSON-like tool output without ever evaluating code."""

from __future__ import annotations

import ast
import json
import re
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


def parse_json_like(text: str) -> tuple[Any, str] | None:
    """Parse JSON, fenced JSON, JSON lines or a Python literal (``ast.literal_eval``, never ``eval``).

    Returns:
        ``(value, form)`` with form ``"json"``, ``"jsonl"`` or ``"pyliteral"``, or ``None`` when the
        text is not structured data (including invalid JSON that merely looks like JSON).
    """
    m = _FENCE.match(text)
    body = m.group(1) if m else text
    stripped = body.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = json.loads(stripped)
        return (value, "json") if isinstance(value, (dict, list)) else None
    except (ValueError, RecursionError):
        pass
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    if len(lines) > 1 and all(ln.lstrip()[:1] == "{" for ln in lines):
        try:
            return [json.loads(ln) for ln in lines], "jsonl"
        except (ValueError, RecursionError):
            pass
    if len(stripped) <= _MAX_LITERAL_CHARS:
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        if isinstance(value, (dict, list)):
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                return None
            return value, "pyliteral"
    return None
