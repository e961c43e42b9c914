"""The one-scan fast paths (issue 16, second pass) find what the plain whole-pattern scans find."""

from __future__ import annotations

import bisect
import importlib

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_tokred._patterns import PROTECTED
from agent_tokred._protected_fast import strictly_inside_protected, terms_and_protected
from agent_tokred.units import _SENT_END, _absorb_space, _is_abbreviation, _sentence_cuts

lexical_module = importlib.import_module("agent_tokred.criteria.lexical")

_PIECES = st.sampled_from(
    ["a", "Z", "foo", " ", "  ", "\n", "\t", ".", "..", "...", "/", ":", "::", "->", "-", "_", "@", "://", "http",
     "https://x.org/a", "0", "12", "2024", "2024-01-02", " 12:30", "12:30", "T10:00:00Z", "0x1f", "deadbeef",
     "3f2a9c1d-1111-2222-3333-", "444455556666", "$", "%", ",", "1,234.56", "e", "iPhone", "snake_case", "a.b", "(",
     ")", "()", "~", "你", "٣", "ü", "'", '"', "”", "’", "user@example.com", "+", "。", "！", "」", "…", "?", "!",
     "Dr.", "e.g.", "/usr/lib.", "Error", "failed", "xtimeout", "İnvalid", "ı", "ſ", "K", "FATAL", ". A", "!\nBc"]
)
_TEXTS = st.lists(_PIECES, max_size=50).map("".join)


def _reference_cuts(text: str) -> list[int]:
    """Sentence cuts as before: every protected span of the whole text, then the candidates."""
    spans = [m.span() for m in PROTECTED.finditer(text)]
    starts = [a for a, _ in spans]

    def inside(pos: int) -> bool:
        k = bisect.bisect_left(starts, pos) - 1
        return k >= 0 and spans[k][0] < pos < spans[k][1]

    cuts = []
    for m in _SENT_END.finditer(text):
        if inside(m.start()) or inside(m.end() - 1):
            continue
        if m.group().startswith(".") and _is_abbreviation(text, m.start() + 1):
            continue
        cuts.append(_absorb_space(text, m.end()))
    return cuts


@settings(max_examples=600, deadline=None)
@given(_TEXTS)
def test_sentence_cuts_equal_the_whole_text_span_scan(text: str) -> None:
    assert _sentence_cuts(text) == _reference_cuts(text)


@settings(max_examples=600, deadline=None)
@given(_TEXTS)
def test_terms_and_protected_count_come_from_one_scan(text: str) -> None:
    terms, protected = terms_and_protected(text)
    assert list(terms) == [t.lower() for t in lexical_module._TERM.findall(text)]
    assert protected == len(PROTECTED.findall(text))


def test_urls_inside_words_are_counted_by_their_own_scan() -> None:
    text = "see myfile://host/x and xhttp://a.b/c"
    assert terms_and_protected(text)[1] == len(PROTECTED.findall(text))


def test_inside_reports_strict_interiors_only() -> None:
    text = "path /usr/lib. then http://x.org/a.’ end 2024-01-02 12:30. ok"
    spans = [m.span() for m in PROTECTED.finditer(text)]
    inside = strictly_inside_protected(text)
    for pos in (text.index("lib.") + 3, text.index(".’") + 1, text.index("30.") + 2, text.index("ok")):
        assert inside(pos, pos) == any(a < pos < b for a, b in spans), pos


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_alarm_and_capital_patterns_match_the_old_ones(text: str) -> None:
    import re

    old_alarm = re.compile(
        r"\b(?:error|exception|traceback|fail(?:ed|ure)?|fatal|warn(?:ing)?|denied|timeout|invalid)\b", re.I)
    assert (old_alarm.search(text) is None) == (lexical_module._ALARM.search(text) is None)
    assert (old_alarm.search(text) is not None) == lexical_module._alarm(text)
    assert re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+", text) == lexical_module._CAPITALS.findall(text)


