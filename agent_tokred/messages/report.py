"""Telemetry records: what one agent step cost before and after reduction, and what was dropped.

Every message reduction (and every adapter hook or node over one) returns a :class:`StepReport`;
the integration layer passes them to callbacks and to LangSmith (:meth:`StepReport.as_metadata`).

Example:
    >>> r = StepReport(kind="model_call", tokens_before=900, tokens_after=300, seconds=0.01)
    >>> r.saved_tokens, r.as_metadata()["ms"]
    (600, 10.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..reduction import TokenChange

StepKind = Literal["model_call", "tool_output", "history", "documents", "reasoning"]
Action = Literal["compressed", "squeezed", "dropped", "dropped_pair", "dropped_reasoning", "skipped"]


@dataclass(frozen=True)
class MessageReport(TokenChange):
    """What happened to one message (or document) in a step.

    Attributes:
        index: position in the step's input list.
        role: ``"tool"``, ``"ai"``, ``"human"``, ``"document"`` ...
        action: ``compressed`` (held to the per-message budget), ``squeezed`` (harder, for the call
            budget), ``dropped`` (a document left out under the total budget), ``dropped_pair`` (a
            whole tool-call pair replaced by a note), ``dropped_reasoning``, or ``skipped`` (could not
            be reduced; left whole, see ``note``).
        tokens_before: tokens of the original content.
        tokens_after: tokens of the content the model now sees.
        handle: where the original is archived (``""`` for ``skipped``).
        name: the tool name, when there is one.
        criterion: the criterion that scored the units.
        note: why something was skipped, or a fallback that happened.
    """

    index: int
    role: str
    action: Action
    handle: str = ""
    name: str = ""
    criterion: str = ""
    note: str = ""


@dataclass(frozen=True)
class StepReport(TokenChange):
    """Tokens before and after one reduction step, the time it took and every message it touched.

    Attributes:
        kind: which hook or node produced it.
        tokens_before: total tokens the step received (in the policy's tokenizer).
        tokens_after: total tokens after reduction.
        seconds: wall time spent in agent-tokred.
        budget: the budget the total was held to (``None`` when there was none).
        within_budget: ``False`` only when what may not be reduced (protected content, or what the
            policy turns off) exceeds ``budget``; ``note`` says why.
        messages: one record per message that was reduced or skipped.
        query_chars: length of the query that conditioned the criteria (0: no query).
        tokenizer: name of the token counter.
        note: why the step is over its budget (empty when within it).
    """

    kind: StepKind
    seconds: float
    budget: int | None = None
    within_budget: bool = True
    messages: tuple[MessageReport, ...] = ()
    query_chars: int = 0
    tokenizer: str = ""
    note: str = ""

    @property
    def changed(self) -> bool:
        """True when any message was reduced."""
        return any(m.action != "skipped" for m in self.messages)

    @property
    def handles(self) -> tuple[str, ...]:
        """Handles of every original archived in this step."""
        return tuple(m.handle for m in self.messages if m.handle)

    @property
    def dropped_handles(self) -> tuple[str, ...]:
        """Handles of content removed from view entirely (whole pairs, reasoning blocks)."""
        dropped = ("dropped", "dropped_pair", "dropped_reasoning")
        return tuple(m.handle for m in self.messages if m.action in dropped)

    def as_metadata(self) -> dict[str, Any]:
        """A small JSON-able summary for LangSmith run metadata."""
        return {
            "kind": self.kind,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "saved_tokens": self.saved_tokens,
            "ms": round(self.seconds * 1000, 3),
            "budget": self.budget,
            "within_budget": self.within_budget,
            **({"note": self.note} if self.note else {}),
            "tokenizer": self.tokenizer,
            "reduced": [
                {"index": m.index, "role": m.role, "action": m.action, "name": m.name, "handle": m.handle,
                 "tokens_before": m.tokens_before, "tokens_after": m.tokens_after}
                for m in self.messages
            ][:50],
            "dropped_handles": list(self.dropped_handles),
        }
