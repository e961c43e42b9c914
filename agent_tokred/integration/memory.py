"""Move messages that leave the context window into a merging memory, and recall them on demand.

Instead of deleting old turns or summarising them with an LLM call, :class:`MemoryMiddleware`
writes them to a store (a :class:`~agent_tokred.integration.store.MergingStore` merges similar ones as they age)
and, at each model call, adds the memories most relevant to the latest request to the system
prompt, under a token budget.

* ``before_model``: when the saved history is over ``context_tokens``, the oldest messages go to
  memory until it fits ``keep_tokens``; the state drops them (``RemoveMessage``), once, so the
  remaining prefix stays stable. An AI message with tool calls moves together with its tool results.
* ``wrap_model_call``: the memories recalled for this call are appended to its system message
  (``request.override``); the saved state is unchanged.
* :func:`memory_node` does the first part in a hand-built graph; :func:`recall_memories` the second.

Example:
    >>> mw = MemoryMiddleware(context_tokens=4000, recall_tokens=500)
    >>> mw.policy.keep_budget
    2400
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages import messages_to_dict as _to_dicts
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.store.base import BaseStore, SearchItem

from ..errors import InvalidInputError
from ..tokens import TokenCounter, resolve_counter
from ._content import content_text
from .archive import current_config, current_store, default_store, namespace_label, scope_labels
from .memory_policy import MemoryPolicy, check_namespace, make_memory_policy
from .messages import coerce_messages, pick_query, role_of

logger = logging.getLogger(__name__)
NamespaceFn = Callable[[Any], tuple[str, ...]]


# -- which messages leave the window ------------------------------------------------------------
def message_tokens(msg: BaseMessage, counter: TokenCounter) -> int:
    """Tokens of a message's text and of its tool calls' names and arguments."""
    n = counter.count(content_text(msg.content))
    for call in getattr(msg, "tool_calls", None) or []:
        n += counter.count(f"{call.get('name', '')} {call.get('args', '')}")
    return n


def _units(messages: Sequence[BaseMessage]) -> list[list[int]]:
    """Message positions grouped so an AI tool-call message and its tool results stay together."""
    units: list[list[int]] = []
    open_calls: dict[str, list[int]] = {}
    for i, msg in enumerate(messages):
        if isinstance(msg, ToolMessage) and msg.tool_call_id in open_calls:
            open_calls[msg.tool_call_id].append(i)
            continue
        unit = [i]
        units.append(unit)
        for call in getattr(msg, "tool_calls", None) or []:
            if call.get("id"):
                open_calls[call["id"]] = unit
    return units


def select_evictions(messages: Sequence[BaseMessage], policy: MemoryPolicy, counter: TokenCounter) -> list[list[int]]:
    """The oldest message groups to move out so the history fits ``keep_tokens`` (none if it fits).

    System messages, the latest human message and the newest ``keep_last_messages`` never move;
    groups that reach into that protected tail stay too, so tool pairs are never split.
    """
    sizes = [message_tokens(m, counter) for m in messages]
    total = sum(sizes)
    if total <= policy.context_tokens:
        return []
    tail = len(messages) - policy.keep_last_messages
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    if humans:  # the latest request is the task at hand: it never leaves the window
        tail = min(tail, humans[-1])
    out: list[list[int]] = []
    for unit in _units(messages):
        if total <= policy.keep_budget or max(unit) >= tail:
            break
        if any(isinstance(messages[i], SystemMessage) for i in unit):
            continue
        out.append(unit)
        total -= sum(sizes[i] for i in unit)
    return out


def render_unit(msgs: Sequence[BaseMessage]) -> str:
    """A plain transcript of a message group, the text a memory is searched and merged by."""
    lines: list[str] = []
    for msg in msgs:
        text = content_text(msg.content).strip()
        role = role_of(msg)
        if isinstance(msg, ToolMessage):
            lines.append(f"tool {msg.name or ''} result: {text}".replace("  ", " "))
            continue
        if text:
            lines.append(f"{role}: {text}")
        for call in getattr(msg, "tool_calls", None) or []:
            lines.append(f"{role} called {call.get('name')}({call.get('args')})")
    return "\n".join(lines)


def unit_value(msgs: Sequence[BaseMessage]) -> dict[str, Any]:
    """The memory value of a message group: its transcript, kind, and the exact messages."""
    kinds = {role_of(m) for m in msgs}
    kind = "tool" if "tool" in kinds or any(getattr(m, "tool_calls", None) for m in msgs) else role_of(msgs[0])
    return {
        "text": render_unit(msgs),
        "kind": kind,
        "message_ids": [m.id for m in msgs],
        "messages": _to_dicts(list(msgs)),
    }


# -- what comes back -----------------------------------------------------------------------------
def pack_memories(items: Sequence[SearchItem], budget: int, counter: TokenCounter, min_score: float | None) -> str:
    """The recalled memories as one text block of at most ``budget`` tokens (best first)."""
    if budget <= 0:
        return ""
    header = "Relevant memories from earlier in this conversation (oldest context, most relevant first):"
    used = counter.count(header)
    parts = [header]
    for item in items:
        if min_score is not None and (item.score is None or item.score < min_score):
            continue
        text = item.value.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        mark = item.value.get("_tokred") or {}
        size = mark.get("size", 1) if isinstance(mark, Mapping) else 1
        label = f"- [memory {item.key}{f', merged from {size} turns' if size > 1 else ''}]"
        entry = f"{label}\n{text.strip()}"
        cost = counter.count(entry) + 1
        if used + cost > budget:
            room = budget - used - counter.count(label) - 2
            if room < 24:
                continue
            from ..compressor import compress

            entry = f"{label}\n{compress(text, target_tokens=room, criterion='lexical', tokenizer=counter).text}"
            cost = counter.count(entry) + 1
            if used + cost > budget:
                continue
        parts.append(entry)
        used += cost
    return "\n".join(parts) if len(parts) > 1 else ""


def recall_memories(
    store: BaseStore,
    namespace: tuple[str, ...],
    query: str,
    budget: int,
    *,
    limit: int = 8,
    min_score: float | None = None,
    tokenizer: Any = None,
) -> str:
    """Search ``namespace`` for ``query`` and pack the results under ``budget`` tokens.

    Example:
        >>> from agent_tokred.integration.store import MergingStore
        >>> store = MergingStore(embed=lambda t: [[1.0, 0.0] for _ in t])
        >>> store.put(("m",), "k", {"text": "the door code is 4721"})
        >>> "4721" in recall_memories(store, ("m",), "door code?", budget=100)
        True
    """
    items = store.search(namespace, query=query, limit=limit)
    return pack_memories(items, budget, resolve_counter(tokenizer), min_score)


class _Memory:
    """The shared core of the middleware and the node: where memory lives, what moves out."""

    def __init__(self, store: BaseStore | None, policy: MemoryPolicy, namespace: tuple[str, ...] | NamespaceFn | None):
        self.store = store
        self.policy = policy
        if namespace is not None and not callable(namespace):
            try:
                namespace = check_namespace(tuple(namespace), "namespace")
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"bad memory namespace: {exc}") from None
        self.namespace = namespace
        self.counter = resolve_counter(policy.tokenizer)

    def resolve(self, runtime: Any = None) -> tuple[BaseStore, tuple[str, ...]]:
        store = self.store or getattr(runtime, "store", None) or current_store() or default_store()
        if callable(self.namespace):
            ns = tuple(self.namespace(runtime))
            try:
                check_namespace(ns, "namespace")
            except ValueError as exc:
                raise InvalidInputError(f"the namespace function returned a bad namespace: {exc}") from None
        elif self.namespace is not None:
            ns = tuple(self.namespace)
        else:
            config = getattr(runtime, "config", None) or current_config()
            labels = scope_labels(self.policy.scope, config=config, context=getattr(runtime, "context", None))
            # ids come from users ("a.b", "", NUL): escaped reversibly so that no two ids share a namespace
            ns = (*self.policy.namespace_prefix, *(namespace_label(label) for label in labels))
        return store, ns

    def evict(self, messages: Sequence[BaseMessage], runtime: Any = None) -> dict[str, Any] | None:
        msgs = coerce_messages(list(messages))
        groups = select_evictions(msgs, self.policy, self.counter)
        if not groups:
            return None
        if any(msgs[i].id is None for g in groups for i in g):
            logger.warning("messages without ids cannot be removed from the state; nothing moved to memory")
            return None
        store, ns = self.resolve(runtime)
        moved: list[list[int]] = []
        for group in groups:
            unit = [msgs[i] for i in group]
            try:
                store.put(ns, str(unit[0].id or uuid.uuid4().hex), unit_value(unit))
            except Exception as exc:
                # only what was written leaves the state: the rest stays in context, nothing is lost
                logger.warning("memory write failed (%s: %s); %d message(s) stay in context",
                               type(exc).__name__, exc, sum(len(g) for g in groups) - sum(len(g) for g in moved))
                break
            moved.append(group)
        if not moved:
            return None
        return {"messages": [RemoveMessage(id=str(msgs[i].id)) for g in moved for i in g]}

    def recall(self, messages: Sequence[BaseMessage], runtime: Any = None) -> str:
        if self.policy.recall_tokens <= 0:
            return ""
        query = pick_query(coerce_messages(list(messages)), self.policy.query_source)
        if not query:
            return ""
        store, ns = self.resolve(runtime)
        try:
            items = store.search(ns, query=query, limit=self.policy.recall_limit)
        except Exception as exc:
            logger.warning("memory search failed (%s: %s); this call gets no recalled memories", type(exc).__name__, exc)
            return ""
        return pack_memories(items, self.policy.recall_tokens, self.counter, self.policy.min_score)


def _with_memories(request: ModelRequest, block: str) -> ModelRequest:
    system = request.system_message
    base = content_text(system.content) if system is not None else ""
    text = f"{base}\n\n{block}" if base else block
    return request.override(system_message=SystemMessage(text))


class MemoryMiddleware(AgentMiddleware):
    """Agent middleware: old messages go to a (merging) memory store and come back when relevant.

    Args:
        store: where memories go (default: the agent's store, ``create_agent(store=...)`` or the
            server's, else a process-local one). A :class:`~agent_tokred.integration.store.MergingStore` merges them.
        policy: a :class:`MemoryPolicy` or mapping; keyword overrides refine it.
        namespace: a fixed namespace, or ``runtime -> namespace`` (default: ``namespace_prefix`` + scope).
    """

    def __init__(
        self,
        store: BaseStore | None = None,
        *,
        policy: MemoryPolicy | Mapping[str, Any] | None = None,
        namespace: tuple[str, ...] | NamespaceFn | None = None,
        **policy_overrides: Any,
    ) -> None:
        super().__init__()
        self.policy = make_memory_policy(policy, **policy_overrides)
        self.memory = _Memory(store, self.policy, namespace)

    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Move the oldest messages to memory when the history is over ``context_tokens``."""
        return self.memory.evict(_messages(state), runtime)

    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Async twin of :meth:`before_model` (the store work runs off the event loop)."""
        return await asyncio.to_thread(self.memory.evict, _messages(state), runtime)

    def _recall_request(self, request: ModelRequest) -> ModelRequest:
        try:
            block = self.memory.recall(request.messages, request.runtime)
        except Exception:  # recall is an aid: never break the model call
            logger.exception("agent-tokred could not recall memories; calling the model without them")
            return request
        return _with_memories(request, block) if block else request

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse | AIMessage:
        """Add the memories relevant to the latest request to this call's system message."""
        return handler(self._recall_request(request))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse | AIMessage:
        """Async twin of :meth:`wrap_model_call`."""
        return await handler(await asyncio.to_thread(self._recall_request, request))


def _messages(state: Any) -> list[BaseMessage]:
    raw = state.get("messages", []) if isinstance(state, Mapping) else getattr(state, "messages", [])
    return list(raw or [])


def memory_node(
    store: BaseStore | None = None,
    *,
    policy: MemoryPolicy | Mapping[str, Any] | None = None,
    namespace: tuple[str, ...] | NamespaceFn | None = None,
    name: str = "move_to_memory",
    **policy_overrides: Any,
) -> Runnable:
    """A graph node (sync and async) that moves old messages of ``state["messages"]`` to memory.

    Example:
        >>> from langgraph.graph import MessagesState, StateGraph
        >>> builder = StateGraph(MessagesState)
        >>> _ = builder.add_node("memory", memory_node(context_tokens=4000))
    """
    memory = _Memory(store, make_memory_policy(policy, **policy_overrides), namespace)

    def run(state: Any) -> dict[str, Any]:
        return memory.evict(_messages(state)) or {}

    async def arun(state: Any) -> dict[str, Any]:
        return await asyncio.to_thread(run, state)

    return RunnableLambda(run, afunc=arun, name=name)
