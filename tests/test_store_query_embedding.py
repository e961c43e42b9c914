"""The store's query embedder: sentence-transformers' vectors without its per-call machinery."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from agent_tokred.errors import ModelNotAvailableError
from agent_tokred.store import query_embedding as qe


def test_importing_it_loads_no_torch() -> None:
    code = (
        "import sys, agent_tokred.store.query_embedding as q, agent_tokred.integration.store;"
        "q.QueryEmbedder(quantize=True); print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_model_that_does_not_mean_pool_is_refused(tmp_path: object) -> None:
    folder = tmp_path / "cls-model"  # type: ignore[operator]
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ModelNotAvailableError, match="mean pooling"):
        qe.QueryEmbedder(str(folder))("any query")


def test_a_graph_that_does_not_follow_its_input_is_not_traced() -> None:
    torch = pytest.importorskip("torch")

    class DataDependent(torch.nn.Module):  # type: ignore[misc, name-defined]
        def forward(self, ids: object, types: object) -> object:
            x = ids.float()[0]  # type: ignore[attr-defined]
            return x if int(x.shape[0]) < 8 else -x  # a Python branch: a trace keeps one side only

    class Tok:
        def encode(self, text: str) -> SimpleNamespace:
            n = len(text.split())
            return SimpleNamespace(ids=list(range(1, n + 1)), type_ids=[0] * n)

    module = DataDependent()
    assert qe._traced(torch, Tok(), module, freeze=False) is module


def test_a_traceable_graph_is_traced_and_computes_the_same() -> None:
    torch = pytest.importorskip("torch")

    class Mean(torch.nn.Module):  # type: ignore[misc, name-defined]
        def forward(self, ids: object, types: object) -> object:
            return torch.nn.functional.normalize(ids.float()[0] + types.float()[0], dim=-1)  # type: ignore[attr-defined]

    class Tok:
        def encode(self, text: str) -> SimpleNamespace:
            n = len(text.split())
            return SimpleNamespace(ids=list(range(1, n + 1)), type_ids=[1] * n)

    module = Mean().eval()
    traced = qe._traced(torch, Tok(), module, freeze=False)
    assert traced is not module
    ids, types = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]]), torch.ones(1, 10, dtype=torch.long)
    assert torch.allclose(traced(ids, types), module(ids, types))


QUERIES = [
    "who wrote the song take me home country roads",
    "when did the first world war start",
    "what is the capital city of australia and why was it chosen over sydney and melbourne",
    "how many players are on a rugby union team on the field at one time during a match",
    "rust",
]


@pytest.mark.model
def test_fp32_equals_sentence_transformers_at_every_length() -> None:
    from agent_tokred.models import embed

    long_text = " ".join(["the merging store keeps recent memories verbatim and merges old ones"] * 40)
    texts = [*QUERIES, long_text]  # the long one is truncated at 256 word pieces, as ST does
    got = np.stack([qe.QueryEmbedder()(t) for t in texts])
    want = embed(texts)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_int8_stays_close_and_two_threads_compute_the_same() -> None:
    from agent_tokred.models import embed

    want = embed(QUERIES)
    int8 = np.stack([qe.QueryEmbedder(quantize=True)(t) for t in QUERIES])
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (int8 * want).sum(axis=1).min() > 0.9  # close, not equal: the bench measures its recall
    assert np.abs(int8 - want).max() > 1e-4
    two = np.stack([qe.QueryEmbedder(threads=2)(t) for t in QUERIES])
    assert np.abs(two - want).max() < 1e-5


@pytest.mark.model
def test_the_store_default_embeds_queries_through_it() -> None:
    from agent_tokred.integration.store._support import MiniLMEmbeddings
    from agent_tokred.models import embed

    assert qe.default_query_embedder() is qe.default_query_embedder()
    assert qe.default_query_embedder().quantize  # int8: its recall held in the scale bench
    want = embed([QUERIES[0]])[0]
    default = np.asarray(MiniLMEmbeddings().embed_query(QUERIES[0]), dtype=np.float32)
    assert np.abs(default - qe.default_query_embedder()(QUERIES[0])).max() < 1e-6
    fp32 = np.asarray(MiniLMEmbeddings(qe.QueryEmbedder()).embed_query(QUERIES[0]), dtype=np.float32)
    assert np.abs(fp32 - want).max() < 1e-5
