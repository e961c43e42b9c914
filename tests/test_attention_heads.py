"""The attention criterion's parts without a real model: head parts, the log-ratio combination, blocks."""

from __future__ import annotations

import numpy as np
import pytest

from agent_tokred.criteria._windows import add_block_score
from agent_tokred.criteria.attention import AttentionCriterion, _combine, _head_parts, _Window

torch = pytest.importorskip("torch")


def _uniform(seq: int, causal: bool) -> object:
    att = torch.ones(1, 2, seq, seq, dtype=torch.float64)
    if causal:
        att = torch.tril(att)
    return att / att.sum(-1, keepdim=True)


@pytest.mark.parametrize("causal", [False, True])
def test_uniform_attention_scales_to_one(causal: bool) -> None:
    # context at 1..5, query rows 6..7, answer row 7: uniform attention reads 1.0 everywhere
    w = _Window(ids=list(range(8)), type_ids=[0] * 8, rows=[6, 7], cols=[1, 2, 3, 4, 5], first=0, answer=7)
    parts = _head_parts(_uniform(8, causal), w, causal)
    for key in ("q", "a", "c"):
        assert parts[key].shape == (1, 2, 5)
        np.testing.assert_allclose(parts[key], 1.0, atol=1e-9)


def test_query_attention_to_one_token_ranks_it_first() -> None:
    seq = 8
    att = _uniform(seq, causal=True).clone()
    att[:, :, 6:8, :] = 0.0
    att[:, :, 6:8, 3] = 1.0  # the query rows look at context token 3 only
    w = _Window(ids=list(range(seq)), type_ids=[0] * seq, rows=[6, 7], cols=[1, 2, 3, 4, 5], first=0, answer=7)
    scores = _combine(_head_parts(att, w, True), [(0, 0), (0, 1)])
    assert scores.shape == (5,)
    assert int(np.argmax(scores)) == 2  # column 3 is the third context token
    assert scores[2] > scores[0] + 1.0


@pytest.mark.parametrize(("heads", "expect_rows"), [([(0, -1)], 2), ([(0, 1)], 1)])
def test_combine_reads_the_named_heads(heads: list[tuple[int, int]], expect_rows: int) -> None:
    c = np.ones((1, 2, 3))
    q = np.stack([np.array([[1.0, 1.0, 1.0]]), np.array([[4.0, 1.0, 1.0]])], axis=1)  # head 1 prefers token 0
    got = _combine({"c": c, "q": q, "a": q}, heads)
    want = np.log(q[0, 1] + 1e-3) - np.log(1 + 1e-3)
    if expect_rows == 2:
        want = 0.5 * (want + np.log(q[0, 0] + 1e-3) - np.log(1 + 1e-3))
    np.testing.assert_allclose(got, want)


def test_combine_without_a_query_reads_the_context() -> None:
    c = np.arange(6, dtype=float).reshape(1, 2, 3)
    np.testing.assert_allclose(_combine({"c": c}, [(0, -1)]), c[0].mean(axis=0))


@pytest.mark.parametrize(
    ("scores", "groups", "weight", "want"),
    [([1.0, 3.0, 2.0], [0, 0, 1], 0.5, [2.5, 4.5, 3.0]), ([1.0, 3.0], [0, 1], 0.0, [1.0, 3.0]),
     ([5.0], [0], 1.0, [5.0]), ([1.0, 2.0, 0.0], [7, 7, 7], 1.0, [3.0, 4.0, 2.0])],
)
def test_block_score(scores: list[float], groups: list[int], weight: float, want: list[float]) -> None:
    assert add_block_score(scores, groups, weight).tolist() == want


def test_block_score_keeps_order_within_a_block() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=50)
    g = rng.integers(0, 5, size=50)
    out = add_block_score(s, g, 0.7)
    for b in range(5):
        m = g == b
        assert (np.argsort(out[m], kind="stable") == np.argsort(s[m], kind="stable")).all()


@pytest.mark.parametrize(
    "options", [{"heads": ()}, {"heads": ((1,),)}, {"block_weight": -1.0}, {"block_weight": 11.0}]
)
def test_bad_options_fail_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AttentionCriterion(**options)  # type: ignore[arg-type]


def test_matched_terms_weights_rare_query_tokens_over_common_ones() -> None:
    from agent_tokred.criteria.attention import matched_terms

    text = "aa bb cc dd"
    offsets = [(0, 2), (3, 5), (6, 8), (9, 11)]
    spans = [(0, 3), (3, 6), (6, 9), (9, 11)]
    # 1 head, 2 query tokens: the first matches every unit, the second only unit 2.
    rows = np.array([[[4.0, 4.0, 4.0, 4.0], [0.0, 0.0, 3.0, 0.0]]])
    scores = matched_terms(text, offsets, rows, spans, 2.0)
    assert int(np.argmax(scores)) == 2
    common = scores[0]
    assert scores[2] - common > common  # the rare token is worth more than the common one
    # Below the threshold nothing matches: every unit scores 0.
    assert matched_terms(text, offsets, rows, spans, 10.0).tolist() == [0.0] * 4


def test_matched_terms_gives_units_without_tokens_the_lowest_score() -> None:
    from agent_tokred.criteria.attention import matched_terms

    rows = np.array([[[5.0, 5.0]]])
    scores = matched_terms("ab    cd", [(0, 2), (6, 8)], rows, [(0, 3), (3, 5), (5, 8)], 2.0)
    assert scores[1] == min(scores) and scores[0] > scores[1]
