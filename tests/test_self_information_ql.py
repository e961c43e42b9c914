"""Query likelihood (self-information of the question given each unit) on a tiny random causal LM."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent_tokred.criteria.self_information import SelfInformationCriterion, query_likelihood

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


class CharTokenizer:
    """One id per character (ids 3..), bos 1, eos 2, pad 0: enough for the criterion's calls."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __call__(self, text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": [3 + (ord(ch) % 60) for ch in text]}

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i - 3 + 32) for i in ids)


@pytest.fixture(scope="module")
def tiny() -> tuple[CharTokenizer, Any]:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(cfg).eval()
    return CharTokenizer(), model


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
