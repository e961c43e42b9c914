"""Bench: a merging memory over a long agent history with planted facts, vs the same store unmerged.

History: the BFCL v4 ``multi_turn_long_context`` trajectories replayed offline (real tool outputs from
the simulated backends, see :mod:`bench.bfcl`), concatenated into one long agent history in one
namespace: each user request, each tool call with its output, each closing answer is one memory.
Facts are planted at evenly spaced points: half as user turns ("remember: ..."), half as a note line
at the top of a real tool output. Questions about them are asked at the end.

Reported per backend (InMemoryStore, SQLite file, PostgreSQL when ``AGENT_TOKRED_POSTGRES_URI`` is set):
stored tokens (the live view search returns) vs raw, recall@5 of the planted facts (the answer is in a
top-5 result's text; "provenance": a top-5 result stands for the fact's turn) for the merging store and
for the same store with merging and compression off, write and search latency (p50/p95). Embeddings:
the shipped MiniLM, computed once and cached on disk, so write latency is the store's own work (MiniLM
per item is reported apart); search latency includes MiniLM on the query. A 10k-item store measures
search latency at scale (:mod:`bench._memory_scale`): new and repeated queries, and the store's own share.

Usage:
    python -m bench.bench_memory [--quick] [--out bench/out] [--backends memory,sqlite,postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from agent_tokred.models import cache_dir, embed_query
from agent_tokred.models import embed as minilm
from agent_tokred.store import MergingStore

from ._memory_scale import run_scale, scale_table
from .common import OUT, markdown_table, normalize_answer, write_outputs

NS = ("agent", "history")
PLACES = ["north warehouse", "lab 7", "the rooftop garden", "server room B", "the marina office", "gym locker 12"]
PEOPLE = ["Priya", "Tomasz", "Keiko", "Oluwaseun", "Mateo", "Ingrid", "Farah", "Declan"]
TEMPLATES = [
    ("the access code for {p} is {v}", "what is the access code for {p}?", "code"),
    ("{q}'s passport number is {v}", "what is {q}'s passport number?", "passport"),
    ("the wifi password at {p} is {v}", "what is the wifi password at {p}?", "word"),
    ("{q} moved the team offsite to {v}", "where did {q} move the team offsite to?", "city"),
    ("{q}'s emergency contact phone is {v}", "what is {q}'s emergency contact phone?", "phone"),
    ("the parking spot reserved for {q} is {v}", "which parking spot is reserved for {q}?", "spot"),
]
CITIES = ["Lisbon", "Tallinn", "Hobart", "Valparaiso", "Kraków", "Nagoya", "Tromsø", "Cusco", "Windhoek", "Ghent"]


@dataclass(frozen=True)
class Fact:
    key: str
    text: str
    question: str
    answer: str
    where: str  # "turn" or "tool"


def _value(kind: str, rng: random.Random) -> str:
    if kind == "code":
        return f"{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGHJK')}"
    if kind == "passport":
        return f"X{rng.randint(10_000_000, 99_999_999)}"
    if kind == "word":
        return f"{rng.choice(['amber', 'cobalt', 'saffron', 'teal'])}-{rng.choice(['otter', 'falcon', 'lynx'])}-{rng.randint(10, 99)}"
    if kind == "city":
        return rng.choice(CITIES)
    if kind == "phone":
        return f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    return f"P{rng.randint(1, 9)}-{rng.randint(100, 999)}"


def make_facts(n: int, seed: int = 7) -> list[Fact]:
    rng = random.Random(seed)
    facts: list[Fact] = []
    seen: set[str] = set()
    while len(facts) < n:
        text, question, kind = rng.choice(TEMPLATES)
        p, q = rng.choice(PLACES), rng.choice(PEOPLE)
        if (text, p, q) in seen:
            continue
        seen.add((text, p, q))  # type: ignore[arg-type]
        value = _value(kind, rng)
        where = "turn" if len(facts) % 2 == 0 else "tool"
        facts.append(
            Fact(f"fact{len(facts):03d}", text.format(p=p, q=q, v=value), question.format(p=p, q=q), value, where)
        )
    return facts


def build_history(n_trajectories: int | None, n_facts: int) -> tuple[list[tuple[str, dict[str, Any]]], list[Fact]]:
    """The long history as (key, value) memories, oldest first, with the facts planted."""
    from .bfcl import closing_text, load_trajectories

    items: list[tuple[str, dict[str, Any]]] = []
    for ti, traj in enumerate(load_trajectories(limit=n_trajectories)):
        for ui, turn in enumerate(traj.turns):
            items.append((f"t{ti:03d}u{ui}", {"text": f"user: {turn.user_text}", "kind": "human"}))
            for ci, call in enumerate(turn.calls):
                text = f"tool {call.name}({call.args}) result: {call.output_text}"
                items.append((f"t{ti:03d}u{ui}c{ci}", {"text": text, "kind": "tool"}))
            items.append((f"t{ti:03d}u{ui}a", {"text": f"assistant: {closing_text(turn)}", "kind": "ai"}))
    facts = make_facts(n_facts)
    tool_slots = [i for i, (_, v) in enumerate(items) if v["kind"] == "tool"]
    inserts: list[tuple[int, tuple[str, dict[str, Any]]]] = []
    for j, fact in enumerate(facts):
        spot = (j + 0.5) / len(facts)  # evenly spread over the history
        if fact.where == "tool":
            i = tool_slots[int(spot * len(tool_slots))]
            key, value = items[i]
            head, _, rest = value["text"].partition(" result: ")
            items[i] = (key, {**value, "text": f"{head} result: note: {fact.text}.\n{rest}"})
            facts[j] = Fact(key, fact.text, fact.question, fact.answer, "tool")
        else:
            turn = {"text": f"user: please remember that {fact.text}.", "kind": "human"}
            inserts.append((int(spot * len(items)), (fact.key, turn)))
    for pos, item in reversed(inserts):
        items.insert(pos, item)
    return items, facts


class CachedMiniLM(Embeddings):
    """MiniLM with an on-disk cache for documents; queries always run the model (timed honestly)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        self.embed_seconds: list[float] = []
        if path.exists():
            with np.load(path) as data:
                self.cache = {k: data[k] for k in data.files}

    @staticmethod
    def _key(text: str) -> str:
        return "h" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if self._key(t) not in self.cache]
        if missing:
            start = time.perf_counter()
            vecs = minilm(missing)
            self.embed_seconds.extend([(time.perf_counter() - start) / len(missing)] * len(missing))
            self.cache.update({self._key(t): v for t, v in zip(missing, vecs, strict=True)})
        return [self.cache[self._key(t)].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed_query(text).tolist()

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


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def evaluate(store: MergingStore, facts: list[Fact]) -> dict[str, Any]:
    content = {"turn": [], "tool": []}  # type: dict[str, list[bool]]
    provenance: list[bool] = []
    latency: list[float] = []
    for fact in facts:
        start = time.perf_counter()
        hits = store.search(NS, query=fact.question, limit=5)
        latency.append(time.perf_counter() - start)
        answer = normalize_answer(fact.answer)
        content[fact.where].append(any(answer in normalize_answer(str(h.value.get("text", ""))) for h in hits))
        sources = [s for h in hits for s in (h.value.get("_tokred") or {}).get("sources", [h.key])]
        provenance.append(fact.key in sources)
    all_hits = content["turn"] + content["tool"]
    return {
        "recall_at_5": sum(all_hits) / len(all_hits),
        "recall_at_5_turn_facts": sum(content["turn"]) / max(1, len(content["turn"])),
        "recall_at_5_tool_facts": sum(content["tool"]) / max(1, len(content["tool"])),
        "recall_at_5_provenance": sum(provenance) / len(provenance),
        "search_p50_ms": _pct(latency, 50),
        "search_p95_ms": _pct(latency, 95),
    }


def run_history(
    backend: str, items: list[tuple[str, dict[str, Any]]], facts: list[Fact], emb: Embeddings, merging: bool
) -> dict[str, Any]:
    policy: dict[str, Any] = {} if merging else {"recent_items": 10**9, "mode": "manual"}
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
        "raw_tokens": stats.raw_tokens,
        "stored_tokens": stats.live_tokens,
        "stored_ratio": stats.ratio,
        "write_p50_ms": _pct(write, 50),
        "write_p95_ms": _pct(write, 95),
        "build_seconds": build,
        **result,
    }


