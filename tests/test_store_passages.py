"""Passage vectors of long memories: search sees details deep inside them, through every tier.

Offline and deterministic: a *window* embedding (a set of hashed words, reading only a text's first
``WINDOW`` words, as MiniLM reads only its first 256 word pieces) makes "invisible after the
window" exact. One test, marked ``model``, checks the same with the shipped MiniLM.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from agent_tokred.integration.store import MergingStore
from agent_tokred.store._layout import archive_ns, decode_vector, merged_vectors
from agent_tokred.store._passages import memory_passages, select_passages, split_passages
from agent_tokred.store.consolidate import compress_keeping_details

WINDOW = 64
DIMS = 1024
NS = ("agent", "history")
FACT = "note: the vault code nimbus is 7781"
QUERY = "vault code nimbus"


def window_embed(texts: list[str]) -> np.ndarray:
    """A set of hashed words of the first ``WINDOW`` words (digits ignored), unit length."""
    out = np.zeros((len(texts), DIMS), dtype=np.float32)
    for i, text in enumerate(texts):
        words = re.findall(r"[a-z]+", text.lower())[:WINDOW] or ["empty"]
        for w in set(words):
            out[i, int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little") % DIMS] = 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def keep_first_half(text: str, rate: float | None, target: int | None) -> str:
    """A tiny deterministic 'engine': keep the first half of the lines (a deep fact is dropped)."""
    lines = text.splitlines()
    return "\n".join(lines[: max(1, len(lines) // 2)])


def table(topic: str, rows: int = 200, fact_at: int | None = None) -> str:
    """A long tool output of one shape; ``fact_at``: the row the fact is planted after."""
    lines = [f"tool {topic} result:"]
    for i in range(rows):
        lines.append(f"row {topic}: {i}, {i * 7 % 97}, {i * 13 % 89}")
        if i == fact_at:
            lines.append(FACT)
    return "\n".join(lines)


DISTRACTORS = {
    "d1": "the door code is unknown",
    "d2": "vault maintenance is scheduled for friday",
    "d3": "code review notes from monday",
}


def make_store(inner: BaseStore | None = None, **overrides: Any) -> MergingStore:
    policy: dict[str, Any] = {
        "recent_items": 0,
        "compress_items": 1,
        "min_compress_tokens": 50,
        "threshold": 0.9,
        "mode": "manual",
    }
    policy.update(overrides)
    return MergingStore(inner, embed=window_embed, compressor=keep_first_half, **policy)


def top_stands_for(store: MergingStore, key: str, limit: int = 1) -> bool:
    """A top-``limit`` result of the query is ``key`` or a merged memory holding it."""
    hits = store.search(NS, query=QUERY, limit=limit)
    return any(key in (h.value.get("_tokred") or {}).get("sources", [h.key]) for h in hits)


def passage_paths(store: MergingStore, key: str) -> list[str]:
    return [p for p in store._loaded(NS).meta[key].paths if p.startswith(("psg.", "src.p"))]


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStore]:
    if request.param == "memory":
        yield InMemoryStore()
    else:
        with SqliteStore.from_conn_string(str(tmp_path / "p.sqlite")) as store:
            store.setup()
            yield store


# -- splitting and choosing passages -----------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet=string.ascii_letters + " ,.;\n[]{}0123456789", max_size=3000), size=st.integers(1, 300))
def test_passages_fit_their_size_and_cover_the_text(text: str, size: int) -> None:
    passages = split_passages(text, size)
    assert all(0 < len(p) <= size for p in passages)
    assert re.sub(r"\s", "", "".join(passages)) == re.sub(r"\s", "", text)  # nothing lost, order kept


def test_selection_keeps_the_head_then_the_most_novel_passages() -> None:
    passages = ["tool header", *[f"row {i}, {i}, {i}" for i in range(30)], "a zebra crossed here", "row 5, 5"]
    chosen = select_passages(passages, 3)
    assert chosen[0] == "tool header" and "a zebra crossed here" in chosen and len(chosen) == 3
    assert select_passages(passages, 0) == []


def test_short_memories_and_a_zero_cap_get_no_passages() -> None:
    text = table("alpha", fact_at=160)
    assert memory_passages(text, tokens=150, passage_tokens=96, max_passages=8) == []
    assert memory_passages(text, tokens=3000, passage_tokens=96, max_passages=0) == []
    assert len(memory_passages(text, tokens=3000, passage_tokens=96, max_passages=8)) == 8


# -- search with and without passages -----------------------------------------------------------------
@pytest.mark.parametrize("max_passages", [8, 0])
def test_a_fact_deep_in_a_long_memory_is_found_only_with_passages(max_passages: int) -> None:
    store = make_store(max_passages=max_passages)
    store.put(NS, "long", {"text": table("alpha", fact_at=160)})
    for key, text in DISTRACTORS.items():
        store.put(NS, key, {"text": text})
    assert top_stands_for(store, "long", limit=3) == (max_passages > 0)
    if max_passages:
        assert top_stands_for(store, "long", limit=1)
        assert store.stats(NS).vectors == 1 + max_passages + len(DISTRACTORS)  # the cap holds


def test_the_fact_survives_compression_merging_and_detaching(inner: BaseStore) -> None:
    store = make_store(inner)
    store.put(NS, "long", {"text": table("alpha", fact_at=160)})
    store.put(NS, "x", {"text": "an unrelated short note"})
    store.consolidate(NS)
    live = store.search(NS, limit=10)
    compressed = next(h for h in live if h.key == "long")
    assert compressed.value["_tokred"]["state"] == "compressed" and FACT not in compressed.value["text"]
    assert top_stands_for(store, "long")  # found by the original's passages, not the live text

    store.put(NS, "twin", {"text": table("alpha")})
    store.put(NS, "y", {"text": "another unrelated short note"})
    store.consolidate(NS)
    merged = [h for h in store.search(NS, limit=10) if h.key.startswith("tokred:m:")]
    assert len(merged) == 1 and merged[0].value["_tokred"]["sources"] == ["long", "twin"]
    assert top_stands_for(store, "long")
    assert any(FACT in it.value["text"] for it in store.expand(NS, merged[0].key))

    for key, text in DISTRACTORS.items():  # three sources: deleting one re-fuses the other two
        store.put(NS, key, {"text": text})
    store.put(NS, "third", {"text": table("alpha")})
    store.consolidate(NS)
    store.delete(NS, "twin")
    assert top_stands_for(store, "long")
    store.delete(NS, "third")  # the last two: the survivor comes back verbatim, passages and all
    assert store.get(NS, "long") is not None and store._loaded(NS).meta["long"].state == "verbatim"
    assert len(passage_paths(store, "long")) == 8
    assert top_stands_for(store, "long")


def test_reload_from_sqlite_keeps_passages(tmp_path: Path) -> None:
    path = str(tmp_path / "m.sqlite")
    with SqliteStore.from_conn_string(path) as inner:
        inner.setup()
        store = make_store(inner)
        for key, text in {"long": table("alpha", fact_at=160), "twin": table("alpha"), "z": "short z"}.items():
            store.put(NS, key, {"text": text})
        store.consolidate(NS)
        assert store.stats(NS).merged == 1 and top_stands_for(store, "long")
        before = store.stats(NS).vectors
        store.refresh()
        assert top_stands_for(store, "long") and store.stats(NS).vectors == before
    with SqliteStore.from_conn_string(path) as inner:
        again = make_store(inner)
        assert top_stands_for(again, "long") and again.stats(NS).vectors == before


def test_old_records_without_passages_still_load_and_merge() -> None:
    inner = InMemoryStore()
    old = make_store(inner, max_passages=0)
    for key, text in {"long": table("alpha", fact_at=160), "twin": table("alpha"), "z": "short z"}.items():
        old.put(NS, key, {"text": text})
    old.consolidate(NS)
    for item in inner.search(archive_ns(NS), limit=100):  # as written before passages existed
        inner.put(archive_ns(NS), item.key, {k: v for k, v in item.value.items() if k != "passages"})
    new = make_store(inner)
    assert new.stats(NS).merged == 1 and new.stats(NS).vectors == old.stats(NS).vectors
    new.put(NS, "late", {"text": table("alpha", fact_at=10)})  # new memories get passages...
    new.delete(NS, "twin")  # ...and old sources come back without
    assert passage_paths(new, "long") == [] and len(passage_paths(new, "late")) == 8


@pytest.mark.parametrize("cap", [1, 64])
def test_merged_passages_are_capped_and_the_odd_one_out_is_kept(cap: int) -> None:
    store = make_store(max_merged_passages=cap, compress_items=0)
    for s in range(4):  # one shape (they merge); only s2 holds the fact
        store.put(NS, f"s{s}", {"text": table("alpha", fact_at=160 if s == 2 else None)})
    for key, text in DISTRACTORS.items():
        store.put(NS, key, {"text": text})
    store.consolidate(NS)
    [merged] = [m for m in store._loaded(NS).meta.values() if m.state == "merged"]
    assert merged.size == 4 and 1 <= len(passage_paths(store, merged.key)) <= cap  # the cap holds
    assert top_stands_for(store, "s2")  # the fact's passage is the least like the rest: kept first


def test_merged_vectors_keep_the_least_alike_passages_first() -> None:
    rng = np.random.default_rng(0)
    base = np.eye(16, dtype=np.float32)[0]
    alike = [
        base + 0.3 * rng.normal(size=16).astype(np.float32) * np.eye(16, dtype=np.float32)[1 + i % 3] for i in range(12)
    ]
    odd = np.eye(16, dtype=np.float32)[9]
    vecs = merged_vectors("text", base, [base], [*alike, odd], max_passages=2)
    kept = [decode_vector(v) for p, v in vecs.items() if p.startswith("src.p")]
    assert len(kept) == 2 and any(np.allclose(k, odd) for k in kept)
    assert len(merged_vectors("text", base, [base], [base.copy() for _ in range(5)])) == 2  # duplicates: none


def words(text: str) -> int:
    return len(text.split())


def keep_first_words(text: str, rate: float | None, target: int | None) -> str:
    return " ".join(text.split()[: target or 1])


@pytest.mark.parametrize("budget", [40, 80, 400])
def test_compressed_merged_text_keeps_a_novel_short_line_within_budget(budget: int) -> None:
    blob = " ".join(f"{i}, {i * 3}" for i in range(200))
    lines = [
        f"tool watchlist result: [{blob}]",
        "note: the vault code nimbus is 7781",
        f"tool watchlist result: [{blob}]",
    ]
    out = compress_keeping_details("\n".join(lines), budget, words, keep_first_words)
    assert words(out) <= budget and FACT in out  # a plain compression would cut it: it comes after a blob
    assert FACT not in keep_first_words("\n".join(lines), None, budget)


def test_langgraph_index_semantics_get_no_passages() -> None:
    store = MergingStore(index={"embed": window_embed, "dims": DIMS, "fields": ["text"]})
    store.put(NS, "long", {"text": table("alpha", fact_at=160)})
    plain = MergingStore(embed=window_embed)
    plain.put(NS, "long", {"text": table("alpha", fact_at=160)}, index=["text"])
    plain.put(NS, "blob", {"data": table("alpha", fact_at=160)})
    assert store.stats(NS).vectors == 1 and plain.stats(NS).vectors == 2


def test_recovery_of_an_interrupted_merge_keeps_passages() -> None:
    from tests.test_store import FlakyStore

    inner = FlakyStore()
    store = make_store(inner)
    for key, text in {"long": table("alpha", fact_at=160), "twin": table("alpha"), "z": "short z"}.items():
        store.put(NS, key, {"text": text})
    inner.fail_at, inner.apply_first = inner.writes + 2, 1  # the journal landed, its writes did not
    with pytest.raises(ConnectionError):
        store.consolidate(NS)
    inner.fail_at = None
    restarted = make_store(inner)
    assert restarted.stats(NS).merged == 1 and top_stands_for(restarted, "long")


# -- the real model -------------------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.parametrize("max_passages", [8, 0])
def test_minilm_finds_a_detail_after_its_window_only_with_passages(max_passages: int) -> None:
    prices = ", ".join(f"{100 + (i * 37) % 150}.{i % 100:02d}" for i in range(400))
    long = f'tool get_stock_info(NVDA) result: {{"price": 220.34, "MA(5)": [{prices}], "note": "the backup vault code for the north warehouse is 5521-K", "history": [{prices}]}}'
    store = MergingStore(recent_items=10, mode="manual", max_passages=max_passages)
    store.put(NS, "long", {"text": long})
    store.put(NS, "other", {"text": f'tool get_stock_info(AAPL) result: {{"price": 181.2, "MA(5)": [{prices}]}}'})
    store.put(NS, "warehouse", {"text": "user: the north warehouse gets a new roof next spring"})
    store.put(NS, "codes", {"text": "user: door codes are rotated every month"})
    hits = store.search(NS, query="what is the backup vault code for the north warehouse?", limit=1)
    assert (hits[0].key == "long") == (max_passages > 0)
