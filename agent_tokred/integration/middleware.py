"""LangChain v1 agent middleware: compress tool outputs as they return and what each model call sees.

One line for a ``create_agent`` agent::

    agent = create_agent(model, tools, middleware=[TokenReductionMiddleware(message_budget=800)])

* ``wrap_tool_call``: each tool output is held to ``message_budget`` when it returns (the saved
  message is the compressed one, marked with its handle; the original is archived).
* ``wrap_model_call``: the messages one call sees are reduced to ``call_budget`` with
  ``request.override(messages=...)``; the saved state is left alone.
* :class:`StickyTokenReductionMiddleware` adds ``before_model``: the saved history is rewritten once
  to ``context_budget`` (``RemoveMessage(id=REMOVE_ALL_MESSAGES)`` then the reduced list), so later
  calls see a stable prefix and a provider's prompt cache keeps working.
* The ``recall`` tool is added to the agent (``tools``) so the model can read any original back.
* Every hook has an async twin (the LangGraph server calls those); the compression work runs in a
  worker thread so the event loop is never blocked. Telemetry: each step's :class:`StepReport`
  goes to ``on_report`` callbacks, to ``middleware.reports`` (bounded) and, when LangSmith
  tracing is on, into the hook run's metadata (``agent_tokred``).

Example:
    >>> mw = TokenReductionMiddleware(message_budget=500, call_budget=6000, criterion="lexical")
    >>> [t.name for t in mw.tools]
    ['recall']
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.types import Command

from ..compressor import Compressor
from .archive import archive_for_runtime, current_config
from .engine import ReductionEngine
from .messages import pick_query
from .policy import ContextPolicy
from .recall import make_recall_tool
from .report import StepReport

logger = logging.getLogger(__name__)

ReportCallback = Callable[[StepReport], None]
ToolResult = ToolMessage | Command


class TokenReductionMiddleware(AgentMiddleware):
    """Compress tool outputs and model inputs of a ``create_agent`` agent under exact budgets.

    Args:
        policy: a :class:`ContextPolicy` or mapping; keyword ``policy_overrides`` refine it
            (``message_budget=``, ``call_budget=``, ``criterion=``, ``tokenizer=`` ...).
        compressor: the engine to use (default: built from the policy's criterion, strategy, tokenizer).
        store: where originals are archived (default: the run's store, i.e. ``create_agent(store=...)``
            or the server's, else a process-local ``InMemoryStore``).
        recall: add the ``recall`` tool to the agent.
        compress_tool_outputs: enable ``wrap_tool_call``.
        compress_model_input: enable ``wrap_model_call``.
        on_report: callables receiving each :class:`StepReport` (errors in them are logged, not raised).
        max_reports: how many reports ``self.reports`` keeps.
        trace_metadata: add each report to the current LangSmith run's metadata when tracing is on.
    """

    def __init__(
        self,
        policy: ContextPolicy | Mapping[str, Any] | None = None,
        *,
        compressor: Compressor | None = None,
        store: BaseStore | None = None,
        recall: bool = True,
        compress_tool_outputs: bool = True,
        compress_model_input: bool = True,
        on_report: ReportCallback | Iterable[ReportCallback] | None = None,
        max_reports: int = 256,
        trace_metadata: bool = True,
        **policy_overrides: Any,
    ) -> None:
        super().__init__()
        self.engine = ReductionEngine(policy, compressor=compressor, store=store, **policy_overrides)
        self.policy = self.engine.policy
        self.compress_tool_outputs = compress_tool_outputs
        self.compress_model_input = compress_model_input
        self.callbacks: list[ReportCallback] = (
            [] if on_report is None else [on_report] if callable(on_report) else list(on_report)
        )
        self.reports: deque[StepReport] = deque(maxlen=max_reports)
        self.trace_metadata = trace_metadata
        self.tools: Sequence[BaseTool] = (
            [make_recall_tool(self._tool_archive, name=self.policy.recall_tool_name,
                              page_chars=self.policy.recall_page_chars)] if recall else []
        )

    def _tool_archive(self, runtime: Any) -> Any:
        return archive_for_runtime(runtime, self.policy.archive_scope, self.engine.store)

    def emit(self, report: StepReport | None) -> None:
        """Record a report: keep it, pass it to callbacks, attach it to the LangSmith run."""
        if report is None:
            return
        self.reports.append(report)
        for callback in self.callbacks:
            try:
                callback(report)
            except Exception:  # a user callback must never break the agent run
                logger.exception("agent-tokred report callback %r failed", callback)
        if self.trace_metadata:
            _add_trace_metadata(report)

    # -- model calls ------------------------------------------------------------------------------
    def _reduce_request(self, request: ModelRequest) -> tuple[ModelRequest, StepReport | None]:
        system = request.system_message
        seq: list[BaseMessage] = [system, *request.messages] if system is not None else list(request.messages)
        try:
            out, report = self.engine.reduce(seq, runtime=request.runtime, config=current_config())
        except Exception:  # never break the agent: the model sees the uncompressed messages
            logger.exception("agent-tokred could not reduce the model input; passing it through")
            return request, None
        if not report.changed:
            return request, report
        view = out[1:] if system is not None else out
        return request.override(messages=view), report  # type: ignore[arg-type]

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse | AIMessage:
        """Reduce what this model call sees (saved state unchanged), then call the model."""
        if not self.compress_model_input:
            return handler(request)
        new_request, report = self._reduce_request(request)
        self.emit(report)
        return handler(new_request)

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse | AIMessage:
        """Async twin of :meth:`wrap_model_call` (the reduction runs off the event loop)."""
        if not self.compress_model_input:
            return await handler(request)
        seq = [request.system_message, *request.messages] if request.system_message else request.messages
        if self.engine.needs_reduction(seq, self.policy.call_budget):
            new_request, report = await asyncio.to_thread(self._reduce_request, request)
        else:
            new_request, report = self._reduce_request(request)
        self.emit(report)
        return await handler(new_request)

    # -- tool calls -------------------------------------------------------------------------------
    def _reduce_tool_result(self, request: ToolCallRequest, result: ToolResult) -> ToolResult:
        try:
            state = request.state if isinstance(request.state, Mapping) else {}
            query = pick_query(list(state.get("messages", ())), self.policy.query_source)
            args = (request.tool_call or {}).get("args")
            if isinstance(result, ToolMessage):
                new, report = self.engine.reduce_tool(result, query=query, call_args=args,
                                                      runtime=request.runtime)
                self.emit(report)
                return new
            if isinstance(result, Command) and isinstance(result.update, Mapping):
                msgs = result.update.get("messages")
                if isinstance(msgs, list):
                    new_msgs = []
                    for m in msgs:
                        if isinstance(m, ToolMessage):
                            m, report = self.engine.reduce_tool(m, query=query, call_args=args,
                                                                runtime=request.runtime)
                            self.emit(report)
                        new_msgs.append(m)
                    return dataclasses.replace(result, update={**result.update, "messages": new_msgs})
        except Exception:  # never break the agent: keep the tool result whole
            logger.exception("agent-tokred could not reduce a tool result; keeping it whole")
        return result

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """Run the tool, then hold its output to ``message_budget`` (recall results are kept whole)."""
        result = handler(request)
        return self._reduce_tool_result(request, result) if self.compress_tool_outputs else result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]]
    ) -> ToolResult:
        """Async twin of :meth:`wrap_tool_call`."""
        result = await handler(request)
        if not self.compress_tool_outputs:
            return result
        if isinstance(result, ToolMessage) and not self.engine.tool_needs_reduction(result):
            return self._reduce_tool_result(request, result)
        return await asyncio.to_thread(self._reduce_tool_result, request, result)


class StickyTokenReductionMiddleware(TokenReductionMiddleware):
    """:class:`TokenReductionMiddleware` plus sticky history edits to ``policy.context_budget``.

    Before each model call, if the saved history is over ``context_budget`` (or holds tool outputs
    over ``message_budget``), it is replaced by its reduced form: the update is
    ``[RemoveMessage(id=REMOVE_ALL_MESSAGES), *reduced]``. Reduced messages are marked and never
    reduced again, so the history prefix stays stable across calls.

    Example:
        >>> mw = StickyTokenReductionMiddleware(context_budget=20_000, criterion="lexical")
        >>> mw.policy.context_budget
        20000
    """

    def _history_update(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        messages = list(state.get("messages", ()))
        if not messages or not self.engine.needs_reduction(messages, self.policy.context_budget):
            return None
        try:
            out, report = self.engine.reduce(messages, budget=self.policy.context_budget, kind="history",
                                             runtime=runtime, config=current_config())
        except Exception:
            logger.exception("agent-tokred could not edit the history; leaving it as is")
            return None
        self.emit(report)
        if not report.changed:
            return None
        return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *out]}

    def before_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        """Rewrite the saved history once it is over budget (sticky; see the class docstring)."""
        return self._history_update(state, runtime)

    async def abefore_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        """Async twin of :meth:`before_model`."""
        messages = list(state.get("messages", ()))
        if not messages or not self.engine.needs_reduction(messages, self.policy.context_budget):
            return None
        return await asyncio.to_thread(self._history_update, state, runtime)


def _add_trace_metadata(report: StepReport) -> None:
    try:
        from langsmith.run_helpers import get_current_run_tree

        run = get_current_run_tree()
        if run is not None:
            run.add_metadata({"agent_tokred": report.as_metadata()})
    except Exception:  # telemetry is best effort
        logger.debug("could not attach agent-tokred metadata to the LangSmith run", exc_info=True)
