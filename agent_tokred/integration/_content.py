"""Message content helpers: text of str/list content, token tallies, markers, block-wise compression."""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from ..archive import Archive
from ..budget import make_budget
from ..compressor import Compressor
from ..errors import InvalidInputError
from ..reduction import Reduction
from ..tokens import TokenCounter

MARKER = "agent_tokred"
_TEXT_TYPES = ("text", "text-plain")
_REASONING_TYPES = ("reasoning", "thinking")


def marker(msg: BaseMessage) -> dict[str, Any] | None:
    """The agent-tokred marker of a message (``None`` when the library never touched it)."""
    meta = getattr(msg, "response_metadata", None)
    value = meta.get(MARKER) if isinstance(meta, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else None


def with_marker(msg: BaseMessage, content: Any, **fields: Any) -> BaseMessage:
    """A copy of ``msg`` with new ``content`` and ``response_metadata[MARKER] = fields``."""
    meta = dict(getattr(msg, "response_metadata", None) or {})
    meta[MARKER] = fields
    return msg.model_copy(update={"content": content, "response_metadata": meta})


def block_text(block: Any) -> str | None:
    """The text of a content block (``None`` for images, tool_use and other non-text blocks)."""
    if isinstance(block, str):
        return block
    if isinstance(block, Mapping) and block.get("type") in _TEXT_TYPES and isinstance(block.get("text"), str):
        return str(block["text"])
    return None


def content_text(content: Any) -> str:
    """All text of a message content (str, or the text blocks of a list joined by newlines)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in (block_text(b) for b in content) if t is not None)
    return "" if content is None else str(content)


def original_of(content: Any) -> str:
    """The exact original of a content as archived: the string itself, or the blocks as JSON."""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, default=str)


def _counted_parts(msg: BaseMessage) -> list[str]:
    """The strings a provider sends for a message: text, reasoning, tool-use input, tool-call args."""
    content = msg.content
    parts: list[str] = []
    has_calls = isinstance(msg, AIMessage) and bool(msg.tool_calls)
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
                elif kind == "tool_use" and not has_calls:
                    parts.append(json.dumps(block.get("input", {}), ensure_ascii=False, default=str))
                # images, audio, files: priced by the provider, not countable as text here
    elif content is not None:
        parts.append(str(content))
    if has_calls:
        assert isinstance(msg, AIMessage)
        for call in msg.tool_calls:
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

    def content(self, msg: BaseMessage) -> int:
        """Tokens of the text content only (what compression can shrink)."""
        return self.text(content_text(msg.content))

    def count(self, msg: BaseMessage) -> int:
        """Tokens a provider is sent for ``msg``: content, tool calls and per-message overhead."""
        return sum(self.text(p) for p in _counted_parts(msg)) + self.overhead

    def total(self, messages: Sequence[BaseMessage]) -> int:
        return sum(self.count(m) for m in messages)


def compress_text(
    compressor: Compressor, text: str, target: int, query: str | None
) -> Reduction:
    """Compress one text to at most ``target`` tokens (``target >= 1``).

    A query that is not text (binary junk pasted into a request) conditions nothing: the text is
    then compressed without it rather than left over budget.
    """
    budget = make_budget(target_tokens=max(1, target))
    try:
        return compressor.compress(text, query=query, budget=budget)
    except InvalidInputError:
        if query is None:
            raise
        return compressor.compress(text, query=None, budget=budget)


def compress_blocks(
    compressor: Compressor, blocks: list[Any], target: int, query: str | None, tally: MessageTally
) -> tuple[list[Any], str]:
    """Compress the text blocks of a list content to ``target`` tokens in total, sharing it by size.

    Non-text blocks (images, tool_use, reasoning) are kept unchanged and in place.
    """
    sizes = [tally.text(t) if (t := block_text(b)) is not None else 0 for b in blocks]
    total = sum(sizes)
    out: list[Any] = list(blocks)
    criterion = ""
    if total <= target:
        return out, criterion
    # Newline joins between blocks are not sent, so per-block shares add up to the target.
    shares = [size * target // total for size in sizes]
    for i, (block, size, share) in enumerate(zip(blocks, sizes, shares)):
        text = block_text(block)
        if text is None or size <= share:
            continue
        if share < 1:
            new_text = ""
        else:
            red = compress_text(compressor, text, share, query)
            new_text, criterion = red.text, red.criterion
        out[i] = new_text if isinstance(block, str) else {**block, "text": new_text}
    # Drop blocks emptied entirely (providers reject empty text blocks).
    return [b for b in out if block_text(b) != ""], criterion


class _ScratchArchive:
    """Lets the compressor recognise the library's outputs without storing a second original copy."""

    def __init__(self, real: Archive) -> None:
        self._real = real

    def put(self, original: str, *, output: str | None = None) -> str:
        return ""

    def get(self, handle: str) -> str | None:
        return None

    def is_output(self, text: str) -> bool:
        return self._real.is_output(text)


def scratch_compressor(compressor: Compressor, archive: Archive) -> Compressor:
    """A shallow copy of ``compressor`` that archives nothing itself (the caller archives in ``archive``)."""
    out = copy.copy(compressor)
    out.archive = _ScratchArchive(archive)
    return out
