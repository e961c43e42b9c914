"""Reasoning traces in their usual forms, split into thinking and final answer.

Three forms are read:

* ``"<think>...</think>answer"`` (tags in the text, as open reasoning models print them);
* ``"...</think>answer"`` (the opening tag is missing: the chat template already emitted it);
* provider content blocks: ``[{"type": "reasoning", "reasoning": ...}, {"type": "text", "text": ...}]``,
  Anthropic ``{"type": "thinking", "thinking": ...}`` and OpenAI reasoning summaries.

A string without any tag is read as all answer unless ``untagged="thinking"`` says otherwise (a
stream of ``reasoning_content`` is all thinking). API error strings in place of a trace are
recognised, so callers get a defined ``not_a_trace`` result instead of a cut through an error.

Example:
    >>> from agent_tokred.overthinking.trace import split_trace
    >>> t = split_trace("Let me think. 2+2=4.</think>The answer is 4.")
    >>> (t.form, t.thinking, t.answer)
    ('close_only', 'Let me think. 2+2=4.', 'The answer is 4.')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidInputError

TraceForm = Literal["tagged", "close_only", "unterminated", "blocks", "untagged", "not_a_trace"]
Untagged = Literal["answer", "thinking"]
UNTAGGED_MODES: tuple[Untagged, ...] = ("answer", "thinking")

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_CLOSE_TAIL = len("</thinking>")
_REASONING_TYPES = ("reasoning", "thinking")

# Error payloads that API clients put where a completion should be (checked on short texts only).
_API_ERROR = re.compile(
    r"^\s*(?:error\b|exception\b|traceback\b|\{\s*['\"]error['\"])|error code:\s*\d{3}|"
    r"\b(?:internal server error|rate limit(?:ed)?|service unavailable|bad gateway|"
    r"gateway time-?out|too many requests|request timed out|invalid_request_error)\b",
    re.IGNORECASE,
)
_MAX_ERROR_CHARS = 600


@dataclass(frozen=True, slots=True)
class SplitTrace:
    """A trace split into its parts; ``prefix + thinking + closing + answer`` rebuilds a string trace.

    Attributes:
        form: how the trace was written (see module docstring).
        prefix: text before the thinking, including the opening tag when there is one.
        thinking: the reasoning text.
        closing: the closing tag as written (``""`` when there is none).
        answer: the final answer part, kept unchanged by every cut.
    """

    form: TraceForm
    prefix: str
    thinking: str
    closing: str
    answer: str

    def render(self, thinking: str | None = None) -> str:
        """The trace as a string, with ``thinking`` in place of the original reasoning."""
        return self.prefix + (self.thinking if thinking is None else thinking) + self.closing + self.answer


def looks_like_api_error(text: str) -> bool:
    """True for short error payloads (``"Error code: 500 - {...}"``) passed where a trace should be."""
    stripped = text.strip()
    return bool(stripped) and len(stripped) <= _MAX_ERROR_CHARS and _API_ERROR.search(stripped) is not None


def split_trace(trace: str | Sequence[Mapping[str, Any] | str], *, untagged: Untagged = "answer") -> SplitTrace:
    """Split a trace into thinking and answer.

    Args:
        trace: a string in one of the tagged forms, or a list of provider content blocks.
        untagged: how to read a string with no think tag: ``"answer"`` (default) or ``"thinking"``.

    Returns:
        The parts; ``form == "not_a_trace"`` for API error strings (their text is in ``answer``).

    Raises:
        InvalidInputError: ``trace`` is neither a string nor a sequence of content blocks, or
            ``untagged`` is not one of ``"answer"``, ``"thinking"``.
    """
    if untagged not in UNTAGGED_MODES:
        raise InvalidInputError(f"untagged={untagged!r}; valid: {', '.join(UNTAGGED_MODES)}")
    if isinstance(trace, str):
        return _split_text(trace, untagged)
    if isinstance(trace, Sequence) and not isinstance(trace, (bytes, bytearray)):
        return _split_blocks(trace)
    raise InvalidInputError(f"trace must be a string or a list of content blocks; got {type(trace).__name__}")


def _split_text(text: str, untagged: Untagged) -> SplitTrace:
    close = _CLOSE.search(text)
    opening = _OPEN.search(text)
    if opening is not None and (close is None or opening.start() < close.start()):
        body_start = opening.end()
        close = _CLOSE.search(text, body_start)
        if close is None:
            return SplitTrace("unterminated", text[:body_start], text[body_start:], "", "")
        return SplitTrace(
            "tagged", text[:body_start], text[body_start : close.start()], close.group(), text[close.end() :]
        )
    if close is not None:
        return SplitTrace("close_only", "", text[: close.start()], close.group(), text[close.end() :])
    if looks_like_api_error(text):
        return SplitTrace("not_a_trace", "", "", "", text)
    if untagged == "thinking":
        return SplitTrace("untagged", "", text, "", "")
    return SplitTrace("untagged", "", "", "", text)


def block_reasoning_text(block: Mapping[str, Any]) -> str | None:
    """The reasoning text of one content block, or ``None`` when the block is not reasoning.

    Reads LangChain's standard ``{"type": "reasoning", "reasoning": ...}``, Anthropic's
    ``{"type": "thinking", "thinking": ...}`` and OpenAI's ``{"type": "reasoning", "summary": [...]}``.
    """
    kind = block.get("type")
    if kind not in _REASONING_TYPES:
        return None
    for key in ("reasoning", "thinking", "text"):
        value = block.get(key)
        if isinstance(value, str):
            return value
    summary = block.get("summary")
    if isinstance(summary, Sequence) and not isinstance(summary, str):
        parts = [s.get("text", "") for s in summary if isinstance(s, Mapping) and isinstance(s.get("text"), str)]
        return "\n\n".join(parts)
    return ""


def _split_blocks(blocks: Sequence[Any]) -> SplitTrace:
    thinking: list[str] = []
    answer: list[str] = []
    for block in blocks:
        if isinstance(block, str):
            answer.append(block)
            continue
        if not isinstance(block, Mapping):
            raise InvalidInputError(f"content block must be a mapping or a string; got {type(block).__name__}")
        reasoning = block_reasoning_text(block)
        if reasoning is not None:
            thinking.append(reasoning)
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            answer.append(block["text"])
    return SplitTrace("blocks", "", "\n\n".join(t for t in thinking if t), "", "".join(answer))


def truncate_blocks(blocks: Sequence[Any], cut_char: int, marker: str) -> list[Any]:
    """Content blocks with their joined reasoning cut at ``cut_char`` and ``marker`` appended.

    ``cut_char`` is an offset in the thinking that :func:`split_trace` read from these blocks
    (reasoning texts joined by a blank line). Reasoning blocks after the cut are dropped; text,
    tool-use and other blocks are kept as they are, in order.

    Example:
        >>> blocks = [{"type": "reasoning", "reasoning": "abc def"}, {"type": "text", "text": "x"}]
        >>> truncate_blocks(blocks, 4, "[cut]")
        [{'type': 'reasoning', 'reasoning': 'abc [cut]'}, {'type': 'text', 'text': 'x'}]
    """
    out: list[Any] = []
    pos = 0
    seen = False
    done = False
    for block in blocks:
        text = block_reasoning_text(block) if isinstance(block, Mapping) else None
        if not text:
            out.append(block)
            continue
        start = pos + (2 if seen else 0)
        end = start + len(text)
        pos, seen = end, True
        if done:
            continue
        if cut_char >= end:
            out.append(block)
            continue
        out.append(_with_reasoning(block, text[: max(0, cut_char - start)] + marker))
        done = True
    return out


def _with_reasoning(block: Mapping[str, Any], text: str) -> dict[str, Any]:
    new = dict(block)
    for key in ("reasoning", "thinking", "text"):
        if isinstance(block.get(key), str):
            new[key] = text
            return new
    new["summary"] = [{"type": "summary_text", "text": text}]
    return new


def partial_close_tag(text: str) -> int:
    """Length of a closing tag's beginning at the end of ``text`` ("...</thi"), 0 when none."""
    low = text[-_CLOSE_TAIL:].lower()
    for n in range(min(len(low), _CLOSE_TAIL - 1), 0, -1):
        if "</thinking>".startswith(low[-n:]) or "</think>".startswith(low[-n:]):
            return n
    return 0
