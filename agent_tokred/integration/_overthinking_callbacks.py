"""Callback handlers that stop a streaming generation once its reasoning is judged redundant.

Re-exported by :mod:`agent_tokred.integration.overthinking`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk

from ..overthinking.detect import OverthinkingConfig
from ..overthinking.monitor import OverthinkingMonitor, Rule, StopRecord
from ..overthinking.online import Probe, StopRuleConfig


class OverthinkingCallbackHandler(BaseCallbackHandler):
    """Stops a streaming generation once its reasoning is judged redundant.

    Pass it in ``callbacks=[...]`` of a streaming call; it raises
    :class:`~agent_tokred.overthinking.OverthinkingStop` (with ``produced``, ``kept_reasoning`` and
    the :class:`~agent_tokred.overthinking.StopRecord`) from the token callback, which ends the
    generation. ``handler.monitor`` keeps the text; ``handler.records`` lists every stop's record
    and ``on_stop`` is called with each.

    Args:
        question: the question being answered.
        config: detector settings (marker; the ``"convergence"`` rule's ``k``).
        tokenizer: token counter spec for the figures.
        starts_in_thinking: untagged raw text is thinking until ``</think>``.
        rule: ``"online"`` (default) or ``"convergence"``.
        stop_rule: the online rule's settings.
        probe: ask a model for its answer at checkpoints (:func:`make_answer_probe`).
        on_stop: called with each :class:`~agent_tokred.overthinking.StopRecord`.
        max_tokens: the generation's thinking budget (gives ``record.tokens_saved``).

    Example:
        >>> handler = OverthinkingCallbackHandler()
        >>> handler.monitor.stopped
        False
    """

    raise_error = True

    def __init__(
        self,
        *,
        question: str | None = None,
        config: OverthinkingConfig | None = None,
        tokenizer: Any = None,
        starts_in_thinking: bool = True,
        rule: Rule = "online",
        stop_rule: StopRuleConfig | None = None,
        probe: Probe | None = None,
        on_stop: Callable[[StopRecord], None] | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.records: list[StopRecord] = []
        self._on_stop = on_stop
        self.monitor = OverthinkingMonitor(
            question=question,
            config=config,
            tokenizer=tokenizer,
            starts_in_thinking=starts_in_thinking,
            rule=rule,
            stop_rule=stop_rule,
            probe=probe,
            on_stop=self._stopped,
            max_tokens=max_tokens,
        )

    def _stopped(self, record: StopRecord) -> None:
        self.records.append(record)
        if self._on_stop is not None:
            self._on_stop(record)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        message = getattr(chunk, "message", None)
        if self.monitor.feed_chunk(message if message is not None else token):
            raise self.monitor.stop_error()


class AsyncOverthinkingCallbackHandler(AsyncCallbackHandler):
    """Async twin of :class:`OverthinkingCallbackHandler` (``astream`` / ``ainvoke`` runs).

    Takes the same options; ``aprobe`` (:func:`amake_answer_probe`) is awaited at checkpoints.

    Example:
        >>> AsyncOverthinkingCallbackHandler().monitor.stopped
        False
    """

    raise_error = True

    def __init__(
        self,
        *,
        question: str | None = None,
        config: OverthinkingConfig | None = None,
        tokenizer: Any = None,
        starts_in_thinking: bool = True,
        rule: Rule = "online",
        stop_rule: StopRuleConfig | None = None,
        aprobe: Callable[[str], Awaitable[str | None]] | None = None,
        on_stop: Callable[[StopRecord], None] | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self._sync = OverthinkingCallbackHandler(
            question=question,
            config=config,
            tokenizer=tokenizer,
            starts_in_thinking=starts_in_thinking,
            rule=rule,
            stop_rule=stop_rule,
            on_stop=on_stop,
            max_tokens=max_tokens,
        )
        self.aprobe = aprobe
        self.monitor = self._sync.monitor
        self.records = self._sync.records
        self.monitor.defer_probes = aprobe is not None
        self.monitor.rule.defer_probes = aprobe is not None

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    async def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    async def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        message = getattr(chunk, "message", None)
        stop = self.monitor.feed_chunk(message if message is not None else token)
        request = self.monitor.rule.probe_request
        if not stop and request is not None and self.aprobe is not None:
            stop = self.monitor.answer_probe(await self.aprobe(request.thinking))
        if stop:
            raise self.monitor.stop_error()
