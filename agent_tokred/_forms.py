"""What kind of text an input is (JSON, line-oriented, prose) and how pruned lines are rendered."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from ._jsonlike import parse_json_like
from .units import Unit

_LOG_LINE = re.compile(r"^\s*(?:\[?\d{4}-\d{2}-\d{2}|\[?\d{2}:\d{2}|(?:DEBUG|INFO|WARN|WARNING|ERROR|TRACE|FATAL)\b|[|+])")


def detect_form(text: str) -> Literal["json", "lines", "prose"]:
    """Guess whether ``text`` is JSON(-like), line-oriented (logs, tables, listings) or prose."""
    if parse_json_like(text) is not None:
        return "json"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) >= 6 and len(text) / len(lines) < 240:
        logs = sum(1 for ln in lines if _LOG_LINE.match(ln) or "\t" in ln)
        # A table has the same number of delimiters on most lines; prose merely has commas.
        commas = Counter(ln.count(",") for ln in lines).most_common(1)[0]
        table = commas[0] >= 2 and commas[1] >= 0.7 * len(lines)
        unpunctuated = sum(1 for ln in lines if not ln.rstrip().endswith((".", "!", "?", ":", "。")))
        if logs >= 0.5 * len(lines) or table or (unpunctuated >= 0.7 * len(lines) and len(text) / len(lines) < 160):
            return "lines"
    return "prose"


def render_lines(units: Sequence[Unit], keep: Sequence[int]) -> str:
    """Join kept lines; each run of dropped lines becomes one ``… [N lines omitted]`` line."""
    out: list[str] = []
    prev = -1
    for i in [*keep, len(units)]:
        gap = i - prev - 1
        if gap > 0:
            out.append(f"… [{gap} line{'s' if gap != 1 else ''} omitted]\n")
        if i < len(units):
            text = units[i].text
            out.append(text if text.endswith("\n") or i == len(units) - 1 else text + "\n")
        prev = i
    return "".join(out).rstrip("\n") if not units[-1].text.endswith("\n") else "".join(out)


def has_header(units: Sequence[Unit]) -> bool:
    first = units[0].text
    return any(d in first for d in ("\t", ",", "|")) or not _LOG_LINE.match(first)
