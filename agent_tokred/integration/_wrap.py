"""``wrap(graph)``: add agent-tokred to an existing LangGraph graph without rewriting it.

Mechanism (langgraph 1.x): a compiled ``StateGraph`` keeps its builder (``graph.builder``). ``wrap``
copies the builder, replaces two kinds of node runnables and compiles again with the original
checkpointer, store, cache, interrupts, name, stream transformers and config:

* **model nodes** run on a *view* of the state whose messages are reduced to the call budget
  (tool outputs to ``message_budget``); the node's own updates are applied to the real state, so
  saved history is unchanged (like ``wrap_model_call``);
* **tool nodes** have their output compressed as it is written (each new ``ToolMessage`` held to
  ``message_budget``, marked, original archived), like ``wrap_tool_call``.

Edges, branches, ``Command`` routing, interrupts and node options stay as they were.

Limits: only graphs built with ``StateGraph`` (not the functional API or raw ``Pregel``); the
state must have a messages channel; model and tool nodes inside subgraphs are not reached (wrap
the subgraph); the system prompt that ``create_agent`` adds inside its model node is not counted
in ``call_budget``; ``wrap`` cannot add the recall tool to an already-built tool node: add
:func:`~agent_tokred.integration.recall.make_recall_tool` to your tools, or use
:class:`~agent_tokred.integration.middleware.TokenReductionMiddleware` with ``create_agent``.

Example:
    >>> from langgraph.graph import MessagesState, StateGraph
    >>> b = StateGraph(MessagesState)
    >>> _ = b.add_node("model", lambda state: {"messages": []})
    >>> _ = b.set_entry_point("model")
    >>> g = wrap(b.compile(), message_budget=500, criterion="lexical")
    >>> sorted(g.builder.nodes)
    ['model']
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableLambda
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command
from pydantic import BaseModel

from ..compressor import Compressor
from ..errors import InvalidInputError
from ._content import marker
from .engine import ReductionEngine
from .messages import coerce_messages, pick_query
from .middleware import _add_trace_metadata
from .policy import ContextPolicy
from .report import StepReport

MODEL_NODE_NAMES: tuple[str, ...] = ("model", "agent", "call_model", "llm", "chatbot", "generate")
ReportCallback = Callable[[StepReport], None]


def _get(state: Any, key: str) -> Any:
    return state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)


def _with_messages(state: Any, key: str, messages: list[BaseMessage]) -> Any:
    if isinstance(state, Mapping):
        return {**state, key: messages}
    if isinstance(state, BaseModel):
        return state.model_copy(update={key: messages})
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{key: messages})
    raise InvalidInputError(f"cannot give a reduced view of state of type {type(state).__name__}")


class _Adapters:
    """The two node wrappers, sharing one engine, the report callbacks and each thread's latest query."""

    def __init__(self, engine: ReductionEngine, key: str, callbacks: Sequence[ReportCallback]) -> None:
        self.engine, self.key, self.callbacks = engine, key, list(callbacks)
        self._queries: OrderedDict[str, str | None] = OrderedDict()

    def emit(self, report: StepReport) -> None:
        for callback in self.callbacks:
            callback(report)
        _add_trace_metadata(report)

    def _messages(self, state: Any) -> list[BaseMessage]:
        try:
            return coerce_messages(list(_get(state, self.key) or []))
        except InvalidInputError:
            return []

    def remember_query(self, state: Any, config: RunnableConfig) -> None:
        """Keep the thread's query: a tool node sent only tool calls cannot see the conversation."""
        self._queries[_thread(config)] = pick_query(self._messages(state), self.engine.policy.query_source)
        self._queries.move_to_end(_thread(config))
        while len(self._queries) > 1024:
            self._queries.popitem(last=False)

    def view(self, state: Any) -> Any:
        msgs = self._messages(state)
        if not self.engine.needs_reduction(msgs, self.engine.policy.call_budget):
            return state
        out, report = self.engine.reduce(msgs)
        self.emit(report)
        return _with_messages(state, self.key, out) if report.changed else state

    def call_context(self, node_input: Any, config: RunnableConfig) -> tuple[str | None, dict[str, Any]]:
        """The query and the arguments of each tool call (by id) for a tool node's input."""
        calls: list[Any] = []
        if isinstance(node_input, Mapping) and node_input.get("__type") == "tool_call_with_context":
            calls = [node_input.get("tool_call") or {}]
            node_input = node_input.get("state") or {}
        if isinstance(node_input, list):  # create_agent sends the tool calls alone
            calls = [c for c in node_input if isinstance(c, Mapping)]
            query = self._queries.get(_thread(config))
        else:
            msgs = self._messages(node_input)
            query = pick_query(msgs, self.engine.policy.query_source)
            if not calls:
                last_ai = next((m for m in reversed(msgs) if isinstance(m, AIMessage)), None)
                calls = list(last_ai.tool_calls) if last_ai is not None else []
        return query, {str(c.get("id")): c.get("args") for c in calls}

    def compress_output(self, value: Any, query: str | None, args: Mapping[str, Any]) -> Any:
        if isinstance(value, ToolMessage):
            if marker(value) is not None:
                return value
            new, report = self.engine.reduce_tool(value, query=query, call_args=args.get(value.tool_call_id))
            if new is not value:
                self.emit(report)
            return new
        if isinstance(value, Command):
            update = value.update
            if isinstance(update, Mapping) and self.key in update:
                inner = self.compress_output(update[self.key], query, args)
                return dataclasses.replace(value, update={**update, self.key: inner})
            return value
        if isinstance(value, Mapping) and self.key in value:
            return {**value, self.key: self.compress_output(value[self.key], query, args)}
        if isinstance(value, list):
            return [self.compress_output(v, query, args) for v in value]
        return value

    def model_node(self, name: str, inner: Runnable) -> Runnable:
        def run(state: Any, config: RunnableConfig) -> Any:
            self.remember_query(state, config)
            return inner.invoke(self.view(state), config)

        async def arun(state: Any, config: RunnableConfig) -> Any:
            self.remember_query(state, config)
            needed = self.engine.needs_reduction(self._messages(state), self.engine.policy.call_budget)
            view = await _to_thread_if(self.view, needed, state)
            return await inner.ainvoke(view, config)

        return RunnableLambda(run, afunc=arun, name=name)

    def tool_node(self, name: str, inner: Runnable) -> Runnable:
        def run(node_input: Any, config: RunnableConfig) -> Any:
            query, args = self.call_context(node_input, config)
            return self.compress_output(inner.invoke(node_input, config), query, args)

        async def arun(node_input: Any, config: RunnableConfig) -> Any:
            query, args = self.call_context(node_input, config)
            out = await inner.ainvoke(node_input, config)
            return await _to_thread_if(self.compress_output, True, out, query, args)

        return RunnableLambda(run, afunc=arun, name=name)


