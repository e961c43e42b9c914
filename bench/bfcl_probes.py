"""Measuring a context on replayed BFCL trajectories: tokens, and which copied arguments it still holds.

An **argument probe** is a ground-truth call argument whose value the model must copy from an earlier
tool output: the value (at least 3 characters; booleans and ``None`` excluded) occurs as a whole token in
an earlier output of the trajectory, in no user message so far, and not in the called tool's schema (enum
values come from the tool description). A probe *survives* a reduction when the value still occurs in the
context the model sees at the step where it makes that call. Values longer than :data:`PASSAGE_CHARS` are
copied passages (a whole diff posted as a tweet) and are reported apart from identifiers.

Example:
    >>> from bench.bfcl import load_trajectories  # doctest: +SKIP
    >>> probes = argument_probes(load_trajectories(limit=160)[-1])  # doctest: +SKIP
    >>> probes[0].label  # doctest: +SKIP
    'retrieve_invoice.booking_id'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from agent_tokred.tokens import resolve_counter

from .bfcl import Trajectory, steps

TOKENIZER = "o200k_base"
MESSAGE_OVERHEAD = 3  # tokens a chat format adds per message (OpenAI's figure)
PASSAGE_CHARS = 200
MIN_VALUE_CHARS = 3

_COUNTER = resolve_counter(TOKENIZER)


@lru_cache(maxsize=200_000)
def count_text(text: str) -> int:
    """o200k_base tokens of ``text`` (memoised: contexts repeat across steps)."""
    return _COUNTER.count(text)


def message_text(message: Any) -> str:
    """What of a message reaches the model as text: its content and its tool calls' names and arguments."""
    content = message.content
    if not isinstance(content, str):
        content = "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
    calls = getattr(message, "tool_calls", None) or []
    return content + "".join(f"{c['name']}({json.dumps(c['args'], ensure_ascii=False)})" for c in calls)


def context_tokens(messages: Sequence[Any]) -> int:
    """Tokens of a context: every message's text plus :data:`MESSAGE_OVERHEAD` per message."""
    return sum(count_text(message_text(m)) + MESSAGE_OVERHEAD for m in messages)


@lru_cache(maxsize=20_000)
def _boundary(value: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z0-9_])" + re.escape(value) + r"(?![A-Za-z0-9_])")


def contains(haystack: str, value: str) -> bool:
    """``value`` occurs in ``haystack`` as a whole token, raw or JSON-escaped (tool outputs are JSON)."""
    return any(_boundary(f).search(haystack) for f in {value, json.dumps(value)[1:-1]})


@dataclass(frozen=True)
class ArgProbe:
    """A ground-truth argument value the model must copy from an earlier tool output.

    Attributes:
        trajectory: the trajectory id.
        step: index of the step (model call) that makes the call.
        call: the called tool.
        arg: the argument name.
        value: the value as text.
        passage: longer than :data:`PASSAGE_CHARS` (a copied passage, not an identifier).
        source_call: the latest earlier tool whose output holds the value.
    """

    trajectory: str
    step: int
    call: str
    arg: str
    value: str = field(repr=False)
    passage: bool = False
    source_call: str = ""

    @property
    def label(self) -> str:
        return f"{self.call}.{self.arg}"


def _scalar_values(value: Any) -> list[str]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _scalar_values(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalar_values(v)]
    return [str(value).strip()]


def argument_probes(trajectory: Trajectory) -> list[ArgProbe]:
    """Every argument value of ``trajectory`` that the model must copy from an earlier tool output."""
    probes: list[ArgProbe] = []
    outputs: list[tuple[str, str]] = []
    users: list[str] = []
    schemas = {str(d.get("name")): json.dumps(d) for d in trajectory.tools}
    by_call = {s.call_index: s for s in steps(trajectory) if s.call is not None}
    n = 0
    for turn in trajectory.turns:
        users.append(turn.user_text)
        for call in turn.calls:
            seen: set[tuple[str, str]] = set()
            for arg, raw in call.args.items():
                for value in _scalar_values(raw):
                    if len(value) < MIN_VALUE_CHARS or (arg, value) in seen:
                        continue
                    if any(contains(u, value) for u in users) or contains(schemas.get(call.name, ""), value):
                        continue
                    source = next((name for name, out in reversed(outputs) if contains(out, value)), None)
                    if source is None:
                        continue
                    seen.add((arg, value))
                    probes.append(
                        ArgProbe(
                            trajectory.id,
                            by_call[n].index,
                            call.name,
                            arg,
                            value,
                            len(value) > PASSAGE_CHARS,
                            source,
                        )
                    )
            outputs.append((call.name, call.output_text))
            n += 1
    return probes


def survived(messages: Sequence[Any], probes: Sequence[ArgProbe]) -> list[bool]:
    """For each probe, whether its value is still in ``messages`` (contents and tool-call arguments)."""
    haystack = "\n".join(message_text(m) for m in messages)
    return [contains(haystack, p.value) for p in probes]
