"""Query likelihood before and after the split passes: one input, one torch thread, CPU time and wall time.

The joint padded pass (``query_likelihood_padded``, the path before this change), the split passes
without a cache (a text never seen), and the split passes with a warm cache (the same text, a new
question), each on the criteria bench's 14-passage NQ input, and the largest score difference from the
joint pass. One thread so that CPU seconds measure the work even on shared, loaded cores.

Run: ``python -m bench._criteria_ql_speed [--repeats 3]``; writes ``bench/out/criteria_ql_speed.md/.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .common import OUT, markdown_table, read_jsonl_gz, write_outputs


def _time(fn: Callable[..., np.ndarray], *args: Any) -> tuple[float, float, np.ndarray]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import torch

    from agent_tokred.criteria._query_likelihood import PrefixKVCache, query_likelihood, query_likelihood_padded
    from agent_tokred.criteria.self_information import SelfInformationCriterion
    from agent_tokred.models import load_causal_lm
    from agent_tokred.tokens import resolve_counter
    from agent_tokred.units import segment

    torch.set_num_threads(1)
    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz", limit=14 + args.repeats)
    text = "\n\n".join(r["ctxs"][0]["text"] for r in rows[:14])
    tokens = resolve_counter("o200k_base").count(text)
    texts = [u.text for u in segment(text, "sentence")]
    tok, lm = load_causal_lm()
    crit = SelfInformationCriterion()
    cache = PrefixKVCache(512)
    prompts = [crit._prompt_ids(tok, rows[k]["question"], False) for k in range(args.repeats + 1)]
    query_likelihood(lm, tok, texts, prompts[0], 64, 16, cache)  # fills the cache: later calls are warm
    runs: dict[str, list[tuple[float, float]]] = {"joint padded pass (before)": [], "split, new text": [],
                                                   "split, same text, new question": []}
    diff = 0.0
    for prompt in prompts[1:]:
        wall, cpu, want = _time(query_likelihood_padded, lm, tok, texts, prompt, 64, 16)
        runs["joint padded pass (before)"].append((wall, cpu))
        for name, kv in (("split, new text", None), ("split, same text, new question", cache)):
            wall, cpu, got = _time(query_likelihood, lm, tok, texts, prompt, 64, 16, kv)
            runs[name].append((wall, cpu))
            diff = max(diff, float(np.abs(got - want).max()))
    base = statistics.median(c for _, c in runs["joint padded pass (before)"])
    rows_out: list[list[Any]] = []
    for name, rs in runs.items():
        cpu = statistics.median(c for _, c in rs)
        rows_out.append([name, statistics.median(w for w, _ in rs), cpu, tokens / cpu, base / cpu])
    cmd = "python -m bench._criteria_ql_speed" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
    md = markdown_table(["path", "wall s", "CPU s", "tokens/s (CPU)", "speed-up (CPU)"], rows_out,
                        f"{tokens}-token input ({len(texts)} sentence units), SmolLM2-135M, 1 torch thread, "
                        f"medians of {args.repeats}; largest score difference from the joint pass {diff:.1e}. "
                        f"Command: `{cmd}`")
    write_outputs(OUT, "criteria_ql_speed", "### Query likelihood: split passes and cache\n\n" + md,
                  {"tokens": tokens, "units": len(texts), "max_abs_diff": diff, "command": cmd,
                   "runs": {k: [list(r) for r in v] for k, v in runs.items()}})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
