"""The passes of a message reduction: one-method steps over a :class:`ReductionState` that compose.

Each pass has one method, ``apply(state)``, and reads its sizes from ``state.budget`` (the one
:class:`~agent_tokred.budget.MessageBudget` of the run):

* :class:`CompactToolOutputs`: every unmarked tool output over the per-message limit is compressed
  to ``per_message`` (query-aware);
* :class:`Squeeze`: while over the total, older messages of some roles are squeezed harder (oldest
  turn first, largest first), from their archived original, never below ``floor_tokens``;
* :class:`DropRuns`: whole old tool-call pairs (then old texts) are removed, each run of removed
  messages replaced by one pair-safe note (:mod:`~agent_tokred.messages.notes`);
* :class:`GiveBack`: tokens the removals freed beyond the total go back to the newest squeezed messages;
* :class:`LeaveOut`: last resort, notes (and old messages a note would cost more than) leave the call;
* :class:`FitTotal`: the composition of the four above that holds a call to its total.

Example:
    >>> [type(p).__name__ for p in FitTotal().rounds]
    ['Squeeze', 'Squeeze', 'DropRuns']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .notes import (
    ESTIMATE_MARGIN,
    PLACEHOLDER_HANDLE,
    composition,
    expand,
    fold_into,
    make_note,
    note_text,
    runs,
    summary,
)
from .report import MessageReport
from .state import ReductionState
from .unit import NOTE_ACTION, MessageUnit, is_note

_MIN_GIVE_BACK = 24  # fewer freed tokens than this are not worth re-compressing a message for


class MessagePass(Protocol):
    """One step of a reduction: edits the state in place."""

    def apply(self, state: ReductionState) -> None: ...


class CompactToolOutputs:
    """Hold every unmarked tool output over the per-message limit to ``budget.per_message``."""

    def apply(self, state: ReductionState) -> None:
        limit, target = state.budget.message_limit, state.budget.per_message
        if limit is None or target is None:
            return
        todo = [i for i, r in enumerate(state.plan.roles) if r == "tool" and not state.plan.fixed[i]]
        for i in sorted(todo, key=lambda j: (j, -state.tally.content(state.msgs[j]))):  # type: ignore[arg-type]
            msg = state.msgs[i]
            if msg is not None and msg.mark is None and state.tally.content(msg) > limit:
                state.reduce_one(i, target, "compressed")


@dataclass(frozen=True)
class Squeeze:
    """While over the total, squeeze older messages of ``roles`` (oldest turn first, largest first)."""

    roles: tuple[str, ...]
    needs_text: bool = False  # only when the policy allows reducing human/AI text

    def apply(self, state: ReductionState) -> None:
        excess = state.total() - state.target
        if excess <= 0 or (self.needs_text and not state.policy.compress_text):
            return
        floor, plan = state.budget.floor_tokens, state.plan
        cands = [i for i, r in enumerate(plan.roles) if r in self.roles and plan.squeezable(i)
                 and state.msgs[i] is not None and (state.limit is None or i < state.limit)
                 and not is_note(state.msgs[i])]  # a note written this call is never cut (its handle)
        cands.sort(key=lambda j: (plan.turn[j], -state.tally.content(state.msgs[j])))  # type: ignore[arg-type]
        for i in cands:
            if excess <= 0:
                break
            msg = state.msgs[i]
            if msg is None:
                continue
            size = state.tally.content(msg)
            if size <= max(floor, state.budget.min_tokens if msg.mark is None else 0):
                continue
            excess -= state.reduce_one(i, max(floor, size - excess), "squeezed")


class DropRuns:
    """Remove old pairs (then old texts, when text may be reduced) until the call fits the total.

    Greedy, oldest first, on an estimate of the total with one note per run (a removal that does
    not lower the estimate is passed over, and retried once its neighbours are gone); the notes are
    then written with their real handles, and another round covers what a handle dearer than
    estimated left over. Notes already in the input (sticky history) are kept as they are, so a
    saved prefix stays stable; only when the call still does not fit are they merged into the runs
    next to them.
    """

    def apply(self, state: ReductionState) -> None:
        budget = state.target
        if state.total() <= budget or not state.policy.drop_pairs:
            return
        groups = [g for g in state.plan.drop_groups(text=state.policy.compress_text)
                  if state.limit is None or g[-1] < state.limit]
        given = [i for i, m in enumerate(state.msgs) if is_note(m)]
        for merge_given in (False, True):
            given_tokens = sum(state.tally.count(m) for i in given if (m := state.msgs[i]) is not None)
            if merge_given and state.total() - budget > given_tokens:
                return  # merging the given notes cannot make it fit: keep the saved prefix stable
            cands = groups + [[i] for i in given] if merge_given else groups
            for _ in range(3):
                if state.total() <= budget:
                    return
                absorbable = {i for i, m in enumerate(state.msgs)
                              if m is None or (is_note(m) and (merge_given or i not in given))}
                if not _drop_greedily(state, cands, absorbable):
                    break


def _drop_greedily(state: ReductionState, cands: list[list[int]], absorbable: set[int]) -> bool:
    sizes = [0 if m is None else state.tally.count(m) for m in state.msgs]
    pending = [g for g in cands if any(state.msgs[j] is not None for j in g)]
    dropped: set[int] = set()
    current = _estimate(state, dropped, absorbable, sizes)
    progress = True
    while current > state.target and progress:
        progress = False
        for g in pending:
            if current <= state.target:
                break
            if dropped.issuperset(g):
                continue
            trial = _estimate(state, dropped | set(g), absorbable, sizes)
            if trial < current:
                dropped.update(g)
                current, progress = trial, True
    return bool(dropped) and PairSafeNotes(dropped, absorbable).write(state)


def _estimate(state: ReductionState, dropped: set[int], absorbable: set[int], sizes: list[int]) -> int:
    total = sum(sizes)
    for run in runs(len(state.msgs), dropped, absorbable):
        total -= sum(sizes[j] for j in run)
        n, calls, texts = composition(m for m in (state.msgs[j] for j in run) if m is not None)
        text = note_text(n, calls, texts, PLACEHOLDER_HANDLE, state.policy.recall_tool_name)
        total += state.tally.text(text) + state.tally.overhead + ESTIMATE_MARGIN
    return total


@dataclass(frozen=True)
class PairSafeNotes:
    """Replace each run of ``dropped`` (and ``absorbable``) positions by one note naming its archived originals."""

    dropped: set[int]
    absorbable: set[int] = field(default_factory=set)

    def write(self, state: ReductionState) -> bool:
        """Write the notes; False when none was written (a note never costs more than what it replaces)."""
        wrote = False
        for run in runs(len(state.msgs), self.dropped, self.absorbable):
            members = [(j, m) for j in run if (m := state.msgs[j]) is not None]
            after = next((k for k in range(run[-1] + 1, len(state.msgs)) if state.msgs[k] is not None), None)
            host = state.msgs[after] if after is not None else None
            if not (host is not None and after is not None and host.role == "ai" and not host.tool_calls
                    and host.mark is None and state.plan.squeezable(after)):
                host = None
            archived = members + ([(after, host)] if host is not None and after is not None else [])
            handle = state.archive.put(state.dump_json(_archived_dicts(state, [m for _, m in archived])))
            fields = _note_fields(state, handle, [m for _, m in archived], [m for _, m in members])
            text = note_text(*composition(m for _, m in members), handle, state.policy.recall_tool_name)
            before = sum(state.tally.count(m) for _, m in members)
            if host is not None and after is not None:  # fold into the next AI text: no two AI messages in a row
                note = fold_into(host, text, {**fields, "host": True})
                cost, at = state.tally.count(note) - state.tally.count(host), after
            else:
                previous = next((m for m in reversed(state.msgs[: run[0]]) if m is not None), None)
                note = make_note(text, before=previous, unit_id=members[0][1].id, fields=fields)
                cost, at = state.tally.count(note), members[0][0]
            if cost >= before:
                continue
            for j, _ in members:
                state.msgs[j] = None
                state.records.pop(j, None)
                state.before_squeeze.pop(j, None)
            state.msgs[at] = note
            state.records[members[0][0]] = MessageReport(
                index=members[0][0], role=note.role, action="dropped_pair", tokens_before=before,
                tokens_after=cost, handle=handle, name=summary([m for _, m in members]))
            wrote = True
        return wrote


def _archived_dicts(state: ReductionState, units: list[MessageUnit]) -> list[dict[str, Any]]:
    """The originals a run stands for (a note absorbed into it is expanded to what it replaced)."""
    out: list[dict[str, Any]] = []
    for m in units:
        back = expand(state.archive.get(str((m.mark or {}).get("handle", "")))) if is_note(m) else None
        out += back if back is not None else state.codec.dump([state.original_unit(m)])
    return out


def _note_fields(
    state: ReductionState, handle: str, archived: list[MessageUnit], members: list[MessageUnit]
) -> dict[str, Any]:
    n, calls, texts = composition(archived)
    tokens_before = sum(int((m.mark or {}).get("tokens_before", 0)) if is_note(m)
                        else state.tally.count(state.original_unit(m)) for m in members)
    return {"handle": handle, "messages": n, "calls": dict(calls), "texts": texts, "replaced": len(members),
            "tokens_before": tokens_before}


class GiveBack:
    """Hand tokens the removals freed beyond the total back to the newest squeezed messages."""

    def apply(self, state: ReductionState) -> None:
        budget = state.target
        for i in sorted(state.before_squeeze, reverse=True):
            squeezed, squeezed_record = state.msgs[i], state.records.get(i)
            slack = budget - state.total()
            if slack < _MIN_GIVE_BACK:
                break
            if squeezed is None:
                continue
            previous, record = state.before_squeeze[i]
            state.msgs[i] = previous
            if record is None:
                state.records.pop(i, None)
            else:
                state.records[i] = record
            if state.tally.count(previous) - state.tally.count(squeezed) <= slack:
                continue  # restored whole
            target = state.tally.content(squeezed) + slack
            if not state.reduce_one(i, target, "squeezed") or state.total() > budget:
                state.msgs[i] = squeezed  # could not do better than the squeezed form
                if squeezed_record is not None:
                    state.records[i] = squeezed_record
        state.before_squeeze.clear()


class LeaveOut:
    """Last resort: leave notes, and old messages a note would cost more than, out of the call.

    Only when that makes the call fit (protected content alone fits): oldest first, each original
    still archived and its handle in the report (``tokens_after=0``).
    """

    def apply(self, state: ReductionState) -> None:
        if not state.policy.drop_pairs:
            return
        units = [[i] for i, m in enumerate(state.msgs) if m is not None and is_note(m)]
        units += [g for g in state.plan.drop_groups(text=state.policy.compress_text)
                  if all(state.msgs[j] is not None and not is_note(state.msgs[j]) for j in g)]
        over = state.total() - state.target
        removable = sum(state.tally.count(m) for g in units for j in g if (m := state.msgs[j]) is not None)
        if over <= 0 or over > removable:
            return
        for group in sorted(units):
            if over <= 0:
                break
            members = [m for j in group if (m := state.msgs[j]) is not None]
            size = sum(state.tally.count(m) for m in members)
            old = state.records.get(group[0])
            handle = str((members[0].mark or {}).get("handle", "")) if is_note(members[0]) else state.archive.put(
                state.dump_json(state.codec.dump([state.original_unit(m) for m in members])))
            for j in group:
                state.msgs[j] = None
                state.records.pop(j, None)
            state.records[group[0]] = MessageReport(
                index=group[0], role=members[0].role, action="dropped_pair",
                tokens_before=old.tokens_before if old else size, tokens_after=0, handle=handle,
                name=summary(members) or (old.name if old else ""),
                note="left out without a note: protected content leaves no room for one")
            over -= size


@dataclass(frozen=True)
class FitTotal:
    """Hold the call to ``budget.total``: squeeze, drop, give back, and as a last resort leave out.

    Older requests' messages are squeezed and dropped before the current request's own tool work
    is touched (what the agent is doing now outranks what it did for earlier requests). The
    second round cuts what is left at any granularity (no longer by whole sentences only).
    """

    rounds: tuple[MessagePass, ...] = (Squeeze(("tool",)), Squeeze(("human", "ai"), needs_text=True), DropRuns())
    give_back: MessagePass = field(default_factory=GiveBack)
    last_resort: MessagePass = field(default_factory=LeaveOut)

    def apply(self, state: ReductionState) -> None:
        latest = state.plan.latest_human
        zones = (latest, None) if latest > 0 else (None,)
        for readable in (True, False):
            state.readable_only = readable
            for limit in zones:
                state.limit = limit
                for step in self.rounds:
                    if readable or not isinstance(step, DropRuns):
                        step.apply(state)
                if state.total() <= state.target:
                    break
            state.limit = None
            if readable and any(r.action == NOTE_ACTION for r in state.records.values()):
                self.give_back.apply(state)  # what a removal freed beyond the budget (not a compressor's rounding)
            if state.total() <= state.target:
                return
        self.last_resort.apply(state)
