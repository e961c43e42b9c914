"""Selection core behind :mod:`agent_tokred.examples`: policy, result records, lazy greedy, budget check.

Kept apart from the pool so each module holds one concept; import the public names from
:mod:`agent_tokred.examples`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np

from ._example_cluster import Scored, extend_selection, relevant_set
from .errors import InvalidInputError, ModelNotAvailableError
from .tokens import TokenCounter

Strategy = Literal["celf", "per_token", "relevance"]
Order = Literal["relevance", "relevance_last", "selection", "pool"]
Cut = Literal["cluster", "margin", "none"]
_STRATEGIES = ("celf", "per_token", "relevance")
_ORDERS = ("relevance", "relevance_last", "selection", "pool")
_CUTS = ("cluster", "margin", "none")


class ExamplePool(Protocol):
    """What selection reads from a pool (:class:`agent_tokred.examples.ExamplePool` is the one).

    A protocol, so this module needs nothing from :mod:`agent_tokred.examples` (no import cycle).
    """

    counter: TokenCounter
    separator: str
    sep_tokens: int
    compressible_key: str | None
    examples: list[dict[str, Any]]
    texts: list[str]

    @property
    def reason_tokens(self) -> np.ndarray: ...

    def snapshot(self) -> tuple[int, np.ndarray, np.ndarray]: ...

    def cost_of(self, index: int) -> int: ...

    def render(self, example: Mapping[str, Any]) -> str: ...

    def embed_query(self, query: str) -> np.ndarray: ...


@dataclass(frozen=True)
class SelectionPolicy:
    """How relevance, diversity and length are traded (validated at construction).

    Attributes:
        diversity: weight in ``[0, 1]`` of the redundancy penalty (0 = relevance only).
        temperature: sharpness of the relevance quality ``exp((s - s_best) / temperature)``.
        relevance_cut: which examples are worth their tokens at all. ``"cluster"`` (default): the
            query's cluster among its ``cluster_candidates`` best fitting matches (see
            :mod:`agent_tokred._example_cluster`); it is packed per token, and its looser extension is
            used only once the tight core is used up, most closely linked first. ``"margin"``: the
            examples within ``relevance_margin`` of the best fitting match. ``"none"``: any example
            may fill the budget.
        relevance_margin: the margin of ``relevance_cut="margin"``; ``None`` means no cut at all
            (``relevance_cut="none"``, kept for backward compatibility).
        cluster_candidates: how many best fitting matches the cluster is sought among (more are taken
            when they cannot fill the budget twice over).
        min_relevance: optional absolute cosine floor.
        duplicate_threshold: a candidate this similar (cosine) to a chosen example is never taken; the
            default 1.0 skips only inputs that embed identically (the same question with another
            answer), since examples that differ in their numbers alone embed at 0.98+ yet teach more.
        strategy: ``"celf"`` (best of per-token and plain greedy), ``"per_token"`` or ``"relevance"``.
        order: output order: ``"relevance"`` (most similar first, as LangChain), ``"relevance_last"``
            (most similar next to the query), ``"selection"`` or ``"pool"``.
    """

    diversity: float = 0.5
    temperature: float = 0.1
    relevance_cut: Cut = "cluster"
    relevance_margin: float | None = 0.25
    cluster_candidates: int = 40
    min_relevance: float | None = None
    duplicate_threshold: float = 1.0
    strategy: Strategy = "celf"
    order: Order = "relevance"

    def __post_init__(self) -> None:
        if not 0.0 <= self.diversity <= 1.0:
            raise InvalidInputError(f"diversity must be in [0, 1]; got {self.diversity!r}")
        if not self.temperature > 0:
            raise InvalidInputError(f"temperature must be > 0; got {self.temperature!r}")
        if self.relevance_margin is not None and not self.relevance_margin >= 0:
            raise InvalidInputError(f"relevance_margin must be >= 0 or None; got {self.relevance_margin!r}")
        if self.relevance_cut not in _CUTS:
            raise InvalidInputError(f"unknown relevance_cut {self.relevance_cut!r}; valid: {', '.join(_CUTS)}")
        if isinstance(self.cluster_candidates, bool) or not (
            isinstance(self.cluster_candidates, int) and self.cluster_candidates >= 2
        ):
            raise InvalidInputError(f"cluster_candidates must be an int >= 2; got {self.cluster_candidates!r}")
        if not 0.0 < self.duplicate_threshold <= 1.0:
            raise InvalidInputError(f"duplicate_threshold must be in (0, 1]; got {self.duplicate_threshold!r}")
        if self.strategy not in _STRATEGIES:
            raise InvalidInputError(f"unknown strategy {self.strategy!r}; valid: {', '.join(_STRATEGIES)}")
        if self.order not in _ORDERS:
            raise InvalidInputError(f"unknown order {self.order!r}; valid: {', '.join(_ORDERS)}")


@dataclass(frozen=True)
class ExampleCompression:
    """Shorten each chosen example's ``compressible_key`` field so more examples fit (answers stay whole).

    Attributes:
        rate: target kept fraction of the compressible field, in ``(0, 1]``.
        compressor: ``compress(text, query=, target_tokens=, tokenizer=)`` returning a string or an
            object with ``.text`` (default: :func:`agent_tokred.compress`).
    """

    rate: float = 0.5
    compressor: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) or not 0.0 < self.rate <= 1.0:
            raise InvalidInputError(f"compression rate must be in (0, 1]; got {self.rate!r}")
        if self.compressor is not None and not callable(self.compressor):
            raise InvalidInputError(f"compressor must be callable; got {type(self.compressor).__name__}")


def as_compression(compress: bool | ExampleCompression) -> ExampleCompression | None:
    """``compress=`` as given by a caller: ``False`` (none), ``True`` (the defaults) or an :class:`ExampleCompression`."""
    if isinstance(compress, ExampleCompression):
        return compress
    if not isinstance(compress, bool):
        raise InvalidInputError(f"compress must be a bool or an ExampleCompression; got {type(compress).__name__}")
    return ExampleCompression() if compress else None


@dataclass(frozen=True)
class SelectedExample:
    """One chosen example: its pool index, the example as rendered, and why it was chosen."""

    index: int
    example: Mapping[str, Any]
    text: str
    tokens: int
    relevance: float
    gain: float
    compressed: bool = False


@dataclass(frozen=True)
class ExampleSelection:
    """The result of one selection. ``tokens_used`` is the exact count of :attr:`text`."""

    chosen: tuple[SelectedExample, ...]
    tokens_used: int
    budget: int
    pool_size: int
    separator: str = "\n\n"
    reason: str | None = None
    skipped_over_budget: int = 0
    originals: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)

    @property
    def examples(self) -> list[dict[str, Any]]:
        """The chosen examples as fresh dicts (compressed where compression was asked)."""
        return [dict(c.example) for c in self.chosen]

    @property
    def indices(self) -> list[int]:
        """Pool indices of the chosen examples, in output order."""
        return [c.index for c in self.chosen]

    @property
    def text(self) -> str:
        """The rendered examples joined by the separator: what the budget was checked on."""
        return self.separator.join(c.text for c in self.chosen)


def greedy_select(
    quality: np.ndarray,
    vectors: np.ndarray,
    costs: np.ndarray,
    capacity: int,
    *,
    diversity: float = 0.5,
    duplicate_threshold: float = 1.0,
    per_token: bool = True,
) -> tuple[list[int], list[float]]:
    """Lazy greedy maximisation of ``sum q_i * (1 - diversity * max_sim(i, chosen))`` under a knapsack.

    Each gain only shrinks as the chosen set grows, so a candidate whose stale gain still tops the
    heap after recomputation is the true best (the lazy-greedy trick of CELF); candidates that no
    longer fit are dropped for good because the remaining capacity only shrinks.

    Args:
        quality: value of each candidate alone; candidates with quality <= 0 are never chosen.
        vectors: unit-normalised embeddings, one row per candidate.
        costs: positive token cost of each candidate.
        capacity: total cost allowed.
        diversity: redundancy weight in ``[0, 1]``.
        duplicate_threshold: candidates at least this similar to a chosen one are skipped.
        per_token: rank by gain per token (cost-benefit) instead of gain.

    Returns:
        (chosen positions in selection order, their marginal gains).

    Example:
        >>> v = np.eye(3, dtype=np.float32)
        >>> greedy_select(np.array([1.0, 0.9, 0.1]), v, np.array([5, 2, 1]), 6)
        ([1, 2], [0.9, 0.1])
    """
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    c = np.asarray(costs, dtype=np.int64).reshape(-1)
    ok = np.flatnonzero((c > 0) & (c <= capacity) & (q > 0))
    if ok.size == 0:
        return [], []
    first = q[ok] / c[ok] if per_token else q[ok]
    rank = np.argsort(-first, kind="stable")
    # Candidates never re-scored stream in order of their first key; re-scored ones wait in a heap.
    stream, stream_keys = ok[rank].tolist(), first[rank].tolist()
    q_list, c_list = q.tolist(), c.tolist()
    heap: list[tuple[float, int, int]] = []
    maxsim: dict[int, float] = {}
    cheapest = int(c[ok].min())
    chosen: list[int] = []
    gains: list[float] = []
    left, ptr = capacity, 0
    while left >= cheapest:
        if heap and (ptr >= len(stream) or -heap[0][0] >= stream_keys[ptr]):
            neg_key, i, stamp = heapq.heappop(heap)
            key = -neg_key
        elif ptr < len(stream):
            i, key, stamp = stream[ptr], stream_keys[ptr], 0
            ptr += 1
        else:
            break
        if c_list[i] > left:
            continue  # capacity only shrinks: it will never fit again
        if stamp < len(chosen):
            sim = max(maxsim.get(i, 0.0), float((vectors[chosen[stamp:]] @ vectors[i]).max()))
            maxsim[i] = sim
            if sim >= duplicate_threshold - 1e-6:
                continue
            gain = q_list[i] * (1.0 - diversity * max(0.0, sim))
            heapq.heappush(heap, (-(gain / c_list[i] if per_token else gain), i, len(chosen)))
            continue
        if key <= 0:
            break
        chosen.append(i)
        gains.append(q_list[i] * (1.0 - diversity * max(0.0, maxsim.get(i, 0.0))))
        left -= c_list[i]
    return chosen, gains


def run_selection(
    pool: ExamplePool,
    query: str | None,
    budget: int,
    query_vector: Any,
    policy: SelectionPolicy,
    compression: ExampleCompression | None,
) -> ExampleSelection:
    """Score, select, optionally compress, and check the exact budget (see :meth:`ExamplePool.select`)."""
    n, vectors, costs = pool.snapshot()
    empty = ExampleSelection((), 0, budget, n, pool.separator)
    if n == 0:
        return _with(empty, reason="empty pool: no examples to select from")
    qv = _unit(query_vector, vectors.shape[1]) if query_vector is not None else pool.embed_query(query or "")
    rel = (vectors @ qv).astype(np.float64)
    if compression is not None:
        reason = pool.reason_tokens[:n]
        kept = np.maximum(1, np.ceil(reason * compression.rate)).astype(np.int64)
        costs = np.maximum(1, costs - reason + np.minimum(kept, reason))
    capacity = budget + pool.sep_tokens
    fits = costs + pool.sep_tokens <= capacity
    skipped = int(n - fits.sum())
    if not fits.any():
        why = f"budget too small: the shortest example needs {int(costs.min())} tokens, the budget is {budget}"
        return _with(empty, reason=why, skipped_over_budget=skipped)
    s_best = float(rel[fits].max())
    eligible = fits.copy()
    if policy.min_relevance is not None:
        eligible &= rel >= policy.min_relevance
    cut = "none" if policy.relevance_margin is None else policy.relevance_cut
    if cut == "margin" and policy.relevance_margin is not None:
        eligible &= rel >= s_best - policy.relevance_margin
    idx = np.flatnonzero(eligible)
    if idx.size == 0:
        why = f"no example reaches min_relevance={policy.min_relevance} (best fitting match: {s_best:.3f})"
        return _with(empty, reason=why, skipped_over_budget=skipped)
    costs = costs + pool.sep_tokens
    extension = np.zeros(0, dtype=np.int64)
    if cut == "cluster":
        idx, extension = relevant_set(idx, rel, vectors, costs, capacity, policy.cluster_candidates)
    quality = np.zeros(n, dtype=np.float64)  # zero quality = never chosen; avoids copying vectors
    quality[idx] = np.exp((rel[idx] - s_best) / policy.temperature)
    runs = [policy.strategy == "per_token"] if policy.strategy != "celf" else [True, False]
    best: tuple[list[int], list[float]] = ([], [])
    for per_token in runs:
        got = greedy_select(
            quality,
            vectors,
            costs,
            capacity,
            diversity=policy.diversity,
            duplicate_threshold=policy.duplicate_threshold,
            per_token=per_token,
        )
        if sum(got[1]) > sum(best[1]) + 1e-12:
            best = got
    if extension.size:
        quality[extension] = np.exp((rel[extension] - s_best) / policy.temperature)
        best = extend_selection(
            best, idx, extension, Scored(quality, vectors, costs), capacity, policy.diversity,
            policy.duplicate_threshold,
        )
    chosen = [_record(pool, i, float(rel[i]), g, query, compression) for i, g in zip(*best)]
    chosen, used = _fit_exactly(pool, chosen, budget)
    chosen = _ordered(chosen, policy.order)
    originals = tuple(MappingProxyType(pool.examples[c.index]) for c in chosen) if compression else ()
    outcome = None if chosen else "no chosen example fits the budget once rendered, compressed and joined"
    return ExampleSelection(tuple(chosen), used, budget, n, pool.separator, outcome, skipped, originals)


def _record(
    pool: ExamplePool,
    i: int,
    rel: float,
    gain: float,
    query: str | None,
    compression: ExampleCompression | None,
) -> SelectedExample:
    example, text, tokens = MappingProxyType(pool.examples[i]), pool.texts[i], pool.cost_of(i)
    key = pool.compressible_key
    if compression is None or key is None:
        return SelectedExample(i, example, text, tokens, rel, gain)
    reason_tokens = int(pool.reason_tokens[i])
    target = _ceil_tokens(reason_tokens, compression.rate)
    if target >= reason_tokens:
        return SelectedExample(i, example, text, tokens, rel, gain)
    fn = compression.compressor or _default_compressor()
    out = fn(str(example[key]), query=query, target_tokens=target, tokenizer=pool.counter)
    short = getattr(out, "text", out)
    if not isinstance(short, str):
        raise InvalidInputError(f"compressor returned {type(short).__name__}; expected str or an object with .text")
    new = {**example, key: short}
    new_text = pool.render(new)
    return SelectedExample(i, MappingProxyType(new), new_text, pool.counter.count(new_text), rel, gain, compressed=True)


def _fit_exactly(pool: ExamplePool, chosen: list[SelectedExample], budget: int) -> tuple[list[SelectedExample], int]:
    # Sums of per-example counts can miss merges across separators; the joined text is the truth.
    chosen = list(chosen)
    while chosen:
        used = pool.counter.count(pool.separator.join(c.text for c in chosen))
        if used <= budget:
            return chosen, used
        chosen.remove(min(chosen, key=lambda c: c.gain / max(1, c.tokens)))
    return chosen, 0


def _ordered(chosen: list[SelectedExample], order: Order) -> list[SelectedExample]:
    if order == "relevance":
        return sorted(chosen, key=lambda c: -c.relevance)
    if order == "relevance_last":
        return sorted(chosen, key=lambda c: c.relevance)
    if order == "pool":
        return sorted(chosen, key=lambda c: c.index)
    return chosen


def _with(sel: ExampleSelection, **changes: Any) -> ExampleSelection:
    return replace(sel, **changes)


def _unit(vector: Any, width: int) -> np.ndarray:
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != width or not np.all(np.isfinite(vec)):
        raise InvalidInputError(f"query_vector must be {width} finite floats; got shape {vec.shape}")
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def _ceil_tokens(n: int, rate: float) -> int:
    return max(1, math.ceil(n * rate))


def _default_compressor() -> Callable[..., Any]:
    try:
        from .compressor import compress
    except ImportError as exc:
        raise ModelNotAvailableError(
            "compress=True needs agent_tokred.compress, which is not importable here; pass compressor="
        ) from exc
    return compress
