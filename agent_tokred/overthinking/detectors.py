"""Overthinking detectors: criteria over reasoning steps.

A detector has the criterion shape ``detector(steps, question) -> Sequence[float]``: one score in
``[0, 1]`` per step, where the score of step ``i`` says how redundant step ``i`` is *given the steps
before it* (1 = nothing new is expected from it). Detectors combine in :mod:`.strategy`.

* :class:`ConvergenceDetector`: an answer candidate has been re-derived ``k`` times (gate).
* :func:`reflection`: the step opens with a reflection turn ("Wait", "Let me double-check").
* :func:`recheck`: a reflection turn that re-checks, not one doubting how the problem reads.
* :func:`lexical_redundancy`: share of the step's content words already said (default, fast).
* :class:`EmbeddingRedundancyDetector`: cosine to the closest earlier step (MiniLM, optional).
* :class:`ConfidenceDetector`: token probability of the latest trial answer, when log-probs exist.

Example:
    >>> from agent_tokred.overthinking.steps import segment_steps
    >>> steps = segment_steps("So 9*60 = 540.\\n\\nThus the total is 540.\\n\\nWait, let me check: 540.")
    >>> ConvergenceDetector(k=2)(steps, None)
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np

from ..criteria.base import Criterion
from ..errors import InvalidInputError
from ..units import Unit
from .answers import _NUMBER, _OPERATOR_AFTER, Candidate, _normalize_number, extract_candidates, mentions
from .steps import is_reflection

#: The criterion shape over steps; scores in [0, 1], 1 = redundant given the earlier steps.
StepDetector: TypeAlias = Criterion

# A turn that doubts the reading of the problem may find another answer: it is not a re-check.
_READING_DOUBT = re.compile(r"interpret|ambigu|misread|another (?:way to read|reading)", re.IGNORECASE)
_DOUBT_WINDOW = 120  # characters of a step's opening searched for such a doubt

_CONTENT = re.compile(r"[^\W\d_]{4,}|\d+(?:\.\d+)?|[\u4e00-\u9fff]", re.UNICODE)

# A value that a calculation in its own sentence produces ("63 minus 40 is 23, and then minus 8 more
# would be 15", "$80 plus $30 would give a total of $110", "S = 18 / 3 ... S = 6"): the operation,
# then a result word right before the value, and no operator after it (an operand is no result).
_OPERATION = re.compile(
    r"\d[^.\n?!]{0,30}?\b(?:plus|minus|times|divided by|multiplied by|subtract\w*|add\w*|less|more)\b"
    r"[^.\n?!]{0,30}?\d|\d\s*\)?\s*(?:[-+*/×÷·]|\\times|\\cdot|\\div)\s*\(?\s*\$?\d",
    re.IGNORECASE,
)
_RESULT_WORD = re.compile(
    r"(?:=|≈|\bis|\bare|\bbe|\bequals?|\bgives?|\bmakes?|\bget(?:s|ting)?|\bleaves?(?: \w+)?(?: with)?|\bleft with|"
    r"\btotal of|\bcomes to|\bresults? in|→)\s*(?:\\\(|\$)?\s*$",
    re.IGNORECASE,
)
_VARIABLE_IS = re.compile(r"(?<![\w$])[A-Za-z]\s*=\s*(?:\\\(|\$)?\s*$")  # "S = 6" after solving for S
_SENTENCE_BREAK = re.compile(r"[.!?\n]\s")
_LOOK_BACK = 90  # characters of the value's sentence read before it


def computed_mention(text: str, value: str) -> bool:
    """Whether ``text`` states ``value`` as the result of a calculation in the same sentence.

    Example:
        >>> computed_mention("63 minus 40 is 23, and then minus 8 more would be 15.", "15")
        True
        >>> computed_mention("Paul needs 15 more cupcakes, maybe.", "15")
        False
    """
    for start in mentions(text, value):
        sentence = _SENTENCE_BREAK.split(text[max(0, start - _LOOK_BACK - 2) : start])[-1][-_LOOK_BACK:]
        rest = text[start:]
        end = _NUMBER.match(rest) if _NUMBER.fullmatch(value) else None
        after = rest[end.end():] if end is not None else rest[len(value):]
        if _OPERATOR_AFTER.match(after):
            continue
        if _VARIABLE_IS.search(sentence) or (_RESULT_WORD.search(sentence) and _OPERATION.search(sentence)):
            return True
    return False


@lru_cache(maxsize=8192)
def _candidates_cached(text: str) -> tuple[Candidate, ...]:
    return tuple(extract_candidates(text))


def step_candidates(step: Unit) -> list[Candidate]:
    """Answer candidates of one step, with offsets in the step's source text (memoised per text)."""
    return [Candidate(c.value, c.raw, c.start + max(step.start, 0), c.strength) for c in _candidates_cached(step.text)]


