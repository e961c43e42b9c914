"""How a merging store consolidates: tiers by age, the similarity gate, when to run.

A *memory* is an item whose value holds a string under ``text_field`` (default ``"text"``); only
memories are tiered, compressed and merged. Other items (profiles, settings) are stored and searched
as they are. Ages are counted in memories: the newest ``recent_items`` memories of a namespace stay
verbatim, the next ``compress_items`` are compressed by the engine, older ones are merged with
similar memories of the same kind.

Example:
    >>> from agent_tokred.store.policy import MergePolicy
    >>> MergePolicy(recent_items=8, threshold=0.9).merge_after
    72
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidInputError

ConsolidationMode = Literal["write", "batched", "manual"]


class MergePolicy(BaseModel):
    """Validated settings of :class:`~agent_tokred.store.MergingStore`.

    Attributes:
        threshold: cosine similarity at which two memories of the same namespace and kind merge.
        recent_items: newest memories per namespace kept verbatim.
        compress_items: memories after the recent ones that are compressed but not merged.
        compress_rate: share of tokens the engine keeps when compressing one memory.
        min_compress_tokens: memories shorter than this are never compressed (facts, short turns).
        merged_max_tokens: most tokens a merged memory keeps (its fused text is compressed to it).
        merged_rate: also hold a merged memory to this share of the tokens it stands for (never
            below ``min_compress_tokens``); ``None``: fusing alone (repeated lines and shapes
            counted once) reduces it, up to ``merged_max_tokens``.
        keep_similar_lines: when fusing, lines of one shape (same text but numbers and quoted
            values) are kept this many times, then counted; ``None`` keeps every distinct line.
        mode: ``"write"`` consolidates the namespaces a write touched, right after it;
            ``"batched"`` does so once ``batch_every`` writes reached a namespace; ``"manual"`` only
            on :meth:`~agent_tokred.store.MergingStore.consolidate`.
        batch_every: writes to a namespace between two consolidations in ``"batched"`` mode.
        max_rounds: bipartite matching rounds per consolidation (each can halve a tier).
        merges_per_round: cap on merges per round (ToMe's ``r``); ``None`` for no cap.
        passage_tokens: size of a passage of a long memory, in tokens; memories over twice this
            get passage vectors besides their whole-text one, so search sees inside them (an
            embedding model reads only a text's first few hundred word pieces).
        max_passages: passage vectors per memory (the head, then the most novel passages);
            ``0`` turns passages off. Each costs up to ``passage_tokens`` of embedding at write.
        max_merged_passages: passage vectors a merged memory keeps from its sources (the least
            alike first); its sources' whole-text vectors are always kept.
        text_field: top-level field holding a memory's text.
        kind_field: top-level field naming a memory's kind (missing: ``"memory"``).
        max_value_bytes: largest JSON-encoded value accepted by ``put``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(default=0.8, ge=-1.0, le=1.0)
    recent_items: int = Field(default=32, ge=0)
    compress_items: int = Field(default=64, ge=0)
    compress_rate: float = Field(default=0.2, gt=0.0, le=1.0)
    min_compress_tokens: int = Field(default=96, ge=1)
    merged_max_tokens: int = Field(default=768, ge=16)
    merged_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    keep_similar_lines: int | None = Field(default=2, ge=1)
    mode: ConsolidationMode = "write"
    batch_every: int = Field(default=64, ge=1)
    max_rounds: int = Field(default=3, ge=1, le=32)
    merges_per_round: int | None = Field(default=None, ge=1)
    passage_tokens: int = Field(default=96, ge=16)
    max_passages: int = Field(default=8, ge=0, le=64)
    max_merged_passages: int = Field(default=64, ge=0)
    text_field: str = Field(default="text", min_length=1)
    kind_field: str = Field(default="kind", min_length=1)
    max_value_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @property
    def merge_after(self) -> int:
        """Age (in newer memories) from which a memory may be merged."""
        return self.recent_items + self.compress_items


def make_policy(policy: MergePolicy | dict[str, object] | None = None, **overrides: object) -> MergePolicy:
    """Build a policy from a policy, a dict or keyword overrides.

    Raises:
        InvalidInputError: an unknown field or a value out of range (the message names both).
    """
    if isinstance(policy, MergePolicy) and not overrides:
        return policy
    base: dict[str, object] = {}
    if isinstance(policy, MergePolicy):
        base = policy.model_dump()
    elif isinstance(policy, dict):
        base = dict(policy)
    elif policy is not None:
        raise InvalidInputError(f"policy must be a MergePolicy, a dict or None, got {type(policy).__name__}")
    base.update(overrides)
    try:
        return MergePolicy(**base)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(
            f"invalid merge policy: {problems}. Valid fields: {', '.join(MergePolicy.model_fields)}"
        ) from None
