"""Callback handlers that stop a streaming generation once its reasoning is judged redundant.

Re-exported by :mod:`agent_tokred.integration.overthinking`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk

from ..overthinking.monitor import MonitorOptions, OverthinkingMonitor, StopRecord

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
        self, *, on_stop: Callable[[StopRecord], None] | None = None, **options: Unpack[MonitorOptions]
    ) -> None:
        self.records: list[StopRecord] = []
        self._on_stop = on_stop
        self.monitor = OverthinkingMonitor(on_stop=self._stopped, **options)

    def _stopped(self, record: StopRecord) -> None:
        self.records.append(record)
        if self._on_stop is not None:
            self._on_stop(record)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        # LangChain passes chunk=, run_id=, parent_run_id=, tags= as keywords.
        if _feed(self.monitor, token, kwargs.get("chunk")):
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
        aprobe: Callable[[str], Awaitable[str | None]] | None = None,
        on_stop: Callable[[StopRecord], None] | None = None,
        **options: Unpack[MonitorOptions],
    ) -> None:
        self._sync = OverthinkingCallbackHandler(on_stop=on_stop, **options)
        self.aprobe = aprobe
        self.monitor = self._sync.monitor
        self.records = self._sync.records
        self.monitor.defer_probes = aprobe is not None
        self.monitor.rule.defer_probes = aprobe is not None

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    async def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    async def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        stop = _feed(self.monitor, token, kwargs.get("chunk"))
        request = self.monitor.rule.probe_request
        if not stop and request is not None and self.aprobe is not None:
            stop = self.monitor.answer_probe(await self.aprobe(request.thinking))
        if stop:
            raise self.monitor.stop_error()


def _feed(monitor: OverthinkingMonitor, token: Any, chunk: GenerationChunk | ChatGenerationChunk | None) -> bool:
    """Feed a token callback's chunk (its message when it has one, else the token); True means stop."""
    message = getattr(chunk, "message", None)
    return monitor.feed_chunk(message if message is not None else token)
