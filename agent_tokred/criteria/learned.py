"""The learned criterion: a small trained scorer over cheap features, shipped with the package.

Query-aware and fast: no transformer runs at scoring time. Units and query are cut into word pieces
(Rust fast tokenizer), described by lexical match, static-vector similarity, answer-type and position
features (:mod:`agent_tokred.learned.features`), and scored by a tiny network trained on question/answer
data to keep the units an answer needs (:mod:`agent_tokred.learned.train`; retrain with
``agent-tokred train``). Inference needs numpy, ``tokenizers`` and ``safetensors``, not torch.

Without a query there is nothing to be relevant to: the criterion then scores like ``lexical``
(informativeness), which is what it was never trained to replace.

Example:
    >>> from agent_tokred.criteria.learned import LearnedCriterion
    >>> from agent_tokred.units import segment
    >>> units = segment("Paris is the capital of France. Cats sleep a lot.", "sentence")
    >>> scores = LearnedCriterion()(units, "what is the capital of France")
    >>> scores[0] > scores[1]
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..units import Unit
from .lexical import lexical


class LearnedCriterion:
    """Score units with a trained head (the shipped weights by default).

    Args:
        weights: a weights file written by ``agent-tokred train`` (``.safetensors``); ``None`` loads the
            shipped ``agent_tokred/data/learned_criterion.safetensors``. Loaded once per process.

    Raises:
        ModelNotAvailableError: the file, ``safetensors`` or ``tokenizers`` is missing.
        InvalidInputError: the file is not a weights file of this feature version.
    """

    name = "learned"

    def __init__(self, weights: str | Path | None = None) -> None:
        from ..learned.model import load_scorer

        self.weights = weights
        self.scorer = load_scorer(weights)

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> np.ndarray:
        if not units:
            return np.zeros(0)
        if query is None or not query.strip():
            return np.asarray(lexical(units, None), dtype=np.float64)
        return self.scorer.score(units, query)
