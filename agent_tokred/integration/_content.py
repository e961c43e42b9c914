"""Message content helpers for LangChain messages: markers, text, tallies, content compression.

The logic lives in the engine (:mod:`agent_tokred.messages`); this module reads and writes the
agent-tokred marker of a LangChain message and re-exports the rest for the adapters.

Example:
    >>> from langchain_core.messages import ToolMessage
    >>> marker(ToolMessage("x", tool_call_id="c1")) is None
    True
"""

from __future__ import annotations

from ..messages.fit import compress_blocks, compress_text, scratch_compressor
from ..messages.tally import MessageTally
from ..messages.unit import MARKER, block_text, content_text, original_of
from ._units import marker, with_marker

__all__ = [
    "MARKER",
    "MessageTally",
    "block_text",
    "compress_blocks",
    "compress_text",
    "content_text",
    "marker",
    "original_of",
    "scratch_compressor",
    "with_marker",
]
