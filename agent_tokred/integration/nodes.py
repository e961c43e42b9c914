"""LangGraph nodes for hand-built graphs, and a ``pre_model_hook`` for ``create_react_agent``.

Each factory returns a runnable with sync and async paths (usable with ``invoke`` and ``ainvoke``
and under ``langgraph dev``). Originals go to the graph's store (``compile(store=...)``) or a
process-local default, in the namespace of the current thread.

Every factory takes the same ``**options``: how the node is wired into its graph (the fields of
:class:`NodeOptions`: ``compressor``, ``store``, ``messages_key``, ``on_report``, ``name``) and any
:class:`~agent_tokred.integration.policy.ContextPolicy` field as an override of ``policy``
(``message_budget=500``, ``criterion="lexical"`` ...); an unknown name raises ``InvalidInputError``.

* :func:`compress_tool_messages_node`: after the tool node; holds every new tool output to
  ``message_budget`` and writes it back in place (same message id, ``add_messages`` replaces it).
* :func:`compress_documents_node`: compresses retrieved documents in a state key, for the query.
* :func:`compress_reasoning_node`: cuts or drops reasoning traces of earlier turns.
* :func:`make_pre_model_hook`: ``create_react_agent(pre_model_hook=...)``: the model sees reduced
  messages (``llm_input_messages``), the saved state is unchanged.

Example:
    >>> from langgraph.graph import MessagesState, StateGraph
    >>> builder = StateGraph(MessagesState)
    >>> _ = builder.add_node("compress", compress_tool_messages_node(message_budget=500, criterion="lexical"))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from ..compressor import Compressor
from ..errors import UnknownNameError
from ._content import content_text, marker
from .documents import reduce_documents
from .engine import ReductionEngine
from .messages import coerce_messages, pick_query
from .policy import ContextPolicy
from .reasoning import REASONING_MODES, ReasoningMode, reduce_reasoning
from .report import StepReport

ReportCallback = Callable[[StepReport], None]
PolicyLike = ContextPolicy | Mapping[str, Any] | None


@dataclass(frozen=True)
class NodeOptions:
    """How a node is wired into its graph; every factory here takes these as keyword options.

    Attributes:
        compressor: the compression engine (default: from the policy's criterion, strategy, tokenizer).
        store: where originals go when the run has no store of its own.
        messages_key: the state key holding the messages.
        on_report: callables that receive each :class:`StepReport` the node produces.
        name: the node's runnable name (default: the factory's).
    """

    compressor: Compressor | None = None
    store: Any = None
    messages_key: str = "messages"
    on_report: Sequence[ReportCallback] = ()
    name: str = ""

    def notify(self, report: StepReport) -> None:
        """Pass ``report`` to every ``on_report`` callback."""
        for callback in self.on_report:
            callback(report)


_WIRING = frozenset(f.name for f in fields(NodeOptions))


def _setup(policy: PolicyLike, options: Mapping[str, Any], name: str) -> tuple[ReductionEngine, NodeOptions]:
    """Split a factory's ``options`` into its wiring and the policy overrides; build the engine once."""
    wiring = NodeOptions(**{k: v for k, v in options.items() if k in _WIRING})
    overrides = {k: v for k, v in options.items() if k not in _WIRING}
    engine = ReductionEngine(policy, compressor=wiring.compressor, store=wiring.store, **overrides)
    return engine, replace(wiring, name=wiring.name or name)


def _field(state: Any, key: str, default: Any = None) -> Any:
    if isinstance(state, Mapping):
        return state.get(key, default)
    return getattr(state, key, default)


def _state_messages(state: Any, key: str) -> list[BaseMessage]:
    value = _field(state, key) or []
    return coerce_messages(list(value))


