"""Search latency of the merging store at scale (10k items), for :mod:`bench.bench_memory`.

Item vectors are random 384-d unit vectors (the index costs the same for any vectors); queries are real
questions embedded by the shipped MiniLM. Three figures per backend:

* new query: a question the store has not seen (MiniLM on the query + index + reads from the store);
* repeated query: the same questions again (the store caches query vectors, so no model call);
* store only: the query given as a vector (index, reads, filters), and MiniLM alone on a query.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp

from agent_tokred.integration.store import MergingStore
from agent_tokred.store.query_embedding import default_query_embedder

from .common import markdown_table

# distinct wordings, so every "new" query really is new to the store's query cache
_WORDINGS = ("{q}", "Remind me: {q}", "{q} Answer briefly.", "Quick check, {q}")


class RandomDocsMiniLMQueries(Embeddings):
    """Random unit vectors for documents (fast, same cost in the index), MiniLM for queries."""

    def __init__(self, dims: int = 384, seed: int = 0, queries: str = "minilm") -> None:
        self.rng = np.random.default_rng(seed)
        self.dims = dims
        self.queries = queries

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        v = self.rng.normal(size=(len(texts), self.dims)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        if self.queries == "random":
            return self.embed_documents([text])[0]
        return default_query_embedder()(text).tolist()  # what the store does with its default MiniLM


def pct_ms(values: list[float], q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds (NaN when empty)."""
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def _timed(fn: Any, args: list[Any]) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return out


def run_scale(inner: Any, backend: str, n: int, questions: list[str], texts: list[str]) -> dict[str, Any]:
    """Fill ``inner`` with ``n`` items through a MergingStore and time searches (limit 5)."""
    store = MergingStore(inner, embed=RandomDocsMiniLMQueries(), mode="manual")
    ops = [PutOp(("scale",), f"k{i}", {"text": f"{texts[i % len(texts)][:2000]} #{i}", "kind": "tool"}) for i in range(n)]
    for i in range(0, n, 200):
        store.batch(ops[i : i + 200])
    store.refresh()  # measure the steady state, not the first load
    store.search(("scale",), query="warm up", limit=5)
    new = [w.format(q=q) for w in _WORDINGS for q in questions]

    def search(q: str) -> None:
        store.search(("scale",), query=q, limit=5)

    cold = _timed(search, new)
    repeated = _timed(search, new[: len(questions)])
    embed_only = _timed(default_query_embedder(), new[:40])
    store.embeddings = RandomDocsMiniLMQueries(seed=1, queries="random")  # query given as a vector
    store_only = _timed(search, new)
    return {
        "backend": backend,
        "items": n,
        "queries": len(new),
        "search_p50_ms": pct_ms(cold, 50),
        "search_p95_ms": pct_ms(cold, 95),
        "repeated_p50_ms": pct_ms(repeated, 50),
        "repeated_p95_ms": pct_ms(repeated, 95),
        "store_only_p50_ms": pct_ms(store_only, 50),
        "store_only_p95_ms": pct_ms(store_only, 95),
        "query_embed_p50_ms": pct_ms(embed_only, 50),
    }


def scale_table(raw: dict[str, Any], cmd: str) -> str:
    """The markdown table of the scale runs in ``raw["scale"]``."""
    return markdown_table(
        [
            "backend",
            "items",
            "search p50 / p95 ms (new query)",
            "search p50 / p95 ms (repeated query)",
            "store only p50 / p95 ms",
            "MiniLM query embed p50 ms",
        ],
        [
            [
                s["backend"],
                f"{s['items']:,}",
                f"{s['search_p50_ms']:.1f} / {s['search_p95_ms']:.1f}",
                f"{s['repeated_p50_ms']:.1f} / {s['repeated_p95_ms']:.1f}",
                f"{s['store_only_p50_ms']:.1f} / {s['store_only_p95_ms']:.1f}",
                f"{s['query_embed_p50_ms']:.1f}",
            ]
            for s in raw["scale"]
        ],
        caption=(
            f"Search latency at scale, limit 5, {raw['scale'][0]['queries']} distinct questions per backend: random "
            "item vectors; new queries embedded by MiniLM (end to end), repeated ones from the store's query-vector "
            "cache, store only: the query given as a vector (index, reads, filters). "
            f"{raw['cpus']} CPUs, load average {raw['load_average']} during the run. Command: `{cmd}`"
        ),
    )