def question_numbers(question: str | None) -> frozenset[str]:
    """Normalised numbers of a question: restating them is not deriving an answer."""
    if not question:
        return frozenset()
    return frozenset(v for m in _NUMBER.finditer(question) if (v := _normalize_number(m.group())) is not None)


@dataclass(frozen=True, slots=True)
class ConvergenceState:
    """Where the answer stands before a step: the latest candidate and how often it was derived."""

    value: str | None
    support: int


@dataclass(frozen=True)
class ConvergenceDetector:
    """Scores ``min(1, support / k)``: how often the current answer was derived before each step.

    Without ``anchor`` (online: the conclusion is not known yet), the current answer is the latest
    candidate stated with at least ``min_strength`` (numbers of the question excluded unless boxed
    or "the answer is"), and support counts the steps deriving it. With ``anchor`` (the answer the
    conclusion gives), support counts the steps deriving that value (an anchor that is a number of the
    question needs a conclusion-strength statement), or computing it in words (:func:`computed_mention`).

    Args:
        k: derivations needed for the answer to count as stable (score 1).
        min_strength: weakest candidate counted (1 "= x", 2 "so ... x" / bold, 3 boxed / "answer is").
        anchor: normalised final answer, or ``None`` for online convergence.
    """

    k: int = 3
    min_strength: int = 2
    anchor: str | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInputError(f"k={self.k!r}; must be >= 1")
        if self.min_strength not in (1, 2, 3):
            raise InvalidInputError(f"min_strength={self.min_strength!r}; valid: 1, 2, 3")

    def states(self, steps: Sequence[Unit], question: str | None) -> list[ConvergenceState]:
        """The answer state *before* each step (state ``i`` sees steps ``0 .. i-1``)."""
        qnums = question_numbers(question)
        counts: dict[str, int] = {}
        latest: str | None = self.anchor
        out: list[ConvergenceState] = []
        for step in steps:
            out.append(ConvergenceState(latest, counts.get(latest, 0) if latest is not None else 0))
            derived = [c.value for c in step_candidates(step) if self._counts(c, qnums)]
            if self.anchor is not None and not derived and computed_mention(step.text, self.anchor):
                derived = [self.anchor]
            for value in dict.fromkeys(derived):
                counts[value] = counts.get(value, 0) + 1
            if derived and self.anchor is None:
                latest = derived[-1]
        return out

    def _counts(self, cand: Candidate, qnums: frozenset[str]) -> bool:
        if self.anchor is not None:
            need = max(self.min_strength, 2) if cand.value in qnums else self.min_strength
            return cand.value == self.anchor and cand.strength >= need
        return cand.strength >= self.min_strength and (cand.value not in qnums or cand.strength >= 3)

    def __call__(self, steps: Sequence[Unit], question: str | None) -> list[float]:
        return [min(1.0, s.support / self.k) for s in self.states(steps, question)]


@dataclass(frozen=True)
class MentionGate:
    """1.0 for the steps after the first one that mentions ``anchor`` (the conclusion's answer) at all.

    A looser gate than :class:`ConvergenceDetector`: any occurrence counts, even a restated number
    of the question, as in the "first re-check after the answer appears" rule.
    """

    anchor: str

    def __call__(self, steps: Sequence[Unit], question: str | None) -> list[float]:
        out: list[float] = []
        seen = False
        for step in steps:
            out.append(1.0 if seen else 0.0)
            seen = seen or bool(mentions(step.text, self.anchor))
        return out


