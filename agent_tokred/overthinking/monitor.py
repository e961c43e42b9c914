"""Streaming overthinking monitor: decide, while a model is thinking, that it is only re-checking.

Feed it what the model streams: raw text (``<think>`` tags or none: a reasoning model's text is
thinking until ``</think>``), or reasoning and answer deltas from providers that separate them.
Each time a new step starts it runs :func:`detect_overthinking` on the thinking so far, in online
mode (no conclusion yet): once the latest answer candidate has been re-derived ``k`` times and a new
step re-checks it, :meth:`OverthinkingMonitor.feed_text` returns ``True`` and the caller stops the
generation. Nothing is stopped once the answer part has begun.

Example:
    >>> m = OverthinkingMonitor(config=OverthinkingConfig(k=2))
    >>> chunks = ["So 9*60 = 540.\\n\\n", "Thus the total is 540.\\n\\n", "Wait, let me verify again..."]
    >>> [m.feed_text(c) for c in chunks]
    [False, False, True]
    >>> m.kept_reasoning
    'So 9*60 = 540.\\n\\nThus the total is 540.\\n\\n'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TokredError
from .detect import OverthinkingConfig, OverthinkingResult, detect_overthinking
from .steps import segment_steps
from .trace import CLOSE_TAG, block_reasoning_text, split_trace

_CHECK_AFTER = re.compile(r"[\n.!?。！？]")
_MIN_STEP_CHARS = 24  # enough of a new step to see its opening turn ("Let me double-check")


class OverthinkingStop(TokredError):
    """Raised by callback handlers to stop a generation judged redundant; carries what was produced.

    Attributes:
        produced: all text received before the stop.
        kept_reasoning: the thinking up to the cut (what a caller should keep).
        result: the detector's result on the thinking so far.
    """

    def __init__(self, produced: str, kept_reasoning: str, result: OverthinkingResult | None) -> None:
        self.produced = produced
        self.kept_reasoning = kept_reasoning
        self.result = result
        answer = result.stable_answer if result is not None else None
        super().__init__(f"reasoning judged redundant after {len(kept_reasoning)} characters (answer {answer!r})")


class OverthinkingMonitor:
    """Watches a stream of thinking and says when to stop it.

    Args:
        question: the question being answered (its numbers are not taken for derived answers).
        config: detector settings; the stream uses its online ``k`` and ignores ``min_removed_tokens``.
        tokenizer: token counter spec for the result's token figures.
        starts_in_thinking: raw text without an opening tag is thinking until ``</think>`` (True, the
            reasoning-model default) or answer (False).
    """

    def __init__(
        self,
        *,
        question: str | None = None,
        config: OverthinkingConfig | None = None,
        tokenizer: Any = None,
        starts_in_thinking: bool = True,
    ) -> None:
        base = config or OverthinkingConfig()
        self.config = dataclasses.replace(base, min_removed_tokens=0, use_conclusion=False)
        self.question = question
        self.tokenizer = tokenizer
        self.starts_in_thinking = starts_in_thinking
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new generation starts)."""
        self.reasoning = ""
        self.answer = ""
        self.raw = ""
        self.stopped = False
        self.result: OverthinkingResult | None = None
        self._answer_started = False
        self._reasoning_channel = False
        self._checked: tuple[int, bool] = (0, False)
        self._unchecked = 0

    @property
    def produced(self) -> str:
        """Everything received so far (raw text, or reasoning then answer for split streams)."""
        return self.raw if self.raw else self.reasoning + self.answer

    @property
    def kept_reasoning(self) -> str:
        """The thinking up to the cut once stopped; all thinking so far otherwise."""
        if self.result is not None and self.result.cut_char is not None:
            return self.reasoning[: self.result.cut_char]
        return self.reasoning

    @property
    def stable_answer(self) -> str | None:
        """The settled trial answer at the stop (``None`` before)."""
        return self.result.stable_answer if self.result is not None else None

    def feed_text(self, text: str) -> bool:
        """Add raw streamed text (tags allowed, split across chunks or not); True means stop."""
        if self.stopped or not text:
            return self.stopped
        self.raw += text
        split = split_trace(self.raw, untagged="thinking" if self.starts_in_thinking else "answer")
        if split.closing or (split.form in ("untagged", "not_a_trace") and not split.thinking):
            self.reasoning, self.answer, self._answer_started = split.thinking, split.answer, True
            return False
        self.reasoning = _drop_partial_tag(split.thinking)
        return self._maybe_check(text)

    def feed_reasoning(self, text: str) -> bool:
        """Add a reasoning delta (``reasoning_content``, a reasoning block); True means stop."""
        if self.stopped or not text or self._answer_started:
            return self.stopped
        self.reasoning += text
        return self._maybe_check(text)

    def feed_answer(self, text: str) -> bool:
        """Add an answer delta: the model has concluded, so the monitor never stops after it."""
        if text:
            self.answer += text
            self._answer_started = True
        return self.stopped

    def feed_chunk(self, chunk: Any) -> bool:
        """Add one streamed chunk of any usual shape; True means stop.

        Reads strings (raw text), content-block mappings (``reasoning`` / ``thinking`` blocks are
        reasoning, ``text`` blocks are text) and message chunks (``additional_kwargs
        ["reasoning_content"]`` and ``content``). Text that follows a separate reasoning channel
        is the answer; text without one is raw text (think tags, or thinking until ``</think>``).
        """
        if self.stopped or chunk is None:
            return self.stopped
        if isinstance(chunk, str):
            return self._feed_plain(chunk)
        if isinstance(chunk, Sequence):
            for block in chunk:
                self.feed_chunk(block)
            return self.stopped
        if isinstance(chunk, Mapping):
            reasoning = block_reasoning_text(chunk)
            if reasoning is not None:
                self._reasoning_channel = True
                return self.feed_reasoning(reasoning)
            text = chunk.get("text")
            return self._feed_plain(text) if chunk.get("type") == "text" and isinstance(text, str) else False
        extra = getattr(chunk, "additional_kwargs", None) or {}
        rc = extra.get("reasoning_content") if isinstance(extra, Mapping) else None
        if isinstance(rc, str) and rc:
            self._reasoning_channel = True
            self.feed_reasoning(rc)
        content = getattr(chunk, "content", None)
        if isinstance(content, (str, Mapping)):
            self.feed_chunk(content)
        elif isinstance(content, Sequence):
            for block in content:
                self.feed_chunk(block)
        return self.stopped

    def _feed_plain(self, text: str) -> bool:
        return self.feed_answer(text) if self._reasoning_channel else self.feed_text(text)

    def _maybe_check(self, delta: str) -> bool:
        self._unchecked += len(delta)
        if not _CHECK_AFTER.search(delta) and self._unchecked < 32:
            return False
        self._unchecked = 0
        steps = segment_steps(self.reasoning)
        if not steps:
            return False
        key = (len(steps), len(steps[-1].text.strip()) >= _MIN_STEP_CHARS)
        if key == self._checked:
            return False
        self._checked = key
        result = detect_overthinking(
            self.reasoning,
            question=self.question,
            config=self.config,
            tokenizer=self.tokenizer,
            untagged="thinking",
        )
        # A step still being written reads as all-repeated words: only its opening turn may trigger.
        partial_redundancy = result.cut_index == len(steps) - 1 and "redundancy" in result.evidence
        if result.cut and not partial_redundancy:
            self.result = result
            self.stopped = True
        return self.stopped

    def stop_error(self) -> OverthinkingStop:
        """The exception a callback raises to stop the generation."""
        return OverthinkingStop(self.produced, self.kept_reasoning, self.result)


def _drop_partial_tag(text: str) -> str:
    # A closing tag split across chunks ("...</thi") is not thinking.
    for n in range(len(CLOSE_TAG) - 1, 1, -1):
        if text.endswith(CLOSE_TAG[:n]):
            return text[:-n]
    return text
