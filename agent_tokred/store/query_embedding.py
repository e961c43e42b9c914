"""The store's query embedder: one short text through MiniLM with as little around it as possible.

A search embeds one query (5-30 words) and waits for it, so per-call overhead counts. Instead of
``SentenceTransformer.encode`` this runs the tokenizer (the fast Rust ``tokenizers`` one, loaded
once) and the transformer's forward pass directly: no padding (a batch of one), one CPU thread,
``torch.inference_mode``, then what sentence-transformers does after the transformer: mean pooling
over the tokens and L2 normalisation. The vector equals sentence-transformers' to float rounding
(checked in the tests to 1e-5).

``quantize=True`` applies torch's dynamic int8 quantisation to the Linear layers (per-channel weight
scales): ~4x less CPU per query here, slightly different vectors (cosine >= 0.96 to the fp32 ones on
NQ questions), and recall@5 of planted facts 99.5% of the exact fp32 search at 100k and 1M memories
(``python -m bench.bench_memory_scale``), so it is the store's default (:func:`default_query_embedder`);
``QueryEmbedder()`` is the fp32 path, equal to sentence-transformers. Repeated queries are cached by the store itself (``MergingStore`` keeps the last
256 query vectors), not here.

torch and transformers are imported on the first call, never at ``import agent_tokred``.

Example:
    >>> from agent_tokred.store.query_embedding import QueryEmbedder
    >>> QueryEmbedder(quantize=True).threads  # nothing is loaded before the first query
    1
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import numpy as np

from ..errors import ModelNotAvailableError

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (its tokenizer.json says 128)


class QueryEmbedder:
    """``text -> unit vector`` for search queries, MiniLM by default (see the module docstring).

    Args:
        model: ``"minilm"`` (the shipped all-MiniLM-L6-v2) or a local sentence-transformers folder
            whose pooling is mean pooling (other poolings are refused when loading).
        threads: torch threads for the forward pass (1: one query is too small to gain from more,
            and on busy cores a second thread waits for a descheduled one).
        quantize: dynamic int8 quantisation of the Linear layers (per output channel scales).
    """

    def __init__(self, model: str = "minilm", *, threads: int = 1, quantize: bool = False) -> None:
        self.model = model
        self.threads = max(1, int(threads))
        self.quantize = quantize
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is not None:
            return self._loaded
        from ..models import _offline_env, resolve_model_path

        _offline_env()
        path = resolve_model_path(self.model)
        _check_mean_pooling(path)
        try:
            import torch
            from tokenizers import Tokenizer
            from transformers import AutoModel
        except ImportError as exc:
            raise ModelNotAvailableError(
                "query embeddings need torch and transformers: pip install 'agent-tokred[models]'"
            ) from exc
        try:
            tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
            net = AutoModel.from_pretrained(path, local_files_only=True).eval()
        except OSError as exc:
            raise ModelNotAvailableError(
                f"embedding model {self.model!r} is not available locally; agent-tokred never downloads at run time"
            ) from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        if self.quantize:
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            with warnings.catch_warnings():  # torch announces the eager API's move to torchao
                warnings.simplefilter("ignore")
                net = quantize_dynamic(net, {torch.nn.Linear: per_channel_dynamic_qconfig})
        self._loaded = (tokenizer, _traced(torch, tokenizer, _pooled(torch, net), freeze=not self.quantize))
        return self._loaded

    def __call__(self, text: str) -> np.ndarray:
        """The unit-normalised float32 embedding of ``text``."""
        with self._lock:  # one forward pass at a time: torch's thread setting is process-wide
            return self._forward(text)

    def _forward(self, text: str) -> np.ndarray:
        import torch

        tokenizer, net = self._load()
        enc = tokenizer.encode(text)
        ids = torch.tensor([enc.ids], dtype=torch.long)
        types = torch.tensor([enc.type_ids], dtype=torch.long)
        before = torch.get_num_threads()
        if before != self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                vec = net(ids, types)
        finally:
            if before != self.threads:
                torch.set_num_threads(before)
        return np.asarray(vec.float().numpy(), dtype=np.float32)


def _pooled_module(torch: Any) -> Any:
    class Pooled(torch.nn.Module):
        """The transformer, mean pooling over its tokens and L2 normalisation, as one module."""

        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, ids: Any, types: Any) -> Any:
            hidden = self.net(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=types)
            vec = hidden.last_hidden_state[0].mean(dim=0)  # no padding: every token counts, as ST's masked mean
            return torch.nn.functional.normalize(vec, dim=-1)

    return Pooled


def _pooled(torch: Any, net: Any) -> Any:
    return _pooled_module(torch)(net).eval()


def _traced(torch: Any, tokenizer: Any, module: Any, *, freeze: bool) -> Any:
    """``module`` traced by TorchScript (the same vectors without Python's per-layer overhead:
    2-3x faster for the int8 model here), checked against the eager module; eager if tracing fails."""
    probe = tokenizer.encode("a short probe query, traced once")
    other = tokenizer.encode("a longer sentence of another length, to check that the traced graph follows it")
    args = [(torch.tensor([e.ids]), torch.tensor([e.type_ids])) for e in (probe, other)]
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, args[0], check_trace=False)
            if freeze:
                traced = torch.jit.freeze(traced)
            for a in args:
                if not torch.allclose(traced(*a), module(*a), atol=1e-5):
                    return module
    except Exception:  # any tracing failure: the eager module computes the same
        return module
    return traced


def _check_mean_pooling(path: str) -> None:
    import json

    config = os.path.join(path, "1_Pooling", "config.json")
    if not os.path.exists(config):
        return  # a plain transformers folder: mean pooling is the documented use
    with open(config, encoding="utf-8") as f:
        pooling = json.load(f)
    if not pooling.get("pooling_mode_mean_tokens", False) or any(
        pooling.get(k)
        for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ):
        raise ModelNotAvailableError(
            f"the query embedder does mean pooling only; {path} pools otherwise (use embed=... with your model)"
        )


_DEFAULT: dict[str, QueryEmbedder] = {}


def default_query_embedder() -> QueryEmbedder:
    """The process-wide MiniLM query embedder (int8 Linear layers, one thread), made on first use.

    int8 because its recall held (see the module docstring); ``MiniLMEmbeddings(QueryEmbedder())``
    gives a store the fp32 path.
    """
    embedder = _DEFAULT.get("minilm")
    if embedder is None:
        embedder = _DEFAULT.setdefault("minilm", QueryEmbedder("minilm", quantize=True))
    return embedder
