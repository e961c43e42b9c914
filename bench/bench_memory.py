"""Bench: a merging memory over a long agent history with planted facts, vs the same store unmerged.

History: the BFCL v4 ``multi_turn_long_context`` trajectories replayed offline (real tool outputs from
the simulated backends, see :mod:`bench.bfcl`), concatenated into one long agent history in one
namespace: each user request, each tool call with its output, each closing answer is one memory.
Facts are planted at evenly spaced points: half as user turns ("remember: ..."), half as a note line
at the top of a real tool output; "deep" facts go in the middle of long tool outputs (past the 256
word pieces MiniLM reads, so only the store's passage vectors can find them). Questions about them
are asked at the end.

Reported per backend (InMemoryStore, SQLite file, PostgreSQL when ``AGENT_TOKRED_POSTGRES_URI`` is set):
stored tokens (the live view search returns) vs raw, recall@5 of the planted facts (the answer is in a
top-5 result's text; "provenance": a top-5 result stands for the fact's turn) for the merging store and
for the same store with merging and compression off, index vectors, write and search latency (p50/p95),
and MiniLM's cost per long memory with and without its passages. Embeddings:
the shipped MiniLM, computed once and cached on disk, so write latency is the store's own work (MiniLM
per item is reported apart); search latency includes MiniLM on the query. A 10k-item store measures
search latency at scale (:mod:`bench._memory_scale`): new and repeated queries, and the store's own share.

Usage:
    python -m bench.bench_memory [--quick] [--out bench/out] [--backends memory,sqlite,postgres]
        [--max-passages N]    # the store's policy (0: no passage vectors, as before they existed)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from agent_tokred.integration.store import MergingStore
from agent_tokred.models import cache_dir
from agent_tokred.models import embed as minilm
from agent_tokred.store.query_embedding import default_query_embedder

from ._memory_history import Fact, build_history
from ._memory_scale import pct_ms, run_scale, scale_table
from .common import OUT, markdown_table, normalize_answer, write_outputs

NS = ("agent", "history")


class CachedMiniLM(Embeddings):
    """MiniLM with an on-disk cache for documents; queries always run the model (timed honestly)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        self.embed_seconds: list[float] = []
        self.calls: list[list[str]] = []  # texts of each embed_documents call (one put: text + passages)
        if path.exists():
            with np.load(path) as data:
                self.cache = {k: data[k] for k in data.files}

    @staticmethod
    def _key(text: str) -> str:
        return "h" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        missing = [t for t in texts if self._key(t) not in self.cache]
        if missing:
            start = time.perf_counter()
            vecs = minilm(missing)
            self.embed_seconds.extend([(time.perf_counter() - start) / len(missing)] * len(missing))
            self.cache.update({self._key(t): v for t, v in zip(missing, vecs, strict=True)})
        return [self.cache[self._key(t)].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return default_query_embedder()(text).tolist()  # the store's own query path

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, **self.cache)


@contextmanager
def open_backend(name: str) -> Iterator[BaseStore]:
    if name == "memory":
        yield InMemoryStore()
    elif name == "sqlite":
        from langgraph.store.sqlite import SqliteStore

        with tempfile.TemporaryDirectory() as tmp, SqliteStore.from_conn_string(str(Path(tmp) / "m.sqlite")) as s:
            s.setup()
            s.conn.execute("PRAGMA journal_mode=WAL")  # as memory/store.py serves it
            s.conn.execute("PRAGMA synchronous=NORMAL")
            yield s
    elif name == "postgres":
        from langgraph.store.postgres import PostgresStore

        uri = os.environ.get("AGENT_TOKRED_POSTGRES_URI") or os.environ.get("DATABASE_URI")
        if not uri:
            raise RuntimeError("no PostgreSQL URI: run .ci/postgres.sh start and source its env file")
        with PostgresStore.from_conn_string(uri) as s:
            s.setup()
            with s._cursor() as cur:
                cur.execute("TRUNCATE store")
            yield s
    else:
        raise ValueError(f"unknown backend {name!r}; valid: memory, sqlite, postgres")


