"""Reduce what one model call sees, for LangChain messages: a thin adapter over the message engine.

:func:`reduce_messages` reads the messages into units, runs
:func:`agent_tokred.messages.reduce_units` (see it for the passes: compact, squeeze, drop with
pair-safe notes, give back, leave out) and writes the units back. Untouched messages come back as
the same objects; every reduced message carries ``response_metadata["agent_tokred"]`` (handle,
tokens); removed messages are archived as ``messages_to_dict`` JSON under their note's handle.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    >>> from agent_tokred import Compressor, InMemoryArchive
    >>> from agent_tokred.integration.policy import ContextPolicy
    >>> log = "\\n".join(f"INFO line {i}" for i in range(300)) + "\\nERROR 42 disk"
    >>> msgs = [HumanMessage("find ERROR 42"),
    ...         AIMessage("", tool_calls=[{"name": "logs", "args": {}, "id": "c1"}]),
    ...         ToolMessage(log, tool_call_id="c1")]
    >>> arc = InMemoryArchive()
    >>> out, report = reduce_messages(msgs, policy=ContextPolicy(message_budget=60),
    ...                               compressor=Compressor(criterion="lexical"), archive=arc)
    >>> report.messages[0].tokens_after <= 60 and "ERROR 42" in out[2].content
    True
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage

from ..archive import Archive
from ..budget import MessageBudget
from ..compressor import Compressor
from ..messages.reduce import make_parts, reduce_units
from ..messages.report import StepKind, StepReport
from ..messages.state import ReductionParts
from ..messages.tally import MessageTally
from ..messages.unit import MessageUnit
from ._units import CODEC, marker, to_messages, to_units, with_marker
from .conversation import (
    coerce_messages,
    is_error_trace,
    orphaned_tool_calls,
    pick_query,
    role_of,
    with_call_args,
)
from .policy import ContextPolicy

__all__ = [
    "areduce_messages",
    "coerce_messages",
    "is_error_trace",
    "orphaned_tool_calls",
    "pick_query",
    "reduce_messages",
    "reduce_tool_message",
    "reduce_units_of",
    "role_of",
    "with_call_args",
]


def reduce_units_of(
    messages: Sequence[BaseMessage], parts: ReductionParts, budget: MessageBudget, query: str | None, kind: StepKind
) -> tuple[list[BaseMessage], StepReport]:
    """:func:`agent_tokred.messages.reduce_units` over LangChain messages (read, reduce, write back)."""
    units: list[MessageUnit] = to_units(coerce_messages(messages))
    out, report = reduce_units(units, parts, budget=budget, query=query, kind=kind)
    return to_messages(out), report


def reduce_messages(
    messages: Sequence[BaseMessage],
    *,
    policy: ContextPolicy,
    compressor: Compressor,
    archive: Archive,
    query: str | None = None,
    tally: MessageTally | None = None,
    budget: int | None = None,
    kind: StepKind = "model_call",
) -> tuple[list[BaseMessage], StepReport]:
    """Reduce a model call's messages under ``policy`` (see :func:`agent_tokred.messages.reduce_units`).

    Args:
        messages: the call's messages, system prompt included when there is one.
        policy: budgets and protections.
        compressor: the compression engine (criterion, strategy, tokenizer).
        archive: where originals are archived (a :class:`StoreArchive` in an agent).
        query: what the criteria are conditioned on; default: from ``policy.query_source``.
        tally: a token memo to reuse across steps (speeds up the no-op path).
        budget: the total budget, ``policy.call_budget`` by default (sticky edits pass
            ``context_budget``).
        kind: the :class:`StepReport` kind.

    Returns:
        The messages the model should see (the input list is not modified) and a :class:`StepReport`.

    Raises:
        InvalidInputError: ``messages`` is not a sequence of messages.
    """
    total = policy.call_budget if budget is None else budget
    parts = make_parts(policy, compressor, archive, tally, CODEC)
    return reduce_units_of(messages, parts, policy.budget_for(total), query, kind)


async def areduce_messages(
    messages: Sequence[BaseMessage], **kwargs: Any
) -> tuple[list[BaseMessage], StepReport]:
    """Async twin of :func:`reduce_messages`: the work runs in a thread, off the event loop."""
    return await asyncio.to_thread(reduce_messages, messages, **kwargs)


def reduce_tool_message(
    msg: ToolMessage,
    *,
    policy: ContextPolicy,
    compressor: Compressor,
    archive: Archive,
    query: str | None = None,
    call_args: Any = None,
    tally: MessageTally | None = None,
) -> tuple[ToolMessage, StepReport]:
    """Hold one arriving tool output to ``policy.message_budget`` (recall results are marked, kept).

    ``call_args`` (the arguments the tool was called with) are added to ``query``. Returns the
    message to store (a marked copy when reduced) and the step's report.
    """
    if (msg.name or "") == policy.recall_tool_name:
        if marker(msg) is None:
            msg = with_marker(msg, msg.content, action="recall")  # type: ignore[assignment]
        return msg, StepReport(kind="tool_output", tokens_before=0, tokens_after=0, seconds=0.0)
    parts = make_parts(policy, compressor, archive, tally, CODEC)
    out, report = reduce_units_of([msg], parts, policy.budget_for(None), with_call_args(query, call_args),
                                  "tool_output")
    return out[0], report  # type: ignore[return-value]
