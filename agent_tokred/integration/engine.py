"""The shared state of every adapter: policy, compressor, token memo and where originals go.

The middleware, the LangGraph nodes, ``wrap()`` and ``pre_model_hook`` are thin adapters over one
:class:`ReductionEngine`, which calls the message engine (:mod:`agent_tokred.messages`, through
:mod:`~agent_tokred.integration.messages`) with the archive of the current run: the run's store (or the engine's, or a process-local default) in
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
from ..messages.reduce import make_parts, needs_reduction
from ..messages.report import StepKind, StepReport
from ..messages.state import ReductionParts
from ..messages.tally import MessageTally
from ._units import CODEC, to_unit, to_units
from .archive import StoreArchive, archive_for_runtime
from .messages import reduce_tool_message, reduce_units_of
from .policy import ContextPolicy, make_policy


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

    def archive(self, runtime: Any = None, config: Mapping[str, Any] | None = None) -> StoreArchive:
        """The archive for the current run (store and thread/user namespace)."""
        return archive_for_runtime(runtime, self.policy.archive_scope, self.store, config)

    def parts(self, runtime: Any = None, config: Mapping[str, Any] | None = None) -> ReductionParts:
        """The engine's parts with the archive of the current run."""
        return make_parts(self.policy, self.compressor, self.archive(runtime, config), self.tally, CODEC)

    def needs_reduction(self, messages: Sequence[BaseMessage], budget: int | None) -> bool:
        """Cheap check: is an unmarked tool output over its budget, or the total over ``budget``?"""
        return needs_reduction(to_units(messages), self.policy.budget_for(budget), self.tally,
                               self.policy.never_compress_tools)

    def tool_needs_reduction(self, msg: ToolMessage) -> bool:
        """Is this tool output over the per-message limit (whatever its marker or name)?"""
        limit = self.policy.budget_for(None).message_limit
        return limit is not None and self.tally.content(to_unit(msg)) > limit

    def reduce(
        self,
        messages: Sequence[BaseMessage],
        *,
        budget: int | None = None,
        kind: StepKind = "model_call",
        runtime: Any = None,
        config: Mapping[str, Any] | None = None,
        query: str | None = None,
    ) -> tuple[list[BaseMessage], StepReport]:
        """Reduce ``messages`` to ``budget`` (default ``policy.call_budget``) with this engine's parts."""
        total = self.policy.call_budget if budget is None else budget
        return reduce_units_of(messages, self.parts(runtime, config), self.policy.budget_for(total), query, kind)

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
        return reduce_units_of(messages, self.parts(runtime, config), self.policy.budget_for(None), None,
                               "tool_output")