def evaluate(store: MergingStore, facts: list[Fact]) -> dict[str, Any]:
    content = {"turn": [], "tool": [], "deep": []}  # type: dict[str, list[bool]]
    provenance = {"turn": [], "tool": [], "deep": []}  # type: dict[str, list[bool]]
    latency: list[float] = []
    for fact in facts:
        start = time.perf_counter()
        hits = store.search(NS, query=fact.question, limit=5)
        latency.append(time.perf_counter() - start)
        answer = normalize_answer(fact.answer)
        content[fact.where].append(any(answer in normalize_answer(str(h.value.get("text", ""))) for h in hits))
        sources = [s for h in hits for s in (h.value.get("_tokred") or {}).get("sources", [h.key])]
        provenance[fact.where].append(fact.key in sources)
    all_hits = content["turn"] + content["tool"]
    all_prov = provenance["turn"] + provenance["tool"]
    return {
        "recall_at_5": sum(all_hits) / len(all_hits),
        "recall_at_5_turn_facts": sum(content["turn"]) / max(1, len(content["turn"])),
        "recall_at_5_tool_facts": sum(content["tool"]) / max(1, len(content["tool"])),
        "recall_at_5_deep_facts": sum(content["deep"]) / max(1, len(content["deep"])),
        "recall_at_5_provenance": sum(all_prov) / len(all_prov),
        "recall_at_5_deep_provenance": sum(provenance["deep"]) / max(1, len(provenance["deep"])),
        "search_p50_ms": pct_ms(latency, 50),
        "search_p95_ms": pct_ms(latency, 95),
    }


def run_history(
    backend: str,
    items: list[tuple[str, dict[str, Any]]],
    facts: list[Fact],
    emb: Embeddings,
    merging: bool,
    passages: dict[str, Any],
) -> dict[str, Any]:
    policy: dict[str, Any] = {} if merging else {"recent_items": 10**9, "mode": "manual"}
    policy.update(passages)
    with open_backend(backend) as inner:
        store = MergingStore(inner, embed=emb, **policy)
        write: list[float] = []
        start = time.perf_counter()
        for key, value in items:
            t = time.perf_counter()
            store.put(NS, key, value)
            write.append(time.perf_counter() - t)
        build = time.perf_counter() - start
        stats = store.stats(NS)
        result = evaluate(store, facts)
    return {
        "backend": backend,
        "store": "merging" if merging else "unmerged",
        "items_written": len(items),
        "live_items": stats.items,
        "merged": stats.merged,
        "merged_sources": stats.merged_sources,
        "compressed": stats.compressed,
        "index_vectors": stats.vectors,
        "raw_tokens": stats.raw_tokens,
        "stored_tokens": stats.live_tokens,
        "stored_ratio": stats.ratio,
        "write_p50_ms": pct_ms(write, 50),
        "write_p95_ms": pct_ms(write, 95),
        "build_seconds": build,
        **result,
    }


def minilm_write_cost(calls: list[list[str]], n: int = 12) -> dict[str, float]:
    """MiniLM's time (uncached, ms, median) for the ``n`` puts that embedded the most passages:
    the whole text alone vs the text and its passages (what a write costs without the bench's cache)."""
    calls = sorted((c for c in calls if len(c) > 1), key=len, reverse=True)[:n]
    if not calls:
        return {}
    minilm([calls[0][0]])  # warm
    whole, full = [], []
    for texts in calls:
        t = time.perf_counter()
        minilm(texts[:1])
        whole.append(time.perf_counter() - t)
        t = time.perf_counter()
        minilm(texts)
        full.append(time.perf_counter() - t)
    return {
        "long_memories_timed": len(calls),
        "passages_per_long_memory": statistics.median(len(c) - 1 for c in calls),
        "minilm_whole_ms": statistics.median(whole) * 1000,
        "minilm_with_passages_ms": statistics.median(full) * 1000,
    }


