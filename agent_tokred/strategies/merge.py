"""Bipartite soft matching: merge similar items, ToMe-style, and keep who was merged into whom.

The strategy behind the merging memory store (and any engine that fuses redundant units). Items
are split into two sides A and B; each A item finds its most similar B item; the most similar
pairs whose cosine similarity reaches ``threshold`` are merged (at most ``r`` of them), several A
items may fall into the same B item. Merged embeddings are size-weighted means, so an item that
already stands for ten sources weighs ten times one that stands for one (ToMe's ``merge_wavg``).

The result is a :class:`MergePlan`: computed once, then applied to texts, metadata and sizes with
:func:`apply_merge_plan`. Pure numpy; no store, no LangGraph.

Example:
    >>> import re

import numpy as np
    >>> from agent_tokred.strategies.merge import bipartite_soft_matching
    >>> emb = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    >>> plan = bipartite_soft_matching(emb, r=None, threshold=0.9)
    >>> plan.sources
    ((0, 1), (2,))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from ..errors import InvalidInputError

T = TypeVar("T")
Split = Literal["alternate", "paired"]
SPLITS: tuple[str, ...] = ("alternate", "paired")

__all__ = ["MergePlan", "apply_merge_plan", "bipartite_soft_matching", "fuse_texts", "line_template"]


@dataclass(frozen=True, eq=False)
class MergePlan:
    """Which inputs each output stands for, and the merged embeddings.

    Outputs are ordered by their representative (the B item a group merged into, or the item
    itself when nothing merged into it), which is the smallest position only when the group's B
    item came first; ``sources`` is always sorted.

    Attributes:
        n_inputs: how many items went in.
        targets: for each output, the input index it is kept under (its representative).
        sources: for each output, every input index it stands for (sorted, includes the target).
        embeddings: ``(len(targets), dim)`` size-weighted mean embeddings of each output.
        sizes: for each output, the sum of its sources' sizes.
        scores: for each output, the similarity of the weakest merge into it (``1.0`` if none).
    """

    n_inputs: int
    targets: tuple[int, ...]
    sources: tuple[tuple[int, ...], ...]
    embeddings: np.ndarray
    sizes: tuple[float, ...]
    scores: tuple[float, ...]

    @property
    def n_merged(self) -> int:
        """How many inputs disappeared into another one."""
        return self.n_inputs - len(self.targets)

    @property
    def merged_groups(self) -> list[tuple[int, ...]]:
        """The source groups with more than one member."""
        return [s for s in self.sources if len(s) > 1]


def _normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _check_inputs(
    embeddings: np.ndarray, r: int | None, threshold: float, sizes: object, groups: object, sides: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | str]:
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise InvalidInputError(f"embeddings must be a 2-d array (items, dim), got shape {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise InvalidInputError("embeddings contain NaN or infinite values")
    n = emb.shape[0]
    if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
        raise InvalidInputError(f"r must be None or an int >= 0, got {r!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
        raise InvalidInputError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r}")
    size_arr = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64)
    if size_arr.shape != (n,) or np.any(size_arr <= 0) or not np.all(np.isfinite(size_arr)):
        raise InvalidInputError(f"sizes must be {n} positive numbers, got {sizes!r}")
    group_arr = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    if group_arr.shape != (n,):
        raise InvalidInputError(f"groups must have one id per item ({n}), got shape {group_arr.shape}")
    if sides is None or isinstance(sides, str):
        split = "alternate" if sides is None else sides
        if split not in SPLITS:
            raise InvalidInputError(f"sides must be a bool array or one of {', '.join(SPLITS)}, got {sides!r}")
        return emb, size_arr, group_arr, split
    side_arr = np.asarray(sides, dtype=bool)
    if side_arr.shape != (n,):
        raise InvalidInputError(f"sides must have one bool per item ({n}), got shape {side_arr.shape}")
    return emb, size_arr, group_arr, side_arr


def _alternate_within_groups(groups: np.ndarray) -> np.ndarray:
    # Alternate A/B inside each group (in order of appearance), so every group has both sides.
    sides = np.zeros(len(groups), dtype=bool)
    seen: dict[object, int] = {}
    for i, g in enumerate(groups.tolist()):
        count = seen.get(g, 0)
        sides[i] = count % 2 == 0
        seen[g] = count + 1
    return sides


def _paired_sides(unit: np.ndarray, groups: np.ndarray, chunk: int = 1024) -> np.ndarray:
    # Put each item's most similar item (same group) on the other side, strongest pairs first, so
    # similar items far apart in order still meet (alternating only pairs neighbours).
    n = len(unit)
    best = np.full(n, -1)
    best_score = np.full(n, -np.inf)
    for start in range(0, n, chunk):
        s = unit[start : start + chunk] @ unit.T
        s[groups[start : start + chunk][:, None] != groups[None, :]] = -np.inf
        s[np.arange(s.shape[0]), np.arange(start, start + s.shape[0])] = -np.inf
        best[start : start + chunk] = np.argmax(s, axis=1)
        best_score[start : start + chunk] = s[np.arange(s.shape[0]), best[start : start + chunk]]
    side = np.zeros(n, dtype=np.int8)  # 0 unassigned, 1 = A, 2 = B
    for i in np.lexsort((np.arange(n), -best_score)):
        j = best[i]
        if not np.isfinite(best_score[i]):
            side[i] = side[i] or 2
            continue
        if side[i] == 0:
            side[i] = 2 if side[j] == 1 else 1
        if side[j] == 0:
            side[j] = 2 if side[i] == 1 else 1
    return side == 1


def bipartite_soft_matching(
    embeddings: np.ndarray,
    *,
    r: int | None,
    threshold: float,
    sizes: Sequence[float] | np.ndarray | None = None,
    groups: Sequence[object] | np.ndarray | None = None,
    sides: Sequence[bool] | np.ndarray | Split | None = None,
) -> MergePlan:
    """Plan one round of ToMe's bipartite soft matching with a similarity gate.

        Args:
            embeddings: ``(n, dim)`` item embeddings (cosine similarity is used; need not be normalised).
            r: most merges in this round (``None``: every pair that passes ``threshold``).
            threshold: smallest cosine similarity at which two items merge.
            sizes: how many sources each item already stands for (default 1 each); weights the means.
            groups: a group id per item (e.g. namespace + kind); items of different groups never merge.
            sides: how items split into A (may merge into a B item) and B. ``"alternate"`` (default):
                alternate within each group, as ToMe alternates neighbouring tokens; ``"paired"``: each
                item's nearest neighbour goes to the other side (for unordered items such as memories);
                or a bool array, ``True`` for A (e.g. new memories merging into existing ones).

        Returns:
            The plan; with ``r == 0`` or nothing above ``threshold`` every item is kept alone.

        Raises:
            InvalidInputError: malformed embeddings, sizes, groups, sides, ``r`` or ``threshold``.

        Example:
            >>> import re

    import numpy as np
            >>> plan = bipartite_soft_matching(np.eye(3), r=None, threshold=0.5)
            >>> plan.n_merged
            0
    """
    emb, size_arr, group_arr, split = _check_inputs(embeddings, r, threshold, sizes, groups, sides)
    n = emb.shape[0]
    unit = _normalized(emb)
    if isinstance(split, str):
        side_arr = (
            _paired_sides(unit, group_arr) if split == "paired" and n > 1 else _alternate_within_groups(group_arr)
        )
    else:
        side_arr = split
    a_idx = np.flatnonzero(side_arr)
    b_idx = np.flatnonzero(~side_arr)
    into = np.arange(n)  # representative of each input
    edge_score = np.ones(n)
    if len(a_idx) and len(b_idx) and (r is None or r > 0):
        scores = unit[a_idx] @ unit[b_idx].T
        scores[group_arr[a_idx][:, None] != group_arr[b_idx][None, :]] = -np.inf
        best = np.argmax(scores, axis=1)
        best_score = scores[np.arange(len(a_idx)), best]
        # Highest similarity first; ties broken by position so plans are deterministic.
        order = np.lexsort((a_idx, -best_score))
        chosen = [i for i in order if best_score[i] >= threshold]
        if r is not None:
            chosen = chosen[:r]
        for i in chosen:
            into[a_idx[i]] = b_idx[best[i]]
            edge_score[a_idx[i]] = best_score[i]
    targets = sorted(set(into.tolist()))
    members: dict[int, list[int]] = {t: [t] for t in targets}
    for i in np.flatnonzero(into != np.arange(n)).tolist():
        members[int(into[i])].append(i)
    sources = tuple(tuple(sorted(members[t])) for t in targets)
    out_emb = emb[targets].copy()
    out_sizes = size_arr[targets].tolist()
    out_scores = [1.0] * len(targets)
    for j, src in enumerate(sources):
        if len(src) == 1:
            continue
        idx = np.asarray(src)
        w = size_arr[idx]
        out_emb[j] = (emb[idx] * w[:, None]).sum(axis=0) / w.sum()
        out_sizes[j] = float(w.sum())
        out_scores[j] = float(edge_score[idx].min())
    return MergePlan(
        n_inputs=n,
        targets=tuple(targets),
        sources=sources,
        embeddings=out_emb.astype(np.float32),
        sizes=tuple(float(s) for s in out_sizes),
        scores=tuple(out_scores),
    )


def apply_merge_plan(plan: MergePlan, items: Sequence[T], combine: Callable[[Sequence[T]], T]) -> list[T]:
    """Apply a plan to any per-item values (texts, metadata, records).

        Args:
            plan: from :func:`bipartite_soft_matching` over the same items, in the same order.
            items: one value per input item.
            combine: fuses the values of a group (called only for groups of two or more, in order).

        Raises:
            InvalidInputError: ``items`` does not have one value per planned input.

        Example:
            >>> import re

    import numpy as np
            >>> plan = bipartite_soft_matching(np.array([[1.0, 0], [1.0, 0.01]]), r=1, threshold=0.9)
            >>> apply_merge_plan(plan, ["a", "b"], lambda xs: "+".join(xs))
            ['a+b']
    """
    if len(items) != plan.n_inputs:
        raise InvalidInputError(f"the plan is for {plan.n_inputs} items, got {len(items)}")
    return [items[src[0]] if len(src) == 1 else combine([items[i] for i in src]) for src in plan.sources]


_DIGITS = re.compile(r"\d+")
_DQ_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"(?!\s*:)')
_SQ_VALUE = re.compile(r"(?<!\w)'(?:[^'\\]|\\.)*'(?!\w|\s*:)")


def _line_key(line: str) -> str:
    return " ".join(line.split()).casefold()


def line_template(line: str) -> str:
    """A line with its numbers and quoted values masked: lines that differ only there share one.

    Example:
        >>> line_template('rm("a.jpg") -> {"removed": 12}') == line_template('rm("b.png") -> {"removed": 7}')
        True
    """
    masked = _SQ_VALUE.sub("''", _DQ_VALUE.sub('""', line))
    return _line_key(_DIGITS.sub("0", masked))


def fuse_texts(texts: Sequence[str], *, separator: str = "\n", keep_similar: int | None = None) -> str:
    """Fuse texts into one, keeping each distinct line once, in first-seen order.

    Lines equal up to whitespace and case count as one; blank lines are dropped. With
    ``keep_similar=k``, lines sharing a :func:`line_template` (same shape, other numbers or quoted
    values: the redundant part of repeated tool outputs) are kept ``k`` times, followed by one
    ``… [N similar lines]`` line; lines of a rarer shape (what is new) are all kept. Every kept line
    is verbatim from some source.

    Example:
        >>> fuse_texts(["ls: a.txt b.txt", "ls: a.txt  b.txt", "cwd: /home"])
        'ls: a.txt b.txt\\ncwd: /home'
        >>> fuse_texts([f'level {i}' for i in range(5)] + ['note: code 42'], keep_similar=1)
        'level 0\\n… [4 similar lines]\\nnote: code 42'
    """
    seen: set[str] = set()
    lines: list[str] = []
    for text in texts:
        for line in text.splitlines():
            key = _line_key(line)
            if key and key not in seen:
                seen.add(key)
                lines.append(line)
    if keep_similar is None:
        return separator.join(lines)
    shapes = [line_template(line) for line in lines]
    total: dict[str, int] = {}
    for shape in shapes:
        total[shape] = total.get(shape, 0) + 1
    kept: list[str] = []
    used: dict[str, int] = {}
    for line, shape in zip(lines, shapes, strict=True):
        used[shape] = used.get(shape, 0) + 1
        if used[shape] <= keep_similar:
            kept.append(line)
            if used[shape] == keep_similar and total[shape] > keep_similar:
                kept.append(f"… [{total[shape] - keep_similar} similar lines]")
    return separator.join(kept)
