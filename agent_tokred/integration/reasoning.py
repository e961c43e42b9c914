"""Reasoning traces of earlier turns: cut redundant re-checking, compress, or drop them.

A reasoning model's thinking is useful for the turn that produced it; in later turns it mostly
costs tokens. :func:`reduce_reasoning` finds the thinking of an AI message in any of its usual
forms (``<think>`` tags in the text, reasoning/thinking content blocks, ``reasoning_content`` in
``additional_kwargs``), then:

* ``mode="cut"``: removes the re-checking after the answer settled
  (:func:`agent_tokred.overthinking.detect_overthinking`), then, if still over ``budget``,
  compresses the rest with the query-aware compressor;
* ``mode="drop"``: removes the thinking entirely.

The answer is never changed. Signed provider blocks (Anthropic ``signature``, ``redacted_thinking``)
cannot be edited validly, so they are dropped whole. The original content is archived.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> from agent_tokred import Compressor, InMemoryArchive
    >>> m = AIMessage("<think>Let me think. It is 4.</think>The answer is 4.")
    >>> new, rec = reduce_reasoning(m, mode="drop", compressor=Compressor(criterion="lexical"),
    ...                             archive=InMemoryArchive())
    >>> new.content
    'The answer is 4.'
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from langchain_core.messages import AIMessage

from ..archive import Archive
from ..compressor import Compressor
from ..errors import TokredError
from ..overthinking import detect_overthinking, split_trace
from ._content import compress_text, marker, original_of, scratch_compressor, with_marker
from .report import Action, MessageReport

ReasoningMode = Literal["cut", "drop"]
REASONING_MODES: tuple[str, ...] = ("cut", "drop")
_OPEN_TAG_AT_END = re.compile(r"<think(?:ing)?>\s*$", re.IGNORECASE)
_REASONING_TYPES = ("reasoning", "thinking", "redacted_thinking")


def _is_reasoning_block(block: Any) -> bool:
    return isinstance(block, Mapping) and block.get("type") in _REASONING_TYPES


def _signed(block: Mapping[str, Any]) -> bool:
    return block.get("type") == "redacted_thinking" or bool(block.get("signature"))


def _locate(msg: AIMessage) -> tuple[str, Any, Callable[[str], AIMessage]] | None:
    """The thinking of ``msg``, the trace to read it from, and a rebuild function taking new thinking."""
    kwargs = msg.additional_kwargs or {}
    rc = kwargs.get("reasoning_content")
    if isinstance(rc, str) and rc.strip():
        answer = msg.content if isinstance(msg.content, str) else ""

        def rebuild_kwargs(new: str) -> AIMessage:
            extra = {k: v for k, v in kwargs.items() if k != "reasoning_content"}
            if new:
                extra["reasoning_content"] = new
            return msg.model_copy(update={"additional_kwargs": extra})

        return rc, rc + "</think>" + answer, rebuild_kwargs
    content = msg.content
    if isinstance(content, list) and any(_is_reasoning_block(b) for b in content):
        split = split_trace(content)  # str items are read as answer text
        signed = any(_signed(b) for b in content if isinstance(b, Mapping) and _is_reasoning_block(b))

        def rebuild_blocks(new: str) -> AIMessage:
            out: list[Any] = []
            placed = False
            for block in content:
                if not _is_reasoning_block(block):
                    out.append(block)
                elif new and not signed and not placed:
                    out.append({"type": "reasoning", "reasoning": new})
                    placed = True
            return msg.model_copy(update={"content": out})

        return split.thinking, content, rebuild_blocks
    if isinstance(content, str):
        split = split_trace(content)
        if split.form in ("tagged", "close_only", "unterminated") and split.thinking.strip():

            def rebuild_text(new: str) -> AIMessage:
                text = split.render(new) if new else _OPEN_TAG_AT_END.sub("", split.prefix) + split.answer
                return msg.model_copy(update={"content": text})

            return split.thinking, content, rebuild_text
    return None


def reduce_reasoning(
    msg: AIMessage,
    *,
    mode: ReasoningMode = "cut",
    budget: int | None = None,
    compressor: Compressor,
    archive: Archive,
    question: str | None = None,
    index: int = 0,
) -> tuple[AIMessage, MessageReport | None]:
    """Reduce the thinking of one AI message (see the module docstring).

    Returns the new message (``msg`` itself when nothing changed) and its record.
    """
    if mode not in REASONING_MODES:
        from ..errors import UnknownNameError

        raise UnknownNameError("reasoning mode", mode, REASONING_MODES)
    if marker(msg) is not None:
        return msg, None
    found = _locate(msg)
    if found is None:
        return msg, None
    thinking, trace, rebuild = found
    counter = compressor.counter
    before = counter.count(thinking)
    signed = isinstance(msg.content, list) and any(
        _signed(b) for b in msg.content if isinstance(b, Mapping) and _is_reasoning_block(b))
    new = ""
    if mode == "cut" and not signed:
        result = detect_overthinking(trace, question=question, tokenizer=counter)
        new = result.kept_thinking if result.cut else thinking
        if budget is not None and counter.count(new) > budget:
            with contextlib.suppress(TokredError):  # thinking that is not text: keep the cut, never fail the node
                new = compress_text(scratch_compressor(compressor, archive), new, budget, question).text
    if new == thinking:
        return msg, None
    original = original_of(msg.content)
    if isinstance((msg.additional_kwargs or {}).get("reasoning_content"), str):
        original = thinking
    handle = archive.put(original)
    rebuilt = rebuild(new)
    after = counter.count(new)
    action: Action = "dropped_reasoning" if not new else "compressed"
    form = "blocks" if isinstance(msg.content, list) else "str"
    if original is thinking:
        form = "reasoning_content"
    out = with_marker(rebuilt, rebuilt.content, action="reasoning", dropped=not new, handle=handle,
                      tokens_before=before, tokens_after=after, content_type=form)
    record = MessageReport(index=index, role="ai", action=action, tokens_before=before, tokens_after=after,
                           handle=handle)
    return out, record  # type: ignore[return-value]
