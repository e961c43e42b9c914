"""``detect_overthinking``: find where a reasoning trace starts re-checking a settled answer, cut there.

The pipeline is the engine's usual shape, over steps: split the trace (:mod:`.trace`), segment the
thinking into step units (:mod:`.steps`), score them with detectors (:mod:`.detectors`), choose the
cut with a strategy (:mod:`.strategy`), and render: thinking up to the cut, a short marker, the
closing tag and the final answer unchanged.

When the trace has a conclusion (the text after ``</think>``), its answer anchors the convergence
detector: the cut comes only after the thinking has derived that answer ``k_anchored`` times.
Without a conclusion (a stream, a truncated trace) the latest candidate must be re-derived ``k``
times in conclusion-like statements ("so ... 540", bold, boxed).

Example:
    >>> from agent_tokred.overthinking import detect_overthinking
    >>> trace = ("3 sprints x 3 times = 9 sprints. So 9 * 60 = 540 meters.\\n\\n"
    ...          "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, 540.\\n\\n"
    ...          "Alternatively, maybe a sprint is a round trip? No. So 540 it is."
    ...          "</think>He runs **540** meters a week.")
    >>> r = detect_overthinking(trace)
    >>> r.reason, r.answer_kept, r.text.endswith("He runs **540** meters a week.")
    ('converged', True, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidInputError, UnknownNameError
from ..tokens import TokenCounter, resolve_counter
from .answers import Candidate, final_answer
from .detectors import (
    ConfidenceDetector,
    ConvergenceDetector,
    EmbeddingRedundancyDetector,
    MentionGate,
    StepDetector,
    computed_mention,
    lexical_redundancy,
    recheck,
    reflection,
    step_candidates,
)
from .steps import segment_steps
from .strategy import CutStrategy
from .trace import SplitTrace, TraceForm, Untagged, split_trace

Reason = Literal[
    "converged",
    "confident",
    "not_converged",
    "no_answer",
    "answer_not_in_thinking",
    "not_worth",
    "already_truncated",
    "no_thinking",
    "empty",
    "not_a_trace",
]
Redundancy = Literal["lexical", "embedding", "none"]
AnchorGate = Literal["derived", "mentioned"]
_ANCHOR_GATES: tuple[AnchorGate, ...] = ("derived", "mentioned")
_REDUNDANCY: tuple[Redundancy, ...] = ("lexical", "embedding", "none")
DEFAULT_MARKER = "\n[... {tokens} tokens of redundant re-checking removed]\n"


PRESETS = ("default", "max_removal")


@dataclass(frozen=True)
class OverthinkingConfig:
    """How eagerly to cut (defaults tuned on the dev half of real R1 / QwQ GSM8K traces).

    Args:
        k: online convergence: derivations of the latest candidate, in conclusion-like statements,
            before a re-check may be cut.
        k_anchored: with a conclusion: derivations of the conclusion's answer in the thinking.
        min_strength: weakest candidate counted online (1 "= x", 2 "so ... x", 3 "the answer is x").
        use_conclusion: anchor on the conclusion's answer when the trace has one.
        anchor_gate: with a conclusion, when the cut may start: once its answer is ``"derived"``
            ``k_anchored`` times, or once it is ``"mentioned"`` at all (any occurrence).
        redundancy: the redundancy detector: ``"lexical"`` (default, fast), ``"embedding"`` (MiniLM)
            or ``"none"``.
        strategy: the cut strategy (gates, triggers, thresholds).
        min_removed_tokens: do not cut when the cut (marker included) saves fewer tokens; 0 turns
            the check off (the streaming monitor does: a stop saves the tokens not generated yet).
        marker: text put where the removed steps were; ``{tokens}`` becomes their token count.
    """

    k: int = 4
    k_anchored: int = 1
    min_strength: int = 2
    use_conclusion: bool = True
    anchor_gate: AnchorGate = "derived"
    redundancy: Redundancy = "lexical"
    strategy: CutStrategy = field(default_factory=CutStrategy)
    min_removed_tokens: int = 16
    marker: str = DEFAULT_MARKER

    def __post_init__(self) -> None:
        for name in ("k", "k_anchored"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidInputError(f"{name}={getattr(self, name)!r}; must be an int >= 1")
        if self.min_strength not in (1, 2, 3):
            raise InvalidInputError(f"min_strength={self.min_strength!r}; valid: 1, 2, 3")
        if self.anchor_gate not in _ANCHOR_GATES:
            raise UnknownNameError("anchor gate", self.anchor_gate, _ANCHOR_GATES)
        if self.redundancy not in _REDUNDANCY:
            raise UnknownNameError("redundancy detector", self.redundancy, _REDUNDANCY)
        if self.min_removed_tokens < 0:
            raise InvalidInputError(f"min_removed_tokens={self.min_removed_tokens!r}; must be >= 0")

    @classmethod
    def preset(cls, name: str) -> OverthinkingConfig:
        """A named configuration (both chosen on the dev half of the R1 / QwQ traces).

        ``"default"``: the cut waits until the final answer has been *derived* in the thinking (stated
        as a result, or computed in words: "... minus 8 more would be 15"), then takes the first re-check
        or redundant step (the kept thinking still derives the answer).
        ``"max_removal"``: the cut takes the first re-check once the final answer is *mentioned* at all
        (on the test half 59.9% / 71.8% of thinking removed vs 57.3% / 69.3%, answer kept 97.9% / 100% vs
        97.9% / 99.3%, but the kept thinking derives the answer less often: 88.0% / 92.3% vs 97.2% / 99.3%).
        """
        if name == "default":
            return cls()
        if name == "max_removal":
            return cls(anchor_gate="mentioned", strategy=CutStrategy(triggers=("recheck",)))
        raise UnknownNameError("overthinking preset", name, list(PRESETS))

    def render_marker(self, tokens: int) -> str:
        return self.marker.replace("{tokens}", str(tokens))

    def marker_pattern(self) -> re.Pattern[str]:
        parts = [re.escape(p.strip()) for p in self.marker.split("{tokens}")]
        return re.compile(r"\s*\d+\s*".join(parts))


@dataclass(frozen=True)
class OverthinkingResult:
    """Where a trace was cut and why.

    Attributes:
        reason: ``"converged"`` / ``"confident"`` when cut; otherwise why nothing was cut.
        cut_index: index of the first removed step (``None`` when nothing was cut).
        cut_char: offset in ``thinking`` where the removed part starts.
        form: the trace form read (``tagged``, ``close_only``, ``blocks``, ...).
        thinking: the original thinking.
        kept_thinking: thinking up to the cut, plus the marker (``thinking`` when nothing was cut).
        removed_text: the removed thinking.
        answer: the final answer part, unchanged.
        text: the whole truncated trace (for content blocks: ``<think>kept</think>answer``).
        thinking_tokens_before / thinking_tokens_after: thinking tokens in the caller's tokenizer
            (after includes the marker).
        stable_answer: the answer that had settled at the cut (or the conclusion's answer).
        answer_candidates: candidates in the kept thinking, in order.
        evidence: the gate and trigger that chose the cut.
        n_steps: number of steps in the thinking.
        scores: each detector's score per step.
    """

    reason: Reason
    cut_index: int | None
    cut_char: int | None
    form: TraceForm
    thinking: str
    kept_thinking: str
    removed_text: str
    answer: str
    text: str
    thinking_tokens_before: int
    thinking_tokens_after: int
    stable_answer: str | None = None
    answer_candidates: tuple[Candidate, ...] = ()
    evidence: tuple[str, ...] = ()
    n_steps: int = 0
    scores: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def cut(self) -> bool:
        """True when something was removed."""
        return self.cut_index is not None

    @property
    def tokens_removed(self) -> int:
        return self.thinking_tokens_before - self.thinking_tokens_after

    @property
    def answer_kept(self) -> bool:
        """The settled answer is still derived in the kept thinking (True when nothing was cut): stated
        as a candidate, or as the result of a calculation in words ("... minus 8 more would be 15")."""
        if not self.cut or any(c.value == self.stable_answer for c in self.answer_candidates):
            return True
        return self.stable_answer is not None and computed_mention(self.thinking[: self.cut_char or 0], self.stable_answer)


def detect_overthinking(
    trace: str | Sequence[Mapping[str, Any] | str],
    *,
    question: str | None = None,
    config: OverthinkingConfig | None = None,
    tokenizer: Any = None,
    logprobs: Sequence[Any] | None = None,
    untagged: Untagged = "answer",
    detectors: Mapping[str, StepDetector] | None = None,
) -> OverthinkingResult:
    """Cut the redundant re-checking at the end of a reasoning trace, keeping its conclusion.

    Args:
        trace: ``"<think>...</think>answer"``, ``"...</think>answer"``, or provider content blocks.
        question: the question the trace answers (its numbers are not taken for derived answers).
        config: thresholds and detectors (:class:`OverthinkingConfig`).
        tokenizer: token counter spec for the token figures (default ``o200k_base``).
        logprobs: the trace's tokens with log-probabilities (from its first character); adds the
            confidence detector.
        untagged: how to read a string without think tags (``"answer"`` or ``"thinking"``).
        detectors: extra or replacement detectors by name (a strategy trigger may name them).

    Returns:
        An :class:`OverthinkingResult`; bad input (API error strings, empty, no thinking, no
        answer, already truncated) gives a result with nothing cut and the reason.
    """
    cfg = config or OverthinkingConfig()
    counter = resolve_counter(tokenizer)
    split = split_trace(trace, untagged=untagged)
    if split.form == "not_a_trace":
        return _uncut(split, "not_a_trace", counter)
    if not split.thinking.strip():
        return _uncut(split, "empty" if not split.answer.strip() else "no_thinking", counter)
    if cfg.marker_pattern().search(split.thinking):
        return _uncut(split, "already_truncated", counter)
    anchor = final_answer(split.answer) if cfg.use_conclusion and split.answer.strip() else None
    steps = segment_steps(split.thinking)
    conv = ConvergenceDetector(
        k=cfg.k_anchored if anchor else cfg.k, min_strength=1 if anchor else cfg.min_strength, anchor=anchor
    )
    scores = _score(steps, question, cfg, conv, detectors, logprobs, len(split.prefix))
    cut, evidence = cfg.strategy.choose(scores)
    all_cands = [c for s in steps for c in step_candidates(s)]
    states = conv.states(steps, question)
    if cut is None:
        if anchor is not None and not any(c.value == anchor and c.strength >= 1 for c in all_cands):
            reason: Reason = "answer_not_in_thinking"
        elif not any(c.strength >= 1 for c in all_cands):
            reason = "no_answer"
        else:
            reason = "not_converged"
        return _uncut(split, reason, counter, steps=steps, scores=scores, stable=anchor)
    cut_char = steps[cut].start
    removed = split.thinking[cut_char:]
    kept = split.thinking[:cut_char] + cfg.render_marker(counter.count(removed))
    before, after = counter.count(split.thinking), counter.count(kept)
    # The marker costs tokens too: a cut must save at least min_removed_tokens (0: no check, as in
    # streaming, where stopping saves the tokens not generated yet).
    if cfg.min_removed_tokens and before - after < cfg.min_removed_tokens:
        return _uncut(split, "not_worth", counter, steps=steps, scores=scores, stable=anchor)
    return OverthinkingResult(
        reason="confident" if evidence[0] == "confidence" else "converged",
        cut_index=cut,
        cut_char=cut_char,
        form=split.form,
        thinking=split.thinking,
        kept_thinking=kept,
        removed_text=removed,
        answer=split.answer,
        text=_render(split, kept),
        thinking_tokens_before=before,
        thinking_tokens_after=after,
        stable_answer=states[cut].value,
        answer_candidates=tuple(c for c in all_cands if c.start < cut_char),
        evidence=evidence,
        n_steps=len(steps),
        scores=scores,
    )


def _score(
    steps: Sequence[Any],
    question: str | None,
    cfg: OverthinkingConfig,
    conv: ConvergenceDetector,
    extra: Mapping[str, StepDetector] | None,
    logprobs: Sequence[Any] | None,
    prefix_len: int,
) -> dict[str, tuple[float, ...]]:
    gate: StepDetector = conv
    if conv.anchor is not None and cfg.anchor_gate == "mentioned":
        gate = MentionGate(conv.anchor)
    dets: dict[str, StepDetector] = {"convergence": gate, "reflection": reflection, "recheck": recheck}
    if cfg.redundancy == "lexical":
        dets["redundancy"] = lexical_redundancy
    elif cfg.redundancy == "embedding":
        dets["redundancy"] = EmbeddingRedundancyDetector()
    if logprobs is not None:
        dets["confidence"] = ConfidenceDetector(logprobs, text_offset=prefix_len)
    dets.update(extra or {})
    missing = [t for t in cfg.strategy.triggers if t != "any" and t not in dets]
    if missing:
        raise UnknownNameError("overthinking trigger", missing[0], [*dets, "any"])
    scores: dict[str, tuple[float, ...]] = {}
    for name, det in dets.items():
        values = tuple(float(v) for v in det(steps, question))
        if len(values) != len(steps):
            raise InvalidInputError(f"detector {name!r} returned {len(values)} scores for {len(steps)} steps")
        scores[name] = values
    return scores


def _render(split: SplitTrace, kept: str) -> str:
    if split.form == "blocks":
        return f"<think>{kept}</think>{split.answer}"
    return split.render(kept)


def _uncut(
    split: SplitTrace,
    reason: Reason,
    counter: TokenCounter,
    *,
    steps: Sequence[Any] = (),
    scores: Mapping[str, tuple[float, ...]] | None = None,
    stable: str | None = None,
) -> OverthinkingResult:
    tokens = counter.count(split.thinking) if split.thinking else 0
    text = split.answer if split.form == "not_a_trace" else _render(split, split.thinking)
    return OverthinkingResult(
        reason=reason,
        cut_index=None,
        cut_char=None,
        form=split.form,
        thinking=split.thinking,
        kept_thinking=split.thinking,
        removed_text="",
        answer=split.answer,
        text=text,
        thinking_tokens_before=tokens,
        thinking_tokens_after=tokens,
        stable_answer=stable,
        answer_candidates=tuple(c for s in steps for c in step_candidates(s)),
        n_steps=len(steps),
        scores=dict(scores or {}),
    )
