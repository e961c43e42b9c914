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

from ..models import DEFAULT_EMBEDDING_MODEL, embed, embed_query
from ..units import Unit
from .base import minmax_normalize
from .lexical import lexical


class RelevanceCriterion:
    """Cosine similarity of unit embeddings to the query embedding, with block context.

    Weights were tuned on 60 NQ questions with 19 hard distractors each (a seed-1 sample; the
    bench reports a seed-0 sample): block context lifted retention at 10% keep from 0.82 to 0.90,
    and a min-max lexical term (as in ``criterion="auto"``) to 0.93.

    Args:
        model: a sentence-transformers model name or path (default: the shipped MiniLM).
        block_weight: weight of the best similarity within the unit's block (``Unit.group``).
        lexical_weight: weight of min-max normalised lexical scores added to the similarity.
    """

    def __init__(
        self, model: str = DEFAULT_EMBEDDING_MODEL, block_weight: float = 1.0, lexical_weight: float = 0.0
    ) -> None:
        self.model = model
        self.block_weight = block_weight
        self.lexical_weight = lexical_weight
        self.name = "relevance+lexical" if lexical_weight else "relevance"

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> np.ndarray:
        if not units:
            return np.zeros(0)
        texts = [u.text.strip() or "." for u in units]
        vecs = embed(texts, self.model)
        if query and query.strip():
            target = embed_query(query.strip(), self.model)
        else:
            centroid = vecs.mean(axis=0)
            target = centroid / (np.linalg.norm(centroid) or 1.0)
        sims = vecs @ target
        groups = np.asarray([u.group for u in units])
        if self.block_weight and len(set(groups.tolist())) > 1:
            best = {g: float(sims[groups == g].max()) for g in set(groups.tolist())}
            sims = sims + self.block_weight * np.asarray([best[g] for g in groups.tolist()])
        if self.lexical_weight:
            sims = sims + self.lexical_weight * minmax_normalize(lexical(units, query))
        return sims