def _interrupts(nodes: Any) -> Any:
    return nodes if nodes == "*" else (list(nodes) or None)


def _thread(config: Mapping[str, Any]) -> str:
    return str((config.get("configurable") or {}).get("thread_id", ""))


async def _to_thread_if(fn: Callable[..., Any], threaded: bool, *args: Any) -> Any:
    """Run ``fn`` off the event loop when it has real work to do (compression is CPU-bound)."""
    if not threaded:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def _find_nodes(builder: StateGraph, model_nodes: Sequence[str] | None,
                tool_nodes: Sequence[str] | None) -> tuple[list[str], list[str]]:
    names = list(builder.nodes)
    if model_nodes is None:
        model_nodes = [n for n in names if n in MODEL_NODE_NAMES][:1]
    if tool_nodes is None:
        tool_nodes = [n for n, spec in builder.nodes.items()
                      if isinstance(spec.runnable, ToolNode) or n == "tools"]
    unknown = [n for n in [*model_nodes, *tool_nodes] if n not in builder.nodes]
    if unknown:
        raise InvalidInputError(f"no node named {unknown[0]!r} in the graph; nodes: {', '.join(names)}")
    if not model_nodes and not tool_nodes:
        raise InvalidInputError(
            f"found no model or tool node to wrap; pass model_nodes=[...] / tool_nodes=[...] (nodes: "
            f"{', '.join(names)}; model nodes are found by name: {', '.join(MODEL_NODE_NAMES)})"
        )
    return list(model_nodes), list(tool_nodes)


