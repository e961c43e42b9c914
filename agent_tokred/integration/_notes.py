"""The call budget's passes (steps 2-5 of :mod:`~agent_tokred.integration.messages`) and their notes.

The last resort of :func:`~agent_tokred.integration.messages.reduce_messages` removes whole old
tool-call pairs (then, if still over budget, old AI texts, then old requests) from what the model
sees. Every maximal run of consecutive removed messages becomes **one** note naming a single
handle, under which the run's original messages are archived (as ``messages_to_dict`` JSON, in
order; a note absorbed into a larger run is expanded to the messages it stood for). A note never
costs more tokens than the messages it replaces.

Where the note goes (no orphan tool call, no two AI messages in a row where avoidable):

* when the run is followed by an old AI text (no tool calls, not protected, not reduced), the note
  is folded into it: that message is shown led by the note, and its original is archived with the
  run. This is the common case (a turn's tool calls dropped, its answer kept);
* otherwise the note is its own ``AIMessage``, the assistant's record of its earlier steps; where
  it then touches another AI message (the next kept one is protected or carries tool calls),
  OpenAI and Gemini accept two assistant messages in a row and the LangChain adapters of Anthropic
  and Bedrock merge them into one turn;
* never a ``HumanMessage``, but for a note that would open the conversation (only system messages
  before it): Anthropic, Bedrock and Gemini want the user to speak first. A user message means
  "what the user said" to agents and to the query picker: user-role notes right after a request
  read as the latest request (the RAG demo's researcher, which counts user turns, lost its place
  with them). For the same reason old AI texts are dropped before old user requests.

Example:
    >>> from collections import Counter
    >>> note_text(6, Counter(search=3), 0, "tkr-0123456789abcdef01234567")
    '[agent-tokred: 6 earlier messages archived (tool calls: search×3): recall("tkr-0123456789abcdef01234567")]'
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage, messages_to_dict

from ..archive import Archive
from ._content import MARKER, MessageTally, marker
from .conversation import ConversationPlan, role_of
from .policy import ContextPolicy
from .report import Action, MessageReport

NOTE_ACTION = "dropped_pair"
_MAX_NAMES = 3
# The handle in an estimate: a real one costs 12-24 o200k tokens (16 typical); this one costs 17,
# and the estimate adds a margin, so a note is rarely dearer than estimated (the caller re-checks).
PLACEHOLDER_HANDLE = "tkr-6e340b9cffb37a989ca544e6"
ESTIMATE_MARGIN = 3
_MIN_GIVE_BACK = 24  # fewer freed tokens than this are not worth re-compressing a message for


def is_note(msg: BaseMessage | None) -> bool:
    """True for a note this library wrote in place of dropped messages."""
    return msg is not None and (marker(msg) or {}).get("action") == NOTE_ACTION


def note_text(n_messages: int, calls: Mapping[str, int], texts: int, handle: str, recall: str = "recall") -> str:
    """The note's text: how many messages, which tool calls, how many texts, and how to recall them."""
    parts: list[str] = []
    if calls:
        names = [f"{name}×{k}" if k > 1 else name for name, k in sorted(calls.items(), key=lambda kv: -kv[1])]
        more = f", +{len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
        parts.append("tool calls: " + ", ".join(names[:_MAX_NAMES]) + more)
    if texts:
        parts.append(f"{texts} user/AI text{'s' if texts > 1 else ''}")
    what = f" ({'; '.join(parts)})" if parts else ""
    noun = "message" if n_messages == 1 else "messages"
    return f'[agent-tokred: {n_messages} earlier {noun} archived{what}: {recall}("{handle}")]'


def composition(members: Iterable[BaseMessage]) -> tuple[int, Counter[str], int]:
    """``(messages, tool-call names, texts)`` the members stand for (notes count what they replaced)."""
    n, calls, texts = 0, Counter[str](), 0
    for msg in members:
        mark = marker(msg) or {}
        if mark.get("action") == NOTE_ACTION:
            n += int(mark.get("messages", 1) or 1)
            calls.update({str(k): int(v) for k, v in dict(mark.get("calls") or {}).items()})
            texts += int(mark.get("texts", 0) or 0)
            continue
        n += 1
        tool_calls = getattr(msg, "tool_calls", None) or ()
        calls.update(str(c.get("name", "?")) for c in tool_calls)
        if not tool_calls and msg.type in ("human", "ai"):
            texts += 1
    return n, calls, texts


