"""Structured tool output in any of its usual formats, as one value tree plus a way back to that format.

JSON (also fenced, and Python literals) renders as compact JSON; JSON lines stay one record per
line; YAML stays YAML (block or flow, scalars as written); CSV, TSV and markdown tables stay
tables with their header. The compressor cuts every format into the same record and field units
(:class:`~agent_tokred.strategies.structured.JsonUnits`), so one strategy serves them all.

Example:
    >>> doc = parse_structured("- id: 1\\n  title: standup\\n- id: 2\\n  title: review\\n- id: 3\\n  title: lunch\\n")
    >>> doc.fmt, len(doc.root)
    ('yaml', 3)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._jsonlike import looks_like_json, parse_json_like
from ._tables import Row, Table, parse_table
from ._yaml import dump_yaml, parse_yaml
from .strategies.structured import dumps

StructuredFormat = Literal["json", "jsonl", "pyliteral", "yaml", "csv", "tsv", "markdown"]
_MARK = re.compile(r"^… (\d+) more items?$")


@dataclass(frozen=True)
class StructuredDoc:
    """A parsed input: its format, its value tree, and the renderer back to that format."""

    fmt: StructuredFormat
    root: Any
    dump: Callable[[Any], str]

    @property
    def empty_text(self) -> str:
        """The shortest valid rendering of this format (used when not even a skeleton fits)."""
        if self.fmt in ("json", "pyliteral"):
            return "{}" if isinstance(self.root, dict) else "[]"
        if self.fmt == "yaml":
            return "{}\n" if isinstance(self.root, dict) else "[]\n"
        return ""


def parse_structured(text: str, *, exact_numbers: bool = True) -> StructuredDoc | None:
    """Parse ``text`` as JSON(-like), a table or YAML; ``None`` when it is none of these."""
    if looks_like_json(text):
        parsed = parse_json_like(text, exact_numbers=exact_numbers)
        if parsed is not None:
            value, form = parsed
            if form == "jsonl":
                end = "\n" if text.endswith("\n") else ""
                return StructuredDoc("jsonl", value, lambda v: "\n".join(_jsonl_line(x) for x in v) + end)
            return StructuredDoc("json" if form == "json" else "pyliteral", value, dumps)
    table = parse_table(text)
    if table is not None:
        return StructuredDoc(table.fmt, list(table.rows), _table_renderer(table))
    value = parse_yaml(text)  # also flow-style YAML ({a: 1, b: [x, y]}), which looks like broken JSON
    if value is not None and _scalar_count(value) >= 3:
        return StructuredDoc("yaml", value, dump_yaml)
    return None


def _jsonl_line(value: Any) -> str:
    if isinstance(value, str) and _MARK.match(value):
        return dumps(value.replace("items", "lines").replace("item", "line"))
    return dumps(value)


def _table_renderer(table: Table) -> Callable[[Any], str]:
    def render(kept: Any) -> str:
        rows: list[Row | str] = []
        for row in kept:
            if isinstance(row, Row):
                rows.append(row)
            else:
                m = _MARK.match(str(row))
                rows.append(f"… {m.group(1)} more row{'s' if m.group(1) != '1' else ''}" if m else str(row))
        return table.render(rows)

    return render


def _scalar_count(value: Any, limit: int = 3) -> int:
    stack, n = [value], 0
    while stack and n < limit:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        else:
            n += 1
    return n
