"""Issue 2's benches: answer retention (NQ, 20 documents), structure (KV JSON), budgets, speed.

Run: ``python -m bench.bench_engine [--quick] [--out bench/out]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent_tokred import compress
from agent_tokred.criteria import resolve_criterion
from agent_tokred.tokens import resolve_counter
from agent_tokred.units import Unit

from .common import OUT, markdown_table, normalize_answer, read_jsonl_gz, write_outputs

RATES = (0.5, 0.25, 0.1)
TOKENIZER = "o200k_base"


class CachedCriterion:
    """Scores once per (units, query): the bench runs three rates over the same units."""

    def __init__(self, name: str, inner: Any) -> None:
        self.name = name
        self.inner = inner
        self.cache: dict[Any, np.ndarray] = {}
        self.seconds = 0.0

    def __call__(self, units: Sequence[Unit], query: str | None) -> np.ndarray:
        key = (tuple(u.text for u in units), query)
        if key not in self.cache:
            t = time.perf_counter()
            self.cache[key] = np.asarray(self.inner(units, query), dtype=np.float64)
            self.seconds += time.perf_counter() - t
        return self.cache[key]


def head_criterion(units: Sequence[Unit], query: str | None) -> list[float]:
    """Baseline: keep the beginning (head truncation at unit granularity)."""
    return [-float(i) for i in range(len(units))]


def random_criterion(units: Sequence[Unit], query: str | None) -> list[float]:
    rng = random.Random(zlib.crc32("\x00".join(u.text for u in units[:3]).encode("utf-8", "surrogatepass")))
    return [rng.random() for _ in units]


def bm25_criterion(units: Sequence[Unit], query: str | None) -> list[float]:
    """Baseline: BM25 sentence selection (rank-bm25 over the units, query terms)."""
    from rank_bm25 import BM25Okapi

    from agent_tokred.criteria.lexical import terms

    corpus = [terms(u.text) or ["_"] for u in units]
    return list(BM25Okapi(corpus).get_scores(terms(query or "")))


def build_nq(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """NQ questions with their gold passage and 19 hard distractors (most similar other passages)."""
    from agent_tokred.models import embed

    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz")
    passages = [f"{r['ctxs'][0]['title']}\n{r['ctxs'][0]['text']}" for r in rows]
    cache = OUT / "cache" / "nq_passage_emb.npy"
    if cache.exists():
        pvec = np.load(cache)
    else:
        cache.parent.mkdir(parents=True, exist_ok=True)
        pvec = embed(passages)
        np.save(cache, pvec)
    rng = random.Random(seed)
    chosen = rng.sample(range(len(rows)), n)
    qvec = embed([rows[i]["question"] for i in chosen])
    items = []
    for qi, i in enumerate(chosen):
        sims = pvec @ qvec[qi]
        order = [j for j in np.argsort(-sims) if j != i][:19]
        docs = [i, *order]
        rng.shuffle(docs)
        text = "\n\n".join(
            f"Document [{k + 1}] (Title: {rows[j]['ctxs'][0]['title']}) {rows[j]['ctxs'][0]['text']}"
            for k, j in enumerate(docs)
        )
        items.append({"question": rows[i]["question"], "answers": rows[i]["answers"], "text": text})
    return items


def retained(text: str, answers: Sequence[str]) -> bool:
    norm = normalize_answer(text)
    return any(normalize_answer(a) and normalize_answer(a) in norm for a in answers)


def run_nq(items: list[dict[str, Any]], criteria: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    counter = resolve_counter(TOKENIZER)
    results: dict[str, Any] = {}
    for name, crit in criteria.items():
        subset = items[: limits.get(name, len(items))]
        cached = CachedCriterion(name, crit)
        per_rate: dict[str, Any] = {}
        for rate in RATES:
            kept, over, use = 0, 0, []
            for it in subset:
                r = compress(it["text"], query=it["question"], rate=rate, criterion=cached, tokenizer=TOKENIZER,
                             unit="sentence")
                kept += retained(r.text, it["answers"])
                over += counter.count(r.text) > r.budget_tokens
                use.append(r.tokens_after / max(1, r.budget_tokens))
            per_rate[str(rate)] = {"retention": kept / len(subset), "over_budget": over,
                                   "budget_use_median": statistics.median(use), "budget_use_min": min(use)}
        results[name] = {"n": len(subset), "rates": per_rate, "score_seconds": cached.seconds}
        print(f"  nq {name:<22} n={len(subset):<4} " + "  ".join(
            f"{k}:{v['retention']:.3f}" for k, v in per_rate.items()), file=sys.stderr)
    return results


def kv_compress(row: dict[str, Any], **options: Any) -> tuple[Any, bool, bool]:
    """Compress one KV-retrieval record to 10% for its key: ``(reduction, valid JSON, value kept)``."""
    text = json.dumps(dict(row["ordered_kv_records"]), indent=1)
    red = compress(text, query=row["key"], rate=0.1, tokenizer=TOKENIZER, **options)
    try:
        parsed = json.loads(red.text)
    except ValueError:
        return red, False, False
    return red, True, isinstance(parsed, dict) and parsed.get(row["key"]) == row["value"]


def run_kv(n: int) -> dict[str, Any]:
    rows = read_jsonl_gz("kv_retrieval_75_dev.jsonl.gz", limit=n)
    counter = resolve_counter(TOKENIZER)
    ok_value = ok_json = over = 0
    ratios = []
    for r in rows:
        red, valid, kept = kv_compress(r)
        ok_json += valid
        ok_value += kept
        over += counter.count(red.text) > red.budget_tokens
        ratios.append(red.tokens_after / red.tokens_before)
    return {"n": len(rows), "value_retained": ok_value / len(rows), "valid_json": ok_json / len(rows),
            "over_budget": over, "token_ratio_median": statistics.median(ratios)}


def run_speed(quick: bool) -> dict[str, Any]:
    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz", limit=40)
    text = "\n\n".join(r["ctxs"][0]["text"] for r in rows[:14])
    counter = resolve_counter(TOKENIZER)
    tokens = counter.count(text)
    names = ["lexical", "relevance", "attention"] + ([] if quick else ["self_information"])
    out: dict[str, Any] = {"input_tokens": tokens}
    for name in names:
        try:
            crit = resolve_criterion(name)
            t = time.perf_counter()
            compress(text, query=rows[0]["question"], rate=0.25, criterion=crit, unit="sentence")
            cold = time.perf_counter() - t
            warm = []
            for k in range(1 if name == "self_information" else 3):
                t = time.perf_counter()
                compress(text + f" ({k})", query=rows[k + 1]["question"], rate=0.25, criterion=crit, unit="sentence")
                warm.append(time.perf_counter() - t)
            out[name] = {"cold_s": cold, "warm_s": statistics.median(warm),
                         "tokens_per_s_warm": tokens / statistics.median(warm)}
        except Exception as exc:  # a criterion that is not built yet is reported, not fatal
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  speed {name}: {out[name]}", file=sys.stderr)
    times = []
    for _ in range(5):
        res = subprocess.run([sys.executable, "-c",
                              "import sys,time;t=time.perf_counter();import agent_tokred;"
                              "print(time.perf_counter()-t, 'torch' in sys.modules)"],
                             capture_output=True, text=True, check=True)
        sec, torch_loaded = res.stdout.split()
        times.append(float(sec))
    out["import"] = {"seconds_median": statistics.median(times), "torch_imported": torch_loaded == "True"}
    return out


def run(quick: bool = False, out_dir: Path = OUT, model_cap: int | None = None) -> dict[str, Any]:
    n = 20 if quick else 200
    items = build_nq(n)
    criteria: dict[str, Any] = {
        "head truncation": head_criterion,
        "random": random_criterion,
        "bm25": bm25_criterion,
        "lexical": resolve_criterion("lexical"),
        "relevance": resolve_criterion("relevance"),
        "relevance+lexical (auto)": resolve_criterion("relevance", {"lexical_weight": 0.3}),
    }
    # Model criteria cost a transformer pass per question (minutes on 2 shared cores): fewer questions.
    model_cap = model_cap or (10 if quick else 40)
    limits: dict[str, int] = {"relevance": model_cap, "relevance+lexical (auto)": model_cap}
    for extra, cap in (("attention", model_cap), ("self_information", 5 if quick else 12), ("learned", n)):
        try:
            criteria[extra] = resolve_criterion(extra)
            limits[extra] = cap
        except Exception as exc:
            print(f"  skipping {extra}: {exc}", file=sys.stderr)
    raw: dict[str, Any] = {"nq": run_nq(items, criteria, limits)}
    raw["kv"] = run_kv(20 if quick else 200)
    raw["speed"] = run_speed(quick)
    cap_arg = f" --model-cap {model_cap}" if model_cap != (10 if quick else 40) else ""
    cmd = f"python -m bench.bench_engine{' --quick' if quick else ''}{cap_arg}"
    md = ["### Answer retention on NQ (gold passage + 19 hard distractors, query-aware, o200k_base)\n",
          markdown_table(["criterion", "n", *[f"keep {int(r * 100)}%" for r in RATES], "over budget",
                          "budget used (median)"],
                         [[k, v["n"], *[v["rates"][str(r)]["retention"] for r in RATES],
                           sum(v["rates"][str(r)]["over_budget"] for r in RATES),
                           statistics.median(v["rates"][str(r)]["budget_use_median"] for r in RATES)]
                          for k, v in raw["nq"].items()], f"Command: `{cmd}`"),
          "\n### Structure on KV retrieval (75 UUID pairs as a JSON object, query = key, keep 10%)\n",
          markdown_table(["n", "value retained", "valid JSON", "over budget", "tokens kept (median)"],
                         [[raw["kv"]["n"], raw["kv"]["value_retained"], raw["kv"]["valid_json"],
                           raw["kv"]["over_budget"], raw["kv"]["token_ratio_median"]]], f"Command: `{cmd}`"),
          f"\n### Speed ({raw['speed']['input_tokens']:,}-token input, keep 25%, this 2-core CPU)\n",
          markdown_table(["criterion", "cold s (incl. model load)", "warm s (median)", "tokens/s warm"],
                         [[k, v.get("cold_s", "-"), v.get("warm_s", "-"), v.get("tokens_per_s_warm", v.get("error"))]
                          for k, v in raw["speed"].items() if k not in ("input_tokens", "import")],
                         f"`import agent_tokred`: {raw['speed']['import']['seconds_median'] * 1000:.0f} ms median "
                         f"of 5, torch imported: {raw['speed']['import']['torch_imported']}. Command: `{cmd}`")]
    write_outputs(out_dir, "engine", "\n".join(md), raw)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--model-cap", type=int, default=None,
                        help="questions for relevance/attention (default 40; self-information stays at 12)")
    args = parser.parse_args()
    run(args.quick, args.out, args.model_cap)
    print((args.out / "engine.md").read_text())


if __name__ == "__main__":
    main()