def runs(n: int, dropped: set[int], absorbable: set[int]) -> list[list[int]]:
    """Maximal runs of consecutive positions in ``dropped | absorbable`` holding at least one dropped one."""
    out: list[list[int]] = []
    current: list[int] = []
    for i in range(n + 1):
        if i < n and (i in dropped or i in absorbable):
            current.append(i)
            continue
        if any(j in dropped for j in current):
            out.append(current)
        current = []
    return out


def side(msg: BaseMessage | None) -> str:
    """``"assistant"``, ``"user"`` (human, tool and function results) or ``"none"`` (system, nothing)."""
    if msg is None or isinstance(msg, SystemMessage):
        return "none"
    if isinstance(msg, AIMessage):
        return "assistant"
    if isinstance(msg, ChatMessage):
        return "assistant" if msg.role in ("assistant", "ai", "model") else "user"
    return "user"


def make_note(text: str, *, before: BaseMessage | None, msg_id: str | None, fields: dict[str, Any]) -> BaseMessage:
    """The note message: an ``AIMessage``, or a ``HumanMessage`` when it opens the conversation."""
    meta = {MARKER: {"action": NOTE_ACTION, **fields}}
    if side(before) == "none":
        return HumanMessage(content=text, id=msg_id, response_metadata=meta)
    return AIMessage(content=text, id=msg_id, response_metadata=meta)


def fold_into(host: AIMessage, text: str, fields: dict[str, Any]) -> AIMessage:
    """``host`` (an AI text) led by the note ``text``, marked as the note (its original is archived with the run)."""
    content: Any = f"{text}\n\n{host.content}" if isinstance(host.content, str) else [
        {"type": "text", "text": text}, *host.content]
    meta = {**host.response_metadata, MARKER: {"action": NOTE_ACTION, **fields}}
    return host.model_copy(update={"content": content, "response_metadata": meta})


def expand(note: BaseMessage, archived: str | None) -> list[dict[str, Any]] | None:
    """The archived message dicts a note stands for (``None`` when its original is not in this archive)."""
    if archived is None:
        return None
    try:
        value = json.loads(archived)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, dict) for v in value) else None


def summary(messages: Sequence[BaseMessage]) -> str:
    """Names of the tools called in ``messages`` (for the report)."""
    _, calls, _ = composition(messages)
    return ", ".join(sorted(calls))


