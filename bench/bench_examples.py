"""In-context example selection under a token budget, against LangChain's example selectors.

Pool: reasoning-gym ``gsm_symbolic`` problems (question, chain of thought, answer; 85 usable templates)
from seed 0; queries from a held-apart seed (no query text is in the pool). An example is *useful* for
a query when it comes from the query's own template (the template id is ``task_indices`` of the
dataset). Every selector gets the same budget for the examples block (rendered by the same prompt,
joined by ``"\\n\\n"``, counted exactly in cl100k_base):

* ours: :class:`agent_tokred.examples.ExamplePool` with the default :class:`SelectionPolicy` (the
  cluster cut), plus ablations (the previous fixed 0.25 margin, no cut, one strategy only);
* LangChain's ``LengthBasedExampleSelector``, ``SemanticSimilarityExampleSelector`` and
  ``MaxMarginalRelevanceExampleSelector`` over the same MiniLM embeddings of the question, each cut to
  the budget as described in :mod:`bench._examples_baselines`.

Every selection is re-checked: rendered, joined and counted; any baseline that LangChain let run
over is cut to its longest fitting prefix. Run ``python -m bench.bench_examples [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

import agent_tokred
from agent_tokred.examples import ExampleCompression, ExamplePool, SelectionPolicy
from agent_tokred.tokens import resolve_counter

from ._examples_baselines import SEP, Example, Harness, Selector, langchain_latency, langchain_selectors, median_ms
from .common import OUT, markdown_table, write_outputs

BUDGETS = (300, 600, 1200)
POOL_SEED, QUERY_SEED, DEV_SEEDS = 0, 5_000_000, (2_000_000, 3_000_000)


def build_items(seed: int, size: int) -> list[tuple[Example, int]]:
    """``size`` gsm_symbolic problems as (example, template id); the CoT's ``#### N`` line is the answer."""
    import reasoning_gym

    ds = reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed)
    items = []
    for i in range(size):
        row = ds[i]
        cot = row["metadata"]["answer_cot"].rsplit("####", 1)[0].strip()
        items.append(
            (
                {"question": row["question"], "reasoning": cot, "answer": str(row["answer"])},
                int(ds.task_indices[i]),
            )
        )
    return items


def embed_cached(texts: list[str]) -> dict[str, np.ndarray]:
    """MiniLM embeddings by text, cached on disk by content hash (agent_tokred's cache folder)."""
    uniq = sorted(set(texts))
    pool = ExamplePool([{"t": t} for t in uniq], input_keys=["t"], tokenizer="approx", cache=True)
    return dict(zip(uniq, pool.vectors))


def make_selectors(
    pool_items: list[Example],
    vectors: dict[str, np.ndarray],
    h: Harness,
    variants: dict[str, dict[str, Any]],
) -> dict[str, Selector]:
    ours = ExamplePool(
        pool_items,
        input_keys=["question"],
        formatter=h.prompt,
        tokenizer=h.counter,
        embeddings=np.stack([vectors[e["question"]] for e in pool_items]),
        separator=SEP,
        compressible_key="reasoning",
    )
    out: dict[str, Selector] = {}
    for name, kwargs in variants.items():
        out[name] = lambda q, b, kw=kwargs: ours.select(q, b, query_vector=vectors[q], **kw).examples
    return {**out, **langchain_selectors(pool_items, vectors, h)}


