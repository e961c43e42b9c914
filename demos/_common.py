"""Shared parts of the demos: the result record, data paths, token tallies by component, progress bars."""

from __future__ import annotations

import gzip
import json
import re
import string
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent_tokred.report.records import RunRecord
from agent_tokred.tokens import resolve_counter

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TOKENIZER = "o200k_base"
MESSAGE_OVERHEAD = 3  # tokens a chat format adds per message (OpenAI's figure; bench/ uses the same)
_COUNTER = resolve_counter(TOKENIZER)
_THINK = re.compile(r"^(?:\s*<think>)?(.*?)</think>(.*)$", re.DOTALL)
T = TypeVar("T")


class DemoSkipped(RuntimeError):
    """A demo cannot run here (a data file or an optional package is missing); the message says which."""


@dataclass(frozen=True)
class DemoResult:
    """What one demo produced: the run record (for the report and plots) and its summary-table signals.

    Attributes:
        run: steps, reduced items and metrics of the run.
        signal: the task-success signal's name (``"argument survival"``, ``"answer kept"`` ...).
        without: its value without agent-tokred (as shown in the table).
        with_: its value with agent-tokred.
        raw: raw numbers for the JSON summary.
    """

    run: RunRecord
    signal: str
    without: str
    with_: str
    raw: dict[str, Any] = field(default_factory=dict)


def data_file(name: str) -> Path:
    """A file of ``../shared/data`` (next to the repository); :class:`DemoSkipped` when absent."""
    path = DATA / name
    if not path.is_file():
        raise DemoSkipped(f"{path} not found: the demos read ../shared/data/ next to the repository")
    return path


def read_jsonl_gz(name: str, limit: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with gzip.open(data_file(name), "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def count(text: str) -> int:
    """o200k_base tokens of ``text``."""
    return _COUNTER.count(text) if text else 0


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b if isinstance(b, str) else str(b.get("text") or b.get("reasoning") or "") for b in content)
    return "" if content is None else str(content)


def split_thinking(text: str) -> tuple[str, str]:
    """``(thinking, answer)`` of ``"<think>…</think>answer"`` (``("", text)`` without the tag)."""
    m = _THINK.match(text)
    return (m.group(1), m.group(2)) if m else ("", text)


def context_by_component(
    messages: Sequence[Any], *, tool_component: str = "tool outputs", reasoning: bool = False
) -> dict[str, int]:
    """Tokens of a model call's messages by component (each message also costs :data:`MESSAGE_OVERHEAD`).

    Components: ``system``, ``tool_component`` (tool messages), ``reasoning`` (the thinking of AI
    messages, when ``reasoning``), and ``history`` (user and AI text, tool-call names and arguments).
    """
    out = {"system": 0, tool_component: 0, **({"reasoning": 0} if reasoning else {}), "history": 0}
    for m in messages:
        kind = getattr(m, "type", "")
        text = text_of(m.content)
        if kind == "system":
            out["system"] += count(text) + MESSAGE_OVERHEAD
        elif kind == "tool":
            out[tool_component] += count(text) + MESSAGE_OVERHEAD
        else:
            calls = getattr(m, "tool_calls", None) or []
            extra = "".join(f"{c['name']}({json.dumps(c['args'], ensure_ascii=False)})" for c in calls)
            if reasoning and kind == "ai":
                thinking, answer = split_thinking(text)
                out["reasoning"] += count(thinking)
                text = answer
            out["history"] += count(text + extra) + MESSAGE_OVERHEAD
    return {k: v for k, v in out.items() if v or k == "history"}


def normalize_answer(text: str) -> str:
    """NQ-Open normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A tqdm progress bar on stderr (shown on terminals; quiet in logs and tests)."""
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def pct(x: float) -> str:
    return f"{x:.1%}"
