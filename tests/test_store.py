"""MergingStore and the bipartite merge strategy: invariants, isolation, faults, bad input.

Offline and deterministic: a topic embedding (first word of a text decides its direction) makes
merges predictable. Backends: InMemoryStore, SQLite (a real file) and, marked ``server``, PostgreSQL
at ``AGENT_TOKRED_POSTGRES_URI`` (``.ci/postgres.sh start``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.store.base import BaseStore, InvalidNamespaceError, Op, PutOp, Result
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from agent_tokred.errors import InvalidInputError
from agent_tokred.integration.store import MergePolicy, MergingStore
from agent_tokred.strategies.merge import apply_merge_plan, bipartite_soft_matching, fuse_texts, line_template

PG_URI = os.environ.get("AGENT_TOKRED_POSTGRES_URI") or os.environ.get("DATABASE_URI")
# What .ci/postgres.sh found ("yes"/"no": the served store must search with pgvector or not); unset: either.
PG_VECTOR = os.environ.get("AGENT_TOKRED_PGVECTOR")


# -- helpers ------------------------------------------------------------------------------------
def topic_embed(texts: list[str]) -> np.ndarray:
    """Texts sharing a first word point the same way (cos ~0.99); other topics are orthogonal-ish."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        words = text.split() or [""]
        h = hashlib.sha256(words[0].lower().encode()).digest()
        noise = hashlib.sha256(text.encode()).digest()
        out[i, h[0] % 48] = 1.0
        out[i, 48 + noise[0] % 16] = 0.1
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def upper_compress(text: str, rate: float | None, target: int | None) -> str:
    """A tiny deterministic 'engine': keep the first half of the lines."""
    lines = text.splitlines()
    return "\n".join(lines[: max(1, len(lines) // 2)])


SMALL = {"recent_items": 2, "compress_items": 2, "min_compress_tokens": 4, "threshold": 0.9}


def make_store(inner: BaseStore | None = None, **overrides: Any) -> MergingStore:
    return MergingStore(inner, embed=topic_embed, compressor=upper_compress, **{**SMALL, **overrides})


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.server)])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStore]:
    if request.param == "memory":
        yield InMemoryStore()
    elif request.param == "sqlite":
        with SqliteStore.from_conn_string(str(tmp_path / "s.sqlite")) as store:
            store.setup()
            yield store
    else:
        if not PG_URI:
            pytest.skip("no PostgreSQL server: set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)")
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(PG_URI) as store:
            store.setup()
            with store._cursor() as cur:
                cur.execute("TRUNCATE store")
                cur.execute(  # and the merging store's pgvector tables, when it made them
                    "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE "
                    "'tokred%' LOOP EXECUTE 'TRUNCATE ' || quote_ident(t); END LOOP; END $$"
                )
            yield store


def live_sources(store: MergingStore, ns: tuple[str, ...]) -> Counter[str]:
    """Each original key as many times as the live view stands for it."""
    seen: Counter[str] = Counter()
    for item in store.search(ns, limit=100_000):
        if item.namespace != ns:
            continue
        mark = item.value.get("_tokred")
        seen.update(mark["sources"] if mark else [item.key])
    return seen


def assert_nothing_lost(store: MergingStore, ns: tuple[str, ...], expected: dict[str, dict[str, Any]]) -> None:
    """Every original is exact under get, stood for exactly once by the live view, and expandable."""
    for key, value in expected.items():
        item = store.get(ns, key)
        assert item is not None and item.value == value, key
    assert live_sources(store, ns) == Counter(expected.keys())
    expanded: dict[str, Any] = {}
    for item in store.search(ns, limit=100_000):
        if item.namespace == ns:
            expanded.update({it.key: it.value for it in store.expand(ns, item.key)})
    assert expanded == expected


def memories(n: int, topics: Iterable[str] = ("alpha", "beta")) -> dict[str, dict[str, Any]]:
    names = list(topics)
    return {f"k{i:03d}": {"text": f"{names[i % len(names)]} event {i}\nline two {i}\nline three {i}"} for i in range(n)}


