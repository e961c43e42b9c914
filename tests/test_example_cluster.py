"""Tests of the adaptive relevance cut of example selection (the query's cluster among its best matches)."""

from __future__ import annotations

import numpy as np
import pytest

from agent_tokred._example_cluster import Scored, cluster_cut, extend_selection, grow_order, persistence, relevant_set
from agent_tokred.examples import ExamplePool, SelectionPolicy

DIM = 48


def naive_grow(rel: np.ndarray, sims: np.ndarray) -> tuple[list[int], list[float]]:
    order: list[int] = []
    links: list[float] = []
    while len(order) < len(rel):
        best, best_link = -1, -np.inf
        for j in range(len(rel)):
            if j in order:
                continue
            link = rel[j] if not order else 0.5 * rel[j] + 0.5 * float(np.mean([sims[j, m] for m in order]))
            if link > best_link:
                best, best_link = j, link
        order.append(best)
        links.append(best_link)
    return order, links


@pytest.mark.parametrize("seed", range(6))
def test_grow_order_equals_naive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((25, 8))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rel = vecs @ vecs[0]
    order, links = grow_order(rel, vecs @ vecs.T)
    want_order, want_links = naive_grow(rel, vecs @ vecs.T)
    assert order.tolist() == want_order
    np.testing.assert_allclose(links, want_links)
    assert sorted(order.tolist()) == list(range(25))


def test_persistence_is_the_drop_below_every_earlier_link() -> None:
    links = np.array([0.9, 0.8, 0.85, 0.5, 0.7, 0.1])
    life = persistence(links)
    assert life[:2].tolist() == [-np.inf, -np.inf]  # the first link is to the query: no cut before 2
    for k in range(2, len(links)):
        assert life[k] == pytest.approx(links[1:k].min() - links[k])
    assert int(np.argmax(life)) == 5
    assert persistence(np.array([0.9, 0.8])).tolist() == [-np.inf, -np.inf]


def block_sims(sizes: list[int], within: float, across: float, rng: np.random.Generator) -> np.ndarray:
    n = sum(sizes)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    sims = np.where(labels[:, None] == labels[None, :], within, across) + rng.uniform(-0.02, 0.02, (n, n))
    sims = (sims + sims.T) / 2
    np.fill_diagonal(sims, 1.0)
    return sims


