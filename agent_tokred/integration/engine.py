"""The shared state of every adapter: policy, compressor, token memo and where originals go.

The middleware, the LangGraph nodes, ``wrap()`` and ``pre_model_hook`` are thin adapters over one
:class:`ReductionEngine`, which calls the pure core (:mod:`~agent_tokred.integration.messages`) with
the archive of the current run: the run's store (or the engine's, or a process-local default) in
the namespace of the current thread or user.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> engine = ReductionEngine(message_budget=300, criterion="lexical")
    >>> engine.needs_reduction([HumanMessage("hi")], budget=None)
    False
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage
from langgraph.store.base import BaseStore

from ..compressor import Compressor
from ._content import MessageTally, marker
from .archive import StoreArchive, archive_for_runtime
from .messages import reduce_messages, reduce_tool_message
from .policy import ContextPolicy, make_policy
from .report import StepReport


class ReductionEngine:
    """Policy, compressor, token memo and archive resolution for one adapter.

    Args:
        policy: a :class:`ContextPolicy` or mapping; ``policy_overrides`` refine it.
        compressor: the engine (default: from the policy's criterion, strategy and tokenizer).
        store: where originals go when the run has no store of its own.
    """

    def __init__(
        self,
        policy: ContextPolicy | Mapping[str, Any] | None = None,
        *,
        compressor: Compressor | None = None,
        store: BaseStore | None = None,
        **policy_overrides: Any,
    ) -> None:
        self.policy = make_policy(policy, **policy_overrides)
        self.compressor = compressor or Compressor(
            criterion=self.policy.criterion, strategy=self.policy.strategy,  # type: ignore[arg-type]
            tokenizer=self.policy.tokenizer, timeout_s=self.policy.timeout_s, on_timeout=self.policy.on_timeout,
        )
        self.store = store
        self.tally = MessageTally(self.compressor.counter, self.policy.message_overhead_tokens)
        self._hold_policy: ContextPolicy | None = None

    def archive(self, runtime: Any = None, config: Mapping[str, Any] | None = None) -> StoreArchive:
        """The archive for the current run (store and thread/user namespace)."""
        return archive_for_runtime(runtime, self.policy.archive_scope, self.store, config)

    def needs_reduction(self, messages: Sequence[BaseMessage], budget: int | None) -> bool:
        """Cheap check: is an unmarked tool output over its budget, or the total over ``budget``?"""
        p = self.policy
        limit = None if p.message_budget is None else max(p.message_budget, p.min_tokens)
        total = 0
        for msg in messages:
            if limit is not None and isinstance(msg, ToolMessage) and marker(msg) is None and (
                    self.tally.content(msg) > limit) and (msg.name or "") not in p.never_compress_tools:
                return True
            total += self.tally.count(msg)
        return budget is not None and total > budget

    def tool_needs_reduction(self, msg: ToolMessage) -> bool:
        budget = self.policy.message_budget
        return budget is not None and self.tally.content(msg) > max(budget, self.policy.min_tokens)

    def reduce(
        self,
        messages: Sequence[BaseMessage],
        *,
        budget: int | None = None,
        kind: str = "model_call",
        runtime: Any = None,
        config: Mapping[str, Any] | None = None,
        query: str | None = None,
    ) -> tuple[list[BaseMessage], StepReport]:
        """:func:`~agent_tokred.integration.messages.reduce_messages` with this engine's parts."""
        return reduce_messages(
            messages, policy=self.policy, compressor=self.compressor, archive=self.archive(runtime, config),
            query=query, tally=self.tally, budget=budget, kind=kind,
        )

    def reduce_tool(
        self,
        msg: ToolMessage,
        *,
        query: str | None,
        call_args: Any = None,
        runtime: Any = None,
        config: Mapping[str, Any] | None = None,
    ) -> tuple[ToolMessage, StepReport]:
        """Hold one tool output to the per-message budget (recall results marked and kept)."""
        return reduce_tool_message(msg, policy=self.policy, compressor=self.compressor,
                                   archive=self.archive(runtime, config), query=query, call_args=call_args,
                                   tally=self.tally)

    def hold_tool_outputs(
        self, messages: Sequence[BaseMessage], *, runtime: Any = None, config: Mapping[str, Any] | None = None
    ) -> tuple[list[BaseMessage], StepReport]:
        """Only the per-message pass: every unmarked tool output held to ``message_budget``."""
        if self._hold_policy is None:
            self._hold_policy = self.policy.model_copy(update={"call_budget": None})
        return reduce_messages(
            messages, policy=self._hold_policy, compressor=self.compressor,
            archive=self.archive(runtime, config), tally=self.tally, kind="tool_output",
        )
