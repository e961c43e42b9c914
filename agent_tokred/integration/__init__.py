"""Integration layer: the only place that imports langchain / langgraph.

Names are loaded lazily, so ``from agent_tokred.integration import wrap`` imports only what
``wrap`` needs. Every name the README imports from a submodule is exported here too. The
message-reduction logic itself is the engine :mod:`agent_tokred.messages`; this layer reads
LangChain messages into its units and back.

Example:
    >>> from agent_tokred.integration import TokenReductionMiddleware  # doctest: +SKIP
    >>> agent = create_agent(model, tools, middleware=[TokenReductionMiddleware(message_budget=800)])  # doctest: +SKIP
    >>> import agent_tokred.integration as integration
    >>> all(callable(getattr(integration, name)) for name in integration.__all__)
    True
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ContextPolicy": "policy",
    "make_policy": "policy",
    "TokenReductionMiddleware": "middleware",
    "StickyTokenReductionMiddleware": "middleware",
    "wrap": "_wrap",
    "compress_tool_messages_node": "nodes",
    "compress_documents_node": "nodes",
    "compress_reasoning_node": "nodes",
    "make_pre_model_hook": "nodes",
    "TokredDocumentCompressor": "documents",
    "make_recall_tool": "recall",
    "StoreArchive": "archive",
    "reduce_messages": "messages",
    "areduce_messages": "messages",
    "orphaned_tool_calls": "messages",
    "StepReport": "report",
    "MemoryMiddleware": "memory",
    "MemoryPolicy": "memory_policy",
    "memory_node": "memory",
    "MergingStore": "store",
    "recall_memories": "memory",
    "BudgetedExampleSelector": "example_selector",
    "OverthinkingMiddleware": "overthinking",
    "OverthinkingCallbackHandler": "overthinking",
    "AsyncOverthinkingCallbackHandler": "overthinking",
    "make_overthinking_node": "overthinking",
    "monitor_stream": "overthinking",
    "amonitor_stream": "overthinking",
    "make_answer_probe": "overthinking",
    "conclude": "overthinking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
