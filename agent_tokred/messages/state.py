"""One run of a message reduction: the working copy of the units, their records, and one-message edits.

The passes (:mod:`~agent_tokred.messages.passes`) read and edit a :class:`ReductionState`; it
knows how to reduce one message to a target (from its archived original when it was reduced
before), how to restore a message's original, and how to archive removed messages.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..archive import Archive
from ..budget import MessageBudget
from ..compressor import Compressor, detect_form
from ..errors import InvalidInputError, TokredError
from ..units import segment
from .conversation import ConversationPlan, with_call_args
from .fit import compress_blocks, compress_text, scratch_compressor
from .policy import ContextPolicy
from .report import Action, MessageReport
from .tally import MessageTally
from .unit import MessageCodec, MessageUnit, content_text, edited, original_of, restore_content

logger = logging.getLogger(__name__)
REDUCED_ACTIONS = ("compressed", "squeezed")


class Unreadable(Exception):
    """Prose that cannot keep one whole sentence at the target (left for the drop pass)."""


@dataclass(frozen=True)
class ReductionParts:
    """What a message reduction works with, besides the units and the budget.

    Attributes:
        policy: protections and switches (``annotate``, ``compress_text``, ``drop_pairs`` ...).
        compressor: the compression engine (criterion, strategy, tokenizer).
        archive: where originals go.
        tally: the token memo (reuse one across steps: the no-op path is then cheap).
        codec: how removed messages are archived (the adapter's message dicts).
    """

    policy: ContextPolicy
    compressor: Compressor
    archive: Archive
    tally: MessageTally
    codec: MessageCodec


class ReductionState:
    """The working copy (``None`` where a message was removed) and what happened to each message.

    Args:
        units: the messages, in order.
        parts: policy, compressor, archive, tally and codec.
        budget: the sizes to hold (the one budget value from the policy).
        query: what the criteria are conditioned on (derived once, by the caller).
    """

    def __init__(
        self, units: Sequence[MessageUnit], parts: ReductionParts, budget: MessageBudget, query: str | None
    ) -> None:
        self.msgs: list[MessageUnit | None] = list(units)
        self.policy, self.budget, self.archive, self.query = parts.policy, budget, parts.archive, query
        self.tally, self.codec = parts.tally, parts.codec
        self.compressor = scratch_compressor(parts.compressor, parts.archive)
        self.records: dict[int, MessageReport] = {}
        self.plan = ConversationPlan(units, parts.policy)
        self.readable_only = True  # squeeze prose by whole sentences (until the last resort)
        self.limit: int | None = None  # when set, only messages before this index are reduced
        self.before_squeeze: dict[int, tuple[MessageUnit, MessageReport | None]] = {}
        self._sentences: Compressor | None = None

    @property
    def target(self) -> int:
        """The total budget (only passes that run under one read it)."""
        if self.budget.total is None:
            raise InvalidInputError("this reduction has no total budget")
        return self.budget.total

    def total(self) -> int:
        """Tokens of the working copy."""
        return sum(self.tally.count(m) for m in self.msgs if m is not None)

    def kept(self) -> list[MessageUnit]:
        """The working copy without the removed messages."""
        return [m for m in self.msgs if m is not None]

    @staticmethod
    def dump_json(dicts: Sequence[dict[str, Any]]) -> str:
        """The JSON archived for removed messages (their dicts, in order)."""
        return json.dumps(list(dicts), ensure_ascii=False, default=str)

    # -- one message ------------------------------------------------------------------------------
    def reduce_one(self, i: int, target: int, action: Action) -> int:
        """Reduce message ``i``'s text content to ``target`` tokens; returns tokens saved."""
        msg = self.msgs[i]
        if msg is None or self.tally.content(msg) <= target:
            return 0
        mark = dict(msg.mark or {})
        before_count = self.tally.count(msg)
        original_content: Any = msg.content
        handle = str(mark.get("handle", "")) if msg.action in REDUCED_ACTIONS else ""
        if handle:
            archived = self.archive.get(handle)
            if archived is None:
                self.skip(i, msg, f"original {handle} not in this archive; not reduced again")
                return 0
            original_content = restore_content(archived, mark)
        original = original_of(original_content)
        tokens_orig = (int(mark.get("tokens_before", 0)) if handle else 0) or self.tally.text(
            content_text(original_content))
        try:
            new_content, criterion, note = self._fit(i, original_content, original, tokens_orig, target,
                                                     readable=action == "squeezed" and self.readable_only)
        except Unreadable:
            return 0
        except TokredError as exc:
            self.skip(i, msg, f"{type(exc).__name__}: {exc}")
            return 0
        handle = self.archive.put(original, output=content_text(new_content))
        new_mark = {
            "action": action, "handle": handle, "tokens_before": tokens_orig,
            "tokens_after": self.tally.text(content_text(new_content)),
            "content_type": "str" if isinstance(original_content, str) else "blocks",
            **({"previous": mark} if mark and mark.get("handle") != handle else {}),
        }
        new_msg = edited(msg, new_content, new_mark)
        if action == "squeezed":
            self.before_squeeze.setdefault(i, (msg, self.records.get(i)))
        self.msgs[i] = new_msg
        self.records[i] = MessageReport(
            index=i, role=self.plan.roles[i], action=action, tokens_before=tokens_orig,
            tokens_after=self.tally.content(new_msg), handle=handle, name=msg.name,
            criterion=criterion, note=note,
        )
        return max(0, before_count - self.tally.count(new_msg))

    def query_for(self, i: int) -> str | None:
        """The query for message ``i``: the step's query, plus the call arguments for a tool output."""
        owner = self.plan.caller.get(i)
        msg, owner_msg = self.msgs[i], self.msgs[owner] if owner is not None else None
        if owner_msg is None or msg is None:
            return self.query
        args = next((c.get("args") for c in owner_msg.tool_calls if str(c.get("id")) == msg.tool_call_id), None)
        return with_call_args(self.query, args)

    def _fit(
        self, i: int, content: Any, original: str, tokens_orig: int, target: int, readable: bool = False
    ) -> tuple[Any, str, str]:
        """Compress ``content`` so that text plus annotation fits ``target`` exactly.

        With ``readable``, prose of several sentences is cut by whole sentences and :class:`Unreadable`
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
                    raise Unreadable
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

    def original_unit(self, msg: MessageUnit) -> MessageUnit:
        """``msg`` as it was before this library reduced it (itself when never reduced or not archived)."""
        mark = msg.mark or {}
        if msg.action not in REDUCED_ACTIONS:
            return msg
        archived = self.archive.get(str(mark.get("handle", "")))
        if archived is None:
            return msg
        previous = mark.get("previous")
        return edited(msg, restore_content(archived, mark), previous if isinstance(previous, dict) else None)

    def skip(self, i: int, msg: MessageUnit, why: str) -> None:
        """Record that message ``i`` is left whole, and why."""
        logger.info("agent-tokred left message %d whole: %s", i, why)
        n = self.tally.content(msg)
        self.records[i] = MessageReport(index=i, role=self.plan.roles[i], action="skipped", tokens_before=n,
                                        tokens_after=n, name=msg.name, note=why)
