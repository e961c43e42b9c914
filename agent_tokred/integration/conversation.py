"""Reading a LangChain conversation: roles, the query, tool-call pairs (the engine does the work).

Every function here reads the messages as units (:mod:`~agent_tokred.integration._units`) and
calls :mod:`agent_tokred.messages.conversation`; :func:`pick_query` is the engine's one
``derive_query``, so every adapter derives the query the same way.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> call = AIMessage("", tool_calls=[{"name": "logs", "args": {}, "id": "c1"}])
    >>> msgs = [HumanMessage("find ERROR 42"), call]
    >>> orphaned_tool_calls(msgs), pick_query(msgs)
    (['c1'], 'find ERROR 42')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages

from ..errors import InvalidInputError
from ..messages import conversation as _engine
from ..messages.conversation import with_call_args
from ..messages.policy import ContextPolicy
from ._units import role_of, to_unit, to_units

__all__ = [
    "ConversationPlan",
    "coerce_messages",
    "is_error_trace",
    "orphaned_tool_calls",
    "pick_query",
    "role_of",
    "with_call_args",
]


def pick_query(messages: Sequence[BaseMessage], source: str = "human") -> str | None:
    """The text that conditions the criteria: the latest human request and/or the latest AI plan."""
    return _engine.derive_query(to_units(messages), source)


def is_error_trace(msg: BaseMessage) -> bool:
    """A tool error (``status="error"``) or a tool output that starts like an error or traceback."""
    return _engine.is_error_trace(to_unit(msg))


def orphaned_tool_calls(messages: Sequence[BaseMessage]) -> list[str]:
    """Tool-call ids that break a pair: a call without its tool message, or a tool message without its call.

    Example:
        >>> from langchain_core.messages import ToolMessage
        >>> orphaned_tool_calls([ToolMessage("x", tool_call_id="c9")])
        ['c9']
    """
    return _engine.orphaned_tool_calls(to_units(messages))


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


class ConversationPlan(_engine.ConversationPlan):
    """The engine's plan of a LangChain message list (see :class:`agent_tokred.messages.ConversationPlan`)."""

    def __init__(self, msgs: Sequence[BaseMessage], policy: ContextPolicy) -> None:
        super().__init__(to_units(msgs), policy)
