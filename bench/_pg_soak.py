"""Soak: writer and reader processes on one PostgreSQL + pgvector database, then a full audit.

Writers put (and now and then delete) memories into a few shared namespaces, all of them into
all namespaces, so consolidations (merges with ``mode="write"``) of one namespace race between
processes; each acknowledged operation is logged. Readers search those namespaces (one
namespace, and the common prefix) and check that no result, and no source of a merged result,
belongs to another namespace. At the end a fresh store audits every namespace against the logs:

* lost: an acknowledged put whose key is not stood for by the live view, or whose ``get`` differs;
* duplicated: a key stood for more than once (verbatim and inside a merged memory, or twice);
* resurrected: a key present after its acknowledged delete, or never written;
* cross-namespace: a result or merged source from another namespace; mirror: vector rows that
  differ from the index records.

Run in a fresh database of the server (created, dropped at the end)::

    python -m bench._pg_soak --minutes 10 --writers 4 --readers 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .common import OUT, markdown_table, write_outputs

TOPICS = ("billing", "travel", "health", "garden", "music", "coding")
PREFIX = ("soak",)


def topic_embed(texts: list[str]) -> np.ndarray:
    """First word picks the direction (so memories of a topic merge), the rest adds a little noise."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, text in enumerate(texts):
        first = (text.split() or [""])[0]
        out[i, int(hashlib.sha256(first.encode()).digest()[0]) % 24] = 1.0
        out[i, 24 + hashlib.sha256(text.encode()).digest()[0] % 8] = 0.2
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def half_lines(text: str, rate: float | None, target: int | None) -> str:
    lines = text.splitlines()
    return "\n".join(lines[: max(1, len(lines) // 2)])


def open_store(uri: str) -> tuple[Any, Any]:
    from langgraph.store.postgres import PostgresStore

    from agent_tokred.integration.store import MergingStore

    cm = PostgresStore.from_conn_string(uri)
    inner = cm.__enter__()
    store = MergingStore(
        inner,
        embed=topic_embed,
        compressor=half_lines,
        vector_search="postgres",
        recent_items=3,
        compress_items=3,
        min_compress_tokens=4,
        threshold=0.9,
    )
    return cm, store


def _ready(gate: Any) -> float:
    """Report ready, wait for every process, and return the shared deadline (epoch seconds)."""
    ready, start, deadline = gate
    with ready.get_lock():
        ready.value += 1
    start.wait()
    return float(deadline.value)


def writer(uri: str, w: int, namespaces: list[tuple[str, ...]], gate: Any, log: Path) -> None:
    _, store = open_store(uri)
    until = _ready(gate)
    rng = random.Random(w)
    mine: list[tuple[tuple[str, ...], str]] = []
    with log.open("w", encoding="utf-8") as fh:
        i = 0
        while time.time() < until:
            ns = namespaces[(i + w) % len(namespaces)]
            if mine and rng.random() < 0.1:
                ns_del, key = mine.pop(rng.randrange(len(mine)))
                op: dict[str, Any] = {"op": "del", "ns": list(ns_del), "key": key}
                try:
                    store.delete(ns_del, key)
                except Exception as exc:
                    op = {**op, "op": "uncertain", "error": repr(exc)}
            else:
                key = f"{ns[-1]}-w{w}-{i}"
                topic = TOPICS[rng.randrange(len(TOPICS))]
                value = {"text": f"{topic} note {key}\ndetail {rng.randrange(10**6)}\nmore about {topic} {i}"}
                op = {"op": "put", "ns": list(ns), "key": key, "value": value}
                try:
                    store.put(ns, key, value)
                    mine.append((ns, key))
                except Exception as exc:
                    op = {**op, "op": "uncertain", "error": repr(exc)}
            fh.write(json.dumps(op) + "\n")
            fh.flush()
            i += 1


def reader(uri: str, r: int, namespaces: list[tuple[str, ...]], gate: Any, log: Path) -> None:
    _, store = open_store(uri)
    until = _ready(gate)
    rng = random.Random(1000 + r)
    seconds: list[float] = []
    cross: list[str] = []
    errors: list[str] = []
    while time.time() < until:
        prefix = namespaces[rng.randrange(len(namespaces))] if rng.random() < 0.8 else PREFIX
        query = f"{TOPICS[rng.randrange(len(TOPICS))]} note"
        t = time.perf_counter()
        try:
            hits = store.search(prefix, query=query, limit=5)
        except Exception as exc:
            errors.append(repr(exc))
            continue
        seconds.append(time.perf_counter() - t)
        for hit in hits:
            ns = tuple(hit.namespace)
            mark = hit.value.get("_tokred") or {}
            keys = mark.get("sources", [hit.key])
            if ns[: len(prefix)] != prefix or any(not k.startswith(f"{ns[-1]}-") for k in keys):
                cross.append(f"{prefix} -> {ns}/{hit.key} {keys}")
    log.write_text(json.dumps({"seconds": seconds, "cross": cross, "errors": errors}), encoding="utf-8")


def audit(uri: str, namespaces: list[tuple[str, ...]], logs: list[Path]) -> dict[str, Any]:
    """Compare the final live view of every namespace with the acknowledged operations."""
    from agent_tokred.integration.store import _journal
    from agent_tokred.store._layout import vec_ns
    from agent_tokred.store._pgvector import _cursor, ns_text

    expected: dict[tuple[tuple[str, ...], str], dict[str, Any] | None] = {}
    uncertain: set[tuple[tuple[str, ...], str]] = set()
    ops = Counter()
    for log in logs:
        for line in log.read_text(encoding="utf-8").splitlines():
            op = json.loads(line)
            ops[op["op"]] += 1
            where = (tuple(op["ns"]), op["key"])
            if op["op"] == "put":
                expected[where] = op["value"]
            elif op["op"] == "del":
                expected[where] = None
            else:
                uncertain.add(where)
    _, store = open_store(uri)
    lost = duplicated = resurrected = cross = mirror = 0
    examples: list[str] = []
    merged = 0
    for ns in namespaces:
        stood: Counter[str] = Counter()
        for item in store.search(ns, limit=10**7):
            mark = item.value.get("_tokred") or {}
            merged += mark.get("state") == "merged"
            stood.update(mark.get("sources", [item.key]))
        for key, n in stood.items():
            if not key.startswith(f"{ns[-1]}-"):
                cross += 1
            if n > 1:
                duplicated += 1
                examples.append(f"duplicated {ns}/{key} x{n}")
            if expected.get((ns, key)) is None and (ns, key) not in uncertain:
                resurrected += 1
                examples.append(f"resurrected {ns}/{key}")
        for (ens, key), value in expected.items():
            if ens != ns or value is None:
                continue
            item = store.get(ns, key)
            if stood[key] == 0 or item is None or item.value != value:
                lost += 1
                examples.append(f"lost {ns}/{key}")
        records = {k: set(v.get("vecs") or {}) for _, k, v in _journal.scan(store.store, vec_ns(ns)) if v.get("vecs")}
        rows: dict[str, set[str]] = {}
        with _cursor(store.store) as cur:
            cur.execute("SELECT to_regclass('tokred_vectors_32') IS NOT NULL")
            if cur.fetchone()[0]:  # (made by the first write with a vector)
                cur.execute("SELECT key, path FROM tokred_vectors_32 WHERE prefix = %s", (ns_text(ns),))
                for key, path in cur.fetchall():
                    rows.setdefault(key, set()).add(path)
        mirror += sum(1 for k in set(records) | set(rows) if records.get(k) != rows.get(k))
    return {
        "ops": dict(ops),
        "expected_live": sum(1 for v in expected.values() if v is not None),
        "merged_memories": merged,
        "lost": lost,
        "duplicated": duplicated,
        "resurrected": resurrected,
        "cross_namespace_sources": cross,
        "vector_rows_not_mirroring_records": mirror,
        "examples": examples[:20],
    }


def run_soak(uri: str, seconds: float, writers: int, readers: int, n_namespaces: int) -> dict[str, Any]:
    """Run the soak in a fresh database of ``uri``'s server; returns the audit and reader figures."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    db = f"tokred_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(uri, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    soak_uri = make_conninfo(**{**conninfo_to_dict(uri), "dbname": db})
    try:
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(soak_uri) as inner:
            inner.setup()
        namespaces = [(*PREFIX, f"ns{i}") for i in range(n_namespaces)]
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / db
        tmp.mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("spawn")
        gate = (ctx.Value("i", 0), ctx.Event(), ctx.Value("d", 0.0))  # the clock starts when all are up
        wlogs = [tmp / f"writer{w}.jsonl" for w in range(writers)]
        rlogs = [tmp / f"reader{r}.json" for r in range(readers)]
        procs = [ctx.Process(target=writer, args=(soak_uri, w, namespaces, gate, wlogs[w])) for w in range(writers)]
        procs += [ctx.Process(target=reader, args=(soak_uri, r, namespaces, gate, rlogs[r])) for r in range(readers)]
        for p in procs:
            p.start()
        while gate[0].value < len(procs) and all(p.is_alive() for p in procs):
            time.sleep(0.1)
        start = time.perf_counter()
        gate[2].value = time.time() + seconds
        gate[1].set()
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        exit_codes = [p.exitcode for p in procs]
        result = audit(soak_uri, namespaces, [p for p in wlogs if p.exists()])
        reads = [json.loads(p.read_text()) for p in rlogs if p.exists()]
        secs = [s for r in reads for s in r["seconds"]]
        result.update(
            {
                "seconds": round(wall, 1),
                "writers": writers,
                "readers": readers,
                "namespaces": n_namespaces,
                "exit_codes": exit_codes,
                "writes_per_s": round(sum(result["ops"].get(k, 0) for k in ("put", "del")) / wall, 1),
                "searches": len(secs),
                "search_p50_ms": round(float(np.percentile(secs, 50)) * 1000, 2) if secs else None,
                "search_p95_ms": round(float(np.percentile(secs, 95)) * 1000, 2) if secs else None,
                "cross_namespace_results": sum(len(r["cross"]) for r in reads),
                "reader_errors": sum(len(r["errors"]) for r in reads),
                "examples": result["examples"] + [c for r in reads for c in r["cross"][:5] + r["errors"][:5]],
            }
        )
        return result
    finally:
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--namespaces", type=int, default=4)
    ap.add_argument("--uri", default=os.environ.get("AGENT_TOKRED_POSTGRES_URI"))
    ap.add_argument("--out", default=str(OUT), help="where memory_soak.md/.json go ('': nowhere)")
    args = ap.parse_args(argv)
    if not args.uri:
        print("no PostgreSQL: pass --uri or set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)", file=sys.stderr)
        return 2
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    res = run_soak(args.uri, seconds, args.writers, args.readers, args.namespaces)
    print(json.dumps(res, indent=2))
    if args.out:
        cmd = "python -m bench._pg_soak " + " ".join(argv if argv is not None else sys.argv[1:])
        rows = [
            [k, res[k]]
            for k in (
                "seconds",
                "writers",
                "readers",
                "namespaces",
                "writes_per_s",
                "searches",
                "search_p50_ms",
                "search_p95_ms",
                "expected_live",
                "merged_memories",
                "lost",
                "duplicated",
                "resurrected",
                "cross_namespace_results",
                "cross_namespace_sources",
                "vector_rows_not_mirroring_records",
                "reader_errors",
            )
        ]
        md = markdown_table(["soak on PostgreSQL + pgvector", "value"], rows, caption=f"Command: `{cmd.strip()}`")
        write_outputs(Path(args.out), "memory_soak", md, res)
    bad = res["lost"] + res["duplicated"] + res["resurrected"] + res["cross_namespace_results"]
    bad += res["cross_namespace_sources"] + res["vector_rows_not_mirroring_records"]
    return 1 if bad or any(c != 0 for c in res["exit_codes"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
