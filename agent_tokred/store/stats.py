"""The size of a merging store's live view: what :meth:`MergingStore.stats` returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryStats:
    """Size of the live view under a namespace prefix.

    Attributes:
        namespaces: namespaces with items.
        items: live items (memories and plain items).
        memories: live memories (verbatim, compressed or merged).
        compressed: compressed memories.
        merged: merged memories.
        merged_sources: original memories inside merged ones.
        live_tokens: tokens of the live memory texts (what search can return).
        raw_tokens: tokens of the original memories they stand for.
        vectors: index vectors searched per query (whole texts, passages, merged sources').
    """

    namespaces: int
    items: int
    memories: int
    compressed: int
    merged: int
    merged_sources: int
    live_tokens: int
    raw_tokens: int
    vectors: int = 0

    @property
    def ratio(self) -> float:
        """``live_tokens / raw_tokens`` (1.0 when empty)."""
        return self.live_tokens / self.raw_tokens if self.raw_tokens else 1.0
