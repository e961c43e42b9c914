"""Dataflow of a streamed calculation: which results are still waiting to be used, which inputs are used.

A GSM8K-style solution computes intermediate results from the question's numbers and combines them
until one value is left: the answer. Before that point, the question still has numbers no calculation
has touched, or results were derived and never used again ("Alisa biked 54 miles", with Stanley's
distance not computed yet). :class:`Dataflow` follows this from closed steps only (online): a
number right after ``=`` / a conclusion (an answer candidate) that is not itself followed by an
operator is a *derived result*; a number next to an arithmetic operator (``+ - * / × ÷``, "times",
"plus", "minus", "divided by", "multiplied by") is an *operand*. An operand use of a result closes it;
an operand use of a question number marks that input as used. Restating the problem ("subtract that
from 650") uses nothing.

:meth:`Dataflow.final` is the answer so far: the latest result that nothing used as an operand after
it was stated, looked for among conclusions first ("So the total is 366"), then among calculations
("32 - 30 = 2", a question's number included), then any stated result. A re-check that recomputes a
step ("60 + 180 = 240. 240 + 126 = 366") does not turn the intermediate 240 into the answer.

Example:
    >>> from agent_tokred.overthinking.answers import extract_candidates
    >>> flow = Dataflow(question_numbers=frozenset({"12", "4.5", "10", "2.5"}))
    >>> text = "So 12 * 4.5 = 54. So Alisa biked 54 miles."
    >>> flow.close(text, 0, 0, extract_candidates(text))
    >>> flow.used_coverage, sorted(flow.open)
    (0.5, ['54'])
    >>> text = "Stanley: 10 * 2.5 = 25."
    >>> flow.close(text, 60, 1, extract_candidates(text, 60))
    >>> flow.used_coverage, sorted(flow.open)
    (1.0, ['25', '54'])
    >>> text = "Total: 54 + 25 = 79."
    >>> flow.close(text, 90, 2, extract_candidates(text, 90))
    >>> sorted(flow.open), flow.features("79", None, 3)["open_any"]
    (['79'], 0.0)
    >>> text = "Check: 12 * 4.5 = 54, and 54 + 25 = 79."
    >>> flow.close(text, 120, 3, extract_candidates(text, 120))
    >>> flow.final()
    '79'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from .answers import _NUMBER, Candidate, _normalize_number

_OP_AFTER = re.compile(
    r"\s*\$?\s*(?:[-+*/×÷]|\\times|\\cdot|\\div|times\b|plus\b|minus\b|divided\b|multiplied\b)", re.IGNORECASE
)
_OP_BEFORE = re.compile(
    r"(?:[-+*/×÷(]|\\times|\\cdot|\\div|\btimes|\bplus|\bminus|divided by|multiplied by)\s*\$?\s*$", re.IGNORECASE
)
_LOOK_BACK = 12  # characters before a number that may hold its operator
# a calculation right before a result: "32 - 30 = ", "3 times 4 is "
_CALCULATION = re.compile(
    r"(?:[-+*/×÷]|\btimes|\bplus|\bminus|divided by|multiplied by)[^.=\n]{0,40}(?:=|\bis\b|\bequals\b)\s*\$?\s*$"
)

#: Feature names :meth:`Dataflow.features` returns (in this order).
DATAFLOW_FEATURES = ("open_results", "open_any", "latest_used", "n_results", "used_coverage", "since_used_coverage")


class Dataflow:
    """Open results and used inputs of the closed steps so far.

    Args:
        question_numbers: the question's normalised numbers (its inputs; restating one is not a result).
    """

    def __init__(self, question_numbers: frozenset[str]) -> None:
        self.inputs = question_numbers
        self.open: dict[str, int] = {}  # derived result -> offset of its latest derivation, not used since
        self.used: set[str] = set()  # results used as an operand at some point
        self.last_use: dict[str, int] = {}  # value -> offset of its latest use as an operand
        # (conclusions, calculations, any result): value -> offset of its latest statement
        self.pools: tuple[dict[str, int], ...] = ({}, {}, {})
        self.inputs_used: set[str] = set()
        self.coverage_step: int | None = None  # step at which every input had been used

    @property
    def used_coverage(self) -> float:
        """Share of the question's numbers used as operands so far (1.0 without numbers)."""
        return len(self.inputs_used) / len(self.inputs) if self.inputs else 1.0

    def close(self, text: str, start: int, index: int, candidates: Iterable[Candidate]) -> None:
        """Add a closed step (``candidates``: its answer candidates, offsets in the whole text).

        Operand uses close results of *earlier* steps; then the step's own results open (a step
        that computes ``48 + 6 = 54`` leaves 48, 6 and 54 open until a later step uses them).
        """
        for m in _NUMBER.finditer(text):
            if (
                _OP_AFTER.match(text, m.end()) is None
                and _OP_BEFORE.search(text, max(0, m.start() - _LOOK_BACK), m.start()) is None
            ):
                continue
            value = _normalize_number(m.group())
            if value is not None:
                self.last_use[value] = start + m.start()
            if value in self.inputs:
                self.inputs_used.add(value)
            if value in self.open:
                del self.open[value]
                self.used.add(value)
        for c in candidates:
            if c.strength >= 1 and c.value not in self.inputs:
                self.open[c.value] = c.start
            at = c.start - start
            kinds = (c.strength >= 2 and (c.value not in self.inputs or c.strength >= 3),
                     c.strength >= 1 and _CALCULATION.search(text, max(0, at - 60), max(at, 0)) is not None,
                     c.strength >= 1 and c.value not in self.inputs)
            for pool, hit in zip(self.pools, kinds):
                if hit:
                    pool.pop(c.value, None)
                    pool[c.value] = c.start
        if self.coverage_step is None and self.inputs and self.inputs <= self.inputs_used:
            self.coverage_step = index

    def final(self) -> str | None:
        """The latest result not used as an operand since it was stated: a conclusion, else a calculation's
        result, else any stated result (``None``: none)."""
        for pool in self.pools:
            for value, at in reversed(pool.items()):
                if self.last_use.get(value, -1) < at:
                    return value
        return None

    def features(self, latest: str | None, latest_weak: str | None, index: int) -> dict[str, float]:
        """Feature values at the opening of step ``index`` (``latest``: the rule's latest candidate)."""
        others = [v for v in self.open if v not in (latest, latest_weak)]
        since = index - self.coverage_step if self.coverage_step is not None else -1
        return {
            "open_results": math.log1p(len(others)),
            "open_any": float(bool(others)),
            "latest_used": float(latest is not None and latest in self.used and latest not in self.open),
            "n_results": math.log1p(len(self.open) + len(self.used)),
            "used_coverage": self.used_coverage,
            "since_used_coverage": math.log1p(since) if since >= 0 else 0.0,
        }