def wrap(
    graph: Any,
    policy: ContextPolicy | Mapping[str, Any] | None = None,
    *,
    model_nodes: Sequence[str] | None = None,
    tool_nodes: Sequence[str] | None = None,
    compressor: Compressor | None = None,
    store: Any = None,
    messages_key: str = "messages",
    on_report: ReportCallback | Sequence[ReportCallback] = (),
    **policy_overrides: Any,
) -> CompiledStateGraph:
    """A new compiled graph whose model nodes see reduced messages and whose tool outputs are compressed.

    Args:
        graph: a ``create_agent`` / ``create_react_agent`` agent, any compiled ``StateGraph``
            (optionally ``.with_config(...)``-bound), or an uncompiled ``StateGraph`` builder.
        policy: a :class:`ContextPolicy` or mapping; ``policy_overrides`` refine it.
        model_nodes: names of the nodes that call the model (default: the first of
            ``model``, ``agent``, ``call_model``, ``llm``, ``chatbot``, ``generate``).
        tool_nodes: names of the nodes that run tools (default: every ``ToolNode`` and ``tools``).
        compressor: the compression engine (default: from the policy).
        store: where originals go (default: the graph's store, else a process-local one).
        messages_key: the state key holding the messages.
        on_report: callables receiving each :class:`StepReport`.

    Returns:
        A new ``CompiledStateGraph``; the input graph is not modified.

    Raises:
        InvalidInputError: not a StateGraph, no messages channel, or no model/tool node found.
    """
    binding: RunnableBinding | None = None
    if isinstance(graph, RunnableBinding) and isinstance(graph.bound, CompiledStateGraph):
        binding, graph = graph, graph.bound
    compiled = graph if isinstance(graph, CompiledStateGraph) else None
    builder = compiled.builder if compiled is not None else graph
    if not isinstance(builder, StateGraph):
        raise InvalidInputError(
            f"wrap() needs a StateGraph or a compiled StateGraph (create_agent, create_react_agent, "
            f"builder.compile()); got {type(graph).__name__}"
        )
    if messages_key not in builder.channels:
        channels = ", ".join(builder.channels)
        raise InvalidInputError(f"the graph state has no {messages_key!r} channel; channels: {channels}")
    models, tools = _find_nodes(builder, model_nodes, tool_nodes)
    engine = ReductionEngine(policy, compressor=compressor, store=store, **policy_overrides)
    adapters = _Adapters(engine, messages_key, [on_report] if callable(on_report) else list(on_report))

    new = copy.copy(builder)
    new.nodes = dict(builder.nodes)
    for name in models:
        spec = builder.nodes[name]
        inner = cast(Runnable, spec.runnable)  # add_node stores every action as a Runnable
        new.nodes[name] = dataclasses.replace(spec, runnable=adapters.model_node(name, inner))
    for name in tools:
        spec = builder.nodes[name]
        inner = cast(Runnable, spec.runnable)
        new.nodes[name] = dataclasses.replace(spec, runnable=adapters.tool_node(name, inner))
    if compiled is None:
        return new.compile()
    out = new.compile(
        checkpointer=compiled.checkpointer, cache=compiled.cache, store=compiled.store,
        interrupt_before=_interrupts(compiled.interrupt_before_nodes),
        interrupt_after=_interrupts(compiled.interrupt_after_nodes), debug=compiled.debug, name=compiled.name,
        transformers=compiled.stream_transformers,
    )
    out.step_timeout, out.retry_policy, out.cache_policy = (
        compiled.step_timeout, compiled.retry_policy, compiled.cache_policy)
    if compiled.config:
        out = out.with_config(compiled.config)
    if binding is not None:
        return binding.__class__(bound=out, kwargs=binding.kwargs, config=binding.config)  # type: ignore[return-value]
    return out
