"""A recording middleware: what each model call saw, and every tool output before agent-tokred touched it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Recorder:
    """Wraps an innermost ``AgentMiddleware`` (put it last in ``middleware=[...]``).

    Being innermost, its ``wrap_model_call`` sees the exact messages the model receives (after every
    reduction) and the saved state; its ``wrap_tool_call`` sees each tool's raw result before the
    outer middleware compresses it. ``raw_source``, when given, supplies the raw text instead (for
    tools that reduce their own output, such as a retriever with a document compressor).
    """

    def __init__(self, raw_source: Callable[[], str | None] | None = None) -> None:
        from langchain.agents.middleware import AgentMiddleware

        recorder = self

        class _Recording(AgentMiddleware):
            name = "demo_recorder"

            def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
                recorder.views.append(list(request.messages))
                recorder.states.append(list(request.state.get("messages", ())))
                return handler(request)

            def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
                result = handler(request)
                content = raw_source() if raw_source is not None else getattr(result, "content", None)
                if isinstance(content, str):
                    recorder.raw_outputs[request.tool_call["id"]] = content
                return result

        self.middleware = _Recording()
        self.views: list[list[Any]] = []
        self.states: list[list[Any]] = []
        self.raw_outputs: dict[str, str] = {}

    def raw_view(self, i: int) -> list[Any]:
        """What model call ``i`` would have seen without agent-tokred: its saved state, tool outputs whole."""
        out = []
        for m in self.states[i]:
            if getattr(m, "type", "") == "tool" and m.tool_call_id in self.raw_outputs:
                m = m.model_copy(update={"content": self.raw_outputs[m.tool_call_id]})
            out.append(m)
        return out

    def step_of_tool_call(self, tool_call_id: str) -> int | None:
        """The first model call whose view holds this tool call's result."""
        return next((i for i, v in enumerate(self.views)
                     if any(getattr(m, "tool_call_id", None) == tool_call_id for m in v)), None)
