"""LangChain's example selectors as baselines of ``bench.bench_examples``, and the harness that cuts them.

Every selector is rendered, joined and counted the same way (:class:`Harness`); LangChain's selectors,
which know ``k`` or a length but not tokens, are cut to the longest prefix of their ranked list that
fits the budget (the largest ``k`` whose selection fits):

* ``LengthBasedExampleSelector`` counting with the same token counter (``get_text_length``) and
  ``max_length`` = budget + the query's tokens (it subtracts the input length itself);
* ``SemanticSimilarityExampleSelector`` / ``MaxMarginalRelevanceExampleSelector`` (``fetch_k=20``,
  ``lambda_mult=0.5``, their defaults) on ``InMemoryVectorStore`` over the same embeddings of the
  question as ours.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

TEMPLATE = "Question: {question}\nReasoning: {reasoning}\nAnswer: {answer}"
SEP = "\n\n"
Example = dict[str, str]
Selector = Callable[[str, int], list[Example]]


def lookup_embeddings(table: dict[str, np.ndarray]) -> Any:
    """A LangChain ``Embeddings`` that returns precomputed vectors by text (all selectors see the same)."""
    from langchain_core.embeddings import Embeddings

    class LookupEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [table[t].tolist() for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return table[text].tolist()

    return LookupEmbeddings()


class Harness:
    """Renders, counts and cuts selections the same way for every selector."""

    def __init__(self, counter: Any) -> None:
        from langchain_core.prompts import PromptTemplate

        self.prompt = PromptTemplate.from_template(TEMPLATE)
        self.counter = counter
        self._counts: dict[str, int] = {}

    def tokens(self, examples: Sequence[Example]) -> int:
        return self.counter.count(SEP.join(self.prompt.format(**e) for e in examples)) if examples else 0

    def fit_prefix(self, ranked: Sequence[Example], budget: int) -> list[Example]:
        """The longest prefix of ``ranked`` that fits (= the largest k whose selection fits).

        Starts from the estimate "sum of example counts + separators" and moves k until the exact count
        of the joined prefix fits and one more example would not.
        """
        sep = self.counter.count(SEP)
        k, total = 0, 0
        for e in ranked:
            total += self.count_one(e) + (sep if k else 0)
            if total > budget:
                break
            k += 1
        while k > 0 and self.tokens(ranked[:k]) > budget:
            k -= 1
        while k < len(ranked) and self.tokens(ranked[: k + 1]) <= budget:
            k += 1
        return list(ranked[:k])

    def count_one(self, example: Example) -> int:
        key = example["question"] + "\0" + example["reasoning"]
        if key not in self._counts:
            self._counts[key] = self.counter.count(self.prompt.format(**example))
        return self._counts[key]


def langchain_selectors(pool_items: list[Example], vectors: dict[str, np.ndarray], h: Harness) -> dict[str, Selector]:
    """LengthBased, SemanticSimilarity and MMR, each cut to the budget by :meth:`Harness.fit_prefix`."""
    from langchain_core.example_selectors import (
        LengthBasedExampleSelector,
        MaxMarginalRelevanceExampleSelector,
        SemanticSimilarityExampleSelector,
    )
    from langchain_core.vectorstores import InMemoryVectorStore

    emb = lookup_embeddings(vectors)
    length = LengthBasedExampleSelector(
        examples=pool_items, example_prompt=h.prompt, get_text_length=h.counter.count, max_length=1
    )
    semantic = SemanticSimilarityExampleSelector.from_examples(
        pool_items, emb, InMemoryVectorStore, k=40, input_keys=["question"]
    )
    mmr = MaxMarginalRelevanceExampleSelector.from_examples(
        pool_items, emb, InMemoryVectorStore, k=20, fetch_k=20, input_keys=["question"]
    )

    def length_based(q: str, b: int) -> list[Example]:
        length.max_length = b + h.counter.count(q)
        return h.fit_prefix(length.select_examples({"question": q}), b)

    return {
        "LengthBased (token counter)": length_based,
        "SemanticSimilarity (max k fitting)": lambda q, b: h.fit_prefix(semantic.select_examples({"question": q}), b),
        "MMR (max k fitting)": lambda q, b: h.fit_prefix(mmr.select_examples({"question": q}), b),
    }


def langchain_latency(pool_items: list[Example], vecs: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Median ms of LangChain's Semantic / MMR selectors at k=8 on the same vectors, for scale."""
    from langchain_core.example_selectors import (
        MaxMarginalRelevanceExampleSelector,
        SemanticSimilarityExampleSelector,
    )
    from langchain_core.vectorstores import InMemoryVectorStore

    table = {e["question"]: v for e, v in zip(pool_items, vecs)}
    table.update({f"query {i}": v for i, v in enumerate(queries)})
    emb = lookup_embeddings(table)
    semantic = SemanticSimilarityExampleSelector.from_examples(
        pool_items, emb, InMemoryVectorStore, k=8, input_keys=["question"]
    )
    mmr = MaxMarginalRelevanceExampleSelector.from_examples(
        pool_items, emb, InMemoryVectorStore, k=8, input_keys=["question"]
    )
    names = [f"query {i}" for i in range(min(len(queries), 10))]  # LangChain's stores are slow at 10k
    return {
        "semantic_k8": median_ms(lambda q: semantic.select_examples({"question": q}), names),
        "mmr_k8": median_ms(lambda q: mmr.select_examples({"question": q}), names),
    }


def median_ms(fn: Callable[[Any], Any], args: Sequence[Any]) -> float:
    times = []
    for arg in args:
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000
