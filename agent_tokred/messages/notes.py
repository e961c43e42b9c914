"""Pair-safe notes: what stands in for a run of removed messages, and where it goes.

The last resort of :func:`~agent_tokred.messages.reduce.reduce_units` removes whole old
tool-call pairs (then, if still over budget, old AI texts, then old requests) from what the model
sees. Every maximal run of consecutive removed messages becomes **one** note naming a single
handle, under which the run's original messages are archived (as the adapter's message dicts,
``messages_to_dict`` JSON for LangChain, in order; a note absorbed into a larger run is expanded to the messages it stood for). A note never
costs more tokens than the messages it replaces.

Where the note goes (no orphan tool call, no two AI messages in a row where avoidable):

* when the run is followed by an old AI text (no tool calls, not protected, not reduced), the note
  is folded into it: that message is shown led by the note, and its original is archived with the
  run. This is the common case (a turn's tool calls dropped, its answer kept);
* otherwise the note is its own AI message, the assistant's record of its earlier steps; where
  it then touches another AI message (the next kept one is protected or carries tool calls),
  OpenAI and Gemini accept two assistant messages in a row and the LangChain adapters of Anthropic
  and Bedrock merge them into one turn;
* never a user message, but for a note that would open the conversation (only system messages
  before it): Anthropic, Bedrock and Gemini want the user to speak first. A user message means
  "what the user said" to agents and to the query picker: user-role notes right after a request
  read as the latest request (the RAG demo's researcher, which counts user turns, lost its place
  with them). For the same reason old AI texts are dropped before old user requests.

Example:
    >>> from collections import Counter
    >>> note_text(6, Counter(search=3), 0, "tkr-012345678901234567890123")
    '[agent-tokred: 6 earlier messages archived (tool calls: search×3): recall("tkr-012345678901234567890123")]'
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .unit import NOTE_ACTION, MessageUnit, edited, new_unit

_MAX_NAMES = 3
# The handle in an estimate: every handle costs the same o200k / cl100k tokens (24 decimal digits, see
# agent_tokred.archive.make_handle); other tokenizers may differ, so the estimate keeps a margin (the
# caller re-checks).
PLACEHOLDER_HANDLE = "tkr-" + "0" * 24
ESTIMATE_MARGIN = 3


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


def composition(members: Iterable[MessageUnit]) -> tuple[int, Counter[str], int]:
    """``(messages, tool-call names, texts)`` the members stand for (notes count what they replaced)."""
    n, calls, texts = 0, Counter[str](), 0
    for msg in members:
        mark = msg.mark or {}
        if msg.action == NOTE_ACTION:
            n += int(mark.get("messages", 1) or 1)
            calls.update({str(k): int(v) for k, v in dict(mark.get("calls") or {}).items()})
            texts += int(mark.get("texts", 0) or 0)
            continue
        n += 1
        calls.update(str(c.get("name", "?")) for c in msg.tool_calls)
        if not msg.tool_calls and msg.role in ("human", "ai"):
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


def make_note(text: str, *, before: MessageUnit | None, unit_id: str | None, fields: dict[str, Any]) -> MessageUnit:
    """The note: an AI message, or a user message when it opens the conversation."""
    mark = {"action": NOTE_ACTION, **fields}
    if before is None or before.speaker == "none":
        return new_unit("human", text, mark=mark, unit_id=unit_id)
    return new_unit("ai", text, mark=mark, unit_id=unit_id)


def fold_into(host: MessageUnit, text: str, fields: dict[str, Any]) -> MessageUnit:
    """``host`` (an AI text) led by the note ``text``, marked as the note (its original is archived with the run)."""
    content: Any = f"{text}\n\n{host.content}" if isinstance(host.content, str) else [
        {"type": "text", "text": text}, *host.content]
    return edited(host, content, {"action": NOTE_ACTION, **fields})


def expand(archived: str | None) -> list[dict[str, Any]] | None:
    """The archived message dicts a note stands for (``None`` when its original is not in this archive)."""
    if archived is None:
        return None
    try:
        value = json.loads(archived)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, dict) for v in value) else None


def summary(messages: Sequence[MessageUnit]) -> str:
    """Names of the tools called in ``messages`` (for the report)."""
    _, calls, _ = composition(messages)
    return ", ".join(sorted(calls))
