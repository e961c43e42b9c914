"""Reduce what one model call sees: ``X' = P(X, E(X))`` over message units under one budget.

:func:`reduce_units` runs the passes of :mod:`~agent_tokred.messages.passes` in this order:

1. every tool output over the per-message limit is compressed to ``per_message`` (query-aware);
2. while the call is over ``total``: older tool outputs are squeezed harder (oldest turn first,
   largest first), from their archived original, never below ``floor_tokens``; prose is squeezed by
   whole sentences, and one that cannot keep a whole sentence is left for step 4;
3. then older human/AI text the same way (tool calls on AI messages are kept intact);
4. then whole old tool-call pairs (the AI message with its tool calls and every tool result that
   answers it), oldest first, and if still over budget old human/AI texts, are removed: each run
   of consecutive removed messages becomes one short note naming one handle, under which the
   run's originals are archived; a note is never dearer than what it replaces;
5. tokens the removals freed beyond the budget go back to the newest squeezed messages; if still
   over budget, what is left squeezable is cut to ``floor_tokens`` at any granularity, and notes
   (or old messages a note would cost more than) are left out only when that makes it fit. A call
   still over budget is reported (``within_budget=False``, ``StepReport.note`` says why).

Never touched: system messages, the latest human request, the last ``protect_last_n_turns`` turns
(beyond step 1), protected tools, error traces, recall results and unknown message types. An AI
tool call and its tool results are kept or removed together. Every reduced unit carries a marker
(handle, tokens) and is never reduced from its own output again: re-running changes nothing.

Example:
    >>> from agent_tokred import Compressor, InMemoryArchive
    >>> from agent_tokred.messages import ContextPolicy, MessageUnit
    >>> log = "\\n".join(f"INFO line {i}" for i in range(300)) + "\\nERROR 42 disk"
    >>> units = [MessageUnit(role="human", content="find ERROR 42"),
    ...          MessageUnit(role="ai", content="", tool_calls=({"name": "logs", "args": {}, "id": "c1"},)),
    ...          MessageUnit(role="tool", content=log, tool_call_id="c1")]
    >>> policy = ContextPolicy(message_budget=60)
    >>> parts = make_parts(policy, Compressor(criterion="lexical"), InMemoryArchive())
    >>> out, report = reduce_units(units, parts, budget=policy.budget_for(None))
    >>> report.messages[0].tokens_after <= 60 and "ERROR 42" in out[2].content
    True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..archive import Archive
from ..budget import MessageBudget
from ..compressor import Compressor
from .conversation import derive_query
from .passes import CompactToolOutputs, FitTotal, MessagePass
from .policy import ContextPolicy
from .report import StepKind, StepReport
from .state import ReductionParts, ReductionState
from .tally import MessageTally
from .unit import MessageCodec, MessageUnit

_PER_MESSAGE: MessagePass = CompactToolOutputs()
_FIT_TOTAL: MessagePass = FitTotal()


class _PlainCodec:
    """Archives units as plain dicts (adapters pass their own framework's format)."""

    def dump(self, units: Sequence[MessageUnit]) -> list[dict[str, Any]]:
        return [{"type": u.role, "data": {"content": u.content, "id": u.id, "tool_calls": list(u.tool_calls),
                                          "tool_call_id": u.tool_call_id, "name": u.name}} for u in units]


def needs_reduction(
    units: Sequence[MessageUnit], budget: MessageBudget, tally: MessageTally, never_compress: frozenset[str]
) -> bool:
    """Cheap check: is an unmarked tool output over the per-message limit, or the total over ``budget.total``?"""
    if over_message_limit(units, budget, tally, never_compress):
        return True
    return budget.total is not None and tally.total(units) > budget.total


def over_message_limit(
    units: Sequence[MessageUnit], budget: MessageBudget, tally: MessageTally, never_compress: frozenset[str]
) -> bool:
    """Is an unmarked tool output (of a tool not in ``never_compress``) over ``budget.message_limit``?"""
    limit = budget.message_limit
    return limit is not None and any(
        u.role == "tool" and u.mark is None and u.name not in never_compress and tally.content(u) > limit
        for u in units)


def reduce_units(
    units: Sequence[MessageUnit],
    parts: ReductionParts,
    *,
    budget: MessageBudget,
    query: str | None = None,
    kind: StepKind = "model_call",
) -> tuple[list[MessageUnit], StepReport]:
    """Reduce a call's message units to ``budget`` (see the module docstring for the passes).

    Args:
        units: the call's messages, system prompt included when there is one.
        parts: policy, compressor, archive, token memo and codec (:func:`make_parts` fills defaults).
        budget: the sizes to hold (from ``policy.budget_for(total)``).
        query: what the criteria are conditioned on; default: derived from ``policy.query_source``.
        kind: the :class:`StepReport` kind.

    Returns:
        The units the model should see (unchanged ones are the input objects) and a :class:`StepReport`.
    """
    started = time.perf_counter()
    policy, tally, counter = parts.policy, parts.tally, parts.compressor.counter
    if query is None:
        query = derive_query(units, policy.query_source)
    total_before = tally.total(units)
    report_args: dict[str, Any] = {"kind": kind, "tokens_before": total_before, "budget": budget.total,
                                   "query_chars": len(query or ""), "tokenizer": counter.name}
    within_total = budget.total is None or total_before <= budget.total
    if within_total and not over_message_limit(units, budget, tally, policy.never_compress_tools):
        return list(units), StepReport(tokens_after=total_before, seconds=time.perf_counter() - started,
                                       **report_args)
    state = ReductionState(units, parts, budget, query)
    _PER_MESSAGE.apply(state)
    if budget.total is not None:
        _FIT_TOTAL.apply(state)
    out = state.kept()
    total_after = tally.total(out)
    within = budget.total is None or total_after <= budget.total
    report = StepReport(
        tokens_after=total_after, seconds=time.perf_counter() - started, within_budget=within,
        messages=tuple(state.records[i] for i in sorted(state.records)),
        note="" if within else why_over(state, total_after), **report_args,
    )
    return out, report


def make_parts(
    policy: ContextPolicy,
    compressor: Compressor,
    archive: Archive,
    tally: MessageTally | None = None,
    codec: MessageCodec | None = None,
) -> ReductionParts:
    """:class:`ReductionParts` with a fresh tally (in the compressor's tokenizer) and plain dicts by default."""
    tally = tally or MessageTally(compressor.counter, policy.message_overhead_tokens)
    return ReductionParts(policy, compressor, archive, tally, codec or _PlainCodec())


def why_over(state: ReductionState, total: int) -> str:
    """Why the call is still over its budget after every reduction the policy allows."""
    protected = notes = other = 0
    for i, m in enumerate(state.msgs):
        if m is None:
            continue
        size = state.tally.count(m)
        if m.action == "dropped_pair":
            notes += size
        elif state.plan.squeezable(i):
            other += size
        else:
            protected += size
    policy = state.policy
    parts = [f"{protected} tokens are protected (system prompt, latest request, last "
             f"{policy.protect_last_n_turns} turns, protected tools, error traces, recall results)"]
    if other:
        off = [f for f in ("compress_text", "drop_pairs") if not getattr(policy, f)]
        why = f"the policy turns off {' and '.join(off)}" if off else "at floor_tokens or in a pair that must stay"
        parts.append(f"{other} tokens in older messages that cannot be reduced further ({why})")
    if notes:
        parts.append(f"{notes} tokens of notes")
    return f"{total} tokens > budget {state.target}: " + "; ".join(parts)
