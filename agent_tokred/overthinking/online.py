"""The online stop rule: decide, from the tokens so far, that a reasoning model is only re-checking.

Text streams in (chunks of any size, with log-probs when the provider returns them). Steps are found
incrementally (:mod:`._incremental`); each closed step updates a small state (answer candidates and
how often each was derived, content words said so far, the latest candidate's confidence), so a
chunk costs time in its own length, never in the prefix's. When a new step opens, the rule scores
the stop with a logistic model over step features (the latest candidate's support and strength,
whether the new step opens a reflection turn and of which kind, agreement among recent candidates,
a confirmation in the previous step, redundancy of the previous step against earlier ones, overlap
of the answering sentence with what the question asks) and stops when the score reaches the
threshold. The weights were fitted on the even-indexed half of the real R1 / QwQ GSM8K traces
(``bench/_overthinking_tune.py``); the odd half is the held-out test.

Two optional gates stop sooner: DEER-style log-prob confidence of the latest candidate at a
reflection turn, and a probe (ask the model for its answer at a checkpoint; stop when ``probe_k``
consecutive probe answers agree).

Example:
    >>> rule = OnlineStopRule(question="James runs 3 sprints 3 times a week, 60 meters each. How many meters a week?")
    >>> text = ("He runs 3 * 3 = 9 sprints. So 9 * 60 = 540 meters.\\n\\nSo the total is 540 meters a week.\\n\\n"
    ...         "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, that's correct: 540 meters.\\n\\n"
    ...         "So the answer is 540.\\n\\nWait, let me verify the whole thing once more from the start.")
    >>> decision = next(d for d in (rule.feed(text[i : i + 8]) for i in range(0, len(text), 8)) if d)
    >>> decision.answer, text[decision.cut_char :]
    ('540', 'Wait, let me verify the whole thing once more from the start.')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError
from ._dataflow import Dataflow
from ._incremental import IncrementalSteps, StreamStep
from ._stop_features import (
    ANSWER_WORD,
    ASK,
    CHECK,
    CONFIRM,
    DEFAULT_THRESHOLD,
    DEFAULT_WEIGHTS,
    EXPLORE,
    FEATURES,
    model_threshold,
    sentence_at,
    word_numbers,
)
from .answers import _NUMBER, _normalize_number, extract_candidates
from .detectors import _CONTENT, _token_pairs, question_numbers

_HEAD = 40  # characters of a step's opening that its features read

#: A probe: given the thinking so far, the model's answer if it concluded now (``None``: no answer).
Probe = Callable[[str], "str | None"]


@dataclass(frozen=True)
class StopRuleConfig:
    """Settings of :class:`OnlineStopRule` (defaults tuned on the dev half of the real traces).

    Args:
        weights: logistic weights by feature name (missing names weigh 0).
        threshold: a step opening scoring above it stops the stream (in ``[0, 1]``).
        min_chars: never stop before this many characters of thinking.
        confidence_threshold: with log-probs, stop at a reflection turn once the latest candidate's
            tokens have this mean probability (DEER uses 0.95); 1.0 turns the gate off.
        probe_k: with a probe, stop once this many consecutive probe answers agree.
        probe_floor: probe only at step openings scoring at least this (probes cost a model call).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    threshold: float = DEFAULT_THRESHOLD
    min_chars: int = 0
    confidence_threshold: float = 0.95
    probe_k: int = 2
    probe_floor: float = 0.05

    def __post_init__(self) -> None:
        unknown = [k for k in self.weights if k not in FEATURES]
        if unknown:
            raise InvalidInputError(f"weight for {unknown[0]!r}; valid features: {', '.join(FEATURES)}")
        for name in ("threshold", "confidence_threshold", "probe_floor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name}={value!r}; must be in [0, 1]")
        if self.probe_k < 1 or self.min_chars < 0:
            raise InvalidInputError(f"probe_k={self.probe_k!r} must be >= 1 and min_chars={self.min_chars!r} >= 0")

    @classmethod
    def for_model(cls, model: str | None, **options: Any) -> StopRuleConfig:
        """Settings with the stop threshold calibrated on the dev traces of ``model`` (see ``MODEL_THRESHOLDS``).

        ``"deepseek-r1"`` / ``"deepseek-reasoner"`` (not its distilled models) and names containing
        ``"qwq"`` have thresholds; any other model gets the default, the strictest one.

        Args:
            model: the reasoning model's name as the provider spells it (``None``: the default).
            **options: other :class:`StopRuleConfig` fields.
        """
        return cls(threshold=model_threshold(model), **options)