def run(
    quick: bool, out_dir: Path, backends: list[str] | None = None, max_passages: int | None = None
) -> dict[str, Any]:
    """Run the bench; writes ``bench_memory.md`` / ``.json`` to ``out_dir`` and returns the numbers.

    ``max_passages``: the store's passage vectors per memory (``None``: the policy default).
    """
    if backends is None:
        backends = ["memory", "sqlite"] + (["postgres"] if os.environ.get("AGENT_TOKRED_POSTGRES_URI") else [])
    items, facts = build_history(40 if quick else None, 16 if quick else 40, 4 if quick else 20)
    passages: dict[str, Any] = {} if max_passages is None else {"max_passages": max_passages}
    emb = CachedMiniLM(cache_dir() / "bench" / "bench_memory_minilm.npz")
    warm = MergingStore(embed=emb, mode="manual", **passages)  # texts and passages, computed (or loaded) once
    for key, value in items:
        warm.put(NS, key, value)
    emb.save()
    puts = sum(1 for c in emb.calls if c)
    embedded = sum(len(c) for c in emb.calls)
    write_cost = minilm_write_cost(emb.calls)
    history = []
    for backend in backends:
        for merging in (True, False):
            history.append(run_history(backend, items, facts, emb, merging, passages))
            print(history[-1])
    texts = [v["text"] for _, v in items]
    scale = []
    for b in backends:
        with open_backend(b) as inner:
            scale.append(run_scale(inner, b, 2_000 if quick else 10_000, [f.question for f in facts], texts))
    for row in scale:
        print(row)
    embed_ms = statistics.median(emb.embed_seconds) * 1000 if emb.embed_seconds else float("nan")
    raw = {
        "quick": quick,
        "trajectories": 40 if quick else 200,
        "facts": sum(1 for f in facts if f.where != "deep"),
        "deep_facts": sum(1 for f in facts if f.where == "deep"),
        "history": history,
        "scale": scale,
        "minilm_embed_ms_per_item": embed_ms,
        "max_passages": warm.policy.max_passages,
        "vectors_embedded_per_memory": embedded / max(1, puts),
        "minilm_write_cost": write_cost,
        "load_average": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "cpus": os.cpu_count(),
    }
    cmd = f"python -m bench.bench_memory{' --quick' if quick else ''} --backends {','.join(backends)}"
    cmd += f" --max-passages {max_passages}" if max_passages is not None else ""
    md = _markdown(raw, cmd)
    write_outputs(out_dir, "bench_memory", md, raw)
    return raw


def _markdown(raw: dict[str, Any], cmd: str) -> str:
    rows = []
    for r in raw["history"]:
        rows.append(
            [
                r["backend"],
                r["store"],
                r["items_written"],
                r["live_items"],
                f"{r['raw_tokens']:,}",
                f"{r['stored_tokens']:,}",
                f"{r['stored_ratio']:.1%}",
                f"{r['recall_at_5']:.3f}",
                f"{r['recall_at_5_turn_facts']:.2f} / {r['recall_at_5_tool_facts']:.2f} / {r['recall_at_5_deep_facts']:.2f}",
                f"{r['recall_at_5_provenance']:.3f} / {r['recall_at_5_deep_provenance']:.2f}",
                f"{r['index_vectors']:,}",
                f"{r['write_p50_ms']:.1f} / {r['write_p95_ms']:.1f}",
                f"{r['search_p50_ms']:.1f} / {r['search_p95_ms']:.1f}",
            ]
        )
    history = markdown_table(
        [
            "backend",
            "store",
            "turns written",
            "live items",
            "raw tokens",
            "stored tokens",
            "stored/raw",
            "recall@5",
            "recall@5 turn / tool / deep facts",
            "recall@5 provenance (deep)",
            "index vectors",
            "write p50/p95 ms",
            "search p50/p95 ms",
        ],
        rows,
        caption=(
            f"Long BFCL v4 agent history ({raw['trajectories']} trajectories replayed) with {raw['facts']} "
            "planted facts (half as user turns, half as a note atop a real tool output) and "
            f"{raw['deep_facts']} deep ones (in the middle of a long tool output); o200k_base tokens; "
            "recall@5 (of the turn and tool facts): the answer is in a top-5 result's text (provenance: a "
            "top-5 result stands for the fact's turn); "
            f"passage vectors: up to {raw['max_passages']} per long memory "
            f"({raw['vectors_embedded_per_memory']:.2f} vectors embedded per memory)"
            + _write_cost_text(raw.get("minilm_write_cost") or {})
            + "; MiniLM embeddings precomputed and cached on disk"
            + (
                f" (MiniLM itself: {raw['minilm_embed_ms_per_item']:.1f} ms/item in batches of 100 this run)"
                if raw["minilm_embed_ms_per_item"] == raw["minilm_embed_ms_per_item"]
                else ""
            )
            + f"; write latency: the store's work per put including write-time consolidation. Command: `{cmd}`"
        ),
    )
    scale = scale_table(raw, cmd)
    return f"# Merging memory store\n\n{history}\n{scale}"


def _write_cost_text(cost: dict[str, float]) -> str:
    if not cost:
        return ""
    return (
        f"; MiniLM per long memory (median of the {cost['long_memories_timed']} with most passages, uncached): "
        f"{cost['minilm_whole_ms']:.0f} ms for its text, {cost['minilm_with_passages_ms']:.0f} ms with its "
        f"{cost['passages_per_long_memory']:.0f} passages"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="merging memory store bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--backends", default=None, help="comma-separated: memory,sqlite,postgres")
    parser.add_argument("--max-passages", type=int, default=None, help="passage vectors per memory (0: none)")
    args = parser.parse_args()
    run(args.quick, args.out, args.backends.split(",") if args.backends else None, args.max_passages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
