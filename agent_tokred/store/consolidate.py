"""Consolidation of one namespace: tiers by age, then merges, planned before anything is written.

Planning is pure: :func:`select_work` decides from vectors and tier metadata alone which memories to
compress and which to merge (rounds of :func:`~agent_tokred.strategies.merge.bipartite_soft_matching`,
grouped by kind); :func:`build_ops` then turns that work and the live values into the exact writes
(live view, index records, archive). The store commits those writes atomically through its journal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..reduction import TokenChange
from ..strategies.merge import bipartite_soft_matching, fuse_texts
from ._layout import (
    MARK,
    STATE_COMPRESSED,
    STATE_MERGED,
    STATE_VERBATIM,
    Namespace,
    StoredItem,
    archive_ns,
    encode_vector,
    iso,
    merged_key,
    merged_vectors,
    vec_ns,
)
from ._passages import novelty_scores
from .index import ItemMeta, NamespaceIndex
from .policy import MergePolicy

Op = tuple[Namespace, str, dict[str, Any] | None]
DETAIL_LINE_TOKENS = 64  # lines up to this long may be kept verbatim when a merged text is compressed
CompressFn = Callable[[str, float | None, int | None], str]
CountFn = Callable[[str], int]


@dataclass(frozen=True)
class MergeCounts:
    """What :func:`build_ops` wrote: memories compressed, merged memories written, sources folded in."""

    compressed: int = 0
    merged: int = 0
    merged_sources: int = 0


@dataclass(frozen=True)
class ConsolidationReport(TokenChange):
    """What one consolidation of one namespace did.

    Attributes:
        namespace: the namespace consolidated.
        counts: what was written (:class:`MergeCounts`: memories compressed, merged memories
            written, live memories folded into them).
        items_before: live items before.
        items_after: live items after.
        tokens_before: live memory tokens before.
        tokens_after: live memory tokens after.
        seconds: wall time.
    """

    namespace: Namespace
    counts: MergeCounts = field(default_factory=MergeCounts)
    items_before: int = 0
    items_after: int = 0
    seconds: float = 0.0


@dataclass
class Work:
    """What a consolidation will change, decided from vectors and metadata only."""

    to_compress: list[ItemMeta] = field(default_factory=list)
    groups: list[tuple[list[ItemMeta], np.ndarray]] = field(default_factory=list)
    settle: list[ItemMeta] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.to_compress or self.groups or self.settle)

    def keys_to_read(self) -> list[str]:
        keys = {m.key for m in self.to_compress}
        keys.update(m.key for members, _ in self.groups for m in members)
        return sorted(keys)


@dataclass
class _Node:
    members: list[ItemMeta]
    vec: np.ndarray
    size: float
    kind: str
    new: bool


def select_work(index: NamespaceIndex, policy: MergePolicy) -> Work:
    """Decide which memories to compress and which to merge (no I/O)."""
    work = Work()
    memories = index.memories()  # newest first
    for rank, meta in enumerate(memories):
        if rank < policy.recent_items:
            continue
        if meta.state == STATE_VERBATIM and meta.tokens >= policy.min_compress_tokens:
            work.to_compress.append(meta)
    tier = memories[policy.merge_after :]
    if not any(not m.settled for m in tier):
        return work
    vectors = index.primary_vectors([m.key for m in tier])
    nodes = [
        _Node([m], vec, float(m.size), m.kind or "", not m.settled)
        for m, vec in zip(tier, vectors, strict=True)
        if vec is not None
    ]
    nodes = _merge_rounds(nodes, policy)
    for node in nodes:
        if len(node.members) > 1:
            work.groups.append((sorted(node.members, key=lambda m: (m.seq, m.key)), node.vec))
        elif node.new:
            work.settle.append(node.members[0])
    return work


def _merge_rounds(nodes: list[_Node], policy: MergePolicy) -> list[_Node]:
    first = True
    sides: np.ndarray | Literal["paired"]
    for _ in range(policy.max_rounds):
        if first and any(not n.new for n in nodes):
            # New memories (A) look for a partner among the settled ones (B) first.
            active, sides = nodes, np.array([n.new for n in nodes])
        else:
            # Then the new or grown ones among themselves, each next to its nearest neighbour.
            active, sides = [n for n in nodes if n.new], "paired"
        first = False
        if len(active) < 2:
            break
        kinds = sorted({n.kind for n in active})
        plan = bipartite_soft_matching(
            np.stack([n.vec for n in active]),
            r=policy.merges_per_round,
            threshold=policy.threshold,
            sizes=[n.size for n in active],
            groups=[kinds.index(n.kind) for n in active],
            sides=sides,
        )
        if plan.n_merged == 0:
            if isinstance(sides, str):
                break
            continue
        merged: list[_Node] = []
        for src, vec, size in zip(plan.sources, plan.embeddings, plan.sizes, strict=True):
            group = [active[i] for i in src]
            if len(group) == 1:
                merged.append(group[0])
                continue
            members = [m for n in group for m in n.members]
            merged.append(_Node(members, vec, size, group[0].kind, True))
        active_ids = {id(n) for n in active}
        nodes = [n for n in nodes if id(n) not in active_ids] + merged
    return nodes


def _archive_record(meta: ItemMeta, item: StoredItem, index: NamespaceIndex, live_text: str) -> dict[str, Any]:
    vec = index.primary_vector(meta.key)
    return {
        "value": dict(item.value),
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "seq": meta.seq,
        "kind": meta.kind,
        "tokens": meta.raw_tokens,
        "vec": encode_vector(vec) if vec is not None else None,
        "live_text": live_text,
        "passages": [encode_vector(v) for v in index.passage_vectors(meta.key)],
    }


def _with(meta: ItemMeta, **changes: Any) -> dict[str, Any]:
    rec = dict(meta.record)
    rec.update(changes)
    return rec


def merged_value(
    policy: MergePolicy, kind: str | None, text: str, sources: list[str], size: int, raw_tokens: int
) -> dict[str, Any]:
    """The live value of a merged memory: its fused text and its provenance."""
    return {
        policy.text_field: text,
        policy.kind_field: kind,
        MARK: {"state": STATE_MERGED, "sources": sources, "size": size, "raw_tokens": raw_tokens},
    }


def merged_budget(policy: MergePolicy, raw_tokens: int) -> int:
    """Tokens a merged memory may keep: ``merged_max_tokens``, or fewer when ``merged_rate`` is set
    (that share of what it stands for, never below ``min_compress_tokens``)."""
    if policy.merged_rate is None:
        return policy.merged_max_tokens
    share = math.ceil(policy.merged_rate * raw_tokens)
    return min(policy.merged_max_tokens, max(policy.min_compress_tokens, share))


def fuse_to_budget(
    texts: list[str], policy: MergePolicy, count: CountFn, compress: CompressFn, raw_tokens: int, kept: int = 0
) -> str:
    """Fuse texts (distinct lines once, repeated shapes ``keep_similar_lines`` times) within
    :func:`merged_budget`.

    The first ``kept`` texts are an existing merged memory's text, already within an earlier
    budget: when the fusion is over budget, only the other texts are compressed, into the room
    left, so a memory that keeps growing is not compressed again and again (losses would compound).
    What is compressed keeps its most novel short lines whole (:func:`compress_keeping_details`).
    """
    fused = fuse_texts(texts, keep_similar=policy.keep_similar_lines)
    budget = merged_budget(policy, raw_tokens)
    if count(fused) <= budget:
        return fused
    if 0 < kept < len(texts):
        base = fuse_texts(texts[:kept], keep_similar=policy.keep_similar_lines)
        room = budget - count(base) - 1
        if room >= 32:
            seen = set(base.splitlines())
            new = fuse_texts(texts[kept:], keep_similar=policy.keep_similar_lines)
            new = "\n".join(line for line in new.splitlines() if line not in seen)
            extra = compress_keeping_details(new, room, count, compress) if count(new) > room else new
            return f"{base}\n{extra}" if extra else base
    return compress_keeping_details(fused, budget, count, compress)


def compress_keeping_details(text: str, budget: int, count: CountFn, compress: CompressFn) -> str:
    """Compress ``text`` to ``budget`` tokens, keeping its most novel short lines verbatim.

    Short lines (at most ``DETAIL_LINE_TOKENS``) ranked by lexical novelty among the text's lines
    (a note amid repeated tool outputs, an error among log lines) are kept whole, in their order,
    within half the budget; the engine compresses the rest into the room left. Falls back to
    compressing everything when nothing qualifies or the result would not fit.

    Example:
        >>> words = lambda t: len(t.split())
        >>> first = lambda t, rate, n: " ".join(t.split()[:n])
        >>> text = "\\n".join(["data: " + "1, " * 60, "note: the code is 42", "data: " + "2, " * 60])
        >>> compress_keeping_details(text, 40, words, first).splitlines()[0]
        'note: the code is 42'
    """
    lines = text.splitlines()
    sizes = [count(line) for line in lines]
    novelty = novelty_scores(lines)
    short = sorted((i for i, n in enumerate(sizes) if n <= DETAIL_LINE_TOKENS), key=lambda i: -novelty[i])
    keep: set[int] = set()
    used = 0
    for i in short:
        if novelty[i] > 0 and used + sizes[i] + 1 <= budget // 2:
            keep.add(i)
            used += sizes[i] + 1
    head = "\n".join(lines[i] for i in sorted(keep))
    room = budget - count(head) - 1
    if not keep or room < 32:
        return compress(text, None, budget)
    rest = "\n".join(line for i, line in enumerate(lines) if i not in keep)
    tail = compress(rest, None, room) if count(rest) > room else rest
    out = f"{head}\n{tail}" if tail else head
    return out if count(out) <= budget else compress(text, None, budget)


def build_ops(
    ns: Namespace,
    work: Work,
    live: Mapping[str, StoredItem],
    index: NamespaceIndex,
    policy: MergePolicy,
    count: CountFn,
    compress: CompressFn,
) -> tuple[list[Op], MergeCounts]:
    """The writes that carry out ``work`` (later writes to the same key win), and counts.

    ``live`` holds the live items of the work's keys.
    """
    ops: dict[tuple[Namespace, str], dict[str, Any] | None] = {}
    live_text: dict[str, str] = {}
    archived: set[str] = set()
    compressed = merged = merged_sources = 0
    tf = policy.text_field
    for meta in work.to_compress:
        item = live.get(meta.key)
        if item is None or not isinstance(item.value.get(tf), str):
            continue  # deleted meanwhile, or no longer a memory: nothing to compress
        text = item.value[tf]
        short = compress(text, policy.compress_rate, None)
        tokens = count(short)
        if tokens >= meta.tokens:
            short, tokens = text, meta.tokens
        live_text[meta.key] = short
        ops[(archive_ns(ns), meta.key)] = _archive_record(meta, item, index, short)
        archived.add(meta.key)
        value = {k: v for k, v in item.value.items()}
        value[tf] = short
        value[MARK] = {"state": STATE_COMPRESSED, "sources": [meta.key], "size": 1}
        value[MARK]["raw_tokens"] = meta.raw_tokens
        ops[(ns, meta.key)] = value
        ops[(vec_ns(ns), meta.key)] = _with(meta, state=STATE_COMPRESSED, tokens=tokens)
        compressed += 1
    for meta in work.settle:
        rec = ops.get((vec_ns(ns), meta.key)) or _with(meta)
        rec["settled"] = True
        ops[(vec_ns(ns), meta.key)] = rec
    for members, vec in work.groups:
        present = [m for m in members if m.key in live]
        if len(present) < 2:
            continue
        texts: list[str] = []
        sources: list[str] = []
        # The largest merged member's text leads (kept within its budget); the rest is added.
        lead = max((m for m in present if m.state == STATE_MERGED), key=lambda m: m.size, default=None)
        ordered = ([lead] if lead is not None else []) + [m for m in present if m is not lead]
        for m in ordered:
            item = live[m.key]
            text = live_text.get(m.key, item.value.get(tf))
            texts.append(text if isinstance(text, str) else "")
            if m.state == STATE_MERGED:
                sources.extend(m.sources)
                continue
            sources.append(m.key)
            if m.key not in archived and m.state != STATE_COMPRESSED:
                ops[(archive_ns(ns), m.key)] = _archive_record(m, item, index, texts[-1])
        kind = present[0].kind
        size = sum(m.size for m in present)
        raw = sum(m.raw_tokens for m in present)
        text = fuse_to_budget(texts, policy, count, compress, raw, kept=1 if lead is not None else 0)
        key = merged_key(ns, sources)
        for m in present:
            ops[(ns, m.key)] = None
            ops[(vec_ns(ns), m.key)] = None
        ops[(ns, key)] = merged_value(policy, kind, text, sources, size, raw)
        wholes: list[np.ndarray] = []
        passages: list[np.ndarray] = []
        for m in ordered:
            own, deep = index.source_vectors(m.key)
            wholes += own
            passages += deep
        ops[(vec_ns(ns), key)] = {
            "seq": max(m.seq for m in present),
            "kind": kind,
            "state": STATE_MERGED,
            "settled": True,
            "tokens": count(text),
            "raw_tokens": raw,
            "size": size,
            "sources": sources,
            "vecs": merged_vectors(tf, vec, wholes, passages, max_passages=policy.max_merged_passages),
        }
        merged += 1
        merged_sources += len(present)
    return [(n, k, v) for (n, k), v in ops.items()], MergeCounts(compressed, merged, merged_sources)
