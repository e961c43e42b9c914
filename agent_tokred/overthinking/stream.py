"""Stream wrappers: stop consuming a model's stream once its reasoning is judged redundant.

``monitor_stream(model.stream(...))`` yields the chunks as they come and stops (closing the
producer) right after the chunk that made the reasoning redundant; the wrapper then holds what was
produced. Chunks may be strings, content-block mappings or LangChain message chunks (duck-typed,
nothing is imported from LangChain here).

Example:
    >>> parts = ["He runs 3 * 3 = 9 sprints. So 9 * 60 = 540 meters.\\n\\nSo the total is 540 meters a week.\\n\\n", "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, that's correct: 540 meters.\\n\\n", "So the answer is 540.\\n\\n", "Wait, let me verify the whole thing once more from the start.", "never read"]
    >>> s = monitor_stream(parts, question="James runs 3 sprints 3 times a week, 60 meters each. How many meters a week?")
    >>> _ = list(s); s.stopped, s.stable_answer, s.text.endswith("from the start.")
    (True, '540', True)
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .detect import OverthinkingResult
from .monitor import MonitorOptions, OverthinkingMonitor, StopRecord

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: An async probe: the thinking so far -> the model's answer if it concluded now.
AsyncProbe = Callable[[str], Awaitable["str | None"]]


class _StreamView:
    monitor: OverthinkingMonitor

    @property
    def stopped(self) -> bool:
        """True when the monitor stopped the stream."""
        return self.monitor.stopped

    @property
    def text(self) -> str:
        """Everything produced (consumed) so far."""
        return self.monitor.produced

    @property
    def kept_reasoning(self) -> str:
        """The thinking up to the cut (all thinking when not stopped)."""
        return self.monitor.kept_reasoning

    @property
    def stable_answer(self) -> str | None:
        """The settled trial answer at the stop."""
        return self.monitor.stable_answer

    @property
    def result(self) -> OverthinkingResult | None:
        """The detector's result at the stop."""
        return self.monitor.result

    @property
    def record(self) -> StopRecord | None:
        """What the stop kept and saved (``None`` when not stopped)."""
        return self.monitor.record


class MonitoredStream(_StreamView, Iterator[Any]):
    """Yields a stream's chunks until the reasoning is judged redundant, then stops consuming."""

    def __init__(self, chunks: Iterable[Any], monitor: OverthinkingMonitor) -> None:
        self._it = iter(chunks)
        self.monitor = monitor
        self._done = False

    def __iter__(self) -> MonitoredStream:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            chunk = next(self._it)
        except StopIteration:
            self._done = True
            raise
        if self.monitor.feed_chunk(chunk):
            self._done = True
            close = getattr(self._it, "close", None)
            if callable(close):
                close()  # ends the producer (a model's stream generator) now
        return chunk


class AsyncMonitoredStream(_StreamView, AsyncIterator[Any]):
    """Async twin of :class:`MonitoredStream`."""

    def __init__(
        self, chunks: AsyncIterable[Any], monitor: OverthinkingMonitor, aprobe: AsyncProbe | None = None
    ) -> None:
        self._it = chunks.__aiter__()
        self.monitor = monitor
        self.aprobe = aprobe
        self._done = False

    def __aiter__(self) -> AsyncMonitoredStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        stop = self.monitor.feed_chunk(chunk)
        request = self.monitor.rule.probe_request
        if not stop and request is not None and self.aprobe is not None:
            stop = self.monitor.answer_probe(await self.aprobe(request.thinking))
        if stop:
            self._done = True
            aclose = getattr(self._it, "aclose", None)
            if callable(aclose):
                await aclose()
        return chunk


def monitor_stream(
    chunks: Iterable[Any], *, monitor: OverthinkingMonitor | None = None, **options: Unpack[MonitorOptions]
) -> MonitoredStream:
    """Wrap a stream (``model.stream(...)``, strings, content blocks) to stop redundant reasoning.

    Args:
        chunks: the stream.
        monitor: a configured :class:`OverthinkingMonitor` (rule, probe, ``on_stop`` callback,
            thinking budget).
        **options: without ``monitor``, the options of a new one (:class:`MonitorOptions`:
            ``question`` helps the stop rule, ``config``, ``tokenizer``, ``starts_in_thinking``, ...).
    """
    return MonitoredStream(chunks, monitor or OverthinkingMonitor(**options))


def amonitor_stream(
    chunks: AsyncIterable[Any],
    *,
    monitor: OverthinkingMonitor | None = None,
    aprobe: AsyncProbe | None = None,
    **options: Unpack[MonitorOptions],
) -> AsyncMonitoredStream:
    """Async twin of :func:`monitor_stream` (``model.astream(...)``).

    ``aprobe`` is awaited at checkpoints (the monitor defers its probes to it).
    """
    mon = monitor or OverthinkingMonitor(**options)
    if aprobe is not None:
        mon.defer_probes = True
        mon.rule.defer_probes = True
    return AsyncMonitoredStream(chunks, mon, aprobe)
