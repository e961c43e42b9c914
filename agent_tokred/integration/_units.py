"""LangChain messages to the engine's message units and back (the only place that knows both).

A unit keeps its message as ``source``; writing back returns that very message when the engine
left the unit alone, a copy with the new content and marker when it edited it, and a new
``AIMessage`` / ``HumanMessage`` for a note it wrote.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> msg = HumanMessage("hi", id="m1")
    >>> unit = to_unit(msg)
    >>> unit.role, to_message(unit) is msg
    ('human', True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)

from ..messages.unit import MARKER, MessageUnit, Speaker


def marker(msg: BaseMessage) -> dict[str, Any] | None:
    """The agent-tokred marker of a message (``None`` when the library never touched it)."""
    meta = getattr(msg, "response_metadata", None)
    value = meta.get(MARKER) if isinstance(meta, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else None


def with_marker(msg: BaseMessage, content: Any, **fields: Any) -> BaseMessage:
    """A copy of ``msg`` with new ``content`` and ``response_metadata[MARKER] = fields``."""
    meta = dict(getattr(msg, "response_metadata", None) or {})
    meta[MARKER] = fields
    return msg.model_copy(update={"content": content, "response_metadata": meta})


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


def _speaker(msg: BaseMessage, role: str) -> Speaker:
    if role in ("system", "ai"):
        return "none" if role == "system" else "assistant"
    if isinstance(msg, ChatMessage) and msg.role in ("assistant", "ai", "model"):
        return "assistant"
    return "user"


def to_unit(msg: BaseMessage) -> MessageUnit:
    """The unit the engine reads for ``msg`` (fields read per type: a missing pydantic attribute is slow)."""
    role = role_of(msg)
    meta = msg.response_metadata
    value = meta.get(MARKER) if meta else None
    mark = dict(value) if isinstance(value, Mapping) else None
    if isinstance(msg, ToolMessage):
        return MessageUnit(role=role, content=msg.content, tool_call_id=str(msg.tool_call_id), name=msg.name or "",
                           status=msg.status, id=msg.id, mark=mark, speaker="user", source=msg)
    calls = tuple(msg.tool_calls) if isinstance(msg, AIMessage) and msg.tool_calls else ()
    return MessageUnit(role=role, content=msg.content, tool_calls=calls, name=msg.name or "", id=msg.id, mark=mark,
                       speaker=_speaker(msg, role), source=msg)


_CACHE: dict[int, tuple[MessageUnit, Any, Any]] = {}
_CACHE_SIZE = 8192


def to_units(messages: Sequence[BaseMessage]) -> list[MessageUnit]:
    """:func:`to_unit` of each message, remembered: an agent's history repeats every step.

    A remembered unit is reused only while its message is the same object with the same content,
    marker and tool calls (the unit holds the message, so its ``id()`` cannot be reused meanwhile).
    """
    out: list[MessageUnit] = []
    for msg in messages:
        calls = getattr(msg, "tool_calls", None) if isinstance(msg, AIMessage) else None
        mark = msg.response_metadata.get(MARKER) if msg.response_metadata else None
        hit = _CACHE.get(id(msg))
        if hit is not None and hit[0].source is msg and hit[0].content is msg.content and hit[1] is mark and (
                hit[2] is calls):
            out.append(hit[0])
            continue
        unit = to_unit(msg)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[id(msg)] = (unit, mark, calls)
        out.append(unit)
    return out


def to_message(unit: MessageUnit) -> BaseMessage:
    """The message for ``unit``: its source when untouched, an edited copy, or a new note."""
    source = unit.source
    if isinstance(source, BaseMessage):
        if not unit.edited:
            return source
        meta = {k: v for k, v in source.response_metadata.items() if k != MARKER}
        if unit.mark is not None:
            meta[MARKER] = dict(unit.mark)
        return source.model_copy(update={"content": unit.content, "response_metadata": meta})
    meta = {MARKER: dict(unit.mark or {})}
    if unit.role == "human":
        return HumanMessage(content=unit.content, id=unit.id, response_metadata=meta)
    return AIMessage(content=unit.content, id=unit.id, response_metadata=meta)


def to_messages(units: Sequence[MessageUnit]) -> list[BaseMessage]:
    """:func:`to_message` of each unit."""
    return [to_message(u) for u in units]


class LangChainCodec:
    """Removed messages are archived as ``messages_to_dict`` JSON (``messages_from_dict`` reads it back)."""

    def dump(self, units: Sequence[MessageUnit]) -> list[dict[str, Any]]:
        return messages_to_dict(to_messages(units))


CODEC = LangChainCodec()
