"""Token tallies of messages in one tokenizer: content, tool calls and per-message framing.

A tally counts anything with a ``content`` (and, for an AI message, ``tool_calls``): a
:class:`~agent_tokred.messages.unit.MessageUnit` or a framework message alike.

Example:
    >>> from agent_tokred.messages.unit import MessageUnit
    >>> from agent_tokred.tokens import resolve_counter
    >>> tally = MessageTally(resolve_counter("approx"), overhead=3)
    >>> tally.count(MessageUnit(role="human", content="")) == 3
    True
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..tokens import TokenCounter
from .unit import block_text, content_text

_REASONING_TYPES = ("reasoning", "thinking")


class Countable(Protocol):
    """What a tally reads: a message's content (tool calls are read when present)."""

    @property
    def content(self) -> Any: ...


def _counted_parts(msg: Countable) -> list[str]:
    """The strings a provider sends for a message: text, reasoning, tool-use input, tool-call args."""
    content = msg.content
    parts: list[str] = []
    calls = getattr(msg, "tool_calls", None) or ()
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for block in content:
            text = block_text(block)
            if text is not None:
                parts.append(text)
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind in _REASONING_TYPES:
                    parts.append(str(block.get("reasoning") or block.get("thinking") or ""))
                elif kind == "tool_use" and not calls:
                    parts.append(json.dumps(block.get("input", {}), ensure_ascii=False, default=str))
                # images, audio, files: priced by the provider, not countable as text here
    elif content is not None:
        parts.append(str(content))
    for call in calls:
        parts.append(str(call.get("name", "")))
        parts.append(json.dumps(call.get("args", {}), ensure_ascii=False, sort_keys=True, default=str))
    return parts


class MessageTally:
    """Counts message tokens in one tokenizer, memoising texts (history repeats every step).

    Args:
        counter: the token counter (the model's tokenizer).
        overhead: tokens charged per message for role and framing.
        max_chars: bound on the characters kept in the memo (least recently used evicted).
    """

    def __init__(self, counter: TokenCounter, overhead: int = 3, max_chars: int = 64_000_000) -> None:
        self.counter = counter
        self.overhead = overhead
        self.max_chars = max_chars
        self._memo: OrderedDict[str, int] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def text(self, text: str) -> int:
        """Tokens of ``text``."""
        if not text:
            return 0
        with self._lock:
            hit = self._memo.get(text)
            if hit is not None:
                return hit
        n = self.counter.count(text)
        with self._lock:
            if text not in self._memo:
                self._memo[text] = n
                self._chars += len(text)
                while self._chars > self.max_chars and self._memo:
                    old, _ = self._memo.popitem(last=False)
                    self._chars -= len(old)
        return n

    def content(self, msg: Countable) -> int:
        """Tokens of the text content only (what compression can shrink)."""
        return self.text(content_text(msg.content))

    def count(self, msg: Countable) -> int:
        """Tokens a provider is sent for ``msg``: content, tool calls and per-message overhead."""
        return sum(self.text(p) for p in _counted_parts(msg)) + self.overhead

    def total(self, messages: Sequence[Countable]) -> int:
        """Tokens of all ``messages``."""
        return sum(self.count(m) for m in messages)
