"""Static word-piece vectors from MiniLM, made once at training time (Model2Vec-style distillation).

Each vocabulary entry goes alone through all-MiniLM-L6-v2 (``[CLS] piece [SEP]``); the mean of the
output states is that piece's vector, so a unit's IDF-weighted mean of piece vectors approximates the
model's sentence embedding without running it. PCA keeps the leading components (128 by default, 79% of
the variance), and int8 storage keeps the shipped file near 4 MB. ``source="minilm-input"`` uses the
model's input embedding matrix instead (no forward pass; a lexical-leaning baseline).

Needs torch and transformers (training only). Example:
    >>> tokens, vectors = distill_static_vectors(dim=128)  # doctest: +SKIP
    >>> vectors.shape  # doctest: +SKIP
    (30522, 128)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..errors import UnknownNameError
from .static import minilm_tokens

VectorSource = Literal["minilm", "minilm-input"]
VECTOR_SOURCES: tuple[VectorSource, ...] = ("minilm", "minilm-input")


def pca(matrix: np.ndarray, dim: int) -> np.ndarray:
    """Centre ``matrix`` and project it on its ``dim`` leading principal components."""
    centred = np.asarray(matrix, dtype=np.float64) - matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:dim].T).astype(np.float32)


def _contextual(batch_size: int, progress: bool) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm

    from ..models import load_encoder_with_attention

    tok, model = load_encoder_with_attention("minilm")
    size = int(model.config.vocab_size)
    out = np.zeros((size, int(model.config.hidden_size)), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, size, batch_size), desc="distilling static vectors", disable=not progress):
            ids = torch.arange(start, min(size, start + batch_size))
            seq = torch.stack([torch.full_like(ids, tok.cls_token_id), ids, torch.full_like(ids, tok.sep_token_id)], 1)
            hidden = model(input_ids=seq, attention_mask=torch.ones_like(seq)).last_hidden_state
            out[start : start + len(ids)] = hidden.mean(dim=1).numpy()
    return out


def distill_static_vectors(
    source: VectorSource = "minilm", dim: int = 128, batch_size: int = 1024, progress: bool = True
) -> tuple[list[str], np.ndarray]:
    """MiniLM's vocabulary and one ``dim``-dimensional vector per entry.

    Raises:
        UnknownNameError: ``source`` is not one of :data:`VECTOR_SOURCES`.
    """
    if source not in VECTOR_SOURCES:
        raise UnknownNameError("vector source", source, VECTOR_SOURCES)
    tokens = minilm_tokens()
    if source == "minilm":
        matrix = _contextual(batch_size, progress)
    else:
        from safetensors import safe_open

        from ..models import minilm_path

        with safe_open(str(minilm_path() / "model.safetensors"), framework="numpy") as fh:
            matrix = fh.get_tensor("embeddings.word_embeddings.weight")
    if matrix.shape[0] != len(tokens):
        matrix = matrix[: len(tokens)]
    return tokens, pca(matrix, dim)
