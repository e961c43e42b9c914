"""The cut strategy: where to stop a reasoning trace, given the detectors' step scores.

Gates say the answer is settled (convergence reached 1, or the trial answer is confident); triggers
say the step is a re-check (a reflection turn, or mostly words already said). The cut is the first
step ``i >= 1`` where a gate is open and a trigger fires: steps ``i ..`` are removed, steps before it
(which hold the settled answer) are kept. This is DEER's "exit at a Wait point when the trial
answer is settled", with settled meaning re-derived rather than a single probe.

Example:
    >>> CutStrategy().choose({"convergence": [0, 1, 1], "reflection": [0, 0, 1]})
    (2, ('convergence', 'reflection'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError

GATES = ("convergence", "confidence")
TRIGGERS = ("reflection", "recheck", "redundancy", "any")


@dataclass(frozen=True)
class CutStrategy:
    """First step where the answer is settled and the step re-checks it.

    Args:
        triggers: detector names whose score at or above ``trigger_threshold`` marks a re-check;
            ``"any"`` makes every step after a settled answer a cut point.
        trigger_threshold: score a trigger needs (reflection is 0/1; redundancy is a share).
        confidence_threshold: trial-answer probability that opens the gate after one derivation.
    """

    triggers: tuple[str, ...] = ("reflection", "redundancy")
    trigger_threshold: float = 0.9
    confidence_threshold: float = 0.9

    def __post_init__(self) -> None:
        bad = [t for t in self.triggers if t not in TRIGGERS]
        if bad or not self.triggers:
            raise InvalidInputError(f"triggers={self.triggers!r}; valid: {', '.join(TRIGGERS)}")
        for name in ("trigger_threshold", "confidence_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name}={value!r}; must be in [0, 1]")

    def gate(self, scores: Mapping[str, Sequence[float]], i: int) -> str | None:
        """Name of the gate open before step ``i``, or ``None``."""
        conv = scores.get("convergence")
        if conv is not None and conv[i] >= 1.0:
            return "convergence"
        conf = scores.get("confidence")
        if conf is not None and conv is not None and conv[i] > 0.0 and conf[i] >= self.confidence_threshold:
            return "confidence"
        return None

    def trigger(self, scores: Mapping[str, Sequence[float]], i: int) -> str | None:
        """Name of the first trigger firing at step ``i``, or ``None``."""
        for name in self.triggers:
            if name == "any":
                return "any"
            values = scores.get(name)
            if values is not None and values[i] >= self.trigger_threshold:
                return name
        return None

    def choose(self, scores: Mapping[str, Sequence[float]]) -> tuple[int | None, tuple[str, ...]]:
        """Index of the first removed step (``None``: keep all) and the detectors that chose it."""
        n = max((len(v) for v in scores.values()), default=0)
        for i in range(1, n):
            gate = self.gate(scores, i)
            if gate is None:
                continue
            trig = self.trigger(scores, i)
            if trig is not None:
                return i, (gate, trig)
        return None, ()
