"""Query likelihood (self-information of the question given each unit) on a tiny random causal LM."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent_tokred.criteria._query_likelihood import PrefixKVCache, query_likelihood_padded
from agent_tokred.criteria.self_information import SelfInformationCriterion, query_likelihood
from agent_tokred.units import segment

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


class CharTokenizer:
    """One id per character (ids 3..), bos 1, eos 2, pad 0: enough for the criterion's calls."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __call__(self, text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": [3 + (ord(ch) % 60) for ch in text]}

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i - 3 + 32) for i in ids)


@pytest.fixture(scope="module", params=[4, 2], ids=["mha", "gqa"])
def tiny(request: pytest.FixtureRequest) -> tuple[CharTokenizer, Any]:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=request.param,
                                   max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(cfg).eval()
    return CharTokenizer(), model


TEXTS = ["Paris is in France. ", "A much longer sentence about cats and dogs sleeping. ", "Hi. ",
         "Paris is in France. ", "   ", "Rome is the capital of Italy, on the Tiber. "]


def _alone(model: Any, tok: CharTokenizer, text: str, prompt: list[int]) -> float:
    seq = [tok.bos_token_id, *tok(text.strip())["input_ids"][:64], *prompt]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([seq])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    n = len(prompt) - 1
    pos = torch.arange(len(seq) - n - 1, len(seq) - 1)
    return float(logp[pos, torch.tensor(seq[-n:])].mean())


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_left_padded_batches_score_like_each_text_alone(tiny: tuple[CharTokenizer, Any], batch_size: int) -> None:
    tok, model = tiny
    texts = ["Paris is in France. ", "A much longer sentence about cats and dogs sleeping. ", "Hi. "]
    prompt = tok("\nQuestion: where is Paris?")["input_ids"]
    got = query_likelihood(model, tok, texts, prompt, 64, batch_size)
    want = [_alone(model, tok, t, prompt) for t in texts]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_empty_units_score_lowest(tiny: tuple[CharTokenizer, Any]) -> None:
    tok, model = tiny
    got = query_likelihood(model, tok, ["one. ", "   ", "two. "], tok("\nQ: x")["input_ids"], 64, 4)
    assert got.shape == (3,) and np.isfinite(got).all()
    assert got[1] < min(got[0], got[2])


@pytest.mark.parametrize(
    ("mode", "query", "want"),
    [("auto", "where?", "query_likelihood"), ("auto", None, "surprisal"), ("auto", "  ", "surprisal"),
     ("query_likelihood", None, "surprisal"), ("contrastive", "q", "contrastive"), ("surprisal", "q", "surprisal")],
)
def test_resolved_mode(mode: str, query: str | None, want: str) -> None:
    assert SelfInformationCriterion(mode=mode).resolved_mode(query) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_split_passes_equal_the_joint_padded_pass(tiny: tuple[CharTokenizer, Any], batch_size: int) -> None:
    tok, model = tiny
    prompt = tok("\nQuestion: where is Paris?")["input_ids"]
    want = query_likelihood_padded(model, tok, TEXTS, prompt, 64, batch_size)
    got = query_likelihood(model, tok, TEXTS, prompt, 64, batch_size)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (np.argsort(got, kind="stable") == np.argsort(want, kind="stable")).all()


def test_cached_states_give_the_same_scores_and_skip_seen_units(tiny: tuple[CharTokenizer, Any]) -> None:
    tok, model = tiny
    cache = PrefixKVCache(max_mb=16)
    unique = len({t.strip() for t in TEXTS if t.strip()})
    for question in ("where is Paris?", "which river?"):
        prompt = tok(f"\nQuestion: {question}")["input_ids"]
        want = query_likelihood_padded(model, tok, TEXTS, prompt, 64, 2)
        np.testing.assert_allclose(query_likelihood(model, tok, TEXTS, prompt, 64, 2, cache), want, atol=1e-5)
    assert cache.misses == unique and cache.hits == unique  # the second question reused every unit
    assert 0 < cache.size_bytes <= cache.max_bytes


def test_cache_drops_least_recently_used_beyond_its_bound() -> None:
    def kv(n: int) -> tuple[tuple[Any, Any], ...]:
        return ((torch.zeros(1, n, 256), torch.zeros(1, n, 256)),)  # 2 KB per position

    cache = PrefixKVCache(max_mb=10 / 1024)  # 10 KB
    cache.put((1,), kv(2))
    cache.put((2,), kv(2))
    assert cache.get((1,)) is not None  # (1,) is now the most recent
    cache.put((3,), kv(2))  # 12 KB > 10 KB: (2,) goes
    assert cache.get((2,)) is None and cache.get((1,)) is not None and cache.get((3,)) is not None
    cache.put((4,), kv(8))  # larger than the whole bound: not kept, nothing dropped
    assert cache.get((4,)) is None and cache.size_bytes == 8 * 1024
    cache.clear()
    assert cache.size_bytes == 0 and cache.get((1,)) is None


def test_criterion_scores_agree_with_and_without_its_cache(
    tiny: tuple[CharTokenizer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_tokred.criteria import self_information

    monkeypatch.setattr(self_information, "load_causal_lm", lambda name: tiny)
    units = segment("Paris is in France. Cats sleep all day. Rome is in Italy.", "sentence")
    cached = SelfInformationCriterion(kv_cache_mb=8)
    plain = SelfInformationCriterion(kv_cache_mb=0)
    first = cached(units, "where is Paris?")
    again = cached(units, "where is Paris?")
    np.testing.assert_allclose(first, plain(units, "where is Paris?"), atol=1e-6)
    assert first == again and cached._kv_cache is not None and cached._kv_cache.hits == 3
    assert plain._kv_cache is None


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_cache_size_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="kv_cache_mb"):
        SelfInformationCriterion(kv_cache_mb=bad)
