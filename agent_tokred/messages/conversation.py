"""Reading a conversation of message units: turns, tool-call pairs, the query, what is never touched.

:func:`derive_query` is the one place the query that conditions the criteria is derived from a
conversation (every adapter calls it, through the integration layer's ``pick_query``).

Example:
    >>> from agent_tokred.messages.unit import MessageUnit
    >>> call = MessageUnit(role="ai", content="", tool_calls=({"name": "logs", "args": {}, "id": "c1"},))
    >>> units = [MessageUnit(role="human", content="find ERROR 42"), call]
    >>> orphaned_tool_calls(units), derive_query(units, "human")
    (['c1'], 'find ERROR 42')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .policy import ContextPolicy
from .unit import NOTE_ACTION, MessageUnit, content_text, is_note

_ERROR_STARTS = ("error", "traceback (most recent call last)", "exception")
_MAX_QUERY_CHARS = 4000


def derive_query(units: Sequence[MessageUnit], source: str = "human") -> str | None:
    """The text that conditions the criteria: the latest human request and/or the latest AI plan.

    ``source`` is a policy's ``query_source``: ``"human"``, ``"plan"``, ``"human+plan"`` or ``"none"``.
    Notes standing for removed messages are never the query.
    """
    if source == "none":
        return None
    parts: list[str] = []
    for want, role in (("human", "human"), ("plan", "ai")):
        if want not in source:
            continue
        for unit in reversed(units):
            if unit.role == role and not is_note(unit):
                text = content_text(unit.content).strip()
                if text:
                    parts.append(text[-_MAX_QUERY_CHARS:])
                    break
    return "\n".join(parts) or None


def with_call_args(query: str | None, args: Any) -> str | None:
    """``query`` plus the scalar values of a tool call's arguments (what the tool was asked for)."""
    values: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value[:20]:
                walk(v)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            values.append(str(value)[:200])

    walk(args)
    parts = [p for p in (query, " ".join(values)[:1000]) if p]
    return "\n".join(parts) or None


def is_error_trace(msg: MessageUnit) -> bool:
    """A tool error (``status="error"``) or a tool output that starts like an error or traceback."""
    if msg.status == "error":
        return True
    head = content_text(msg.content)[:64].lstrip().lower()
    return head.startswith(_ERROR_STARTS)


def orphaned_tool_calls(units: Sequence[MessageUnit]) -> list[str]:
    """Tool-call ids that break a pair: a call without its tool result, or a result without its call."""
    calls: set[str] = set()
    results: set[str] = set()
    for unit in units:
        if unit.role == "ai":
            calls.update(str(c.get("id")) for c in unit.tool_calls if c.get("id"))
        elif unit.role == "tool":
            results.add(unit.tool_call_id)
    return sorted(calls ^ results)


class ConversationPlan:
    """Structure of one message list: roles, turns, tool-call pairs and what is never touched."""

    def __init__(self, msgs: Sequence[MessageUnit], policy: ContextPolicy) -> None:
        self.roles = [m.role for m in msgs]
        self.turn = [-1] * len(msgs)
        self.caller: dict[int, int] = {}  # tool message index -> AI message index
        self.results: dict[int, list[int]] = {}  # AI message index -> tool message indices
        call_owner: dict[str, int] = {}
        turn = -1
        for i, (msg, role) in enumerate(zip(msgs, self.roles)):
            if role in ("human", "ai"):
                turn += 1
            if role == "ai":
                for call in msg.tool_calls:
                    if call.get("id"):
                        call_owner[str(call["id"])] = i
            if role == "tool":
                owner = call_owner.get(msg.tool_call_id)
                if owner is not None:
                    self.caller[i] = owner
                    self.results.setdefault(owner, []).append(i)
                    self.turn[i] = self.turn[owner]
                    continue
            self.turn[i] = turn if role != "system" else -1
        last_turns = sorted({t for t in self.turn if t >= 0})[-policy.protect_last_n_turns:] if (
            policy.protect_last_n_turns) else []
        self.protected_turns = set(last_turns)
        # a note standing for dropped messages may be a user message: it is never "the latest request"
        humans = [i for i, r in enumerate(self.roles) if r == "human" and not is_note(msgs[i])]
        self.latest_human = humans[-1] if humans else -1
        self.fixed = [self._is_fixed(m, r, policy) for m, r in zip(msgs, self.roles)]
        self._calls = [bool(m.tool_calls) for m in msgs]

    @staticmethod
    def _is_fixed(msg: MessageUnit, role: str, policy: ContextPolicy) -> bool:
        if msg.action in ("recall", NOTE_ACTION):
            return True
        if role not in ("human", "ai", "tool"):
            return True  # system prompt and unknown message types are never touched
        if role == "tool":
            if msg.name in policy.never_compress_tools:
                return True
            if policy.keep_error_traces and is_error_trace(msg):
                return True
        return False

    def squeezable(self, i: int) -> bool:
        """May message ``i`` be squeezed or dropped for the total budget (not fixed, not protected)?"""
        return not self.fixed[i] and self.turn[i] not in self.protected_turns and i != self.latest_human

    def drop_groups(self, text: bool) -> list[list[int]]:
        """What the last pass may drop, in order: old tool-call pairs, then (``text``) old AI texts, then
        old human requests.

        A pair is the AI message and every tool result answering it, widened to a span of consecutive
        positions closed under pairing (results never part from their call); it is droppable only
        when every message in the span is squeezable. A text is a squeezable human message or an AI
        message without tool calls.
        """
        groups: list[list[int]] = []
        for ai in sorted(self.results):
            span = self._closed_span(ai)
            covered = bool(groups) and span is not None and span[0] <= groups[-1][-1]
            if span is not None and not covered and all(self.squeezable(j) for j in span):
                groups.append(span)
        if text:  # AI texts first: user requests are what the conversation hangs on
            for role in ("ai", "human"):
                groups += [[i] for i, r in enumerate(self.roles)
                           if r == role and not self._calls[i] and self.squeezable(i)]
        return groups

    def _closed_span(self, ai: int) -> list[int] | None:
        lo, hi = ai, max(self.results[ai])
        while True:
            inside = range(lo, hi + 1)
            ends = [j for k in inside for j in (*self.results.get(k, ()), self.caller.get(k, k))]
            if any(self._calls[k] and k not in self.results for k in inside):
                return None  # an unanswered tool call inside: dropping it would change the orphans
            new_lo, new_hi = min(lo, *ends), max(hi, *ends)
            if (new_lo, new_hi) == (lo, hi):
                return list(inside)
            lo, hi = new_lo, new_hi
