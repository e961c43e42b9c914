"""The message-reduction engine: composable passes over message units, with no framework behind them.

A conversation is read into :class:`MessageUnit` values (by the integration layer, for LangChain
messages), reduced by :func:`reduce_units` under one :class:`~agent_tokred.budget.MessageBudget`
(from :meth:`ContextPolicy.budget_for`) and written back. The passes (compact, squeeze, drop with
pair-safe notes, give back, leave out) live in :mod:`~agent_tokred.messages.passes`; the query is
derived once, by :func:`derive_query`.

Example:
    >>> from agent_tokred.messages import MessageUnit, derive_query
    >>> derive_query([MessageUnit(role="human", content="where is the bug?")], "human")
    'where is the bug?'
"""

from __future__ import annotations

from .conversation import ConversationPlan, derive_query, is_error_trace, orphaned_tool_calls, with_call_args
from .policy import QUERY_SOURCES, ContextPolicy, QuerySource, make_policy
from .reduce import make_parts, needs_reduction, reduce_units
from .report import MessageReport, StepReport
from .state import ReductionParts
from .tally import MessageTally
from .unit import MARKER, MessageCodec, MessageUnit, content_text

__all__ = [
    "MARKER",
    "QUERY_SOURCES",
    "ContextPolicy",
    "ConversationPlan",
    "MessageCodec",
    "MessageReport",
    "MessageTally",
    "MessageUnit",
    "QuerySource",
    "ReductionParts",
    "StepReport",
    "content_text",
    "derive_query",
    "is_error_trace",
    "make_parts",
    "make_policy",
    "needs_reduction",
    "orphaned_tool_calls",
    "reduce_units",
    "with_call_args",
]