def test_block_sums_equal_add_at_bit_for_bit() -> None:
    import numpy as np

    from agent_tokred.learned.features import _block_sums

    rng = np.random.default_rng(3)
    for sort in (True, False):
        for n in (1, 7, 400, 2500):
            block = rng.integers(0, max(1, n // 50), size=n)
            block = np.unique(np.sort(block) if sort else block, return_inverse=True)[1]
            nb = int(block.max()) + 1
            rows = (rng.normal(size=(n, 16)) * 10).astype(np.float32)
            want = np.zeros((nb, 16))
            np.add.at(want, block, rows)
            assert np.array_equal(_block_sums(rows, block, nb), want)


_FAST_PIECES = st.sampled_from(
    ["a", "A", "b", "F", "x", "X", "h", "t", "p", "s", "f", "e", "E", "T", "Z", ":", "/", ".", "-", "_", "+", "@", "~",
     "$", "€", "£", "%", ",", "0", "1", "7", "9", " ", "\n", "(", ")", "'", "é", "日", "٣", "Σ", "http://", "https://",
     "ftp://", "file://", "0x", "::", "->", "..", "2024-05-01", "12:30", "a54e2eed-e625-4570-9f74-3624e77d6684",
     "deadbeef7", "iPhone", "snake_case"]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_FAST_PIECES, max_size=30).map("".join))
def test_fast_alternatives_match_like_the_reference_ones(text: str) -> None:
    import re

    from agent_tokred._protected_fast import ALTERNATIVES, fast_alternation

    full = (1 << len(ALTERNATIVES)) - 1
    assert re.findall(fast_alternation(full), text) == PROTECTED.findall(text)
    for bit, (pattern, _) in enumerate(ALTERNATIVES):  # each rewrite alone, too
        assert [m.span() for m in re.finditer(fast_alternation(1 << bit), text)] == [
            m.span() for m in re.finditer(pattern, text)], pattern


def test_terms_lower_case_like_each_term_alone() -> None:
    # Terms are lower-cased joined by newlines: a final sigma still depends on its own term only.
    for text in ("ΟΔΟΣ x", "x ΟΔΟΣ", "ΑΣ.Σ", "a.Σb ΣΑ", "İstanbul ǅx", "ΣΣ", "Σ_Σ Σ", "ΟΔΟΣ 12:30 Σ"):
        assert list(terms_and_protected(text)[0]) == [t.lower() for t in lexical_module._TERM.findall(text)]


@settings(max_examples=800, deadline=None)
@given(st.lists(_FAST_PIECES, max_size=30).map("".join))
def test_mask_written_out_equals_the_listed_conditions(text: str) -> None:
    from agent_tokred._protected_fast import _mask, reference_mask

    assert _mask(text) == reference_mask(text)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from([*".!?…。！？\n \t\"'”’)]」』）aZ1", "...", "?!", ".”", "。」"]), max_size=30)
       .map("".join))
def test_sentence_end_pattern_matches_the_old_one(text: str) -> None:
    import re

    old = re.compile(r"(?:[.!?…]+[\"'”’)\]]*|[。！？]+[」』）]*)(?=\s|$)|[。！？]+[」』）]*|\n")
    assert [m.span() for m in _SENT_END.finditer(text)] == [m.span() for m in old.finditer(text)]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([*"aZz09125 .,'’-_\n!{}~[`@:/Ab", "1999", "2024", "20", "19s", "deadbeef"]), max_size=30)
       .map("".join))
def test_feature_patterns_match_the_old_ones(text: str) -> None:
    import re

    from agent_tokred._protected_fast import _HEX_RUN
    from agent_tokred.learned import features

    def spans(pattern: str | re.Pattern[str]) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(pattern, text)]

    assert spans(features._YEAR) == spans(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b")
    assert spans(features._NUMBER) == spans(r"\d+(?:[.,]\d+)*")
    assert spans(features._NAME) == spans(r"\b[A-Z][\w'’-]*")
    assert spans(_HEX_RUN) == spans(r"[0-9a-fA-F]{7}")
