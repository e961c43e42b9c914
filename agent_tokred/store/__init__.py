"""A LangGraph store that merges old context the way token merging merges redundant tokens.

:class:`MergingStore` wraps any LangGraph ``BaseStore``; :class:`MergePolicy` says when memories
are compressed and merged. See :mod:`agent_tokred.store.merging`.

Example:
    >>> from agent_tokred.store import MergingStore, MergePolicy
    >>> store = MergingStore(policy=MergePolicy(recent_items=16), embed=lambda t: [[1.0] for _ in t])
    >>> store.policy.recent_items
    16
"""

from __future__ import annotations

from ._writes import MemoryStats
from .consolidate import ConsolidationReport
from .merging import MergingStore
from .policy import MergePolicy, make_policy

__all__ = ["ConsolidationReport", "MemoryStats", "MergePolicy", "MergingStore", "make_policy"]