@pytest.mark.parametrize("own", [2, 3, 6])
@pytest.mark.parametrize("others", [1, 3])
@pytest.mark.parametrize("seed", range(3))
def test_cluster_cut_recovers_the_query_block(own: int, others: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [own] + [5] * others
    sims = block_sims(sizes, within=0.9, across=0.4, rng=rng)
    rel = np.concatenate([rng.uniform(0.75, 0.85, own), rng.uniform(0.4, 0.6, 5 * others)])
    order, links = grow_order(rel, sims)
    core, relevant = cluster_cut(rel, sims, order, links)
    assert core <= relevant
    assert sorted(order[:relevant].tolist()) == list(range(own))


def test_a_lone_best_match_stands_alone() -> None:
    rng = np.random.default_rng(0)
    sims = block_sims([1, 6], within=0.9, across=0.2, rng=rng)
    rel = np.array([0.8, 0.3, 0.31, 0.29, 0.3, 0.32, 0.28])
    order, links = grow_order(rel, sims)
    assert cluster_cut(rel, sims, order, links) == (1, 1)
    assert cluster_cut(np.array([0.7]), np.ones((1, 1)), np.array([0]), np.array([0.7])) == (1, 1)


def test_no_drop_in_the_links_keeps_every_candidate() -> None:
    rel = np.full(4, 0.9)
    sims = np.full((4, 4), 0.95)
    order, links = grow_order(rel, sims)
    assert cluster_cut(rel, sims, order, links) == (4, 4)


# --- extension: used only once the core is used up ---------------------------------------------------------


def unit_vectors(n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)


def test_extension_waits_until_the_core_is_used_up() -> None:
    vecs, costs, quality = unit_vectors(4), np.array([10, 10, 10, 10]), np.array([1.0, 0.9, 0.8, 0.7])
    # core example 1 is not chosen (it did not fit earlier) and is no duplicate: no extension
    got = extend_selection(([0], [1.0]), np.array([0, 1]), np.array([2, 3]), Scored(quality, vecs, costs), 40, 0.5, 1.0)
    assert got == ([0], [1.0])
    # every core example chosen: the extension comes in, in its order, while it fits
    got = extend_selection(([0, 1], [1.0, 0.9]), np.array([0, 1]), np.array([3, 2]), Scored(quality, vecs, costs), 35, 0.5, 1.0)
    assert got[0] == [0, 1, 3]
    assert got[1][-1] == pytest.approx(0.7)


def test_extension_counts_an_unchosen_duplicate_as_used_up() -> None:
    vecs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    got = extend_selection(
        ([0], [1.0]),
        np.array([0, 1]),
        np.array([2]),
        Scored(np.array([1.0, 1.0, 0.5]), vecs, np.array([5, 5, 5])),
        20,
        0.5,
        1.0,
    )
    assert got[0] == [0, 2]


def test_extension_never_lets_a_clearly_less_relevant_example_stand_in() -> None:
    vecs, costs = unit_vectors(5), np.array([10, 50, 10, 10, 10])
    quality = np.array([1.0, 0.5, 0.3, 0.1, 0.4])
    # 1 does not fit; 2 (0.3 >= 0.5/e) may stand in for it; 3 (0.1 < 0.5/e) may not, and the extension ends
    got = extend_selection(([0], [1.0]), np.array([0]), np.array([1, 2, 3, 4]), Scored(quality, vecs, costs), 40, 0.0, 1.0)
    assert got[0] == [0, 2]


# --- end to end on an embedding with kinds ------------------------------------------------------------------


def kinds_pool(seed: int) -> tuple[ExamplePool, np.ndarray]:
    """Kind a spreads from near the query to far below it; kind b is tight and about as relevant as a's tail."""
    rng = np.random.default_rng(seed)
    eye = np.eye(DIM)
    examples, vecs = [], []
    for name, base, spreads in [("a", eye[0] + eye[1], np.linspace(0.2, 1.6, 8)), ("b", eye[0] + eye[2], [0.2] * 6)]:
        for i, spread in enumerate(spreads):
            noise = rng.standard_normal(DIM)
            noise[:8] = 0
            vecs.append(base + spread * noise / np.linalg.norm(noise))
            examples.append({"question": f"{name} {i}", "answer": name})
    pool = ExamplePool(
        examples, input_keys=["question"], embeddings=np.array(vecs), tokenizer="approx", embed=lambda t: t
    )
    return pool, eye[0] + eye[1] + 0.45 * eye[2]


@pytest.mark.parametrize("seed", range(5))
def test_cluster_cut_takes_its_kind_beyond_any_margin_and_keeps_the_other_kind_out(seed: int) -> None:
    pool, query = kinds_pool(seed)
    sel = pool.select(budget=400, query_vector=query)
    assert sel.chosen and all(c.example["answer"] == "a" for c in sel.chosen)
    best = max(c.relevance for c in sel.chosen)
    far = {c.index for c in sel.chosen if c.relevance < best - 0.25}
    assert len(far) >= 1  # examples of the query's kind a fixed 0.25 margin would drop
    margin = pool.select(budget=400, query_vector=query, policy=SelectionPolicy(relevance_cut="margin"))
    assert not far & set(margin.indices)
    filled = pool.select(budget=400, query_vector=query, policy=SelectionPolicy(relevance_cut="none"))
    assert any(c.example["answer"] == "b" for c in filled.chosen)
    assert pool.select(budget=400, query_vector=query, policy=SelectionPolicy(relevance_margin=None)).indices == (
        filled.indices
    )


def test_lone_match_is_not_padded_with_another_kind() -> None:
    eye = np.eye(DIM)
    rng = np.random.default_rng(1)
    vecs = [eye[3] + 0.3 * rng.standard_normal(DIM) * (np.arange(DIM) >= 8)]
    vecs += [eye[4] + 0.3 * rng.standard_normal(DIM) * (np.arange(DIM) >= 8) for _ in range(5)]
    examples = [{"question": "cat", "answer": "cat"}] + [{"question": f"dog {i}", "answer": "dog"} for i in range(5)]
    pool = ExamplePool(examples, input_keys=["question"], embeddings=np.array(vecs), tokenizer="approx", embed=len)
    sel = pool.select(budget=500, query_vector=eye[3] + 0.5 * eye[4] + 0.5 * eye[5])
    assert [c.example["answer"] for c in sel.chosen] == ["cat"]


def test_core_is_packed_per_token() -> None:
    pool, query = kinds_pool(0)
    # the two best matches of kind a: make the best one long; the budget fits it alone or two short ones
    examples = [dict(e) for e in pool.examples]
    examples[0]["answer"] = "a " + "long " * 12
    packed = ExamplePool(
        examples, input_keys=["question"], embeddings=pool.vectors, tokenizer="approx", embed=lambda t: t
    )
    short = packed.costs[1] + packed.costs[2] + packed.sep_tokens
    budget = int(max(short, packed.costs[0]))
    sel = packed.select(budget=budget, query_vector=query)
    by_relevance = packed.select(budget=budget, query_vector=query, policy=SelectionPolicy(strategy="relevance"))
    assert len(sel.chosen) > len(by_relevance.chosen)
    assert all(c.example["answer"].startswith("a") for c in sel.chosen)


def test_large_budget_is_not_capped_by_the_candidate_count() -> None:
    rng = np.random.default_rng(2)
    vecs = np.eye(DIM)[0] + 0.05 * rng.standard_normal((60, DIM))
    examples = [{"question": f"q {i}", "answer": str(i)} for i in range(60)]
    pool = ExamplePool(examples, input_keys=["question"], embeddings=vecs, tokenizer="approx", embed=len)
    sel = pool.select(budget=5000, query_vector=np.eye(DIM)[0], policy=SelectionPolicy(cluster_candidates=5))
    assert len(sel.chosen) > 5
    assert sel.tokens_used <= 5000


def test_relevant_set_is_within_the_eligible_examples() -> None:
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((50, 8))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rel = vecs @ vecs[0]
    idx = np.arange(0, 50, 2)
    core, extension = relevant_set(idx, rel, vecs, np.full(50, 10), 100, 10)
    assert set(core) | set(extension) <= set(idx.tolist())
    assert not set(core) & set(extension)
    assert 0 in core  # the best match is always in the core
