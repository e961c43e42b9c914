"""The merging store as a LangGraph ``BaseStore``: the adapter over the LangGraph-free engine.

:class:`MergingStore` wraps any LangGraph ``BaseStore`` (``InMemoryStore``, ``SqliteStore``,
``PostgresStore``) and runs LangGraph's operations on the engine in :mod:`agent_tokred.store`
(namespace layout, tiers, merge planning, the in-process vector index, pgvector in PostgreSQL).
Queries are embedded by the int8 :class:`QueryEmbedder` by default;
``MergingStore(embed=MiniLMEmbeddings(QueryEmbedder()))`` embeds them in fp32.

Example:
    >>> from agent_tokred.integration.store import MergingStore, MergePolicy
    >>> store = MergingStore(policy=MergePolicy(recent_items=16), embed=lambda t: [[1.0] for _ in t])
    >>> store.policy.recent_items
    16
"""

from __future__ import annotations

from ...store import ConsolidationReport, MemoryStats, MergeCounts, MergePolicy, make_policy
from ...store.query_embedding import QueryEmbedder
from ._support import MiniLMEmbeddings
from .merging import MergingStore

__all__ = [
    "ConsolidationReport",
    "MemoryStats",
    "MergeCounts",
    "MergePolicy",
    "MergingStore",
    "MiniLMEmbeddings",
    "QueryEmbedder",
    "make_policy",
]
