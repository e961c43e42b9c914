"""The tool-output case record and the helpers every family builder shares (evidence, YAML renderings).

A :class:`ToolCase` is one tool output as an agent receives it, the user's task as the agent knows it,
and the evidence: the verbatim strings of the output that a later step of the task needs.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

Format = Literal["json", "yaml", "jsonl", "csv", "tsv", "markdown", "text", "log", "html"]
FORMATS: tuple[str, ...] = ("json", "yaml", "jsonl", "csv", "tsv", "markdown", "text", "log", "html")
MIN_EVIDENCE_CHARS = 2


@dataclass(frozen=True)
class ToolCase:
    """One real tool output with the user's task and the evidence a later step needs from it.

    Attributes:
        family: where it comes from (``tau2-airline``, ``bfcl``, ``tables``, ``code``, ...).
        task_id: the task it belongs to (the split is by task: all of a task's cases share a split).
        query: the user's task as the agent knows it.
        text: the tool output, as the tool returns it.
        evidence: verbatim strings of ``text`` that later steps need (>= 2 characters, each occurs in ``text``).
        fmt: the output's format, one of :data:`FORMATS`.
    """

    family: str
    task_id: str
    query: str
    text: str
    evidence: tuple[str, ...]
    fmt: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the cache)."""
        return {"family": self.family, "task_id": self.task_id, "query": self.query, "text": self.text,
                "evidence": list(self.evidence), "fmt": self.fmt}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCase:
        """Inverse of :meth:`to_dict`."""
        return cls(d["family"], d["task_id"], d["query"], d["text"], tuple(d["evidence"]), d["fmt"])


def split_of(family: str, task_id: str) -> Literal["dev", "test"]:
    """The stable split of a task: crc32 of ``family + task_id``, even = dev, odd = test."""
    return "dev" if zlib.crc32(f"{family}{task_id}".encode()) % 2 == 0 else "test"


def evidence_forms(value: str) -> tuple[str, ...]:
    """The forms in which ``value`` counts as present: as is, and JSON-escaped (inside a JSON string)."""
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    return (value,) if escaped == value else (value, escaped)


def contains_evidence(text: str, value: str) -> bool:
    """``value`` occurs in ``text`` verbatim or JSON-escaped (the bench's definition of "kept")."""
    return any(form in text for form in evidence_forms(value))


def keep_present(text: str, values: Iterable[str]) -> tuple[str, ...]:
    """The distinct ``values`` of at least :data:`MIN_EVIDENCE_CHARS` characters that occur in ``text``, in order."""
    out: list[str] = []
    for v in values:
        v = v.strip()
        if len(v) >= MIN_EVIDENCE_CHARS and v not in out and contains_evidence(text, v):
            out.append(v)
    return tuple(out)


def scalar_strings(value: Any) -> list[str]:
    """Every scalar leaf of a JSON-like value as text (booleans and ``None`` left out)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, dict):
        return [s for v in value.values() for s in scalar_strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in scalar_strings(v)]
    return [str(value)]


_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def mentioned(value: str, text: str) -> bool:
    """``value`` occurs in ``text`` as a whole token, ignoring case (how values are found in task prose)."""
    return re.search(_WORD.format(re.escape(value)), text, flags=re.IGNORECASE) is not None


def same_value(a: Any, b: Any) -> bool:
    """Equal as text, or as numbers (``1286`` and ``1286.0`` are the same amount)."""
    if str(a) == str(b):
        return True
    try:
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    except (TypeError, ValueError):
        return False


def yaml_block(value: Any) -> str:
    """Block-style YAML as an agent's tool would dump it (``safe_dump``, keys in order, no line wrapping)."""
    return str(yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True, width=10**6))


def yaml_flow(value: Any) -> str:
    """Flow-style YAML (``{a: 1, b: [x, y]}``), no line wrapping."""
    return str(yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**6))


def with_yaml_variants(case: ToolCase, value: Any) -> list[ToolCase]:
    """``case`` plus YAML renderings of its parsed ``value``: block for ~1/3 of outputs, flow for ~1/10.

    The choice is stable (crc32 of the text). Evidence is re-checked against each rendering.
    """
    out = [case]
    h = zlib.crc32(case.text.encode())
    renders = []
    if h % 3 == 0:
        renders.append(yaml_block(value))
    if h % 10 == 1:
        renders.append(yaml_flow(value))
    for text in renders:
        evidence = keep_present(text, case.evidence)
        if evidence:
            out.append(ToolCase(case.family, case.task_id, case.query, text, evidence, "yaml"))
    return out


def dedupe(cases: Sequence[ToolCase]) -> list[ToolCase]:
    """Cases with distinct (text, query, evidence), first kept: replayed tasks often repeat an output."""
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    out = []
    for c in cases:
        key = (c.text, c.query, c.evidence)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