def message_update(
    messages: Sequence[BaseMessage], changed: Mapping[int, BaseMessage], key: str
) -> dict[str, Any]:
    """A state update replacing ``changed`` messages (by id; the whole list if one has no id)."""
    if not changed:
        return {}
    if all(messages[i].id for i in changed):
        return {key: [changed[i] for i in sorted(changed)]}
    full = [changed.get(i, m) for i, m in enumerate(messages)]
    return {key: [RemoveMessage(id=REMOVE_ALL_MESSAGES), *full]}


def _make_node(
    name: str, work: Callable[[Any], dict[str, Any]], needs_work: Callable[[Any], bool]
) -> Runnable:
    def run(state: Any) -> dict[str, Any]:
        return work(state) if needs_work(state) else {}

    async def arun(state: Any) -> dict[str, Any]:
        if not needs_work(state):
            return {}
        return await asyncio.to_thread(work, state)

    return RunnableLambda(run, afunc=arun, name=name)


def compress_tool_messages_node(policy: PolicyLike = None, **options: Any) -> Runnable:
    """A node that holds every unmarked tool output in ``state[messages_key]`` to ``message_budget``.

    Put it between the tool node and the model node. Recall results are marked and kept whole;
    protected tools and error traces are kept whole.

    Args:
        policy: a :class:`ContextPolicy` or mapping.
        **options: :class:`NodeOptions` fields and policy overrides (see the module docstring).
    """
    engine, wiring = _setup(policy, options, "compress_tool_messages")
    messages_key = wiring.messages_key

    def pending(state: Any) -> bool:
        return any(
            isinstance(m, ToolMessage) and marker(m) is None and (
                (m.name or "") == engine.policy.recall_tool_name or engine.tool_needs_reduction(m))
            for m in _state_messages(state, messages_key)
        )

    def work(state: Any) -> dict[str, Any]:
        msgs = _state_messages(state, messages_key)
        out, report = engine.hold_tool_outputs(msgs)
        changed = {i: new for i, (old, new) in enumerate(zip(msgs, out)) if new is not old}
        if changed:
            wiring.notify(report)
        return message_update(msgs, changed, messages_key)

    return _make_node(wiring.name, work, pending)


def compress_documents_node(
    key: str = "documents",
    *,
    query_key: str | None = None,
    document_budget: int | None = 300,
    total_budget: int | None = None,
    min_tokens: int = 32,
    policy: PolicyLike = None,
    **options: Any,
) -> Runnable:
    """A node that compresses the documents (``Document`` or ``str``) in ``state[key]`` for the query.

    The query is ``state[query_key]`` when given, else the one derived from ``state[messages_key]``
    by the policy's ``query_source`` (the latest human message by default), else ``state["question"]`` or ``state["query"]``.

    Args:
        key: the state key holding the documents.
        query_key: a state key holding the query.
        document_budget / total_budget / min_tokens: as :func:`~agent_tokred.integration.documents.reduce_documents`.
        policy: a :class:`ContextPolicy` or mapping (its criterion ranks whole documents).
        **options: :class:`NodeOptions` fields and policy overrides (see the module docstring).
    """
    engine, wiring = _setup(policy, options, "compress_documents")
    messages_key = wiring.messages_key

    def query_of(state: Any) -> str | None:
        if query_key is not None:
            value = _field(state, query_key)
            return content_text(value) if value is not None else None
        msgs = [m for m in (_field(state, messages_key) or []) if isinstance(m, BaseMessage)]
        query = pick_query(msgs, engine.policy.query_source)  # the one query derivation
        if query:
            return query
        value = _field(state, "question") or _field(state, "query")
        return str(value) if value else None

    def work(state: Any) -> dict[str, Any]:
        docs = list(_field(state, key) or [])
        out, report = reduce_documents(
            docs, query=query_of(state), compressor=engine.compressor, archive=engine.archive(),
            document_budget=document_budget, total_budget=total_budget, min_tokens=min_tokens,
            criterion=engine.policy.criterion,
        )
        wiring.notify(report)
        return {key: out} if report.messages else {}

    return _make_node(wiring.name, work, lambda state: bool(_field(state, key)))


