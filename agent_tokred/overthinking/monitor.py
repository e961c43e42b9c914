"""Streaming overthinking monitor: decide, while a model is thinking, that it is only re-checking.

Feed it what the model streams: raw text (``<think>`` tags or none: a reasoning model's text is
thinking until ``</think>``), or reasoning and answer deltas from providers that separate them.
The thinking goes to the online stop rule (:class:`~agent_tokred.overthinking.online.OnlineStopRule`,
incremental: a chunk costs time in its own length); when it says the rest would only re-check,
:meth:`OverthinkingMonitor.feed_text` returns ``True``, the caller stops the generation and
:attr:`OverthinkingMonitor.record` says what was kept, the answer found and the tokens involved.
Nothing is stopped once the answer part has begun. ``rule="convergence"`` keeps the earlier rule
(the detector re-run in online mode at each new step: ``k`` re-derivations, then a re-check).

Example:
    >>> m = OverthinkingMonitor(question="James runs 3 sprints 3 times a week, 60 meters each. How many meters a week?")
    >>> chunks = ["He runs 3 * 3 = 9 sprints. So 9 * 60 = 540 meters.\\n\\nSo the total is 540 meters a week.\\n\\n", "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, that's correct: 540 meters.\\n\\n", "So the answer is 540.\\n\\n", "Wait, let me verify the whole thing once more from the start."]
    >>> [m.feed_text(c) for c in chunks]
    [False, False, False, True]
    >>> m.record.answer, m.kept_reasoning.endswith("So the answer is 540.\\n\\n")
    ('540', True)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ..errors import InvalidInputError, TokredError
from ..tokens import resolve_counter
from .answers import extract_candidates
from .detect import OverthinkingConfig, OverthinkingResult, detect_overthinking
from .online import OnlineStopRule, Probe, StopDecision, StopRuleConfig
from .steps import segment_steps
from .trace import _CLOSE, _OPEN, block_reasoning_text, partial_close_tag

if TYPE_CHECKING:
    from typing_extensions import Unpack

Rule = Literal["online", "convergence"]
RULES: tuple[Rule, ...] = ("online", "convergence")
_CHECK_AFTER = re.compile(r"[\n.!?。！？]")
_MIN_STEP_CHARS = 24  # convergence rule: enough of a new step to see its opening turn


@dataclass(frozen=True)
class StopRecord:
    """What a stop saved and kept (passed to ``on_stop`` callbacks, carried by :class:`OverthinkingStop`).

    Attributes:
        evidence: what decided (``"score"``, ``"confidence"``, ``"probe"``, ``"convergence"``).
        answer: the answer found in the thinking at the stop (normalised), or the agreed probe answer.
        kept_chars: characters of thinking kept (up to the opening of the re-checking step).
        generated_chars: characters of thinking received before the stop.
        kept_tokens: tokens of the kept thinking.
        generated_tokens: tokens of thinking generated before the stop (the kept ones plus the
            re-check's first few, dropped from the kept reasoning).
        tokens_saved: ``max_tokens - generated_tokens`` when the generation's thinking budget is
            known (``max_tokens``), else ``None``: the tokens not generated are not observable.
        step_index: index of the step the stop removed.
        score: the stop rule's score at that step.
    """

    evidence: str
    answer: str | None
    kept_chars: int
    generated_chars: int
    kept_tokens: int
    generated_tokens: int
    tokens_saved: int | None
    step_index: int
    score: float

    @property
    def overshoot_tokens(self) -> int:
        """Tokens generated past the cut before the stop took effect."""
        return self.generated_tokens - self.kept_tokens


class OverthinkingStop(TokredError):
    """Raised by callback handlers to stop a generation judged redundant; carries what was produced.

    Attributes:
        produced: all text received before the stop.
        kept_reasoning: the thinking up to the cut (what a caller should keep).
        result: the detector-style result on the thinking so far.
        record: the :class:`StopRecord` of the stop.
    """

    def __init__(
        self,
        produced: str,
        kept_reasoning: str,
        result: OverthinkingResult | None,
        record: StopRecord | None = None,
    ) -> None:
        self.produced = produced
        self.kept_reasoning = kept_reasoning
        self.result = result
        self.record = record
        answer = result.stable_answer if result is not None else None
        super().__init__(f"reasoning judged redundant after {len(kept_reasoning)} characters (answer {answer!r})")


class MonitorOptions(TypedDict, total=False):
    """Keyword options of :class:`OverthinkingMonitor` (also taken by the callback handlers and streams)."""

    question: str | None
    config: OverthinkingConfig | None
    tokenizer: Any
    starts_in_thinking: bool
    rule: Rule
    stop_rule: StopRuleConfig | None
    probe: Probe | None
    defer_probes: bool
    max_tokens: int | None


class OverthinkingMonitor:
    """Watches a stream of thinking and says when to stop it.

    Args:
        question: the question being answered (its numbers are not taken for derived answers).
        config: detector settings (marker; the ``"convergence"`` rule's ``k``).
        tokenizer: token counter spec for the token figures.
        starts_in_thinking: raw text without an opening tag is thinking until ``</think>`` (True, the
            reasoning-model default) or answer (False).
        rule: ``"online"`` (default: :class:`OnlineStopRule`) or ``"convergence"`` (the earlier rule).
        stop_rule: the online rule's settings.
        probe: ask the model for its answer at checkpoints (see :mod:`.online`); with
            ``defer_probes`` the checkpoint waits in ``monitor.rule.probe_request``.
        on_stop: called once with the :class:`StopRecord` when the monitor stops.
        max_tokens: the generation's thinking budget, for :attr:`StopRecord.tokens_saved`.
    """

    def __init__(
        self, *, on_stop: Callable[[StopRecord], None] | None = None, **options: Unpack[MonitorOptions]
    ) -> None:
        rule = options.get("rule", "online")
        if rule not in RULES:
            raise InvalidInputError(f"rule={rule!r}; valid: {', '.join(RULES)}")
        base = options.get("config") or OverthinkingConfig()
        self.config = dataclasses.replace(base, min_removed_tokens=0, use_conclusion=False)
        self.question = options.get("question")
        self.tokenizer = options.get("tokenizer")
        self.counter = resolve_counter(self.tokenizer)
        self.starts_in_thinking = options.get("starts_in_thinking", True)
        self.rule_name = rule
        self.stop_rule = options.get("stop_rule")
        self.probe = options.get("probe")
        self.defer_probes = options.get("defer_probes", False)
        self.on_stop = on_stop
        self.max_tokens = options.get("max_tokens")
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new generation starts)."""
        self.rule = OnlineStopRule(
            question=self.question, config=self.stop_rule, probe=self.probe, defer_probes=self.defer_probes
        )
        self._reasoning: list[str] = []
        self._answer: list[str] = []
        self._raw: list[str] = []
        self._tail = ""  # raw text held back: it may be the start of a tag
        self._mode: Literal["start", "thinking", "answer"] = "start"
        self.stopped = False
        self.result: OverthinkingResult | None = None
        self.record: StopRecord | None = None
        self._answer_started = False
        self._reasoning_channel = False
        self._checked: tuple[int, bool] = (0, False)
        self._unchecked = 0

    @property
    def reasoning(self) -> str:
        """The thinking received so far."""
        return "".join(self._reasoning)

    @property
    def answer(self) -> str:
        """The answer text received so far."""
        return "".join(self._answer)

    @property
    def raw(self) -> str:
        """The raw text received so far (tags included)."""
        return "".join(self._raw)

    @property
    def produced(self) -> str:
        """Everything received so far (raw text, or reasoning then answer for split streams)."""
        return self.raw if self._raw else self.reasoning + self.answer

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
        self._raw.append(text)
        pending = self._tail + text
        self._tail = ""
        while pending and not self.stopped:
            if self._mode == "answer":
                self._answer.append(pending)
                return False
            if self._mode == "start":
                stripped = pending.lstrip()
                low = stripped.lower()
                if len(low) < len("<thinking>") and ("<thinking>".startswith(low) or "<think>".startswith(low)):
                    self._tail = pending  # could still be an opening tag
                    return False
                m = _OPEN.match(stripped)
                if m is not None:
                    pending = stripped[m.end() :]
                elif not self.starts_in_thinking and _CLOSE.search(pending) is None:
                    self._mode, self._answer_started = "answer", True
                    continue
                self._mode = "thinking"
                continue
            close = _CLOSE.search(pending)
            if close is not None:
                self._thinking(pending[: close.start()])
                if not self.stopped:
                    self._mode, self._answer_started = "answer", True
                    self.rule.finish()
                    pending = pending[close.end() :]
                continue
            keep = partial_close_tag(pending)
            self._tail = pending[len(pending) - keep :] if keep else ""
            self._thinking(pending[: len(pending) - keep])
            return self.stopped
        return self.stopped

    def feed_reasoning(self, text: str, logprobs: Sequence[Any] | None = None) -> bool:
        """Add a reasoning delta (``reasoning_content``, a reasoning block); True means stop.

        ``logprobs``: the delta's tokens with their log-probabilities (``(token, logprob)`` pairs or
        OpenAI-style ``{"token", "logprob"}`` items covering ``text``), for the confidence gate.
        """
        if self.stopped or not text or self._answer_started:
            return self.stopped
        self._thinking(text, logprobs)
        return self.stopped

    def feed_answer(self, text: str) -> bool:
        """Add an answer delta: the model has concluded, so the monitor never stops after it."""
        if text:
            self._answer.append(text)
            if not self._answer_started:
                self.rule.finish()
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

    def answer_probe(self, answer: str | None) -> bool:
        """Answer the pending probe checkpoint (``defer_probes``); True means stop."""
        decision = self.rule.answer_probe(answer)
        if decision is not None and not self.stopped:
            self._stop_online(decision)
        return self.stopped

    def stop_error(self) -> OverthinkingStop:
        """The exception a callback raises to stop the generation."""
        return OverthinkingStop(self.produced, self.kept_reasoning, self.result, self.record)

    def _feed_plain(self, text: str) -> bool:
        return self.feed_answer(text) if self._reasoning_channel else self.feed_text(text)

    def _thinking(self, text: str, logprobs: Sequence[Any] | None = None) -> None:
        if not text:
            return
        self._reasoning.append(text)
        if self.rule_name == "convergence":
            self._maybe_check(text)
            return
        decision = self.rule.feed(text, logprobs)
        if decision is not None:
            self._stop_online(decision)

    def _stop_online(self, decision: StopDecision) -> None:
        reasoning = self.reasoning
        self.result = _result_at(reasoning, decision, self)
        self._finish_stop(decision.evidence, decision.answer, decision.step_index, decision.score)

    def _finish_stop(self, evidence: str, answer: str | None, step: int, score: float) -> None:
        reasoning = self.reasoning
        kept = self.kept_reasoning
        generated = self.counter.count(reasoning)
        self.record = StopRecord(
            evidence=evidence,
            answer=answer,
            kept_chars=len(kept),
            generated_chars=len(reasoning),
            kept_tokens=self.counter.count(kept),
            generated_tokens=generated,
            tokens_saved=None if self.max_tokens is None else max(0, self.max_tokens - generated),
            step_index=step,
            score=score,
        )
        self.stopped = True
        if self.on_stop is not None:
            self.on_stop(self.record)

    def _maybe_check(self, delta: str) -> None:
        self._unchecked += len(delta)
        if not _CHECK_AFTER.search(delta) and self._unchecked < 32:
            return
        self._unchecked = 0
        reasoning = self.reasoning
        steps = segment_steps(reasoning)
        if not steps:
            return
        key = (len(steps), len(steps[-1].text.strip()) >= _MIN_STEP_CHARS)
        if key == self._checked:
            return
        self._checked = key
        result = detect_overthinking(
            reasoning, question=self.question, config=self.config, tokenizer=self.tokenizer, untagged="thinking"
        )
        # A step still being written reads as all-repeated words: only its opening turn may trigger.
        partial_redundancy = result.cut_index == len(steps) - 1 and "redundancy" in result.evidence
        if result.cut and not partial_redundancy:
            self.result = result
            self._finish_stop("convergence", result.stable_answer, result.cut_index or 0, 1.0)


def _result_at(reasoning: str, decision: StopDecision, mon: OverthinkingMonitor) -> OverthinkingResult:
    """The detector-style result of an online stop (the kept thinking, a marker, the counts)."""
    cut = decision.cut_char
    removed = reasoning[cut:]
    kept = reasoning[:cut] + mon.config.render_marker(mon.counter.count(removed))
    return OverthinkingResult(
        reason="confident" if decision.evidence == "confidence" else "converged",
        cut_index=decision.step_index,
        cut_char=cut,
        form="untagged",
        thinking=reasoning,
        kept_thinking=kept,
        removed_text=removed,
        answer="",
        text=kept,
        thinking_tokens_before=mon.counter.count(reasoning),
        thinking_tokens_after=mon.counter.count(kept),
        stable_answer=decision.answer,
        answer_candidates=tuple(extract_candidates(reasoning[:cut])),
        evidence=(decision.evidence,),
        n_steps=decision.step_index + 1,
    )
