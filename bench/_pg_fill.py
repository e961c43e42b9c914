"""Filler memories for the PostgreSQL scale bench, written by bulk ``COPY``.

Embedding a million texts with MiniLM on 2 cores is out of reach (~3k tokens/s), so the filler is
built from a few thousand *real* MiniLM vectors of real texts: the sentences of NaturalQuestions
gold passages that are not planted facts. Filler memory ``i`` takes base text ``b = i mod B`` and
the vector ``normalize(v_b + sigma * g_i / sqrt(d))`` (``g_i`` standard Gaussian, seeded by ``i``;
``sigma = 0.5``, so each filler vector keeps cosine ~0.89 with its real base). Each filler memory
is exactly what a ``MergingStore`` put writes: the live row in LangGraph's ``store`` table, its
index record (under the bookkeeping root, ``settled`` so no merge rewrites it) and its vector row.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from agent_tokred.store._layout import ROOT, VEC, encode_vector
from agent_tokred.store._pgvector import PgVectors, _cursor, _ensure_cover, ns_text

SIGMA = 0.5


def sentences(passages: list[str], limit: int) -> list[str]:
    """Sentences of at least 6 words from ``passages``, in order, at most ``limit``."""
    out: list[str] = []
    for passage in passages:
        for sent in re.split(r"(?<=[.!?])\s+", passage):
            if len(sent.split()) >= 6:
                out.append(sent.strip())
                if len(out) >= limit:
                    return out
    return out


def filler_vectors(base: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Filler vectors ``start..stop-1`` (deterministic: each row's noise is seeded by its number)."""
    d = base.shape[1]
    idx = np.arange(start, stop)
    rng = np.random.default_rng(start)
    noise = rng.standard_normal((stop - start, d)).astype(np.float32) * (SIGMA / np.sqrt(d))
    vecs = base[idx % len(base)] + noise
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def namespace_of(i: int, namespaces: int) -> tuple[str, str]:
    return ("user", f"u{i % namespaces:04d}")


def _rows(texts: list[str], base: np.ndarray, n: int, namespaces: int, chunk: int) -> Iterator[tuple[Any, ...]]:
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        vecs = filler_vectors(base, start, stop)
        for j, vec in enumerate(vecs):
            i = start + j
            yield i, namespace_of(i, namespaces), f"filler-{i}", texts[i % len(texts)] + f" (#{i})", vec


def _binary_copy(rows: Iterator[tuple[str, str, str, np.ndarray]]) -> Iterator[bytes]:
    """PostgreSQL's binary COPY stream of (text, text, text, vector) rows (pgvector's binary form:
    int16 dimensions, int16 unused, big-endian float4s): no float formatting and parsing."""
    yield b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
    buf: list[bytes] = []
    for prefix, key, path, vec in rows:
        parts = [t.encode() for t in (prefix, key, path)]
        data = struct.pack("!hh", len(vec), 0) + np.asarray(vec, dtype=">f4").tobytes()
        buf.append(struct.pack("!h", 4) + b"".join(struct.pack("!i", len(x)) + x for x in (*parts, data)))
        if len(buf) >= 5000:
            yield b"".join(buf)
            buf.clear()
    yield b"".join(buf) + struct.pack("!h", -1)


def copy_filler(pg: PgVectors, texts: list[str], base: np.ndarray, n: int, namespaces: int) -> dict[str, float]:
    """COPY ``n`` filler memories into the three tables; returns seconds and rows per second."""
    table = pg.ensure_table(base.shape[1])
    t0 = time.perf_counter()
    with _cursor(pg.store, transaction=True) as cur:
        cur.execute(f"DROP INDEX IF EXISTS {table}_hnsw")
        cur.execute(f"DROP INDEX IF EXISTS {table}_ns")  # both built once after the load (as a bulk load does)
        with cur.copy("COPY store (prefix, key, value) FROM STDIN") as live:
            for _, ns, key, text, _ in _rows(texts, base, n, namespaces, 20_000):
                live.write_row((ns_text(ns), key, json.dumps({"text": text})))
        with cur.copy("COPY store (prefix, key, value) FROM STDIN") as recs:
            for i, ns, key, text, vec in _rows(texts, base, n, namespaces, 20_000):
                tokens = len(text.split())
                record = {
                    "seq": i + 1,
                    "kind": "memory",
                    "state": "verbatim",
                    "settled": True,
                    "tokens": tokens,
                    "raw_tokens": tokens,
                    "size": 1,
                    "vecs": {"text": encode_vector(vec)},
                }
                recs.write_row((ns_text((ROOT, VEC, str(len(ns)), *ns)), key, json.dumps(record)))
        with cur.copy(f"COPY {table} (prefix, key, path, embedding) FROM STDIN (FORMAT BINARY)") as rows:
            for block in _binary_copy(
                (ns_text(ns), key, "text", vec) for _, ns, key, _, vec in _rows(texts, base, n, namespaces, 20_000)
            ):
                rows.write(block)
    copied = time.perf_counter() - t0
    t1 = time.perf_counter()
    with _cursor(pg.store) as cur:
        cur.execute("SET maintenance_work_mem = '4GB'")
        cur.execute("SET max_parallel_maintenance_workers = 1")
        cur.execute(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)")
        hnsw_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        _ensure_cover(cur, table, base.shape[1])
        cover_s = time.perf_counter() - t2
        cur.execute(f"VACUUM ANALYZE {table}")  # the visibility map, as autovacuum would set it
        cur.execute("VACUUM ANALYZE store")
    return {"copy_s": copied, "copy_rows_per_s": n / copied, "hnsw_build_s": hnsw_s, "cover_build_s": cover_s}
