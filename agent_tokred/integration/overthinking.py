"""The overthinking detector in LangChain / LangGraph: middleware, node, callback, stream wrapper.

* :class:`OverthinkingMiddleware`: a LangChain v1 ``AgentMiddleware`` that truncates the redundant
  re-checking in the reasoning of *earlier* AI turns (reasoning / thinking content blocks,
  ``additional_kwargs["reasoning_content"]``, ``<think>...</think>`` in text). The latest turn is
  left alone, the final answer, ids and tool calls stay as they are, and truncated messages are
  marked (``response_metadata["tokred_overthinking"]``) so they are never truncated twice. By default
  only what the model sees is changed (``wrap_model_call``); ``edit_history=True`` rewrites the
  saved history once instead (``before_model``; the removed text is kept in the mark).
* :func:`make_overthinking_node`: the same as a plain LangGraph node over ``state["messages"]``.
* :class:`OverthinkingCallbackHandler` (async :class:`AsyncOverthinkingCallbackHandler`) and
  :func:`monitor_stream` / :func:`amonitor_stream` (from :mod:`agent_tokred.overthinking.stream`,
  re-exported): stop a model's generation once its reasoning is judged redundant, keeping what was
  produced and reporting a :class:`~agent_tokred.overthinking.StopRecord`.
* :func:`make_answer_probe` / :func:`conclude` (and async twins): probe the model's answer at
  checkpoints, or ask it to conclude in a few tokens after a stop (per-provider notes in
  :mod:`agent_tokred.integration._overthinking_probe`).

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> msgs = [HumanMessage("q"), AIMessage("So 2+2 = 4.</think>4"), HumanMessage("next")]
    >>> len(truncate_earlier_reasoning(msgs))
    3
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from ..overthinking.detect import OverthinkingConfig, OverthinkingResult, detect_overthinking
from ..overthinking.stream import AsyncMonitoredStream, MonitoredStream, amonitor_stream, monitor_stream
from ..overthinking.trace import block_reasoning_text, truncate_blocks
from ._overthinking_callbacks import AsyncOverthinkingCallbackHandler, OverthinkingCallbackHandler
from ._overthinking_probe import (
    Conclusion,
    aconclude,
    amake_answer_probe,
    conclude,
    conclusion_messages,
    make_answer_probe,
)

MARK = "tokred_overthinking"
_CACHE_SIZE = 512


def _is_signed(block: Any) -> bool:
    if not isinstance(block, Mapping) or block_reasoning_text(block) is None:
        return False
    extras = block.get("extras")
    return bool(block.get("signature")) or (isinstance(extras, Mapping) and bool(extras.get("signature")))


def truncate_message_reasoning(
    message: AIMessage,
    *,
    question: str | None = None,
    config: OverthinkingConfig | None = None,
    tokenizer: Any = None,
    keep_removed: bool = False,
) -> tuple[AIMessage, OverthinkingResult] | None:
    """A copy of ``message`` with its reasoning cut after the answer settled, or ``None``.

    ``None`` when the message is marked already, has no reasoning, carries signed thinking blocks
    (providers verify those; they are left whole), or nothing redundant was found. The copy keeps
    the id, tool calls and answer text, and carries the mark.

    Example:
        >>> m = AIMessage("no reasoning here")
        >>> truncate_message_reasoning(m) is None
        True
    """
    if MARK in (message.response_metadata or {}):
        return None
    content = message.content
    rc = message.additional_kwargs.get("reasoning_content")
    update: dict[str, Any] = {}
    if isinstance(content, list) and any(
        block_reasoning_text(b) is not None for b in content if isinstance(b, Mapping)
    ):
        if any(_is_signed(b) for b in content):
            return None
        result = detect_overthinking(content, question=question, config=config, tokenizer=tokenizer)
        if result.cut_char is not None:
            update["content"] = truncate_blocks(content, result.cut_char, result.kept_thinking[result.cut_char :])
    elif isinstance(rc, str) and rc.strip():
        trace = [{"type": "reasoning", "reasoning": rc}, {"type": "text", "text": message.text}]
        result = detect_overthinking(trace, question=question, config=config, tokenizer=tokenizer)
        update["additional_kwargs"] = {**message.additional_kwargs, "reasoning_content": result.kept_thinking}
    elif isinstance(content, str) and "</think" in content.lower():
        result = detect_overthinking(content, question=question, config=config, tokenizer=tokenizer)
        update["content"] = result.text
    else:
        return None
    if not result.cut:
        return None
    mark: dict[str, Any] = {
        "reason": result.reason,
        "removed_tokens": result.tokens_removed,
        "cut_step": result.cut_index,
        "stable_answer": result.stable_answer,
    }
    if keep_removed:
        mark["removed_text"] = result.removed_text
    update["response_metadata"] = {**(message.response_metadata or {}), MARK: mark}
    return message.model_copy(update=update), result


def _question_before(messages: Sequence[BaseMessage], index: int) -> str | None:
    for msg in reversed(messages[:index]):
        if isinstance(msg, HumanMessage):
            return msg.text
    return None


def truncate_earlier_reasoning(
    messages: Sequence[AnyMessage],
    *,
    config: OverthinkingConfig | None = None,
    tokenizer: Any = None,
    keep_last: int = 1,
    keep_removed: bool = False,
    cache: dict[tuple[Any, ...], AIMessage | None] | None = None,
) -> list[AnyMessage]:
    """``messages`` with the reasoning of AI turns before the last ``keep_last`` ones truncated.

    Messages are never added, removed or reordered; only AI messages' reasoning changes, so every
    tool call keeps its tool result.
    """
    ai_positions = [i for i, m in enumerate(messages) if isinstance(m, AIMessage)]
    earlier = set(ai_positions[: max(0, len(ai_positions) - keep_last)])
    out: list[AnyMessage] = list(messages)
    for i in sorted(earlier):
        msg = messages[i]
        if not isinstance(msg, AIMessage):
            continue
        key = (msg.id, repr(msg.content), repr(msg.additional_kwargs.get("reasoning_content")))
        if cache is not None and key in cache:
            new = cache[key]
        else:
            done = truncate_message_reasoning(
                msg,
                question=_question_before(messages, i),
                config=config,
                tokenizer=tokenizer,
                keep_removed=keep_removed,
            )
            new = done[0] if done else None
            if cache is not None:
                cache[key] = new
                while len(cache) > _CACHE_SIZE:
                    cache.pop(next(iter(cache)))
        if new is not None:
            out[i] = new
    return out


def _history_update(old: Sequence[AnyMessage], new: Sequence[AnyMessage]) -> dict[str, Any] | None:
    changed = [n for o, n in zip(old, new) if o is not n]
    if not changed:
        return None
    if all(m.id for m in changed):
        return {"messages": changed}  # add_messages replaces by id
    return {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *new]}


class OverthinkingMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Truncates redundant re-checking in earlier AI turns' reasoning.

    Args:
        config: detector settings (:class:`~agent_tokred.overthinking.OverthinkingConfig`).
        tokenizer: token counter spec for the figures in the mark.
        keep_last: AI turns at the end left alone (the latest turn by default).
        edit_history: rewrite saved history once in ``before_model`` instead of changing each
            model call's view (sticky, keeps a provider's prompt cache valid; removed text is kept
            in the mark).

    Example:
        >>> from langchain.agents import create_agent  # doctest: +SKIP
        >>> agent = create_agent(model, tools, middleware=[OverthinkingMiddleware()])  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        config: OverthinkingConfig | None = None,
        tokenizer: Any = None,
        keep_last: int = 1,
        edit_history: bool = False,
    ) -> None:
        super().__init__()
        if keep_last < 1:
            raise ValueError(f"keep_last={keep_last!r}; must be >= 1 (the latest turn is never truncated)")
        self.config = config
        self.tokenizer = tokenizer
        self.keep_last = keep_last
        self.edit_history = edit_history
        self._cache: dict[tuple[Any, ...], AIMessage | None] = OrderedDict()

    def _truncate(self, messages: Sequence[AnyMessage], keep_removed: bool) -> list[AnyMessage]:
        return truncate_earlier_reasoning(
            messages,
            config=self.config,
            tokenizer=self.tokenizer,
            keep_last=self.keep_last,
            keep_removed=keep_removed,
            cache=None if keep_removed else self._cache,
        )

    def before_model(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        if not self.edit_history:
            return None
        messages = state["messages"]
        return _history_update(messages, self._truncate(messages, keep_removed=True))

    async def abefore_model(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        return self.before_model(state, runtime)

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage:
        if self.edit_history or not request.messages:
            return handler(request)
        return handler(request.override(messages=self._truncate(request.messages, keep_removed=False)))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        if self.edit_history or not request.messages:
            return await handler(request)
        return await handler(request.override(messages=self._truncate(request.messages, keep_removed=False)))


def make_overthinking_node(
    *,
    config: OverthinkingConfig | None = None,
    tokenizer: Any = None,
    keep_last: int = 1,
    messages_key: str = "messages",
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A LangGraph node that truncates earlier AI turns' reasoning in ``state[messages_key]``.

    The update replaces changed messages by id (``add_messages``), or resets the list when a
    changed message has no id. Removed text is kept in each message's mark.

    Example:
        >>> node = make_overthinking_node()
        >>> node({"messages": []})
        {}
    """

    def overthinking_node(state: Mapping[str, Any]) -> dict[str, Any]:
        messages = list(state.get(messages_key) or [])
        new = truncate_earlier_reasoning(
            messages, config=config, tokenizer=tokenizer, keep_last=keep_last, keep_removed=True
        )
        update = _history_update(messages, new)
        return {messages_key: update["messages"]} if update else {}

    return overthinking_node


__all__ = [
    "MARK",
    "AsyncMonitoredStream",
    "AsyncOverthinkingCallbackHandler",
    "Conclusion",
    "MonitoredStream",
    "OverthinkingCallbackHandler",
    "OverthinkingMiddleware",
    "aconclude",
    "amake_answer_probe",
    "amonitor_stream",
    "conclude",
    "conclusion_messages",
    "make_answer_probe",
    "make_overthinking_node",
    "monitor_stream",
    "truncate_earlier_reasoning",
    "truncate_message_reasoning",
]