# -- the pure strategy --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 24),
    threshold=st.floats(-1.0, 1.0),
    r=st.one_of(st.none(), st.integers(0, 10)),
    seed=st.integers(0, 10_000),
)
def test_plan_partitions_inputs_and_respects_groups_and_gate(
    n: int, threshold: float, r: int | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 8))
    groups = rng.integers(0, 3, size=n)
    sizes = rng.integers(1, 5, size=n).astype(float)
    plan = bipartite_soft_matching(emb, r=r, threshold=threshold, sizes=sizes, groups=groups)
    flat = sorted(i for src in plan.sources for i in src)
    assert flat == list(range(n))
    assert len(plan.targets) == len(plan.sources) == plan.embeddings.shape[0]
    if r is not None:
        assert plan.n_merged <= r
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for target, src, size, vec in zip(plan.targets, plan.sources, plan.sizes, plan.embeddings, strict=True):
        assert target in src and len({groups[i] for i in src}) == 1
        assert size == pytest.approx(sizes[list(src)].sum())
        mean = (emb[list(src)] * sizes[list(src), None]).sum(0) / sizes[list(src)].sum()
        np.testing.assert_allclose(vec, mean, rtol=1e-4, atol=1e-5)
        for i in src:
            if i != target:
                assert float(unit[i] @ unit[target]) >= threshold - 1e-9


def test_plan_merges_near_duplicates_only() -> None:
    emb = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.05, 1.0]])
    plan = bipartite_soft_matching(emb, r=None, threshold=0.95)
    assert plan.sources == ((0, 1), (2, 3))
    assert apply_merge_plan(plan, ["a", "b", "c", "d"], "+".join) == ["a+b", "c+d"]
    none = bipartite_soft_matching(emb, r=0, threshold=0.0)
    assert none.n_merged == 0
    apart = bipartite_soft_matching(emb, r=None, threshold=0.95, groups=["x", "y", "x", "y"])
    assert apart.n_merged == 0  # near-duplicates in different groups never merge


def test_plan_is_deterministic_and_sides_direct_merges() -> None:
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    a = bipartite_soft_matching(emb, r=None, threshold=0.5, sides=[True, False, False])
    b = bipartite_soft_matching(emb, r=None, threshold=0.5, sides=[True, False, False])
    assert a.sources == b.sources == ((0, 1), (2,))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"embeddings": np.zeros(3)},
        {"embeddings": np.array([[np.nan, 1.0]])},
        {"embeddings": np.eye(2), "r": -1},
        {"embeddings": np.eye(2), "threshold": 1.5},
        {"embeddings": np.eye(2), "sizes": [1, 0]},
        {"embeddings": np.eye(2), "groups": [1]},
    ],
)
def test_plan_rejects_bad_input(kwargs: dict[str, Any]) -> None:
    kwargs = {"r": None, "threshold": 0.5, **kwargs}
    with pytest.raises(InvalidInputError):
        bipartite_soft_matching(**kwargs)


def test_fuse_texts_keeps_distinct_lines_once() -> None:
    assert fuse_texts(["a\nb", "B\n c", "", "a"]) == "a\nb\n c"


def test_fuse_texts_collapses_repeated_shapes_and_keeps_outliers() -> None:
    outputs = [f'tool rm({{"file": "img_{i}.jpg"}}) result: {{"removed": {i}}}' for i in range(30)]
    outputs.insert(17, "note: the door code is 4471-B")
    fused = fuse_texts(outputs, keep_similar=2)
    lines = fused.splitlines()
    assert lines[:2] == outputs[:2] and lines[2] == "… [28 similar lines]"
    assert "note: the door code is 4471-B" in lines and len(lines) == 4
    assert line_template("Priya's code is 12") != line_template("Mateo's code is 12")  # names are kept


# -- tiers, merges, exact originals ---------------------------------------------------------------
def test_tiers_and_exact_originals(inner: BaseStore) -> None:
    store = make_store(inner)
    ns = ("user", "1")
    data = memories(12)
    for key, value in data.items():
        store.put(ns, key, value)
    stats = store.stats(ns)
    assert stats.merged >= 1 and stats.compressed >= 1
    assert stats.live_tokens < stats.raw_tokens
    newest = sorted(data)[-2:]
    for key in newest:  # the recent tier is verbatim, also in search results
        hit = next(it for it in store.search(ns, limit=100) if it.key == key)
        assert hit.value == data[key]
    assert_nothing_lost(store, ns, data)


