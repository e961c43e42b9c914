"""The merging-store engine, LangGraph-free: how old context is merged the way token merging merges tokens.

Records and their layout inside a wrapped store (:mod:`._layout`), tier and merge policy
(:class:`MergePolicy`), merge planning (:mod:`.consolidate`), the in-process vector index
(:mod:`.index`), passage vectors (:mod:`._passages`) and vector search in PostgreSQL with pgvector
(:mod:`._pgvector`). The LangGraph ``BaseStore`` over it, :class:`MergingStore`, is in the
integration layer: ``from agent_tokred.integration import MergingStore``.

Example:
    >>> from agent_tokred.store import MergePolicy
    >>> MergePolicy(recent_items=16).recent_items
    16
"""

from __future__ import annotations

from typing import Any

from .consolidate import ConsolidationReport, MergeCounts
from .policy import MergePolicy, make_policy
from .stats import MemoryStats

__all__ = ["ConsolidationReport", "MemoryStats", "MergeCounts", "MergePolicy", "make_policy"]


def __getattr__(name: str) -> Any:
    if name == "MergingStore":  # it moved up a layer: say where, do not import upwards
        raise AttributeError(
            "MergingStore is a LangGraph BaseStore and lives in the integration layer: "
            "from agent_tokred.integration import MergingStore"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
