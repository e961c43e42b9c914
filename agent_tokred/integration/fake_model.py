"""Offline chat models for tests, demos and the served example graphs (no API keys, deterministic).

* :class:`ScriptedChatModel` replays scripted ``AIMessage``s (with ``tool_calls``) and records every
  message list it received, so tests can assert what the model saw.
* :class:`RuleBasedToolModel` answers any conversation: it calls its tool for a new human request,
  then answers from the tool results (quoting lines that share words with the request); without a
  tool it answers from the system messages (a RAG prompt's context).

:func:`chat_model_from_env` returns a real model when ``AGENT_TOKRED_MODEL="provider:name"`` is set
(through ``init_chat_model``), else the given offline model.

Both implement ``bind_tools`` (returning the model itself), which ``create_agent`` needs.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> m = ScriptedChatModel(script=[AIMessage("hi")])
    >>> m.invoke([HumanMessage("hello")]).content, len(m.received)
    ('hi', 1)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field, PrivateAttr

from ._content import content_text

_WORD = re.compile(r"[A-Za-z0-9_]{3,}")


Reply = AIMessage | str | Callable[[list[BaseMessage]], AIMessage]


class _ToolBoundFake(GenericFakeChatModel):
    """A fake chat model that accepts ``bind_tools`` (returning itself) and never streams."""

    messages: Iterator[AIMessage | str] = Field(default_factory=lambda: iter(()))
    disable_streaming: bool = True

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self

    def scripted_reply(self, messages: list[BaseMessage]) -> AIMessage | None:
        """This model's reply to ``messages`` (``None``: replay ``messages`` as the generic fake does)."""
        return None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self.scripted_reply(messages)
        if message is None:
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])


class ScriptedChatModel(_ToolBoundFake):
    """Replays ``script`` in order and records each call's input messages in ``received``.

    A script entry is an ``AIMessage``, a string, or a callable that builds the reply from the
    messages the model received (e.g. to call ``recall`` with a handle it was shown).
    """

    script: list[Any] = Field(default_factory=list)  # Reply items (Any: pydantic cannot check callables)
    received: list[list[BaseMessage]] = Field(default_factory=list)
    _position: int = PrivateAttr(default=0)

    def scripted_reply(self, messages: list[BaseMessage]) -> AIMessage | None:
        """The next script entry (recording the call), or ``None`` without a script."""
        self.received.append(list(messages))
        if not self.script:
            return None
        if self._position >= len(self.script):
            raise IndexError(f"the script has only {len(self.script)} replies")
        reply = self.script[self._position]
        self._position += 1
        if callable(reply) and not isinstance(reply, AIMessage):
            reply = reply(list(messages))
        return AIMessage(content=reply) if isinstance(reply, str) else reply


class RuleBasedToolModel(_ToolBoundFake):
    """Calls ``tool_name`` once per human request, then answers from what the tools returned.

    The answer quotes up to ``quote_lines`` lines of the tool results that share the most words
    with the request, and says how many tokens of tool output it was shown (``count`` callable).
    """

    tool_name: str = "search"
    quote_lines: int = 3
    count: Callable[[str], int] | None = None

    def scripted_reply(self, messages: list[BaseMessage]) -> AIMessage | None:
        return self.reply(messages)

    def reply(self, messages: Sequence[BaseMessage]) -> AIMessage:
        """The deterministic reply to a conversation."""
        humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        if not humans:
            return AIMessage("Ask me something.")
        last = humans[-1]
        request = content_text(messages[last].content)
        results: list[BaseMessage] = [m for m in messages[last + 1 :] if isinstance(m, ToolMessage)]
        if not self.tool_name:
            results = [m for m in messages if isinstance(m, SystemMessage)]
        elif not results:
            call = {"name": self.tool_name, "args": {"query": request}, "id": f"call_{len(messages)}"}
            return AIMessage("", tool_calls=[call])
        seen = "\n".join(content_text(m.content) for m in results)
        wanted = {w.lower() for w in _WORD.findall(request)}
        lines = [ln.strip() for ln in seen.splitlines() if ln.strip()]
        ranked = sorted(lines, key=lambda ln: -len(wanted & {w.lower() for w in _WORD.findall(ln)}))
        size = self.count(seen) if self.count else len(seen.split())
        quoted = "\n".join(f"- {ln[:200]}" for ln in ranked[: self.quote_lines])
        source = "tool result(s)" if self.tool_name else "context message(s)"
        return AIMessage(f"From {len(results)} {source} ({size} tokens shown to me):\n{quoted}")


def chat_model_from_env(offline: BaseChatModel, variable: str = "AGENT_TOKRED_MODEL") -> BaseChatModel:
    """A real chat model when ``$AGENT_TOKRED_MODEL`` is ``"provider:name"``, else ``offline``."""
    spec = os.environ.get(variable, "").strip()
    if not spec:
        return offline
    from langchain.chat_models import init_chat_model

    return init_chat_model(spec)
