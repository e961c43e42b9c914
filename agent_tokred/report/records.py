"""Typed records of one demo or agent run: tokens per step and component, and what each reduction kept.

A :class:`RunRecord` holds the steps of a run (the context one model call saw, without and with
agent-tokred, split into components such as tool outputs, history, documents, reasoning, examples) and
the reduced items (a tool output, a document, a reasoning block) as ``(text, kept)`` segments of their
originals. The HTML report (:mod:`agent_tokred.report.html`) and the plots
(:mod:`agent_tokred.report.plots`) are drawn from these records alone.

Example:
    >>> step = StepRecord(index=0, components=(ComponentTokens("tool outputs", 900, 300),))
    >>> run = RunRecord(name="demo", title="Demo", steps=(step,))
    >>> run.tokens_without, run.tokens_with, round(run.saved_share, 3)
    (900, 300, 0.667)
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from ..reduction import Reduction

Segment = tuple[str, bool]
_PIECE = re.compile(r"\s+|\w+(?:[.\-:/@]\w+)*|[^\w\s]")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative int, got {value!r}")


@dataclass(frozen=True)
class ComponentTokens:
    """Tokens of one component of a model call's context, without and with agent-tokred.

    Attributes:
        name: e.g. ``"tool outputs"``, ``"history"``, ``"documents"``, ``"reasoning"``, ``"examples"``.
        before: tokens without agent-tokred.
        after: tokens with agent-tokred.
    """

    name: str
    before: int
    after: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"component name must be a non-empty str, got {self.name!r}")
        _check_count(f"{self.name}.before", self.before)
        _check_count(f"{self.name}.after", self.after)

    @property
    def saved(self) -> int:
        return self.before - self.after


@dataclass(frozen=True)
class StepRecord:
    """The context of one model call (one step of an agent), by component.

    Attributes:
        index: the step's position in the run (0-based).
        components: tokens per component, without and with agent-tokred.
        label: a short description (the tool called, the question asked ...).
        group: which episode the step belongs to (a task, a conversation); charts mark where it changes.
    """

    index: int
    components: tuple[ComponentTokens, ...]
    label: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        _check_count("step index", self.index)
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"step {self.index} names a component twice: {names}")

    @classmethod
    def from_counts(
        cls, index: int, before: Mapping[str, int], after: Mapping[str, int], label: str = "", group: str = ""
    ) -> StepRecord:
        """Build a step from two ``{component: tokens}`` maps (a component missing in ``after`` is 0)."""
        unknown = set(after) - set(before)
        if unknown:
            raise InvalidInputError(f"components {sorted(unknown)} are in 'after' but not in 'before'")
        comps = tuple(ComponentTokens(k, int(v), int(after.get(k, 0))) for k, v in before.items())
        return cls(index=index, components=comps, label=label, group=group)

    @property
    def tokens_before(self) -> int:
        return sum(c.before for c in self.components)

    @property
    def tokens_after(self) -> int:
        return sum(c.after for c in self.components)

    @property
    def saved(self) -> int:
        return self.tokens_before - self.tokens_after


def _merge_segments(pieces: Iterable[Segment]) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for text, kept in pieces:
        if not text:
            continue
        if out and out[-1][1] == kept:
            out[-1] = (out[-1][0] + text, kept)
        else:
            out.append((text, kept))
    return tuple(out)


def segments_from_texts(original: str, reduced: str, *, lookahead: int = 64) -> tuple[Segment, ...]:
    """Mark which parts of ``original`` survive in ``reduced`` (in-order word alignment, linear time).

    For reductions that do not report their kept spans (a message rewritten by middleware, a compacted
    JSON value). Each word of ``reduced`` is matched to the next occurrence of the same word in
    ``original`` that continues the current run or is confirmed by the following word too (so a
    marker such as ``… [12 lines omitted]`` does not claim a word far ahead); unmatched words of
    ``reduced`` are insertions and ignored.

    Example:
        >>> segments_from_texts("a b c d", "a … d")
        (('a', True), (' b c ', False), ('d', True))
    """
    if not original:
        return ()
    if original == reduced:
        return ((original, True),)
    a = _PIECE.findall(original)
    if "".join(a) != original:  # the regex tiles any string; keep a safe fallback anyway
        return ((original, False),)
    words = [i for i, piece in enumerate(a) if not piece.isspace()]
    where: dict[str, list[int]] = {}
    for k, i in enumerate(words):
        where.setdefault(a[i], []).append(k)
    b = [piece for piece in _PIECE.findall(reduced) if not piece.isspace()]
    kept = [False] * len(a)
    ptr = 0
    for j, word in enumerate(b):
        spots = where.get(word)
        if not spots:
            continue
        start = bisect.bisect_left(spots, ptr)
        for k in spots[start : start + lookahead]:
            follows = j + 1 == len(b) or (k + 1 < len(words) and a[words[k + 1]] == b[j + 1])
            if k == ptr or follows:
                kept[words[k]] = True
                ptr = k + 1
                break
    # whitespace between two kept words counts as kept, so the view does not flicker
    for i, piece in enumerate(a):
        if piece.isspace() and 0 < i < len(a) - 1 and kept[i - 1] and kept[i + 1]:
            kept[i] = True
    return _merge_segments(zip(a, kept))


@dataclass(frozen=True)
class ItemRecord:
    """One reduced item (a tool output, a document, a reasoning block) as pieces of its original.

    Attributes:
        title: what it is (``"tool output: ls"``, ``"document 3: Paris"``).
        segments: the original, in order, as ``(text, kept)`` pieces.
        tokens_before: tokens of the original.
        tokens_after: tokens the model saw instead.
        step: the step it belongs to, if any.
        kind: a component name (``"tool outputs"``, ``"documents"`` ...).
        handle: where the original is archived (empty when it is not).
        note: anything the reader should know (``"dropped whole"``, a fallback ...).
    """

    title: str
    segments: tuple[Segment, ...]
    tokens_before: int
    tokens_after: int
    step: int | None = None
    kind: str = ""
    handle: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        _check_count("tokens_before", self.tokens_before)
        _check_count("tokens_after", self.tokens_after)
        for seg in self.segments:
            if not (isinstance(seg, tuple) and len(seg) == 2 and isinstance(seg[0], str) and isinstance(seg[1], bool)):
                raise InvalidInputError(f"segments must be (str, bool) pairs, got {seg!r}")

    @classmethod
    def from_reduction(
        cls, reduction: Reduction, title: str, *, step: int | None = None, kind: str = "", note: str = ""
    ) -> ItemRecord:
        """Build from a :class:`agent_tokred.Reduction` (its kept and dropped segments of the original)."""
        return cls(
            title=title,
            segments=_merge_segments(reduction.segments()),
            tokens_before=reduction.tokens_before,
            tokens_after=reduction.tokens_after,
            step=step,
            kind=kind,
            handle=reduction.handle,
            note=note,
        )

    @property
    def original(self) -> str:
        return "".join(t for t, _ in self.segments)

    @property
    def kept_chars(self) -> int:
        return sum(len(t) for t, k in self.segments if k)

    @property
    def dropped_chars(self) -> int:
        return sum(len(t) for t, k in self.segments if not k)


@dataclass(frozen=True)
class RunRecord:
    """Everything the report shows about one run of one agent.

    Attributes:
        name: a short identifier (used for anchors and file names).
        title: the heading.
        steps: the model calls, in order.
        items: the reduced items worth showing.
        mode: how the agent was driven (``"replayed"``, ``"model-driven: openai:gpt-4o"``, ``"offline"``).
        description: one paragraph on what the agent did.
        metrics: labelled results (``("argument survival", "100%")``), shown as given.
        seconds: wall time of the run.
    """

    name: str
    title: str
    steps: tuple[StepRecord, ...] = ()
    items: tuple[ItemRecord, ...] = ()
    mode: str = "offline"
    description: str = ""
    metrics: tuple[tuple[str, str], ...] = field(default=())
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name or ""):
            raise InvalidInputError(f"run name must match [A-Za-z0-9_-]+, got {self.name!r}")

    @property
    def tokens_without(self) -> int:
        """Context tokens over all steps without agent-tokred (the sum of :meth:`component_totals`)."""
        return sum(before for before, _ in self.component_totals().values())

    @property
    def tokens_with(self) -> int:
        """Context tokens over all steps with agent-tokred."""
        return sum(after for _, after in self.component_totals().values())

    @property
    def saved_share(self) -> float:
        """Share of context tokens saved over the run (0.0 when there were none)."""
        return 1.0 - self.tokens_with / self.tokens_without if self.tokens_without else 0.0

    def group_starts(self) -> list[int]:
        """Positions (in ``steps``) where a new group begins, the first step excepted."""
        return [i for i in range(1, len(self.steps)) if self.steps[i].group != self.steps[i - 1].group]

    def component_totals(self) -> dict[str, tuple[int, int]]:
        """``{component: (tokens without, tokens with)}`` summed over steps, in first-seen order."""
        totals: dict[str, tuple[int, int]] = {}
        for s in self.steps:
            for c in s.components:
                b, a = totals.get(c.name, (0, 0))
                totals[c.name] = (b + c.before, a + c.after)
        return totals


def summary_rows(runs: Sequence[RunRecord]) -> list[dict[str, object]]:
    """One row per run: tokens without/with, saved share, steps, mode, and the run's metrics in one cell."""
    rows: list[dict[str, object]] = []
    for r in runs:
        row: dict[str, object] = {
            "demo": r.title,
            "mode": r.mode,
            "steps": len(r.steps),
            "tokens without": r.tokens_without,
            "tokens with": r.tokens_with,
            "saved": f"{r.saved_share:.1%}",
        }
        row["results"] = "; ".join(f"{k}: {v}" for k, v in r.metrics)
        rows.append(row)
    return rows