def test_merged_items_carry_provenance_and_search_finds_them() -> None:
    store = make_store()
    ns = ("u",)
    data = memories(10)
    for key, value in data.items():
        store.put(ns, key, value)
    hits = store.search(ns, query="alpha something", limit=3)
    merged = [h for h in hits if h.key.startswith("tokred:m:")]
    assert merged, [h.key for h in hits]
    sources = merged[0].value["_tokred"]["sources"]
    assert all(data[s]["text"].startswith("alpha") for s in sources)
    assert [it.key for it in store.expand(ns, merged[0].key)] == sorted(sources)


def test_merged_memory_is_found_by_any_of_its_sources() -> None:
    vectors = {"alpha a": [1.0, 0.0, 0.0], "alpha b": [0.8, 0.6, 0.0], "gamma": [0.0, 0.0, 1.0]}
    store = MergingStore(
        embed=lambda texts: [vectors.get(t, [0.8, 0.6, 0.0]) for t in texts],
        threshold=0.75,
        recent_items=0,
        compress_items=0,
        mode="manual",
    )
    store.put(("u",), "a", {"text": "alpha a"})
    store.put(("u",), "b", {"text": "alpha b"})
    store.put(("u",), "c", {"text": "gamma"})
    store.consolidate(("u",))
    top = store.search(("u",), query="the b one", limit=1)[0]
    assert top.key.startswith("tokred:m:") and top.value["_tokred"]["sources"] == ["a", "b"]
    assert top.score == pytest.approx(1.0, abs=1e-5)  # max over sources, not the diluted mean


def test_default_engine_compresses_old_memories() -> None:
    store = MergingStore(embed=topic_embed, recent_items=1, compress_items=8, min_compress_tokens=20)
    ns = ("u",)
    data = {f"k{i}": {"text": f"topic{i} " + "\n".join(f"row {j} value {j * i}" for j in range(60))} for i in range(4)}
    for key, value in data.items():
        store.put(ns, key, value)
    stats = store.stats(ns)
    assert stats.compressed == 3 and stats.live_tokens < 0.5 * stats.raw_tokens
    assert_nothing_lost(store, ns, data)


def test_kinds_never_merge_together() -> None:
    store = make_store()
    ns = ("u",)
    for i in range(10):
        store.put(ns, f"k{i}", {"text": f"alpha same {i}", "kind": "tool" if i % 2 else "human"})
    for item in store.search(ns, limit=100):
        mark = item.value.get("_tokred")
        if mark and mark["state"] == "merged":
            kinds = {store.get(ns, s).value["kind"] for s in mark["sources"]}  # type: ignore[union-attr]
            assert kinds == {item.value["kind"]}


def test_namespaces_are_isolated(inner: BaseStore) -> None:
    store = make_store(inner)
    a, b = ("tenant", "a"), ("tenant", "b")
    for i in range(8):  # identical content in both namespaces
        store.put(a, f"k{i}", {"text": f"alpha shared {i}"})
        store.put(b, f"k{i}", {"text": f"alpha shared {i}"})
    store.put(b, "secret", {"text": "alpha secret of b"})
    for ns in (a, b):
        for item in store.search(ns, limit=100):
            assert item.namespace == ns
            for src in (item.value.get("_tokred") or {}).get("sources", []):
                assert store.get(ns, src) is not None
    assert all(it.namespace == a for it in store.search(a, query="alpha secret of b", limit=50))
    assert live_sources(store, a) == Counter(f"k{i}" for i in range(8))
    assert store.get(a, "secret") is None


# -- deletes and updates of sources ---------------------------------------------------------------
def _merged(store: MergingStore, ns: tuple[str, ...]) -> list[Any]:
    return [it for it in store.search(ns, limit=100) if it.key.startswith("tokred:m:")]


def _alpha_store() -> tuple[MergingStore, tuple[str, ...], dict[str, Any]]:
    """A store whose 12 same-topic memories have been merged, the namespace and what was put."""
    store = make_store()
    ns = ("u",)
    data = memories(12, topics=("alpha",))
    for key, value in data.items():
        store.put(ns, key, value)
    return store, ns, data