class CallFitter:
    """Steps 2-5 of :mod:`~agent_tokred.integration.messages`: a mixin over the reducer's state."""

    msgs: list[BaseMessage | None]
    policy: ContextPolicy
    archive: Archive
    tally: MessageTally
    plan: ConversationPlan
    records: dict[int, MessageReport]
    before_squeeze: dict[int, tuple[BaseMessage, MessageReport | None]]
    limit: int | None
    readable_only: bool

    def total(self) -> int:
        raise NotImplementedError

    def original_message(self, msg: BaseMessage) -> BaseMessage:
        raise NotImplementedError

    def reduce_one(self, i: int, target: int, action: Action) -> int:
        raise NotImplementedError

    def squeeze(self, roles: tuple[str, ...], excess: int) -> int:
        raise NotImplementedError

    def fit_call(self, budget: int) -> None:
        """Steps 2-5 of :mod:`~agent_tokred.integration.messages`: hold the call to ``budget``.

        Older requests' messages are squeezed and dropped before the current request's own tool work
        is touched (what the agent is doing now outranks what it did for earlier requests).
        """
        policy = self.policy
        latest = self.plan.latest_human
        zones = (latest, None) if latest > 0 else (None,)
        for readable in (True, False):  # the second round: cut what is left at any granularity
            self.readable_only = readable
            for limit in zones:
                self.limit = limit
                excess = self.total() - budget
                if excess > 0:
                    excess = self.squeeze(("tool",), excess)
                if excess > 0 and policy.compress_text:
                    excess = self.squeeze(("human", "ai"), excess)
                if readable and excess > 0 and policy.drop_pairs:
                    self.drop_runs(budget)
                if self.total() <= budget:
                    break
            self.limit = None
            if readable and any(r.action == "dropped_pair" for r in self.records.values()):
                self.give_back(budget)  # what a removal freed beyond the budget (not a compressor's rounding)
            if self.total() <= budget:
                return
        if policy.drop_pairs:
            self.leave_out(budget)

    def drop_runs(self, budget: int) -> None:
        """Remove old pairs (then old texts, when text may be reduced) until the call fits ``budget``.

        Greedy, oldest first, on an estimate of the total with one note per run (a removal that
        does not lower the estimate is passed over, and retried once its neighbours are gone); the
        notes are then written with their real handles, and another round covers what a handle
        dearer than estimated left over. Notes already in the input (sticky history) are kept as
        they are, so a saved prefix stays stable; only when the call still does not fit are they
        merged into the runs next to them.
        """
        groups = [g for g in self.plan.drop_groups(text=self.policy.compress_text)
                  if self.limit is None or g[-1] < self.limit]
        given = [i for i, m in enumerate(self.msgs) if is_note(m)]
        for merge_given in (False, True):
            given_tokens = sum(self.tally.count(m) for i in given if (m := self.msgs[i]) is not None)
            if merge_given and self.total() - budget > given_tokens:
                return  # merging the given notes cannot make it fit: keep the saved prefix stable
            cands = groups + [[i] for i in given] if merge_given else groups
            for _ in range(3):
                if self.total() <= budget:
                    return
                absorbable = {i for i, m in enumerate(self.msgs)
                              if m is None or (is_note(m) and (merge_given or i not in given))}
                if not self._drop_greedily(cands, absorbable, budget):
                    break

    def _drop_greedily(self, cands: list[list[int]], absorbable: set[int], budget: int) -> bool:
        sizes = [0 if m is None else self.tally.count(m) for m in self.msgs]
        pending = [g for g in cands if any(self.msgs[j] is not None for j in g)]
        dropped: set[int] = set()
        current = self._estimate(dropped, absorbable, sizes)
        progress = True
        while current > budget and progress:
            progress = False
            for g in pending:
                if current <= budget:
                    break
                if dropped.issuperset(g):
                    continue
                trial = self._estimate(dropped | set(g), absorbable, sizes)
                if trial < current:
                    dropped.update(g)
                    current, progress = trial, True
        return bool(dropped) and self._write_notes(dropped, absorbable)

    def _estimate(self, dropped: set[int], absorbable: set[int], sizes: list[int]) -> int:
        total = sum(sizes)
        for run in runs(len(self.msgs), dropped, absorbable):
            total -= sum(sizes[j] for j in run)
            n, calls, texts = composition(m for m in (self.msgs[j] for j in run) if m is not None)
            text = note_text(n, calls, texts, PLACEHOLDER_HANDLE, self.policy.recall_tool_name)
            total += self.tally.text(text) + self.tally.overhead + ESTIMATE_MARGIN
        return total

    def _write_notes(self, dropped: set[int], absorbable: set[int]) -> bool:
        """Replace each run by its note (archiving the run's originals); False when none was written."""
        wrote = False
        for run in runs(len(self.msgs), dropped, absorbable):
            members = [(j, m) for j in run if (m := self.msgs[j]) is not None]
            after = next((k for k in range(run[-1] + 1, len(self.msgs)) if self.msgs[k] is not None), None)
            host = self.msgs[after] if after is not None else None
            if not (isinstance(host, AIMessage) and not host.tool_calls and marker(host) is None
                    and after is not None and self.plan.squeezable(after)):
                host = None
            archived = members + ([(after, host)] if host is not None and after is not None else [])
            dicts: list[dict[str, Any]] = []
            for _, m in archived:
                back = expand(m, self.archive.get(str((marker(m) or {}).get("handle", "")))) if (
                    is_note(m)) else None
                dicts += back if back is not None else messages_to_dict([self.original_message(m)])
            handle = self.archive.put(json.dumps(dicts, ensure_ascii=False, default=str))
            n, calls, texts = composition(m for _, m in archived)
            before = sum(self.tally.count(m) for _, m in members)
            fields = {"handle": handle, "messages": n, "calls": dict(calls), "texts": texts,
                      "replaced": len(members), "tokens_before": sum(
                          int((marker(m) or {}).get("tokens_before", 0)) if is_note(m)
                          else self.tally.count(self.original_message(m)) for _, m in members)}
            text = note_text(*composition(m for _, m in members), handle, self.policy.recall_tool_name)
            note: BaseMessage
            if host is not None and after is not None:  # fold into the next AI text: no two AI messages in a row
                note = fold_into(host, text, {**fields, "host": True})
                cost, at = self.tally.count(note) - self.tally.count(host), after
            else:
                note = make_note(text, before=next((m for m in reversed(self.msgs[: run[0]]) if m is not None), None),
                                 msg_id=members[0][1].id, fields=fields)
                cost, at = self.tally.count(note), members[0][0]
            if cost >= before:  # a note never costs more than what it replaces
                continue
            for j, _ in members:
                self.msgs[j] = None
                self.records.pop(j, None)
                self.before_squeeze.pop(j, None)
            self.msgs[at] = note
            self.records[members[0][0]] = MessageReport(
                index=members[0][0], role=role_of(note), action="dropped_pair", tokens_before=before,
                tokens_after=cost, handle=handle, name=summary([m for _, m in members]))
            wrote = True
        return wrote

    def give_back(self, budget: int) -> None:
        """Hand tokens the removals freed beyond ``budget`` back to the newest squeezed messages."""
        for i in sorted(self.before_squeeze, reverse=True):
            squeezed, squeezed_record = self.msgs[i], self.records.get(i)
            slack = budget - self.total()
            if slack < _MIN_GIVE_BACK:
                break
            if squeezed is None:
                continue
            previous, record = self.before_squeeze[i]
            self.msgs[i] = previous
            if record is None:
                self.records.pop(i, None)
            else:
                self.records[i] = record
            if self.tally.count(previous) - self.tally.count(squeezed) <= slack:
                continue  # restored whole
            target = self.tally.content(squeezed) + slack
            if not self.reduce_one(i, target, "squeezed") or self.total() > budget:
                self.msgs[i] = squeezed  # could not do better than the squeezed form
                if squeezed_record is not None:
                    self.records[i] = squeezed_record
        self.before_squeeze.clear()

    def leave_out(self, budget: int) -> None:
        """Last resort: leave notes, and old messages a note would cost more than, out of the call.

        Only when that makes the call fit ``budget`` (protected content alone fits): oldest first,
        each original still archived and its handle in the report (``tokens_after=0``).
        """
        units = [[i] for i, m in enumerate(self.msgs) if m is not None and is_note(m)]
        units += [g for g in self.plan.drop_groups(text=self.policy.compress_text)
                  if all(self.msgs[j] is not None and not is_note(self.msgs[j]) for j in g)]
        over = self.total() - budget
        if over <= 0 or over > sum(self.tally.count(m) for g in units for j in g if (m := self.msgs[j]) is not None):
            return
        for group in sorted(units):
            if over <= 0:
                break
            members = [m for j in group if (m := self.msgs[j]) is not None]
            size = sum(self.tally.count(m) for m in members)
            mark = marker(members[0]) or {}
            old = self.records.get(group[0])
            handle = str(mark.get("handle", "")) if is_note(members[0]) else self.archive.put(json.dumps(
                messages_to_dict([self.original_message(m) for m in members]), ensure_ascii=False, default=str))
            for j in group:
                self.msgs[j] = None
                self.records.pop(j, None)
            self.records[group[0]] = MessageReport(
                index=group[0], role=role_of(members[0]), action="dropped_pair",
                tokens_before=old.tokens_before if old else size, tokens_after=0, handle=handle,
                name=summary(members) or (old.name if old else ""),
                note="left out without a note: protected content leaves no room for one")
            over -= size

    def why_over(self, total: int, budget: int) -> str:
        """Why the call is still over ``budget`` after every reduction the policy allows."""
        protected = notes = other = 0
        for i, m in enumerate(self.msgs):
            if m is None:
                continue
            size = self.tally.count(m)
            if is_note(m):
                notes += size
            elif self.plan.squeezable(i):
                other += size
            else:
                protected += size
        parts = [f"{protected} tokens are protected (system prompt, latest request, last "
                 f"{self.policy.protect_last_n_turns} turns, protected tools, error traces, recall results)"]
        if other:
            off = [f for f in ("compress_text", "drop_pairs") if not getattr(self.policy, f)]
            why = f"the policy turns off {' and '.join(off)}" if off else "at floor_tokens or in a pair that must stay"
            parts.append(f"{other} tokens in older messages that cannot be reduced further ({why})")
        if notes:
            parts.append(f"{notes} tokens of notes")
        return f"{total} tokens > budget {budget}: " + "; ".join(parts)
