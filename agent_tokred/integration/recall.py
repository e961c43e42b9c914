"""The ``recall`` tool: the agent reads back an original that agent-tokred shortened or removed.

The tool is bound to one archive namespace (or resolves it from the tool runtime: the run's store
and thread/user), so a handle from another conversation is not readable. Its results carry the
``{"agent_tokred": {"action": "recall"}}`` marker and are never compressed again.

Example:
    >>> from agent_tokred import InMemoryArchive
    >>> arc = InMemoryArchive()
    >>> h = arc.put("the exact original")
    >>> tool = make_recall_tool(arc)
    >>> tool.invoke({"handle": h})
    'the exact original'
"""

from collections.abc import Callable
from typing import Any, cast

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime

from ..archive import Archive
from ._content import MARKER
from .archive import StoreArchive, archive_for_runtime
from .policy import RECALL_TOOL_NAME

ArchiveResolver = Callable[[Any], Archive]

_DESCRIPTION = (
    "Read back the full original of content that was shortened or removed to save context. "
    "Pass the handle shown in the note (it starts with 'tkr-'). Very long originals come in pages: "
    "pass `offset` to read on from where the previous page ended."
)
def read_page(text: str | None, handle: str, offset: int, page_chars: int, tool_name: str) -> str:
    """The recall answer for ``text`` (``None``: unknown handle), paged at ``page_chars``."""
    if text is None:
        return f"No original is archived under handle {handle!r} in this conversation."
    if offset < 0 or (offset > 0 and offset >= len(text)):
        return f"offset {offset} is outside the original ({len(text)} characters)."
    if offset == 0 and len(text) <= page_chars:
        return text
    page = text[offset : offset + page_chars]
    end = offset + len(page)
    more = f'; call {tool_name}("{handle}", offset={end}) for the rest' if end < len(text) else ""
    return f"{page}\n[recall: characters {offset}-{end} of {len(text)}{more}]"


def make_recall_tool(
    archive: Archive | ArchiveResolver | None = None,
    *,
    name: str = RECALL_TOOL_NAME,
    scope: str = "thread",
    page_chars: int = 40_000,
) -> BaseTool:
    """Build the recall tool.

    Args:
        archive: the archive to read (bound namespace), a callable ``runtime -> Archive``, or
            ``None`` to use the run's store (or the process default) in the ``scope`` namespace.
        name: the tool name (keep it in the policy's ``recall_tool_name``).
        scope: ``"thread"``, ``"user"`` or ``"global"`` when ``archive`` is ``None``.
        page_chars: originals longer than this are returned in pages.

    Returns:
        A LangChain tool ``name(handle, offset=0)``; sync and async.
    """

    def resolve(runtime: Any) -> Archive:
        if archive is None:
            return archive_for_runtime(runtime, scope)
        if callable(archive) and not hasattr(archive, "get"):
            return cast(ArchiveResolver, archive)(runtime)
        return cast(Archive, archive)

    def finish(handle: str, offset: int, text: str | None, runtime: ToolRuntime | None) -> str | ToolMessage:
        content = read_page(text, handle, offset, page_chars, name)
        call_id = getattr(runtime, "tool_call_id", None)
        if not call_id:
            return content
        return ToolMessage(content=content, tool_call_id=call_id, name=name,
                           response_metadata={MARKER: {"action": "recall", "handle": handle}})

    def recall(handle: str, offset: int = 0, runtime: ToolRuntime = None) -> str | ToolMessage:  # type: ignore[assignment]
        handle = handle.strip().strip("\"'")
        return finish(handle, offset, resolve(runtime).get(handle), runtime)

    async def arecall(handle: str, offset: int = 0, runtime: ToolRuntime = None) -> str | ToolMessage:  # type: ignore[assignment]
        handle = handle.strip().strip("\"'")
        arc = resolve(runtime)
        text = await arc.aget(handle) if isinstance(arc, StoreArchive) else arc.get(handle)
        return finish(handle, offset, text, runtime)

    recall.__doc__ = _DESCRIPTION
    return StructuredTool.from_function(func=recall, coroutine=arecall, name=name, description=_DESCRIPTION)
