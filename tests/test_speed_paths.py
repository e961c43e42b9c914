"""The fast paths of issue 16 give the same results as the slow ones, and budgets stay exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_tokred.budget import make_budget
from agent_tokred.compressor import Compressor
from agent_tokred.learned import features
from agent_tokred.strategies.prune import plan_prune, render_text
from agent_tokred.tokens import CachedCounter, TiktokenCounter, resolve_counter, span_costs
from agent_tokred.units import segment


@pytest.fixture(scope="module")
def vocab():  # type: ignore[no-untyped-def]
    from agent_tokred.learned.model import load_scorer

    return load_scorer(None).vocab


_ASCII = st.sampled_from(
    ["a", "Z", "the", " ", "\n", "\t", "\r", "0", "42", ".", ",", "_", "-", "'", "\"", "{", "}", "[", "]", "\\", "~",
     "`", "\x00", "\x07", "\x0b", "\x1f", "\x7f", "x" * 120, "unbelievably", "##", "[UNK]", "http://a.b/c"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_ASCII, max_size=30).map("".join), min_size=1, max_size=6))
def test_ascii_word_pieces_match_the_rust_tokenizer(vocab, texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    _assert_ids_of_rust_tokenizer(vocab, texts)


def _assert_ids_of_rust_tokenizer(vocab, texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    ids, starts = vocab.encode(texts)
    encodings = vocab.tokenizer.encode_batch(texts, add_special_tokens=False)
    for k, e in enumerate(encodings):
        assert ids[starts[k] : starts[k + 1]].tolist() == e.ids, texts[k]


_MIXED = st.one_of(_ASCII, st.sampled_from(
    ["é", "Röntgen", "日本語", "中", "ñ", "e\u0301", "\u00a0", "\u2003", "\u200b", "\u3000", "—", "“", "”", "…", "Ω",
     "ß", "İ", "ﬁ", "\ufffd", "\u0085", "😀", "a\u0308", "١٢", "\x0c", "Straße"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_MIXED, max_size=30).map("".join), min_size=1, max_size=6))
def test_unicode_texts_chunked_at_white_space_match_the_rust_tokenizer(vocab, texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    _assert_ids_of_rust_tokenizer(vocab, texts)


def test_mixed_ascii_and_unicode_texts_keep_their_order(vocab) -> None:  # type: ignore[no-untyped-def]
    texts = ["Paris is in France.", "Röntgen won in 1901.", "", "日本語 text", "plain again"]
    ids, starts = vocab.encode(texts)
    encodings = vocab.tokenizer.encode_batch(texts, add_special_tokens=False)
    assert [ids[starts[k] : starts[k + 1]].tolist() for k in range(len(texts))] == [e.ids for e in encodings]


def test_blocked_vector_sums_equal_the_whole_matrix_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    lengths = rng.integers(0, 9, size=40)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(0, 50, size=int(starts[-1]))
    w = rng.random(len(ids))
    whole = features._segment_sums(vectors[ids] * w[:, None], starts)
    monkeypatch.setattr(features, "_VECTOR_BLOCK", 7)
    assert np.array_equal(features._weighted_vector_sums(vectors, ids, w, starts), whole)


@pytest.mark.parametrize("text", [
    "Hello world. Bye now. " * 50,
    "Röntgen, 日本語のテキスト。 😀 emoji and ümlauts.\n" * 30,
    "2024-05-01 ERROR pay-1 declined\n" * 80,
    "bad \udcff bytes here. more text. " * 20,
])
def test_span_costs_sum_to_the_count_over_tiling_units(text: str) -> None:
    counter = CachedCounter(resolve_counter("o200k_base"))
    units = segment(text, "sentence")
    costs = span_costs(counter, text, [(u.start, u.end) for u in units])
    assert costs is not None and len(costs) == len(units)
    assert sum(costs) == counter.count(text)
    assert all(c >= 0 for c in costs)


def test_span_costs_need_token_ids() -> None:
    counter = CachedCounter(resolve_counter("approx"))
    assert span_costs(counter, "a b c", [(0, 2), (2, 5)]) is None


class _CountingCounter:
    def __init__(self) -> None:
        self.inner = TiktokenCounter()
        self.name = self.inner.name
        self.long_calls = 0

    def count(self, text: str) -> int:
        if len(text) > 2048:
            self.long_calls += 1
        return self.inner.count(text)


@pytest.mark.parametrize("form", ["prose", "json", "logs"])
@pytest.mark.parametrize("rate", [0.05, 0.25, 0.6])
def test_budget_search_is_exact_full_and_counts_little(form: str, rate: float) -> None:
    from bench.bench_speed import build_input

    text, _query = build_input(form, 12_000)
    units = segment(text, "line" if form == "logs" else "sentence")
    counter = _CountingCounter()
    budget = int(counter.count(text) * rate)
    scores = np.arange(len(units), dtype=np.float64)[::-1] % 7
    plan = plan_prune(units, scores, budget_tokens=budget, counter=counter,
                      render=lambda keep: render_text(units, keep, "… "))
    assert plan.tokens == counter.inner.count(plan.text) <= budget
    assert plan.tokens >= 0.97 * budget
    assert counter.long_calls <= 16  # the old binary search rendered and counted ~log2(n) + 24 times


@pytest.mark.parametrize("criterion", ["lexical", "learned"])
@pytest.mark.parametrize("form", ["prose", "json", "logs", "yaml"])
def test_compress_stays_within_budget_on_bench_inputs(criterion: str, form: str) -> None:
    from bench.bench_speed import available_forms, build_input

    if form not in available_forms():
        pytest.skip("YAML support not installed")
    text, query = build_input(form, 6_000)
    result = Compressor(criterion=criterion).compress(text, query=query, budget=make_budget(rate=0.2))
    assert result.tokens_after <= result.budget_tokens
    assert result.tokens_after == resolve_counter().count(result.text)
    assert result.tokens_after >= 0.8 * result.budget_tokens


_PIECES = st.sampled_from(
    ["a", "Z", "foo", " ", "\n", ".", "..", "/", "//", ":", "::", "->", "-", "_", "@", "://", "http", "https://x.org/a",
     "0", "12", "2024", "2024-01-02", "12:30", "T10:00:00Z", "0x1f", "deadbeef", "abcdef0", "3f2a9c1d-1111-2222-3333-",
     "444455556666", "$", "€", "%", ",", "1,234.56", "e", "E-4", "iPhone", "snake_case", "a.b", "(", ")", "()", "~",
     "你", "٣", "ü", "'", '"', "user@example.com", "+"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_specialised_protected_patterns_match_like_the_full_one(text: str) -> None:
    from agent_tokred._patterns import PROTECTED
    from agent_tokred._protected_fast import ALTERNATIVES, protected_for, term_pattern_for
    from agent_tokred.criteria.lexical import _TERM

    assert "|".join(pat for pat, _ in ALTERNATIVES) == PROTECTED.pattern
    assert protected_for(text).findall(text) == PROTECTED.findall(text)
    assert term_pattern_for(text).findall(text) == _TERM.findall(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.sampled_from(["\n", "\n\n", " \n", ".\n", "\n1", "a\n"])), max_size=50).map("".join))
def test_protected_spans_line_by_line_equal_the_whole_text_scan(text: str) -> None:
    from agent_tokred._patterns import PROTECTED
    from agent_tokred._protected_fast import protected_spans_of

    assert protected_spans_of(text) == [m.span() for m in PROTECTED.finditer(text)]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=600, deadline=None)
@given(_JSON, st.integers(min_value=0, max_value=120))
def test_length_bound_never_exceeds_the_compact_dump(value: object, limit: int) -> None:
    from agent_tokred.strategies.structured import _longer_than, dumps

    if _longer_than(value, limit):
        assert len(dumps(value)) > limit
    assert not _longer_than(value, len(dumps(value)))  # a lower bound: never above the real length
