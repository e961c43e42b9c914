"""The message unit: one chat message as the engine sees it, with no framework type behind it.

The integration layer reads each LangChain message into a :class:`MessageUnit` (role, content,
tool calls, the agent-tokred marker) and writes the engine's units back; the engine only ever
builds new units with :func:`edited` and :func:`new_unit`, so an adapter can tell what changed.

Example:
    >>> u = MessageUnit(role="tool", content=[{"type": "text", "text": "a"}, {"type": "image"}])
    >>> content_text(u.content), edited(u, "b", {"action": "compressed"}).edited
    ('a', True)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

MARKER = "agent_tokred"
NOTE_ACTION = "dropped_pair"
Speaker = Literal["assistant", "user", "none"]
_TEXT_TYPES = ("text", "text-plain")


@dataclass(frozen=True, eq=False, slots=True)
class MessageUnit:
    """One message: what the engine reads and writes (compared by identity).

    Attributes:
        role: ``system``, ``human``, ``ai``, ``tool``, or the message's own type for anything else.
        content: a string or a list of content blocks (provider format, kept as is).
        tool_calls: the tool calls of an AI message (``{"name", "args", "id"}`` mappings).
        tool_call_id: the call a tool result answers.
        name: the tool's name (tool results) or the message's name.
        status: a tool result's status (``"error"`` for a failed call).
        id: the message id.
        mark: the agent-tokred marker (``None`` when this library never touched the message).
        speaker: which side of the conversation speaks (``"none"`` for system messages).
        source: the framework message it was read from (opaque to the engine).
        edited: True for units the engine built (the adapter writes those back).
    """

    role: str
    content: Any
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    tool_call_id: str = ""
    name: str = ""
    status: str | None = None
    id: str | None = None
    mark: Mapping[str, Any] | None = None
    speaker: Speaker = "user"
    source: Any = dataclasses.field(default=None, repr=False)
    edited: bool = False

    @property
    def action(self) -> str:
        """The marker's action (``""`` when unmarked)."""
        return str((self.mark or {}).get("action", ""))


class MessageCodec(Protocol):
    """How an adapter archives units as message dicts (``messages_to_dict`` JSON for LangChain)."""

    def dump(self, units: Sequence[MessageUnit]) -> list[dict[str, Any]]: ...


def edited(unit: MessageUnit, content: Any, mark: Mapping[str, Any] | None) -> MessageUnit:
    """``unit`` with new content and marker (the marker replaces the old one; ``None`` removes it)."""
    return dataclasses.replace(unit, content=content, mark=None if mark is None else dict(mark), edited=True)


def new_unit(role: str, content: Any, *, mark: Mapping[str, Any], unit_id: str | None = None) -> MessageUnit:
    """A message the engine writes itself (a note standing for removed messages)."""
    speaker: Speaker = "assistant" if role == "ai" else "user"
    return MessageUnit(role=role, content=content, id=unit_id, mark=dict(mark), speaker=speaker, edited=True)


def is_note(unit: MessageUnit | None) -> bool:
    """True for a note this library wrote in place of removed messages."""
    return unit is not None and unit.action == NOTE_ACTION


def block_text(block: Any) -> str | None:
    """The text of a content block (``None`` for images, tool_use and other non-text blocks)."""
    if isinstance(block, str):
        return block
    if isinstance(block, Mapping) and block.get("type") in _TEXT_TYPES and isinstance(block.get("text"), str):
        return str(block["text"])
    return None


def content_text(content: Any) -> str:
    """All text of a message content (str, or the text blocks of a list joined by newlines)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in (block_text(b) for b in content) if t is not None)
    return "" if content is None else str(content)


def original_of(content: Any) -> str:
    """The exact original of a content as archived: the string itself, or the blocks as JSON."""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, default=str)


def restore_content(archived: str, mark: Mapping[str, Any]) -> Any:
    """The original content from its archived form (blocks were archived as JSON)."""
    if mark.get("content_type") == "blocks":
        try:
            value = json.loads(archived)
        except ValueError:
            return archived
        return value if isinstance(value, list) else archived
    return archived