def test_deleting_a_source_refuses_the_rest() -> None:
    store, ns, data = _alpha_store()
    victim = _merged(store, ns)[0].value["_tokred"]["sources"][0]
    store.delete(ns, victim)
    del data[victim]
    assert store.get(ns, victim) is None
    assert_nothing_lost(store, ns, data)
    assert all(victim not in m.value["_tokred"]["sources"] for m in _merged(store, ns))


def test_updating_a_source_replaces_it_everywhere() -> None:
    store, ns, data = _alpha_store()
    victim = _merged(store, ns)[0].value["_tokred"]["sources"][0]
    data[victim] = {"text": "beta a new value"}
    store.put(ns, victim, data[victim])
    assert_nothing_lost(store, ns, data)


def test_deleting_a_merged_memory_forgets_its_sources() -> None:
    store, ns, data = _alpha_store()
    merged = _merged(store, ns)[0]
    store.delete(ns, merged.key)
    for src in merged.value["_tokred"]["sources"]:
        assert store.get(ns, src) is None
        del data[src]
    assert_nothing_lost(store, ns, data)


def test_last_two_sources_restore_the_survivor() -> None:
    store = make_store(recent_items=0, compress_items=0, mode="manual")
    ns = ("u",)
    store.put(ns, "a", {"text": "alpha one"})
    store.put(ns, "b", {"text": "alpha two"})
    store.consolidate(ns)
    assert [it.key.startswith("tokred:m:") for it in store.search(ns)] == [True]
    store.delete(ns, "a")
    assert [(it.key, it.value) for it in store.search(ns)] == [("b", {"text": "alpha two"})]