@dataclass(frozen=True)
class StopDecision:
    """Why and where the rule stopped.

    Attributes:
        cut_char: offset in the thinking where the kept reasoning ends (the opening of the step that
            would only re-check).
        seen_chars: characters of thinking received when the rule decided (``>= cut_char``).
        step_index: index of the step that opened at ``cut_char``.
        answer: the answer so far (see :attr:`OnlineStopRule.answer`; or the agreed probe answer).
        score: the logistic stop score at that step.
        evidence: what decided: ``"score"``, ``"confidence"`` or ``"probe"``.
        features: the feature values scored.
    """

    cut_char: int
    seen_chars: int
    step_index: int
    answer: str | None
    score: float
    evidence: str
    features: Mapping[str, float]


@dataclass(frozen=True)
class _ProbeRequest:
    """A checkpoint waiting for the model's answer: the thinking so far and where a stop would cut."""

    thinking: str
    cut_char: int
    index: int
    score: float
    features: Mapping[str, float]


@dataclass
class _Candidates:
    counts: dict[str, int] = field(default_factory=dict)  # steps deriving each value (strength >= 2)
    mentions: dict[str, int] = field(default_factory=dict)  # steps stating it at all
    strong: set[str] = field(default_factory=set)  # stated boxed / "the answer is"
    first_step: dict[str, int] = field(default_factory=dict)
    latest: str | None = None
    latest_weak: str | None = None
    latest_step_text: str = ""
    latest_confidence: float = 0.0
    changed_step: int = 0  # step where the latest value last changed
    checks_since: int = 0  # check turns opened since then
    recent: list[tuple[int, str]] = field(default_factory=list)