def run(quick: bool, out_dir: Path, backends: list[str] | None = None) -> dict[str, Any]:
    """Run the bench; writes ``bench_memory.md`` / ``.json`` to ``out_dir`` and returns the numbers."""
    if backends is None:
        backends = ["memory", "sqlite"] + (["postgres"] if os.environ.get("AGENT_TOKRED_POSTGRES_URI") else [])
    items, facts = build_history(40 if quick else None, 16 if quick else 40)
    emb = CachedMiniLM(cache_dir() / "bench" / "bench_memory_minilm.npz")
    emb.embed_documents([v["text"] for _, v in items])  # compute (or load) once
    emb.save()
    history = []
    for backend in backends:
        for merging in (True, False):
            history.append(run_history(backend, items, facts, emb, merging))
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
        "facts": len(facts),
        "history": history,
        "scale": scale,
        "minilm_embed_ms_per_item": embed_ms,
        "load_average": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "cpus": os.cpu_count(),
    }
    cmd = f"python -m bench.bench_memory{' --quick' if quick else ''} --backends {','.join(backends)}"
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
                f"{r['recall_at_5_turn_facts']:.2f} / {r['recall_at_5_tool_facts']:.2f}",
                f"{r['recall_at_5_provenance']:.3f}",
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
            "recall@5 turn/tool facts",
            "recall@5 provenance",
            "write p50/p95 ms",
            "search p50/p95 ms",
        ],
        rows,
        caption=(
            f"Long BFCL v4 agent history ({raw['trajectories']} trajectories replayed) with {raw['facts']} "
            "planted facts (half as user turns, half as a note atop a real tool output); o200k_base tokens; "
            "recall@5: the answer is in a top-5 result's text (provenance: a top-5 result stands for the "
            "fact's turn); MiniLM embeddings precomputed and cached on disk"
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


def main() -> int:
    parser = argparse.ArgumentParser(description="merging memory store bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--backends", default=None, help="comma-separated: memory,sqlite,postgres")
    args = parser.parse_args()
    run(args.quick, args.out, args.backends.split(",") if args.backends else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
