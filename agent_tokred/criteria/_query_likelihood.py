"""Query likelihood per unit, fast on CPU: each unit's key/value states once, the question on top.

``query_likelihood`` scores ``mean log p(question token | start, unit, glue)`` for every unit. The unit
is the *prefix* and the question the *suffix*, so the work splits in two passes:

1. a prefix pass over ``[start] + unit`` for the units whose key/value states are not cached yet
   (length-sorted, right-padded batches; the states are cut to each unit's length and kept in a
   :class:`PrefixKVCache`, an LRU bounded in bytes);
2. a suffix pass over the question alone for a batch of units: their cached states are stacked
   (left-padded, padding masked out), the question's positions continue each unit's
   (``position_ids = len(prefix) + i``), and the vocabulary head runs on the question positions only.

This is the same computation as one causal pass over ``[start] + unit + question`` (the earlier,
padded path, kept as :func:`query_likelihood_padded` and used for models without a split
``model.model`` / ``lm_head``): rotary positions only enter attention through relative offsets, and
padded positions are masked. Scores agree to ~1e-6. What it saves: the padding of the joint pass,
and, with a cache, the prefix pass of every unit seen before (an agent re-compressing the same
history for a new question; the same passage retrieved for several questions).

Example:
    >>> cache = PrefixKVCache(max_mb=64)
    >>> cache.get((1, 2, 3)) is None
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

KV = tuple[tuple[Any, Any], ...]  # per layer (keys, values), each [kv_heads, length, head_dim]


class PrefixKVCache:
    """Key/value states of token prefixes, least recently used dropped first beyond ``max_mb``.

    Args:
        max_mb: memory bound of the stored states (SmolLM2-135M: ~45 KB per token).

    Example:
        >>> PrefixKVCache(max_mb=1).size_bytes
        0
    """

    def __init__(self, max_mb: float = 256.0) -> None:
        self.max_bytes = int(max_mb * 2**20)
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[int, ...], tuple[KV, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, ...]) -> KV | None:
        """The states of ``key`` (and mark them recently used), or ``None``."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return hit[0]

    def put(self, key: tuple[int, ...], kv: KV) -> None:
        """Store the states of ``key``; states larger than the whole bound are not kept."""
        size = sum(int(k.numel() * k.element_size() + v.numel() * v.element_size()) for k, v in kv)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size_bytes -= old[1]
            self._items[key] = (kv, size)
            self.size_bytes += size
            while self.size_bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.size_bytes -= dropped

    def clear(self) -> None:
        """Drop every stored state."""
        with self._lock:
            self._items.clear()
            self.size_bytes = 0


def start_ids(tok: Any) -> list[int]:
    """The start token (BOS, else EOS) as a one-id list; empty when the tokenizer has neither."""
    # A start token gives the first word a prediction to be scored by (and absorbs the first-token sink).
    for tid in (tok.bos_token_id, tok.eos_token_id):
        if tid is not None:
            return [int(tid)]
    return []


def _bodies(tok: Any, texts: Sequence[str], max_unit_tokens: int) -> list[list[int]]:
    return [list(tok(t.strip(), add_special_tokens=False, verbose=False)["input_ids"])[:max_unit_tokens]
            for t in texts]


def _floor_missing(out: np.ndarray) -> np.ndarray:
    floor = float(np.nanmin(out)) - 1.0 if np.isfinite(out).any() else 0.0
    return np.where(np.isfinite(out), out, floor)


def query_likelihood(
    model: Any,
    tok: Any,
    texts: Sequence[str],
    prompt: list[int],
    max_unit_tokens: int,
    batch_size: int,
    cache: PrefixKVCache | None = None,
) -> np.ndarray:
    """Mean log-probability of ``prompt[1:]`` (the question) after each text; prefix states cached.

    ``prompt`` is the glue and the question (``"\\nQuestion: ..."``); its first token is not scored (it
    only separates). Texts without tokens get the lowest score of the call. ``batch_size`` is the
    number of units per forward pass. Models without a split ``model.model`` / ``lm_head`` take
    :func:`query_likelihood_padded`.

    Example:
        >>> tok, lm = load_causal_lm()  # doctest: +SKIP
        >>> q = tok("\\nQuestion: Where is Paris?")["input_ids"]  # doctest: +SKIP
        >>> query_likelihood(lm, tok, ["Paris is in France.", "Cats sleep."], q, 64, 16)  # doctest: +SKIP
        array([-2.1, -4.7])
    """
    import torch

    core = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    if core is None or head is None or len(prompt) < 2:
        return query_likelihood_padded(model, tok, texts, prompt, max_unit_tokens, batch_size)
    start = start_ids(tok)
    keys = [tuple(start + b) if b else () for b in _bodies(tok, texts, max_unit_tokens)]
    states: dict[tuple[int, ...], KV] = {}
    for key in dict.fromkeys(k for k in keys if k):
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            states[key] = hit
    with torch.inference_mode():
        _prefix_states(core, tok, [k for k in dict.fromkeys(keys) if k and k not in states], batch_size, states)
        if cache is not None:
            for key, kv in states.items():
                cache.put(key, kv)
        out = np.full(len(texts), np.nan)
        order = sorted((i for i, k in enumerate(keys) if k), key=lambda i: len(keys[i]))
        for b0 in range(0, len(order), batch_size):
            idx = order[b0 : b0 + batch_size]
            out[idx] = _suffix_scores(core, head, [states[keys[i]] for i in idx], prompt)
    return _floor_missing(out)


