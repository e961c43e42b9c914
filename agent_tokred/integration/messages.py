"""The pure core of the integration layer: reduce what one model call sees.

:func:`reduce_messages` is ``X' = P(X, E(X))`` over messages under three nested budgets (see
:mod:`~agent_tokred.integration.policy`), in this order:

1. every tool output over ``message_budget`` is compressed to it (query-aware);
2. while the call is over ``call_budget``: older tool outputs are squeezed harder (oldest turn
   first, largest first), from their archived original, never below ``floor_tokens``; prose is
   squeezed by whole sentences, and one that cannot keep a whole sentence is left for step 4
   rather than cut into word fragments;
3. then older human/AI text the same way (tool calls on AI messages are kept intact);
4. then whole old tool-call pairs (the AI message with its tool calls and every tool result that
   answers it), oldest first, and if still over budget old human/AI texts, are removed: each run
   of consecutive removed messages becomes one short note naming one handle, under which the
   run's originals are archived (see :mod:`~agent_tokred.integration._notes` for where it goes);
   a note is never dearer than what it replaces;
5. tokens the removals freed beyond the budget go back to the newest squeezed messages; if still
   over budget, what is left squeezable is cut to ``floor_tokens`` at any granularity, and notes
   (or old messages a note would cost more than) are left out only when that makes it fit. A call still over budget is reported
   (``within_budget=False``, ``StepReport.note`` says why): only protected content, or
   reductions the policy turns off, can cause it.

Never touched: system messages, the latest human request, the last ``protect_last_n_turns`` turns
(beyond step 1), protected tools, error traces, recall results and unknown message types. An AI
tool call and its tool message are kept or dropped together, so no provider sees an orphan. Every
reduced message carries ``response_metadata["agent_tokred"]`` (handle, tokens) and is never
reduced from its own output again: re-running on the result changes nothing.

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
import copy
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage

from ..archive import Archive
from ..compressor import Compressor, detect_form
from ..errors import InvalidInputError, TokredError
from ..units import segment
from . import _notes
from ._content import (
    MARKER,
    MessageTally,
    compress_blocks,
    compress_text,
    content_text,
    marker,
    original_of,
    scratch_compressor,
    with_marker,
)
from .conversation import (
    ConversationPlan,
    coerce_messages,
    is_error_trace,
    orphaned_tool_calls,
    pick_query,
    role_of,
    with_call_args,
)
from .policy import ContextPolicy
from .report import Action, MessageReport, StepReport

__all__ = [
    "areduce_messages",
    "coerce_messages",
    "is_error_trace",
    "orphaned_tool_calls",
    "pick_query",
    "reduce_messages",
    "reduce_tool_message",
    "role_of",
    "with_call_args",
]

logger = logging.getLogger(__name__)


class _Unreadable(Exception):
    """Prose that cannot keep one whole sentence at the target (left for the drop pass)."""


class _Reducer(_notes.CallFitter):
    """One run of :func:`reduce_messages` (holds the working copy and the records)."""

    def __init__(
        self,
        msgs: list[BaseMessage],
        policy: ContextPolicy,
        compressor: Compressor,
        archive: Archive,
        query: str | None,
        tally: MessageTally,
    ) -> None:
        self.msgs: list[BaseMessage | None] = list(msgs)
        self.policy, self.archive, self.query, self.tally = policy, archive, query, tally
        self.compressor = scratch_compressor(compressor, archive)
        self.records: dict[int, MessageReport] = {}
        self.plan = ConversationPlan(msgs, policy)
        self.readable_only = True  # squeeze prose by whole sentences (until the last resort)
        self.limit: int | None = None  # when set, only messages before this index are reduced
        self.before_squeeze: dict[int, tuple[BaseMessage, MessageReport | None]] = {}
        self._sentences: Compressor | None = None

    def total(self) -> int:
        return sum(self.tally.count(m) for m in self.msgs if m is not None)

    # -- one message ------------------------------------------------------------------------------
    def reduce_one(self, i: int, target: int, action: Action) -> int:
        """Reduce message ``i``'s text content to ``target`` tokens; returns tokens saved."""
        msg = self.msgs[i]
        if msg is None:
            return 0
        if self.tally.content(msg) <= target:
            return 0
        mark = marker(msg) or {}
        before_count = self.tally.count(msg)
        original_content: Any = msg.content
        handle = str(mark.get("handle", "")) if mark.get("action") in ("compressed", "squeezed") else ""
        if handle:
            archived = self.archive.get(handle)
            if archived is None:
                self._skip(i, msg, f"original {handle} not in this archive; not reduced again")
                return 0
            original_content = _restore(archived, mark)
        original = original_of(original_content)
        tokens_orig = (int(mark.get("tokens_before", 0)) if handle else 0) or self.tally.text(
            content_text(original_content))
        try:
            new_content, criterion, note = self._fit(i, original_content, original, tokens_orig, target,
                                                     readable=action == "squeezed" and self.readable_only)
        except _Unreadable:
            return 0
        except TokredError as exc:
            self._skip(i, msg, f"{type(exc).__name__}: {exc}")
            return 0
        handle = self.archive.put(original, output=content_text(new_content))
        new_msg = with_marker(
            msg, new_content, action=action, handle=handle, tokens_before=tokens_orig,
            tokens_after=self.tally.text(content_text(new_content)),
            content_type="str" if isinstance(original_content, str) else "blocks",
            **({"previous": mark} if mark and mark.get("handle") != handle else {}),
        )
        if action == "squeezed":
            self.before_squeeze.setdefault(i, (msg, self.records.get(i)))
        self.msgs[i] = new_msg
        self.records[i] = MessageReport(
            index=i, role=self.plan.roles[i], action=action, tokens_before=tokens_orig,
            tokens_after=self.tally.content(new_msg), handle=handle, name=str(getattr(msg, "name", "") or ""),
            criterion=criterion, note=note,
        )
        return max(0, before_count - self.tally.count(new_msg))

    def query_for(self, i: int) -> str | None:
        """The query for message ``i``: the step's query, plus the call arguments for a tool output."""
        owner = self.plan.caller.get(i)
        if owner is None:
            return self.query
        msg = self.msgs[i]
        call_id = str(getattr(msg, "tool_call_id", ""))
        owner_msg = self.msgs[owner]
        calls = getattr(owner_msg, "tool_calls", None) or []
        args = next((c.get("args") for c in calls if str(c.get("id")) == call_id), None)
        return with_call_args(self.query, args)

    def _fit(
        self, i: int, content: Any, original: str, tokens_orig: int, target: int, readable: bool = False
    ) -> tuple[Any, str, str]:
        """Compress ``content`` so that text plus annotation fits ``target`` exactly.

        With ``readable``, prose of several sentences is cut by whole sentences and :class:`_Unreadable`
        is raised when not one fits (word fragments of an old message are worth less than a note
        with its handle).
        """
        compressor = self.compressor
        # only text with sentences to keep (a list of ids or one long line is cut as before)
        readable = (readable and isinstance(content, str) and detect_form(content) == "prose"
                    and len(segment(content, "sentence")) >= 2)
        if readable:
            if self._sentences is None:
                self._sentences = copy.copy(self.compressor)
                self._sentences.unit = "sentence"
            compressor = self._sentences
        handle = self.archive.put(original)
        note = f'[cut from {tokens_orig} tokens; full text: {self.policy.recall_tool_name}("{handle}")]'
        note_tokens = self.tally.text("\n" + note) if self.policy.annotate else 0
        body_target = target - note_tokens
        annotate = self.policy.annotate and body_target >= max(8, target // 4)
        query = self.query_for(i)
        if not annotate:
            body_target = target
        for _ in range(4):
            if isinstance(content, str):
                red = compress_text(compressor, content, body_target, query)
                if readable and red.units_kept == 0 and red.text != content:
                    raise _Unreadable
                out: Any = red.text + ("\n" + note if annotate else "")
                criterion, why = red.criterion, red.note
            else:
                blocks, criterion = compress_blocks(self.compressor, list(content), body_target, query,
                                                    self.tally)
                out, why = blocks + ([{"type": "text", "text": note}] if annotate else []), ""
            over = self.tally.text(content_text(out)) - target
            if over <= 0:
                return out, criterion, why
            body_target -= over  # token merges across the join can cost a token or two
            if body_target < 1:
                annotate, body_target = False, target
        raise InvalidInputError(f"could not fit content into {target} tokens")

    def original_message(self, msg: BaseMessage) -> BaseMessage:
        """``msg`` as it was before this library reduced it (itself when never reduced or not archived)."""
        mark = marker(msg) or {}
        if mark.get("action") not in ("compressed", "squeezed"):
            return msg
        archived = self.archive.get(str(mark.get("handle", "")))
        if archived is None:
            return msg
        meta = {k: v for k, v in msg.response_metadata.items() if k != MARKER}
        if "previous" in mark:
            meta[MARKER] = mark["previous"]
        return msg.model_copy(update={"content": _restore(archived, mark), "response_metadata": meta})

    def _skip(self, i: int, msg: BaseMessage, why: str) -> None:
        logger.info("agent-tokred left message %d whole: %s", i, why)
        n = self.tally.content(msg)
        self.records[i] = MessageReport(index=i, role=self.plan.roles[i], action="skipped", tokens_before=n,
                                        tokens_after=n, name=str(getattr(msg, "name", "") or ""), note=why)

    # -- passes -----------------------------------------------------------------------------------
    def hold_tool_outputs(self) -> None:
        budget = self.policy.message_budget
        if budget is None:
            return
        limit = max(budget, self.policy.min_tokens)
        todo = [i for i, r in enumerate(self.plan.roles) if r == "tool" and not self.plan.fixed[i]]
        for i in sorted(todo, key=lambda j: (j, -self.tally.content(self.msgs[j]))):  # type: ignore[arg-type]
            msg = self.msgs[i]
            if msg is not None and marker(msg) is None and self.tally.content(msg) > limit:
                self.reduce_one(i, budget, "compressed")

    def squeeze(self, roles: tuple[str, ...], excess: int) -> int:
        floor = self.policy.floor_tokens
        cands = [i for i, r in enumerate(self.plan.roles) if r in roles and self.plan.squeezable(i)
                 and self.msgs[i] is not None and (self.limit is None or i < self.limit)
                 and not _notes.is_note(self.msgs[i])]  # a note written this call is never cut (its handle)
        cands.sort(key=lambda j: (self.plan.turn[j], -self.tally.content(self.msgs[j])))  # type: ignore[arg-type]
        for i in cands:
            if excess <= 0:
                break
            msg = self.msgs[i]
            if msg is None:
                continue
            size = self.tally.content(msg)
            if size <= max(floor, self.policy.min_tokens if marker(msg) is None else 0):
                continue
            excess -= self.reduce_one(i, max(floor, size - excess), "squeezed")
        return excess


def reduce_messages(
    messages: Sequence[BaseMessage],
    *,
    policy: ContextPolicy,
    compressor: Compressor,
    archive: Archive,
    query: str | None = None,
    tally: MessageTally | None = None,
    budget: int | None = None,
    kind: str = "model_call",
) -> tuple[list[BaseMessage], StepReport]:
    """Reduce a model call's messages under ``policy`` (see the module docstring for the passes).

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
    started = time.perf_counter()
    msgs = coerce_messages(messages)
    tally = tally or MessageTally(compressor.counter, policy.message_overhead_tokens)
    budget = policy.call_budget if budget is None else budget
    if query is None:
        query = pick_query(msgs, policy.query_source)
    total_before = tally.total(msgs)
    tools = [tally.content(m) for m in msgs if isinstance(m, ToolMessage) and marker(m) is None
             and (m.name or "") not in policy.never_compress_tools]
    limit = None if policy.message_budget is None else max(policy.message_budget, policy.min_tokens)
    over_message = limit is not None and max(tools, default=0) > limit
    if not over_message and (budget is None or total_before <= budget):
        return msgs, StepReport(kind=kind, tokens_before=total_before, tokens_after=total_before,  # type: ignore[arg-type]
                                seconds=time.perf_counter() - started, budget=budget,
                                query_chars=len(query or ""), tokenizer=compressor.counter.name)
    red = _Reducer(msgs, policy, compressor, archive, query, tally)
    red.hold_tool_outputs()
    if budget is not None:
        red.fit_call(budget)
    out = [m for m in red.msgs if m is not None]
    total_after = tally.total(out)
    within = budget is None or total_after <= budget
    report = StepReport(
        kind=kind, tokens_before=total_before, tokens_after=total_after,  # type: ignore[arg-type]
        seconds=time.perf_counter() - started, budget=budget, within_budget=within,
        messages=tuple(red.records[i] for i in sorted(red.records)), query_chars=len(query or ""),
        tokenizer=compressor.counter.name, note="" if within else red.why_over(total_after, budget or 0),
    )
    return out, report


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
    out, report = reduce_messages(
        [msg], policy=policy.model_copy(update={"call_budget": None}), compressor=compressor, archive=archive,
        query=with_call_args(query, call_args), tally=tally, kind="tool_output",
    )
    return out[0], report  # type: ignore[return-value]


def _restore(archived: str, mark: dict[str, Any]) -> Any:
    """The original content from its archived form (blocks were archived as JSON)."""
    if mark.get("content_type") == "blocks":
        try:
            value = json.loads(archived)
        except ValueError:
            return archived
        return value if isinstance(value, list) else archived
    return archived