class OnlineStopRule:
    """Streams thinking in and says when the rest would only re-check a settled answer.

    Args:
        question: the question being answered (its numbers do not count as derived answers; its
            asking sentence is matched against answering sentences).
        config: weights, threshold and gates (:class:`StopRuleConfig`).
        probe: optional callable asked for the model's answer at checkpoints (see :data:`Probe`).
        defer_probes: instead of calling ``probe``, leave the checkpoint in :attr:`probe_request`
            for the caller to answer with :meth:`answer_probe` (async streams await their probe).
        record: keep every scored opening in :attr:`trail` (tuning).
    """

    def __init__(
        self,
        *,
        question: str | None = None,
        config: StopRuleConfig | None = None,
        probe: Probe | None = None,
        defer_probes: bool = False,
        record: bool = False,
    ) -> None:
        self.config = config or StopRuleConfig()
        self.question = question
        self.probe = probe
        self.defer_probes = defer_probes
        self.record = record
        self._qnums = question_numbers(question)
        self._qall = self._qnums | word_numbers(question or "")
        asks = ASK.findall(question or "")
        self._ask = frozenset(_CONTENT.findall((asks[-1] if asks else question or "").lower()))
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        self.steps = IncrementalSteps()
        self.decision: StopDecision | None = None
        self.scores: list[float] = []
        self.trail: list[tuple[int, int, dict[str, float], str | None]] = []  # with ``record``
        self.probe_answers: list[str | None] = []
        self.probe_request: _ProbeRequest | None = None
        self._c = _Candidates()
        self._flow = Dataflow(self._qnums)
        self._seen_words: set[str] = set()
        self._prev_text = ""
        self._prev_last: str | None = None
        self._prev_redundancy = 0.0
        self._n_reflections = 0
        self._closed_texts: list[str] = []
        self._covered: set[str] = set()
        self._coverage_step: int | None = None  # step at which every question number had been used
        self._latest_after_coverage = False
        self._scored_step = 0
        self._spans: list[tuple[int, int, float]] = []  # (start, end, logprob) of the open step's tokens
        self._lp_pos = 0

    @property
    def stopped(self) -> bool:
        return self.decision is not None

    @property
    def answer(self) -> str | None:
        """The agreed probe answer at a stop, else the latest result nothing used as an operand after it was
        stated (:meth:`Dataflow.final`: "So the total is 120. Then 120 / 4 ..." does not answer 120), else the
        latest candidate."""
        if self.decision is not None:
            return self.decision.answer
        return self._flow.final() or self._c.latest or self._c.latest_weak

    def feed(self, text: str, logprobs: Sequence[Any] | None = None) -> StopDecision | None:
        """Add streamed thinking (and its tokens' log-probs, if any); a decision means stop now."""
        if self.decision is not None or not text:
            return self.decision
        if logprobs:
            self._add_logprobs(logprobs)
        for step in self.steps.feed(text):
            if self._decide(step.index, step.reflection, step.text[:_HEAD], step.start) is not None:
                return self.decision
            self._close(step)
        # The open step is scored once its first _HEAD characters are in (as a closed step's head is).
        if len(self.steps.open) >= _HEAD:
            refl = bool(self.steps.head_reflection(final=True))
            self._decide(self.steps.index, refl, self.steps.open[:_HEAD], self.steps.open_start)
        return self.decision

    def finish(self) -> None:
        """The thinking ended (``</think>`` or end of stream): no decision is taken after it."""
        if self.decision is None:
            for step in self.steps.finish():
                self._close(step)

    # -- state -----------------------------------------------------------------------------------

    def _add_logprobs(self, logprobs: Sequence[Any]) -> None:
        for token, lp in _token_pairs(logprobs):
            self._spans.append((self._lp_pos, self._lp_pos + len(token), lp))
            self._lp_pos += len(token)

    def _close(self, step: StreamStep) -> None:
        c = self._c
        cands = extract_candidates(step.text, step.start)
        derived = [x for x in cands if x.strength >= 2 and (x.value not in self._qnums or x.strength >= 3)]
        for value in dict.fromkeys(x.value for x in derived):
            c.counts[value] = c.counts.get(value, 0) + 1
            c.first_step.setdefault(value, step.index)
            c.recent.append((step.index, value))
        for value in dict.fromkeys(x.value for x in cands if x.strength >= 1):
            c.mentions[value] = c.mentions.get(value, 0) + 1
        c.strong.update(x.value for x in cands if x.strength >= 3)
        self._flow.close(step.text, step.start, step.index, cands)
        if derived and derived[-1].value != c.latest:
            c.changed_step, c.checks_since = step.index, 0
        elif step.reflection and CHECK.search(step.text[:_HEAD]) is not None:
            c.checks_since += 1
        if derived:
            c.latest, c.latest_step_text = derived[-1].value, sentence_at(step.text, derived[-1].start - step.start)
            c.latest_confidence = self._confidence(derived[-1].start, len(derived[-1].raw))
        weak = [x for x in cands if x.strength >= 1]
        self._prev_last = weak[-1].value if weak else None
        if weak:
            c.latest_weak = weak[-1].value
        c.recent = [(i, v) for i, v in c.recent if i >= step.index - 3]
        if self._coverage_step is None and self._qall:
            nums = {v for m in _NUMBER.finditer(step.text) if (v := _normalize_number(m.group())) is not None}
            self._covered |= (nums | word_numbers(step.text)) & self._qall
            if self._covered == self._qall:
                self._coverage_step = step.index
        if derived:
            self._latest_after_coverage = self._coverage_step is not None
        words = set(_CONTENT.findall(step.text.lower()))
        self._prev_redundancy = len(words & self._seen_words) / len(words) if words and self._seen_words else 0.0
        self._seen_words |= words
        self._prev_text = step.text
        if self.probe is not None or self.defer_probes:
            self._closed_texts.append(step.text)  # the probe shows the model its thinking so far
        self._n_reflections += step.reflection
        end = step.start + len(step.text)
        self._spans = [s for s in self._spans if s[1] > end]

    def _confidence(self, start: int, length: int) -> float:
        lps = [lp for a, b, lp in self._spans if a < start + length and b > start]
        return math.exp(sum(lps) / len(lps)) if lps else 0.0

    # -- decision --------------------------------------------------------------------------------

    def features(self, index: int, start: int, reflection: bool, head: str) -> dict[str, float]:
        """The feature values of a stop at the open step (``reflection``: it opens a reflection turn)."""
        c = self._c
        latest = c.latest
        n_closed = index  # steps 0 .. index-1 are closed and in the state
        f = dict.fromkeys(FEATURES, 0.0)
        f["bias"] = 1.0
        f["reflection"] = float(reflection)
        f["check_turn"] = float(reflection and CHECK.search(head) is not None)
        f["prev_confirms"] = float(CONFIRM.search(self._prev_text) is not None)
        f["prev_redundancy"] = self._prev_redundancy
        f["length"] = math.log1p(start / 400)
        f["reflection_share"] = self._n_reflections / max(n_closed, 1)
        f["recent_values"] = math.log1p(len({v for _, v in c.recent}))
        f["explore_turn"] = float(reflection and EXPLORE.match(head.lstrip(" \t\n*#>-").lower()) is not None)
        f["coverage"] = len(self._covered) / len(self._qall) if self._qall else 1.0
        if self._coverage_step is not None:
            f["since_coverage"] = math.log1p(n_closed - self._coverage_step)
        f.update(self._flow.features(latest, c.latest_weak, index))
        if latest is None:
            return f
        f["has_answer"] = 1.0
        f["support"] = math.log1p(c.counts.get(latest, 0))
        f["mentions"] = math.log1p(c.mentions.get(latest, 0))
        f["strong"] = float(latest in c.strong)
        f["prev_concluded"] = float(self._prev_last == latest)
        f["age"] = math.log1p(n_closed - c.first_step.get(latest, n_closed))
        words = set(_CONTENT.findall(c.latest_step_text.lower()))
        f["ask_overlap"] = len(words & self._ask) / len(self._ask) if self._ask else 0.0
        f["question_number"] = float(latest in self._qnums)
        f["answer_word"] = float(ANSWER_WORD.search(c.latest_step_text) is not None)
        f["agrees_weak"] = float(c.latest_weak == latest)
        f["after_coverage"] = float(self._latest_after_coverage)
        f["stable"] = math.log1p(n_closed - c.changed_step)
        f["checks_since"] = math.log1p(c.checks_since)
        f["check_x_support"] = f["check_turn"] * f["support"]
        f["reflection_x_mentions"] = f["reflection"] * f["mentions"]
        return f

    def score(self, feats: Mapping[str, float]) -> float:
        """Logistic stop score of a feature vector."""
        z = sum(self.config.weights.get(k, 0.0) * v for k, v in feats.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def _decide(self, index: int, refl: bool, head: str, start: int) -> StopDecision | None:
        """Score the opening of step ``index`` (once); records and returns a stop decision."""
        if index <= self._scored_step or start < self.config.min_chars:
            return None
        self._scored_step = index
        feats = self.features(index, start, refl, head)
        s = self.score(feats)
        self.scores.append(s)
        if self.record:
            self.trail.append((index, start, feats, self.answer))
        cfg = self.config
        evidence = None
        answer = self.answer
        if s > cfg.threshold and answer is not None:
            evidence = "score"
        elif (
            refl
            and self._lp_pos > 0
            and self._c.latest is not None
            and (self._c.latest_confidence >= cfg.confidence_threshold)
        ):
            evidence = "confidence"
        elif (self.probe is not None or self.defer_probes) and refl and s >= cfg.probe_floor:
            request = _ProbeRequest("".join(self._closed_texts), start, index, s, feats)
            if self.probe is None:
                self.probe_request = request  # the caller asks the model, then calls answer_probe
                return None
            return self.answer_probe(self.probe(request.thinking), request)
        if evidence is None:
            return None
        self.decision = StopDecision(start, self.steps.length, index, answer, s, evidence, feats)
        return self.decision

    def answer_probe(self, answer: str | None, request: _ProbeRequest | None = None) -> StopDecision | None:
        """Record a probe's answer (for the pending :attr:`probe_request` by default); may stop.

        Args:
            answer: the normalised answer the model gave at the checkpoint (``None``: none).
            request: the checkpoint it answers (default: the pending one).
        """
        req = request or self.probe_request
        self.probe_request = None
        if req is None or self.decision is not None:
            return self.decision
        self.probe_answers.append(answer)
        last = self.probe_answers[-self.config.probe_k :]
        if answer is not None and len(last) == self.config.probe_k and len(set(last)) == 1:
            self.decision = StopDecision(
                req.cut_char, self.steps.length, req.index, answer, req.score, "probe", req.features
            )
        return self.decision
