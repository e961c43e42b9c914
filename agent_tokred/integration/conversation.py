"""Reading a conversation: roles, turns, tool-call pairs, the query, and what is never touched.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> call = AIMessage("", tool_calls=[{"name": "logs", "args": {}, "id": "c1"}])
    >>> msgs = [HumanMessage("find ERROR 42"), call]
    >>> orphaned_tool_calls(msgs), pick_query(msgs)
    (['c1'], 'find ERROR 42')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)

from ..errors import InvalidInputError
from ._content import content_text, marker
from .policy import ContextPolicy

_ERROR_STARTS = ("error", "traceback (most recent call last)", "exception")
_MAX_QUERY_CHARS = 4000


def role_of(msg: BaseMessage) -> str:
    """``system``, ``human``, ``ai``, ``tool`` or the message's own type for anything else."""
    if isinstance(msg, SystemMessage):
        return "system"
    if isinstance(msg, HumanMessage):
        return "human"
    if isinstance(msg, AIMessage):
        return "ai"
    if isinstance(msg, ToolMessage):
        return "tool"
    return str(getattr(msg, "type", "other"))


def pick_query(messages: Sequence[BaseMessage], source: str = "human") -> str | None:
    """The text that conditions the criteria: the latest human request and/or the latest AI plan."""
    if source == "none":
        return None
    parts: list[str] = []
    for want in ("human", "plan"):
        if want not in source:
            continue
        kind = HumanMessage if want == "human" else AIMessage
        for msg in reversed(messages):
            if isinstance(msg, kind) and (marker(msg) or {}).get("action") != "dropped_pair":
                text = content_text(msg.content).strip()
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


def is_error_trace(msg: BaseMessage) -> bool:
    """A tool error (``status="error"``) or a tool output that starts like an error or traceback."""
    if getattr(msg, "status", None) == "error":
        return True
    head = content_text(msg.content)[:64].lstrip().lower()
    return head.startswith(_ERROR_STARTS)


def orphaned_tool_calls(messages: Sequence[BaseMessage]) -> list[str]:
    """Tool-call ids that break a pair: a call without its tool message, or a tool message without its call.

    Example:
        >>> orphaned_tool_calls([ToolMessage("x", tool_call_id="c9")])
        ['c9']
    """
    calls: set[str] = set()
    results: set[str] = set()
    for msg in messages:
        if isinstance(msg, AIMessage):
            calls.update(str(c.get("id")) for c in msg.tool_calls if c.get("id"))
        elif isinstance(msg, ToolMessage):
            results.add(str(msg.tool_call_id))
    return sorted(calls ^ results)


def coerce_messages(messages: Any) -> list[BaseMessage]:
    """Messages as a list of ``BaseMessage`` (dicts and tuples converted; anything else refused)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidInputError(f"messages must be a sequence of messages, got {type(messages).__name__}")
    if all(isinstance(m, BaseMessage) for m in messages):
        return list(messages)
    try:
        return list(convert_to_messages(messages))
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:  # KeyError: a dict missing a field
        raise InvalidInputError(f"cannot read messages: {exc}") from None


class ConversationPlan:
    """Structure of one message list: roles, turns, tool-call pairs and what is never touched."""

    def __init__(self, msgs: list[BaseMessage], policy: ContextPolicy) -> None:
        self.roles = [role_of(m) for m in msgs]
        self.turn = [-1] * len(msgs)
        self.caller: dict[int, int] = {}  # tool message index -> AI message index
        self.results: dict[int, list[int]] = {}  # AI message index -> tool message indices
        call_owner: dict[str, int] = {}
        turn = -1
        for i, (msg, role) in enumerate(zip(msgs, self.roles)):
            if role in ("human", "ai"):
                turn += 1
            if role == "ai":
                for call in getattr(msg, "tool_calls", None) or ():
                    if call.get("id"):
                        call_owner[str(call["id"])] = i
            if role == "tool":
                owner = call_owner.get(str(getattr(msg, "tool_call_id", "")))
                if owner is not None:
                    self.caller[i] = owner
                    self.results.setdefault(owner, []).append(i)
                    self.turn[i] = self.turn[owner]
                    continue
            self.turn[i] = turn if role != "system" else -1
        last_turns = sorted({t for t in self.turn if t >= 0})[-policy.protect_last_n_turns:] if (
            policy.protect_last_n_turns) else []
        self.protected_turns = set(last_turns)
        # a note standing for dropped messages may be a HumanMessage: it is never "the latest request"
        humans = [i for i, r in enumerate(self.roles) if r == "human"
                  and (marker(msgs[i]) or {}).get("action") != "dropped_pair"]
        self.latest_human = humans[-1] if humans else -1
        self.fixed = [self._is_fixed(m, r, policy) for m, r in zip(msgs, self.roles)]
        self._calls = [bool(getattr(m, "tool_calls", None)) for m in msgs]

    @staticmethod
    def _is_fixed(msg: BaseMessage, role: str, policy: ContextPolicy) -> bool:
        mark = marker(msg)
        if mark is not None and mark.get("action") in ("recall", "dropped_pair"):
            return True
        if role not in ("human", "ai", "tool"):
            return True  # system prompt and unknown message types are never touched
        if role == "tool":
            if (getattr(msg, "name", None) or "") in policy.never_compress_tools:
                return True
            if policy.keep_error_traces and is_error_trace(msg):
                return True
        return False

    def squeezable(self, i: int) -> bool:
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