def _prefix_states(core: Any, tok: Any, prefixes: list[tuple[int, ...]], batch_size: int,
                   into: dict[tuple[int, ...], KV]) -> None:
    """Run ``prefixes`` (length-sorted, right-padded) and store each one's states, cut to its length."""
    from ._windows import pad_batch

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    prefixes = sorted(prefixes, key=len)
    for b0 in range(0, len(prefixes), batch_size):
        batch = prefixes[b0 : b0 + batch_size]
        x, mask = pad_batch(batch, pad)
        layers = _run_layers(core, input_ids=x, attention_mask=mask)
        for r, key in enumerate(batch):
            n = len(key)
            into[key] = tuple((k[r, :, :n].clone(), v[r, :, :n].clone()) for k, v in layers)
        del layers


def _suffix_scores(core: Any, head: Any, kvs: list[KV], prompt: list[int]) -> np.ndarray:
    """Mean log p(prompt[1:]) after each cached prefix, one pass for the batch."""
    import torch
    from transformers import DynamicCache

    lengths = [kv[0][0].shape[1] for kv in kvs]
    width = max(lengths)
    rows, q = len(kvs), len(prompt)
    mask = torch.zeros((rows, width + q), dtype=torch.long)
    mask[:, width:] = 1
    stacked = []
    for layer in range(len(kvs[0])):
        k0, v0 = kvs[0][layer]
        ks = k0.new_zeros((rows, k0.shape[0], width, k0.shape[2]))
        vs = v0.new_zeros((rows, v0.shape[0], width, v0.shape[2]))
        for r, kv in enumerate(kvs):  # left padding: every question starts at the same position
            n = lengths[r]
            ks[r, :, width - n :] = kv[layer][0]
            vs[r, :, width - n :] = kv[layer][1]
            if layer == 0:
                mask[r, width - n : width] = 1
        stacked.append((ks, vs))
    ids = torch.tensor(prompt, dtype=torch.long).expand(rows, -1)
    pos = torch.tensor(lengths, dtype=torch.long)[:, None] + torch.arange(q)[None, :]
    hidden = _forward(core, input_ids=ids, attention_mask=mask, position_ids=pos,
                      cache=DynamicCache(ddp_cache_data=stacked)).last_hidden_state
    logp = torch.log_softmax(head(hidden[:, :-1]).double(), dim=-1)
    target = torch.tensor(prompt[1:], dtype=torch.long).expand(rows, -1)
    return np.asarray(logp.gather(2, target[:, :, None]).squeeze(2).mean(dim=1).numpy())


def _forward(core: Any, cache: Any = None, **inputs: Any) -> Any:
    # transformers 5 names the cache argument ``cache``; earlier releases ``past_key_values``.
    try:
        return core(**inputs, cache=cache, use_cache=True)
    except TypeError:
        return core(**inputs, past_key_values=cache, use_cache=True)


def _run_layers(core: Any, **inputs: Any) -> list[tuple[Any, Any]]:
    """Per-layer (keys, values), each [batch, kv_heads, length, head_dim], of one forward pass."""
    out = _forward(core, **inputs)
    cache: Any = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return [(cache.key_cache[i], cache.value_cache[i]) for i in range(len(cache.key_cache))]


def query_likelihood_padded(
    model: Any, tok: Any, texts: Sequence[str], prompt: list[int], max_unit_tokens: int, batch_size: int
) -> np.ndarray:
    """The joint-pass reference of :func:`query_likelihood`: ``[start] + unit + prompt``, left-padded.

    Example:
        >>> query_likelihood_padded(lm, tok, ["Paris is in France."], q, 64, 16)  # doctest: +SKIP
        array([-2.1])
    """
    import torch

    start = start_ids(tok)
    bodies = _bodies(tok, texts, max_unit_tokens)
    out = np.full(len(texts), np.nan)
    order = sorted((i for i, b in enumerate(bodies) if b), key=lambda i: len(bodies[i]))
    scored = len(prompt) - 1
    target = torch.tensor(prompt[1:])
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    core = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        seqs = [start + bodies[i] + prompt for i in idx]
        width = max(len(q) for q in seqs)
        x = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(x)
        for r, q in enumerate(seqs):  # left padding: every question ends at the last position
            x[r, width - len(q) :] = torch.tensor(q)
            mask[r, width - len(q) :] = 1
        with torch.inference_mode():
            if core is not None and head is not None:
                hidden = core(input_ids=x, attention_mask=mask, use_cache=False).last_hidden_state
                logits = head(hidden[:, -scored - 1 : -1])
            else:
                try:
                    logits = model(input_ids=x, attention_mask=mask, use_cache=False).logits
                except TypeError:  # models without a use_cache argument
                    logits = model(input_ids=x, attention_mask=mask).logits
                logits = logits[:, -scored - 1 : -1]
            logp = torch.log_softmax(logits.double(), dim=-1)
            ll = logp.gather(2, target.expand(len(idx), -1)[:, :, None]).squeeze(2).mean(dim=1)
        out[idx] = ll.numpy()
    return _floor_missing(out)