def reflection(steps: Sequence[Unit], question: str | None) -> list[float]:
    """1.0 for steps that open with a reflection turn ("Wait", "Alternatively", "Let me verify")."""
    return [1.0 if is_reflection(s.text) else 0.0 for s in steps]


def recheck(steps: Sequence[Unit], question: str | None) -> list[float]:
    """1.0 for reflection turns that re-check rather than doubt the reading ("another interpretation").

    Example:
        >>> from agent_tokred.overthinking.steps import segment_steps
        >>> recheck(segment_steps("So 105. Wait, let me verify: 105. But let me check another interpretation."), None)
        [0.0, 1.0, 0.0]
    """
    return [1.0 if is_reflection(s.text) and not _READING_DOUBT.search(s.text[:_DOUBT_WINDOW]) else 0.0 for s in steps]


def lexical_redundancy(steps: Sequence[Unit], question: str | None) -> list[float]:
    """Share of a step's content words (4+ letters, numbers, CJK characters) said in earlier steps."""
    seen: set[str] = set()
    out: list[float] = []
    for step in steps:
        words = set(_CONTENT.findall(step.text.lower()))
        out.append(len(words & seen) / len(words) if words and seen else 0.0)
        seen |= words
    return out


@dataclass(frozen=True)
class EmbeddingRedundancyDetector:
    """Cosine similarity of each step to its closest earlier step (MiniLM embeddings, lazy load).

    Slower than :func:`lexical_redundancy` (~3k tokens/s on CPU) and catches paraphrased re-checks.
    """

    model: str = "minilm"

    def __call__(self, steps: Sequence[Unit], question: str | None) -> list[float]:
        if len(steps) < 2:
            return [0.0] * len(steps)
        from ..models import embed

        vecs = embed([s.text for s in steps], model=self.model)
        sims = vecs @ vecs.T
        out = [0.0]
        for i in range(1, len(steps)):
            out.append(float(np.clip(sims[i, :i].max(), 0.0, 1.0)))
        return out


def _token_pairs(logprobs: Sequence[Any]) -> list[tuple[str, float]]:
    pairs: list[tuple[str, float]] = []
    for item in logprobs:
        if isinstance(item, Mapping):
            token, lp = item.get("token"), item.get("logprob")
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            token, lp = item[0], item[1]
        else:
            raise InvalidInputError(f"log-prob item {item!r}; expected (token, logprob) or {{'token', 'logprob'}}")
        if not isinstance(token, str) or not isinstance(lp, (int, float)) or math.isnan(float(lp)):
            raise InvalidInputError(f"log-prob item {item!r}; token must be a string and logprob a number")
        pairs.append((token, float(lp)))
    return pairs


@dataclass(frozen=True)
class ConfidenceDetector:
    """Probability of the latest trial answer's tokens, before each step (DEER-style confidence).

    Args:
        logprobs: the generated tokens with their log-probabilities, as ``(token, logprob)`` pairs
            or OpenAI-style ``{"token": ..., "logprob": ...}`` items, covering the scored text from
            its first character (their concatenation must start with the text the steps come from).
        text_offset: offset of the steps' source text within the tokens' concatenation.
    """

    logprobs: Sequence[Any]
    text_offset: int = 0
    _spans: tuple[tuple[int, int, float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        spans: list[tuple[int, int, float]] = []
        pos = 0
        for token, lp in _token_pairs(self.logprobs):
            spans.append((pos, pos + len(token), lp))
            pos += len(token)
        object.__setattr__(self, "_spans", tuple(spans))

    def candidate_confidence(self, cand: Candidate) -> float:
        """exp(mean log-prob) of the tokens overlapping a candidate (0 when no token covers it)."""
        a = cand.start + self.text_offset
        b = a + len(cand.raw)
        lps = [lp for s, e, lp in self._spans if s < b and e > a]
        return math.exp(sum(lps) / len(lps)) if lps else 0.0

    def __call__(self, steps: Sequence[Unit], question: str | None) -> list[float]:
        out: list[float] = []
        latest = 0.0
        for step in steps:
            out.append(latest)
            cands = [c for c in step_candidates(step) if c.strength >= 1]
            if cands:
                latest = self.candidate_confidence(cands[-1])
        return out