# -- concurrency ----------------------------------------------------------------------------------
def test_concurrent_threads_lose_and_duplicate_nothing(inner: BaseStore) -> None:
    store = make_store(inner)
    ns = ("shared",)
    data = memories(60)
    keys = sorted(data)
    errors: list[BaseException] = []

    def writer(part: list[str]) -> None:
        try:
            for key in part:
                store.put(ns, key, data[key])
                store.put(ns, "hot", {"text": f"alpha hot {key}"})  # the same key from every thread
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(keys[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    hot = store.get(ns, "hot")
    assert hot is not None
    data["hot"] = hot.value
    assert_nothing_lost(store, ns, data)


async def test_concurrent_tasks_lose_and_duplicate_nothing() -> None:
    store = make_store()
    ns = ("shared",)
    data = memories(40)
    await asyncio.gather(*(store.aput(ns, k, v) for k, v in data.items()))
    await asyncio.gather(*(store.aconsolidate(ns) for _ in range(3)))
    assert_nothing_lost(store, ns, data)
    assert len(await store.aexpand(ns, "k000")) == 1


# -- faults in the middle of a consolidation ------------------------------------------------------
class FlakyStore(InMemoryStore):
    """Applies only the first ``apply_first`` puts of the ``fail_at``-th write batch, then raises."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_at: int | None = None
        self.apply_first = 0
        self.writes = 0

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        if any(isinstance(op, PutOp) for op in ops):
            self.writes += 1
            if self.writes == self.fail_at:
                super().batch(ops[: self.apply_first])
                raise ConnectionError("injected fault")
        return super().batch(ops)


@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("apply_first", [0, 1, 5])
def test_faults_mid_consolidation_lose_and_duplicate_nothing(stage: int, apply_first: int) -> None:
    inner = FlakyStore()
    store = make_store(inner, mode="manual")
    ns = ("u",)
    data = memories(12)
    for key, value in data.items():
        store.put(ns, key, value)
    inner.fail_at, inner.apply_first = inner.writes + stage, apply_first  # journal, apply, clear
    with pytest.raises(ConnectionError):
        store.consolidate(ns)
    inner.fail_at = None
    assert_nothing_lost(store, ns, data)  # reads finish the interrupted consolidation first
    restarted = make_store(inner, mode="manual")  # and so does a fresh process
    assert_nothing_lost(restarted, ns, data)
    restarted.consolidate(ns)  # whatever was not applied is simply done again
    assert restarted.stats(ns).merged >= 1
    assert_nothing_lost(restarted, ns, data)


def test_engine_failure_changes_nothing() -> None:
    def broken(text: str, rate: float | None, target: int | None) -> str:
        raise RuntimeError("engine down")

    store = MergingStore(embed=topic_embed, compressor=broken, mode="manual", **SMALL)
    ns = ("u",)
    data = memories(12)
    for key, value in data.items():
        store.put(ns, key, value)
    with pytest.raises(RuntimeError):
        store.consolidate(ns)
    assert store.stats(ns).merged == 0 and store.stats(ns).compressed == 0
    assert_nothing_lost(store, ns, data)


def test_write_time_consolidation_failure_keeps_the_write(caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}

    def flaky(text: str, rate: float | None, target: int | None) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("engine hiccup")
        return upper_compress(text, rate, target)

    store = MergingStore(embed=topic_embed, compressor=flaky, **SMALL)
    ns = ("u",)
    data = memories(12)
    for key, value in data.items():
        store.put(ns, key, value)
    assert "retried on the next write" in caplog.text
    assert store.stats(ns).compressed >= 1
    assert_nothing_lost(store, ns, data)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("namespace", [("a.b",), ("a", ""), ("x\x00",), (1,), (), ("__tokred__", "v")], ids=repr)
def test_bad_namespaces_are_rejected_like_langgraph(namespace: tuple[Any, ...]) -> None:
    store = make_store()
    with pytest.raises(InvalidNamespaceError):
        store.put(namespace, "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(namespace, "k", {"text": "x"})])
    assert store.list_namespaces() == []


@pytest.mark.parametrize(
    "value",
    [
        "a string",
        ["a", "list"],
        {"bad": {1, 2}},
        {"bad": object()},
        {"nan": float("nan")},
        {"_tokred": {"state": "merged"}},
    ],
    ids=["str", "list", "set", "object", "nan", "reserved-field"],
)
def test_malformed_values_are_rejected_and_nothing_is_written(value: Any) -> None:
    store = make_store()
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("u",), "good", {"text": "ok"}), PutOp(("u",), "bad", value)])
    assert store.get(("u",), "good") is None


def test_merged_keys_can_be_deleted_not_written() -> None:
    store = make_store()
    with pytest.raises(InvalidInputError, match="merged memories"):
        store.put(("u",), "tokred:m:123", {"text": "forged"})


def test_very_large_values(inner: BaseStore) -> None:
    store = make_store(inner, max_value_bytes=4 * 1024 * 1024)
    big = {"text": "alpha " + "x" * (3 * 1024 * 1024)}
    store.put(("u",), "big", big)
    got = store.get(("u",), "big")
    assert got is not None and got.value == big
    with pytest.raises(InvalidInputError, match="max_value_bytes"):
        store.put(("u",), "huge", {"text": "y" * (5 * 1024 * 1024)})
    assert store.get(("u",), "huge") is None


def test_bookkeeping_is_hidden_from_listings_and_searches() -> None:
    store = make_store()
    for key, value in memories(12).items():
        store.put(("u", "1"), key, value)
    assert store.list_namespaces() == [("u", "1")]
    assert store.list_namespaces(prefix=("*",)) == [("u", "1")]
    assert {it.namespace for it in store.search((), limit=1000)} == {("u", "1")}


def test_policy_is_validated() -> None:
    with pytest.raises(InvalidInputError, match="threshold"):
        MergingStore(embed=topic_embed, threshold=3)
    with pytest.raises(InvalidInputError, match="Valid fields"):
        MergingStore(embed=topic_embed, recnt_items=3)
    assert MergePolicy().merge_after == 96


# -- persistence ------------------------------------------------------------------------------------
def test_reopened_sqlite_store_keeps_index_and_provenance(tmp_path: Path) -> None:
    path = str(tmp_path / "m.sqlite")
    data = memories(12)
    with SqliteStore.from_conn_string(path) as inner:
        inner.setup()
        store = make_store(inner)
        for key, value in data.items():
            store.put(("u",), key, value)
        before = sorted((it.key, round(it.score or 0, 5)) for it in store.search(("u",), query="alpha", limit=100))
    with SqliteStore.from_conn_string(path) as inner:
        again = make_store(inner)
        after = sorted((it.key, round(it.score or 0, 5)) for it in again.search(("u",), query="alpha", limit=100))
        assert after == before  # ties may rank in another order after a reload; the scores may not
        assert_nothing_lost(again, ("u",), data)


# -- the real model -------------------------------------------------------------------------------------
@pytest.mark.model
def test_minilm_merges_paraphrases_not_unrelated_memories() -> None:
    store = MergingStore(recent_items=0, compress_items=0, mode="manual", threshold=0.75)
    ns = ("u",)
    store.put(ns, "a", {"text": "The user's favourite drink is green tea."})
    store.put(ns, "b", {"text": "The user likes to drink green tea the most."})
    store.put(ns, "c", {"text": "The deployment failed because the disk was full."})
    store.consolidate(ns)
    groups = sorted(sorted((it.value.get("_tokred") or {}).get("sources", [it.key])) for it in store.search(ns))
    assert groups == [["a", "b"], ["c"]]
    assert store.search(ns, query="what does the user drink?", limit=1)[0].key.startswith("tokred:m:")


# -- the served factory (memory/store.py) ---------------------------------------------------------------
def test_make_store_defaults_to_sqlite_in_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memory.store import make_store as served

    for var in ("AGENT_TOKRED_POSTGRES_URI", "DATABASE_URI"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "sub" / "store.sqlite"
    monkeypatch.setenv("AGENT_TOKRED_SQLITE_PATH", str(path))
    with served(embed=topic_embed) as store:
        assert isinstance(store.store, SqliteStore)
        store.put(("u",), "k", {"text": "alpha kept"})
    assert path.exists()
    with served(embed=topic_embed) as store:
        assert store.get(("u",), "k").value == {"text": "alpha kept"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "postgres"),
    [(":memory:", False), ("", False), ("sqlite:///x.db", False), ("postgresql://u@127.0.0.1:5432/db", True),
     ("postgres://u@h/db", True), ("host=127.0.0.1 dbname=tokred", True)],
)
def test_database_uri_counts_only_when_it_is_postgres(value: str, postgres: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # `langgraph dev` sets DATABASE_URI=":memory:" for its own runtime: that is not a PostgreSQL server
    from memory.store import postgres_uri

    monkeypatch.delenv("AGENT_TOKRED_POSTGRES_URI", raising=False)
    monkeypatch.setenv("DATABASE_URI", value)
    assert (postgres_uri() is not None) is postgres


@pytest.mark.server
def test_make_store_uses_postgres_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    if not PG_URI:
        pytest.skip("no PostgreSQL server: set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)")
    from langgraph.store.postgres import PostgresStore

    from memory.store import make_store as served

    monkeypatch.setenv("AGENT_TOKRED_POSTGRES_URI", PG_URI)
    with served(embed=topic_embed) as store:
        assert isinstance(store.store, PostgresStore)
        if PG_VECTOR:
            assert store.vector_search == ("postgres" if PG_VECTOR == "yes" else "process")
        store.put(("factory",), "k", {"text": "alpha in postgres"})
        assert store.search(("factory",), query="alpha", limit=1)[0].key == "k"
        store.delete(("factory",), "k")


def test_repeated_queries_are_embedded_once() -> None:
    calls: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        calls.extend(texts)
        return [[1.0, float(len(t) % 7)] for t in texts]

    store = MergingStore(embed=embed, recent_items=100)
    store.put(("u",), "a", {"text": "likes green tea"})
    calls.clear()
    first = store.search(("u",), query="tea?", limit=2)
    again = store.search(("u",), query="tea?", limit=2)
    assert calls == ["tea?"] and [r.key for r in first] == [r.key for r in again] == ["a"]
    store.embeddings = MergingStore(embed=lambda t: [[0.0, 1.0] for _ in t]).embeddings  # swapped: no stale vector
    assert store.search(("u",), query="tea?", limit=2)[0].score == pytest.approx(
        float(np.dot([0.0, 1.0], np.array([1.0, 1.0]) / np.sqrt(2.0))), abs=1e-5)
