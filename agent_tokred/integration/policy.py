"""The context policy, as the integration layer exports it (defined in :mod:`agent_tokred.messages.policy`).

Example:
    >>> from agent_tokred.integration.policy import ContextPolicy
    >>> ContextPolicy(message_budget=500).message_budget
    500
"""

from __future__ import annotations

from ..messages.policy import (
    QUERY_SOURCES,
    RECALL_TOOL_NAME,
    ArchiveScope,
    ContextPolicy,
    QuerySource,
    make_policy,
)

__all__ = ["QUERY_SOURCES", "RECALL_TOOL_NAME", "ArchiveScope", "ContextPolicy", "QuerySource", "make_policy"]
