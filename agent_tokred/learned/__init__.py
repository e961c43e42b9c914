"""The learned criterion's parts: static vocabulary, features, head, data and training recipe.

Scoring lives in :class:`agent_tokred.criteria.learned.LearnedCriterion`; training in
:func:`agent_tokred.learned.train.train` and the ``agent-tokred train`` command. Nothing here imports
torch at import time.
"""

from __future__ import annotations

from .model import LearnedScorer, default_weights_path, load_scorer

__all__ = ["LearnedScorer", "default_weights_path", "load_scorer"]