def evaluate(
    selectors: dict[str, Selector],
    queries: list[tuple[Example, int]],
    template_of: dict[str, int],
    h: Harness,
    budgets: Sequence[int],
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for name, select in selectors.items():
        res[name] = {}
        for b in budgets:
            share, distinct, n_sel, used, over = [], [], [], [], 0
            for ex, tid in queries:
                sel = select(ex["question"], b)
                useful = [e for e in sel if template_of[e["question"]] == tid]
                if sel:
                    share.append(len(useful) / len(sel))
                distinct.append(len({e["question"] for e in useful}))
                n_sel.append(len(sel))
                tok = h.tokens(sel)
                used.append(tok)
                over += tok > b
            res[name][str(b)] = {
                "share_own_template": statistics.mean(share) if share else 0.0,
                "distinct_useful": statistics.mean(distinct),
                "selected": statistics.mean(n_sel),
                "tokens_used": statistics.mean(used),
                "over_budget": over,
                "empty": sum(1 for n in n_sel if n == 0),
            }
    return res


def latency(
    pool_items: list[Example],
    vecs: np.ndarray,
    query_vecs: np.ndarray,
    h: Harness,
    budgets: Sequence[int],
    repeats: int,
) -> dict[str, Any]:
    """Median selection time (ms) per budget; LangChain's selectors at k=8 on the same vectors for scale."""
    t = time.perf_counter()
    pool = ExamplePool(
        pool_items,
        input_keys=["question"],
        formatter=h.prompt,
        tokenizer=h.counter,
        embeddings=vecs,
        separator=SEP,
    )
    build_s = time.perf_counter() - t
    out: dict[str, Any] = {
        "pool": len(pool),
        "build_s_excluding_embedding": build_s,
        "load_average_1min": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    queries = query_vecs[:repeats]
    for b in budgets:
        out[str(b)] = median_ms(lambda qv, b=b: pool.select(query_vector=qv, budget=b), queries)
    return {**out, **langchain_latency(pool_items, vecs, queries)}


def run(quick: bool = False, out_dir: Path = OUT, query_seed: int = QUERY_SEED) -> dict[str, Any]:
    n_pool, n_query = (300, 20) if quick else (1000, 200)
    counter = resolve_counter("cl100k_base")
    h = Harness(counter)
    items = build_items(POOL_SEED, n_pool)
    pool_questions = {e["question"] for e, _ in items}
    queries = [(e, t) for e, t in build_items(query_seed, n_query * 2) if e["question"] not in pool_questions][:n_query]
    template_of = {e["question"]: t for e, t in items + queries}
    vectors = embed_cached([e["question"] for e, _ in items + queries])
    lexical = lru_cache(maxsize=None)(partial(agent_tokred.compress, criterion="lexical"))
    main = {"ours (BudgetedExampleSelector engine, defaults)": {}}
    ablations: dict[str, dict[str, Any]] = {
        "ours + compress CoT (rate 0.6, lexical)": {
            "compress": ExampleCompression(rate=0.6, compressor=lambda t, **kw: lexical(t, **kw).text),
        },
        "ours: per-token only": {"policy": SelectionPolicy(strategy="per_token")},
        "ours: relevance only (no per-token)": {"policy": SelectionPolicy(strategy="relevance")},
        "ours: fixed 0.25 margin instead of the cluster cut": {"policy": SelectionPolicy(relevance_cut="margin")},
        "ours: no relevance cut (fills budget)": {"policy": SelectionPolicy(relevance_cut="none")},
        "ours: no diversity": {"policy": SelectionPolicy(diversity=0.0)},
    }
    pool_items = [e for e, _ in items]
    raw: dict[str, Any] = {
        "pool": n_pool,
        "queries": len(queries),
        "query_seed": query_seed,
        "templates_in_pool": len({t for _, t in items}),
    }
    raw["clean"] = evaluate(
        make_selectors(pool_items, vectors, h, {**main, **ablations}), queries, template_of, h, BUDGETS
    )
    rng = random.Random(7)
    dup_items = pool_items + rng.sample(pool_items, len(pool_items) // 4)
    rng.shuffle(dup_items)
    raw["duplicates"] = evaluate(make_selectors(dup_items, vectors, h, main), queries, template_of, h, BUDGETS)

    # Latency: 1k = the real pool above with real MiniLM vectors (embedded once beforehand);
    # 10k = real examples (real token counts) with random unit vectors, i.e. pure selection cost
    # when the embedding has no structure for the cluster cut to find.
    rs = np.random.default_rng(0)
    qv = np.stack([vectors[e["question"]] for e, _ in queries])
    raw["latency"] = {
        "1k": latency(
            pool_items[:1000],
            np.stack([vectors[e["question"]] for e in pool_items[:1000]]),
            qv,
            h,
            BUDGETS,
            50,
        )
    }
    big = [e for e, _ in build_items(POOL_SEED, 10_000)]
    rv = rs.standard_normal((10_000 + 50, 384)).astype(np.float32)
    raw["latency"]["10k"] = latency(big, rv[:10_000], rv[10_000:], h, BUDGETS, 10 if quick else 50)
    write_outputs(out_dir, "examples", render(raw, quick), raw)
    return raw


def render(raw: dict[str, Any], quick: bool) -> str:
    cmd = f"python -m bench.bench_examples{' --quick' if quick else ''}"
    loads = ", ".join(f"{v['load_average_1min']:.1f}" for v in raw["latency"].values())
    head = [
        "budget",
        "selector",
        "share own template",
        "distinct useful",
        "selected",
        "empty",
        "tokens used",
        "over budget",
    ]

    def rows(block: dict[str, Any]) -> list[list[Any]]:
        return [
            [
                b,
                name,
                v[str(b)]["share_own_template"],
                v[str(b)]["distinct_useful"],
                v[str(b)]["selected"],
                v[str(b)]["empty"],
                v[str(b)]["tokens_used"],
                v[str(b)]["over_budget"],
            ]
            for b in BUDGETS
            for name, v in block.items()
        ]

    setting = (
        f"pool {raw['pool']} gsm_symbolic problems (seed 0, {raw['templates_in_pool']} templates), "
        f"{raw['queries']} queries (seed {raw['query_seed']}), cl100k_base"
    )
    md = [
        f"### Example selection at equal token budgets ({setting})\n",
        markdown_table(
            head,
            rows(raw["clean"]),
            "Means over queries. share own template = own-template examples / selected, over queries with a "
            "non-empty selection; distinct useful = distinct own-template examples selected; empty = queries "
            "with nothing selected; tokens used = exact cl100k_base tokens of the rendered, joined examples. "
            f"Command: `{cmd}`",
        ),
        "\n### Same, pool with 25% exact duplicates added\n",
        markdown_table(head, rows(raw["duplicates"]), f"Command: `{cmd}`"),
        "\n### Selection latency (median ms, this CPU, embeddings computed once beforehand)\n",
        markdown_table(
            [
                "pool",
                "vectors",
                *[f"ours @{b}" for b in BUDGETS],
                "LC semantic k=8",
                "LC MMR k=8",
                "pool build s (no embedding)",
            ],
            [
                [
                    v["pool"],
                    "MiniLM" if k == "1k" else "random unit (worst case)",
                    *[v[str(b)] for b in BUDGETS],
                    v["semantic_k8"],
                    v["mmr_k8"],
                    v["build_s_excluding_embedding"],
                ]
                for k, v in raw["latency"].items()
            ],
            "Pool embeddings are computed once beforehand and not timed; a query's own embedding "
            "(MiniLM, ~10 ms) is not included. Pool sizes are after exact-duplicate removal. Load average "
            f"during the runs: {loads} "
            f"on {raw['latency']['1k']['cpus']} CPUs (shared machine). Command: `{cmd}`",
        ),
    ]
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--query-seed", type=int, default=QUERY_SEED, help="held-apart seed of the queries")
    args = parser.parse_args()
    run(args.quick, args.out, args.query_seed)
    print((args.out / "examples.md").read_text())


if __name__ == "__main__":
    main()
