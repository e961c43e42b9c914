"""Query-embedding latency for the store: sentence-transformers vs the plain forward pass.

Distinct NQ questions (5-30 words, each embedded once per variant, variants interleaved so that a
load change hits all of them alike). Variants: sentence-transformers' single-query path
(``agent_tokred.models.embed_query``), the store's :class:`QueryEmbedder` with 1 and 2 torch threads,
and the same with dynamic int8 Linear layers. Each variant's vectors are compared with
sentence-transformers' ``encode`` (max absolute difference, lowest cosine).

    python -m bench._memory_query_embed --n 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from ._memory_scale import pct_ms
from .common import OUT, markdown_table, read_jsonl_gz, write_outputs


def questions(n: int, skip: int = 0) -> list[str]:
    """``n`` distinct NQ dev questions of 5-30 words (the first ``skip`` rows left out)."""
    seen: dict[str, None] = {}
    for row in read_jsonl_gz("nq_oracle_dev.jsonl.gz")[skip:]:
        q = " ".join(row["question"].split())
        if 5 <= len(q.split()) <= 30:
            seen.setdefault(q, None)
        if len(seen) >= n:
            break
    return list(seen)


def variants() -> dict[str, Any]:
    from agent_tokred.models import embed_query
    from agent_tokred.store.query_embedding import QueryEmbedder

    return {
        "sentence-transformers (1 thread)": embed_query,
        "plain fp32, 1 thread": QueryEmbedder(threads=1),
        "plain fp32, 2 threads": QueryEmbedder(threads=2),
        "plain int8, 1 thread": QueryEmbedder(threads=1, quantize=True),
        "plain int8, 2 threads": QueryEmbedder(threads=2, quantize=True),
    }


def run(qs: list[str]) -> list[dict[str, Any]]:
    from agent_tokred.models import embed

    ref = embed(qs)
    fns = variants()
    for fn in fns.values():
        fn("warm up the model")
    times: dict[str, list[float]] = {name: [] for name in fns}
    vecs: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    names = list(fns)
    for i, q in enumerate(qs):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t = time.perf_counter()
            v = fns[name](q)
            times[name].append(time.perf_counter() - t)
            vecs[name].append(np.asarray(v, dtype=np.float32))
    out = []
    for name in names:
        mat = np.stack(vecs[name])
        out.append(
            {
                "variant": name,
                "p50_ms": pct_ms(times[name], 50),
                "p95_ms": pct_ms(times[name], 95),
                "max_abs_diff": float(np.abs(mat - ref).max()),
                "min_cosine": float((mat * ref).sum(axis=1).min()),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", default="memory_query_embed")
    args = ap.parse_args(argv)
    qs = questions(args.n)
    rows = run(qs)
    load = os.getloadavg()[0]
    cmd = "python -m bench._memory_query_embed " + " ".join(argv if argv is not None else sys.argv[1:])
    headers = ["variant", "p50 ms", "p95 ms", "max |diff| vs ST encode", "lowest cosine vs ST"]
    body = [
        [r["variant"], f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['max_abs_diff']:.1e}", f"{r['min_cosine']:.6f}"]
        for r in rows
    ]
    caption = (
        f"Command: `{cmd.strip()}`. {len(qs)} distinct NQ dev questions of 5-30 words, each embedded once per "
        "variant (variants interleaved), 2 shared CPU cores, 1-minute load average at the end "
        f"{load:.1f}. Differences against sentence-transformers' batch `encode` of the same questions."
    )
    write_outputs(OUT, args.out, markdown_table(headers, body, caption=caption), {"rows": rows, "load_average": load})
    print(markdown_table(headers, body, caption=caption))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
