"""Issue 6's bench: the learned criterion against attention, relevance and lexical.

* NQ answer retention at 50 / 25 / 10 % (the engine bench's items: ``build_nq(n, seed=0)``, gold passage +
  19 hard distractors, sentence units). The learned criterion never trained on these questions
  (``agent-tokred train`` holds them out; see the weights' JSON metadata).
* KV: 75 UUID pairs as JSON, query = key, keep 10 %, ``criterion="learned"``: value kept, valid JSON, and
  how often the queried field is the criterion's own top unit (the engine also force-keeps it).
* Speed: tokens/s of the criterion alone and of ``compress()`` with it, learned vs attention (and the
  others), median of 5 warm runs on the same input in the same process, so the ratio is fair.

Run: ``python -m bench.bench_learned [--quick] [--n N] [--model-cap N] [--out bench/out]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent_tokred import compress
from agent_tokred.criteria import resolve_criterion
from agent_tokred.strategies.structured import JsonUnits
from agent_tokred.tokens import resolve_counter
from agent_tokred.units import segment

from .bench_engine import RATES, TOKENIZER, bm25_criterion, build_nq, kv_compress, run_nq
from .common import OUT, markdown_table, read_jsonl_gz, write_outputs

NAMES = ("learned", "attention", "relevance", "lexical")


def run_kv(n: int) -> dict[str, Any]:
    rows = read_jsonl_gz("kv_retrieval_75_dev.jsonl.gz", limit=n)
    counter = resolve_counter(TOKENIZER)
    crit = resolve_criterion("learned")
    ok_value = ok_json = over = top1 = 0
    for r in rows:
        red, valid, kept = kv_compress(r, criterion="learned")
        ok_json += valid
        ok_value += kept
        over += counter.count(red.text) > red.budget_tokens
        units = JsonUnits.build(dict(r["ordered_kv_records"]), max_unit_chars=240).units
        scores = np.asarray(crit(units, r["key"]))
        top1 += r["key"] in units[int(scores.argmax())].text
    return {"n": len(rows), "value_retained": ok_value / len(rows), "valid_json": ok_json / len(rows),
            "over_budget": over, "criterion_top1": top1 / len(rows)}


def run_speed(repeats: int = 5) -> dict[str, Any]:
    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz", limit=40)
    text = "\n\n".join(r["ctxs"][0]["text"] for r in rows[:14])
    query = rows[0]["question"]
    tokens = resolve_counter(TOKENIZER).count(text)
    units = segment(text, "sentence")
    out: dict[str, Any] = {"input_tokens": tokens, "units": len(units)}
    for name in NAMES:
        try:
            crit: Any = resolve_criterion(name)
            crit(units, query)  # warm: model load, caches
            score_t, comp_t = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                crit(units, query)
                score_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                compress(text, query=query, rate=0.25, criterion=crit, unit="sentence", tokenizer=TOKENIZER)
                comp_t.append(time.perf_counter() - t)
            out[name] = {"score_s": statistics.median(score_t), "compress_s": statistics.median(comp_t),
                         "score_tokens_per_s": tokens / statistics.median(score_t),
                         "compress_tokens_per_s": tokens / statistics.median(comp_t)}
        except Exception as exc:  # a criterion that is not available is reported, not fatal
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  speed {name}: {out[name]}", file=sys.stderr)
    if "score_s" in out.get("learned", {}) and "score_s" in out.get("attention", {}):
        out["ratio_learned_vs_attention"] = {
            "score": out["attention"]["score_s"] / out["learned"]["score_s"],
            "compress": out["attention"]["compress_s"] / out["learned"]["compress_s"]}
    return out


def run(quick: bool = False, out_dir: Path = OUT, n: int | None = None, model_cap: int | None = None) -> dict[str, Any]:
    """Run the bench; ``n`` questions (20 quick, 200 full), model criteria on the first ``model_cap`` of them."""
    n = n or (20 if quick else 200)
    cap = min(n, model_cap or n)
    items = build_nq(n)
    criteria: dict[str, Any] = {"bm25": bm25_criterion}
    for name in NAMES:
        try:
            criteria[name] = resolve_criterion(name)
        except Exception as exc:
            print(f"  skipping {name}: {exc}", file=sys.stderr)
    limits = {name: cap for name in ("attention", "relevance")}
    raw: dict[str, Any] = {"nq": run_nq(items, criteria, limits)}
    if cap < n and "learned" in criteria:  # the same questions as the capped criteria, for a like-for-like row
        raw["nq"][f"learned (first {cap})"] = run_nq(items[:cap], {"learned": criteria["learned"]}, {})["learned"]
    raw["kv"] = run_kv(20 if quick else 200)
    raw["speed"] = run_speed()
    from agent_tokred.learned.model import default_weights_path

    meta_path = default_weights_path().with_suffix(".json")
    raw["weights"] = {"bytes": default_weights_path().stat().st_size,
                      "metadata": json.loads(meta_path.read_text()) if meta_path.exists() else {}}
    cmd = "python -m bench.bench_learned" + (" --quick" if quick else "") + (f" --n {n}" if n not in (20, 200) else "")
    cmd += f" --model-cap {cap}" if cap < n else ""
    sp = raw["speed"]
    ratio = sp.get("ratio_learned_vs_attention", {})
    md = [f"### Learned criterion: NQ answer retention (gold + 19 hard distractors, sentence units, {TOKENIZER})\n",
          markdown_table(["criterion", "n", *[f"keep {int(r * 100)}%" for r in RATES], "score s (total)"],
                         [[k, v["n"], *[v["rates"][str(r)]["retention"] for r in RATES], v["score_seconds"]]
                          for k, v in raw["nq"].items()],
                         "Evaluation questions: `build_nq(n, seed=0)` of nq_oracle_dev; the shipped weights were "
                         f"trained on the other questions only. Command: `{cmd}`"),
          "\n### KV retrieval with criterion=learned (75 UUID pairs as JSON, query = key, keep 10%)\n",
          markdown_table(["n", "value retained", "valid JSON", "over budget", "queried field is top unit"],
                         [[raw["kv"][k] for k in ("n", "value_retained", "valid_json", "over_budget", "criterion_top1")]],
                         f"Command: `{cmd}`"),
          f"\n### Speed ({sp['input_tokens']:,}-token input, {sp['units']} sentences, keep 25%, median of 5 warm)\n",
          markdown_table(["criterion", "score s", "score tokens/s", "compress() s", "compress() tokens/s"],
                         [[k, v["score_s"], v["score_tokens_per_s"], v["compress_s"], v["compress_tokens_per_s"]]
                          for k, v in sp.items() if isinstance(v, dict) and "score_s" in v],
                         (f"learned vs attention: {ratio['score']:.0f}x faster scoring, {ratio['compress']:.0f}x "
                          "faster compress(), same input, same run. " if ratio else "")
                         + f"Shipped weights: {raw['weights']['bytes'] / 1e6:.2f} MB. Command: `{cmd}`")]
    write_outputs(out_dir, "learned", "\n".join(md), raw)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None, help="NQ questions (default 20 quick, 200 full)")
    parser.add_argument("--model-cap", type=int, default=None, help="score attention/relevance on the first N only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    run(args.quick, args.out, args.n, args.model_cap)
    print((args.out / "learned.md").read_text())


if __name__ == "__main__":
    main()