def compress_reasoning_node(
    mode: ReasoningMode = "cut",
    *,
    reasoning_budget: int | None = None,
    policy: PolicyLike = None,
    **options: Any,
) -> Runnable:
    """A node that reduces reasoning traces of AI messages before the latest human message.

    ``mode="cut"`` removes re-checking after a settled answer (overthinking detector) and, with
    ``reasoning_budget``, compresses what is left to that many tokens; ``mode="drop"`` removes the
    thinking. Originals are archived; answers are never changed.

    Args:
        mode: ``"cut"`` or ``"drop"``.
        reasoning_budget: most tokens a cut trace keeps (``None``: only the cut).
        policy: a :class:`ContextPolicy` or mapping.
        **options: :class:`NodeOptions` fields and policy overrides (see the module docstring).
    """
    if mode not in REASONING_MODES:
        raise UnknownNameError("reasoning mode", mode, REASONING_MODES)
    engine, wiring = _setup(policy, options, "compress_reasoning")
    messages_key = wiring.messages_key

    def earlier(msgs: Sequence[BaseMessage]) -> list[int]:
        humans = [i for i, m in enumerate(msgs) if isinstance(m, HumanMessage)]
        end = humans[-1] if humans else 0
        return [i for i in range(end) if isinstance(msgs[i], AIMessage) and marker(msgs[i]) is None]

    def work(state: Any) -> dict[str, Any]:
        started = time.perf_counter()
        msgs = _state_messages(state, messages_key)
        archive = engine.archive()
        changed: dict[int, BaseMessage] = {}
        records = []
        question = None
        todo = set(earlier(msgs))
        for i, m in enumerate(msgs):
            if isinstance(m, HumanMessage):
                question = content_text(m.content)
            if i in todo and isinstance(m, AIMessage):
                new, rec = reduce_reasoning(m, mode=mode, budget=reasoning_budget,
                                            compressor=engine.compressor, archive=archive,
                                            question=question, index=i)
                if rec is not None:
                    changed[i] = new
                    records.append(rec)
        if records:
            before = sum(r.tokens_before for r in records)
            after = sum(r.tokens_after for r in records)
            wiring.notify(StepReport(kind="reasoning", tokens_before=before, tokens_after=after,
                                          seconds=time.perf_counter() - started, messages=tuple(records),
                                          tokenizer=engine.compressor.counter.name))
        return message_update(msgs, changed, messages_key)

    return _make_node(wiring.name, work, lambda state: bool(earlier(_state_messages(state, messages_key))))


def make_pre_model_hook(policy: PolicyLike = None, **options: Any) -> Runnable:
    """A ``pre_model_hook`` for ``create_react_agent``: returns ``{"llm_input_messages": reduced}``.

    Only that model call sees the reduced messages; the saved state is unchanged.

    Args:
        policy: a :class:`ContextPolicy` or mapping.
        **options: :class:`NodeOptions` fields and policy overrides (see the module docstring).

    Example:
        >>> hook = make_pre_model_hook(message_budget=400, criterion="lexical")
        >>> hook.invoke({"messages": []})
        {'llm_input_messages': []}
    """
    engine, wiring = _setup(policy, options, "agent_tokred_pre_model_hook")
    messages_key = wiring.messages_key

    def work(state: Any) -> dict[str, Any]:
        msgs = _state_messages(state, messages_key)
        out, report = engine.reduce(msgs)
        wiring.notify(report)
        return {"llm_input_messages": out}

    def run(state: Any) -> dict[str, Any]:
        return work(state)

    async def arun(state: Any) -> dict[str, Any]:
        msgs = _state_messages(state, messages_key)
        if engine.needs_reduction(msgs, engine.policy.call_budget):
            return await asyncio.to_thread(work, state)
        return work(state)

    return RunnableLambda(run, afunc=arun, name=wiring.name)
