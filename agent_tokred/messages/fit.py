"""Compressing one message's content to an exact token target: text, or the text blocks of a list.

Example:
    >>> from agent_tokred import Compressor
    >>> red = compress_text(Compressor(criterion="lexical"), "word " * 200, 20, None)
    >>> red.tokens_after <= 20
    True
"""

from __future__ import annotations

import copy
from typing import Any

from ..archive import Archive
from ..budget import make_budget
from ..compressor import Compressor
from ..errors import InvalidInputError
from ..reduction import Reduction
from .tally import MessageTally
from .unit import block_text


def compress_text(
    compressor: Compressor, text: str, target: int, query: str | None
) -> Reduction:
    """Compress one text to at most ``target`` tokens (``target >= 1``).

    A query that is not text (binary junk pasted into a request) conditions nothing: the text is
    then compressed without it rather than left over budget.
    """
    budget = make_budget(target_tokens=max(1, target))
    try:
        return compressor.compress(text, query=query, budget=budget)
    except InvalidInputError:
        if query is None:
            raise
        return compressor.compress(text, query=None, budget=budget)


def compress_blocks(
    compressor: Compressor, blocks: list[Any], target: int, query: str | None, tally: MessageTally
) -> tuple[list[Any], str]:
    """Compress the text blocks of a list content to ``target`` tokens in total, sharing it by size.

    Non-text blocks (images, tool_use, reasoning) are kept unchanged and in place.
    """
    sizes = [tally.text(t) if (t := block_text(b)) is not None else 0 for b in blocks]
    total = sum(sizes)
    out: list[Any] = list(blocks)
    criterion = ""
    if total <= target:
        return out, criterion
    # Newline joins between blocks are not sent, so per-block shares add up to the target.
    shares = [size * target // total for size in sizes]
    for i, (block, size, share) in enumerate(zip(blocks, sizes, shares)):
        text = block_text(block)
        if text is None or size <= share:
            continue
        if share < 1:
            new_text = ""
        else:
            red = compress_text(compressor, text, share, query)
            new_text, criterion = red.text, red.criterion
        out[i] = new_text if isinstance(block, str) else {**block, "text": new_text}
    # Drop blocks emptied entirely (providers reject empty text blocks).
    return [b for b in out if block_text(b) != ""], criterion


class _ScratchArchive:
    """Lets the compressor recognise the library's outputs without storing a second original copy."""

    def __init__(self, real: Archive) -> None:
        self._real = real

    def put(self, original: str, *, output: str | None = None) -> str:
        return ""

    def get(self, handle: str) -> str | None:
        return None

    def is_output(self, text: str) -> bool:
        return self._real.is_output(text)


def scratch_compressor(compressor: Compressor, archive: Archive) -> Compressor:
    """A shallow copy of ``compressor`` that archives nothing itself (the caller archives in ``archive``)."""
    out = copy.copy(compressor)
    out.archive = _ScratchArchive(archive)
    return out
