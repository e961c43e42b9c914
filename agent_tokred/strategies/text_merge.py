"""The merge strategy for text: near-duplicate units are merged ToMe-style before pruning.

Units are embedded (MiniLM when installed, else a hashed bag of terms, so the strategy also works
without models), matched with :func:`~agent_tokred.strategies.merge.bipartite_soft_matching`, and
each merged group is represented by its best-scoring member; the others are recorded as its
sources. Pruning then runs over the representatives, so a budget is not spent on repeats.

Example:
    >>> from agent_tokred.units import segment
    >>> units = segment("Disk is full. Disk is full. Retry later.", "sentence")
    >>> keep, merged = plan_text_merge(units, [1.0, 1.0, 0.5], embedder="hashed")
    >>> keep, merged
    ([0, 2], {0: (1,)})
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..criteria.base import Scores
from ..criteria.lexical import terms
from ..units import Unit
from .merge import bipartite_soft_matching

Embedder = Literal["auto", "model", "hashed"]
_DIM = 512


def hashed_embeddings(texts: Sequence[str], dim: int = _DIM) -> np.ndarray:
    """Unit-normalised hashed bag-of-terms vectors: a model-free similarity for near-duplicates."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for term in terms(text):
            h = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")
            out[row, h % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def _embed(texts: list[str], embedder: Embedder) -> np.ndarray:
    if embedder == "hashed":
        return hashed_embeddings(texts)
    from ..criteria.auto import models_installed

    if embedder == "model" or models_installed():
        from ..models import embed

        return embed(texts)
    return hashed_embeddings(texts)


def plan_text_merge(
    units: Sequence[Unit], scores: Scores, *, threshold: float = 0.92, embedder: Embedder = "auto"
) -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Merge near-duplicate units.

    Args:
        units: units of one input.
        scores: criterion scores; the best-scoring member represents its group.
        threshold: cosine similarity from which two units count as near-duplicates.
        embedder: ``"model"`` (MiniLM), ``"hashed"`` (model-free) or ``"auto"``.

    Returns:
        ``(kept, merged_into)``: indices of representatives in order, and for each representative
        that absorbed others, the indices it stands for besides itself.
    """
    if len(units) < 2:
        return list(range(len(units))), {}
    emb = _embed([u.text.strip() or "." for u in units], embedder)
    # Rounds of matching until nothing merges: one round only merges side A into side B.
    members: list[tuple[int, ...]] = [(i,) for i in range(len(units))]
    sizes = np.asarray([max(1, len(u.text)) for u in units], dtype=np.float64)
    for _ in range(16):
        plan = bipartite_soft_matching(emb, r=None, threshold=threshold, sizes=sizes)
        if plan.n_merged == 0:  # alternate sides found nothing: let nearest neighbours face each other
            plan = bipartite_soft_matching(emb, r=None, threshold=threshold, sizes=sizes, sides="paired")
        if plan.n_merged == 0:
            break
        members = [tuple(sorted(i for s in group for i in members[s])) for group in plan.sources]
        emb, sizes = plan.embeddings, np.asarray(plan.sizes, dtype=np.float64)
    arr = np.asarray(scores, dtype=np.float64)
    kept: list[int] = []
    merged: dict[int, tuple[int, ...]] = {}
    for group in members:
        protected = [i for i in group if units[i].protected]
        rep = protected[0] if protected else max(group, key=lambda i: (arr[i], -i))
        kept.append(rep)
        others = tuple(i for i in group if i != rep)
        if others:
            merged[rep] = others
    kept.sort()
    return kept, merged
