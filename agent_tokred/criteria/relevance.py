"""The relevance criterion: embedding similarity of each unit to the query (sentence-transformers).

Without a query, a unit's relevance is its similarity to the centroid of the whole input (how
central it is). A unit is also lifted by the best unit of its block (paragraph, document), so a
sentence inside the document that answers the query outranks a similar-sounding sentence elsewhere.

Example:
    >>> crit = RelevanceCriterion()  # doctest: +SKIP
    >>> crit(units, "who won the first Nobel prize in physics")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models import DEFAULT_EMBEDDING_MODEL, embed
from ..units import Unit


class RelevanceCriterion:
    """Cosine similarity of unit embeddings to the query embedding, with block context.

    Args:
        model: a sentence-transformers model name or path (default: the shipped MiniLM).
        block_weight: weight of the best similarity within the unit's block (``Unit.group``).
    """

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, block_weight: float = 0.35) -> None:
        self.model = model
        self.block_weight = block_weight

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> np.ndarray:
        if not units:
            return np.zeros(0)
        texts = [u.text.strip() or "." for u in units]
        vecs = embed(texts, self.model)
        if query and query.strip():
            target = embed([query.strip()], self.model)[0]
        else:
            centroid = vecs.mean(axis=0)
            target = centroid / (np.linalg.norm(centroid) or 1.0)
        sims = vecs @ target
        groups = np.asarray([u.group for u in units])
        if self.block_weight and len(set(groups.tolist())) > 1:
            best = {g: float(sims[groups == g].max()) for g in set(groups.tolist())}
            sims = sims + self.block_weight * np.asarray([best[g] for g in groups.tolist()])
        return sims
