"""Issue 14's bench: every criterion on the same NQ items and tool outputs, retention and speed, one run.

* NQ answer retention at 50 / 25 / 10 % of the tokens on the engine bench's items (``build_nq(200)``: gold
  passage + 19 hard distractors, sentence units, o200k_base), through :func:`agent_tokred.compress`.
  Model criteria score each (question, context) once; the scores live on disk
  (:mod:`bench._criteria_cache`), so the three rates and later runs reuse them. ``--limit NAME=N`` scores
  at most ``N`` new questions for a slow criterion; its row then reports the questions with scores (``n``).
* Tool outputs (``--tools K``): the first ``K`` test-split cases per family of :mod:`bench._tool_cases`,
  evidence kept at 50 / 30 / 15 %.
* Speed, per criterion in a fresh child process (so cold means cold): tokens/s of the criterion alone on
  one ~1.7k-token input (14 NQ passages), the first call (model load included), the median of warm calls on the
  same text with new questions and on new texts, the model's resident memory the first call adds (the model,
  torch already imported).

Run: ``python -m bench.bench_criteria [--n 200] [--criteria a,b] [--limit self_information=60] [--tools 4]
[--tools-criteria a,b] [--no-speed] [--repeats 3] [--out bench/out]``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .common import OUT, markdown_table, read_jsonl_gz, write_outputs

RATES_TOOLS = (0.5, 0.3, 0.15)


def _attention(**kw: Any) -> Any:
    from agent_tokred.criteria.attention import AttentionCriterion

    return AttentionCriterion(**kw)


def _self_information(**kw: Any) -> Any:
    from agent_tokred.criteria.self_information import SelfInformationCriterion

    return SelfInformationCriterion(**kw)


def _named(name: str) -> Callable[[], Any]:
    def make() -> Any:
        from agent_tokred.criteria import resolve_criterion

        return resolve_criterion(name)

    return make


def _learned_from(path: str) -> Callable[[], Any]:
    def make() -> Any:
        from agent_tokred.criteria.learned import LearnedCriterion

        return LearnedCriterion(path)

    return make


def _bm25() -> Any:
    from .bench_engine import bm25_criterion

    return bm25_criterion


# table name -> (disk-cache tag or None for cheap criteria, factory). Change a tag when its criterion changes.
CRITERIA: dict[str, tuple[str | None, Callable[[], Any]]] = {
    "bm25": (None, _bm25),
    "lexical": (None, _named("lexical")),
    "learned": (None, _named("learned")),
    "attention": ("attention-minilm-v3", lambda: _attention()),
    "attention (ratio rule)": ("attention-minilm-v2", lambda: _attention(aggregate="ratio")),
    "attention (smollm2)": ("attention-smollm2-v2", lambda: _attention(model="smollm2", window=512, aggregate="ratio")),
    "attention (minilm, v1 settings)": ("attention-minilm-v1",
                                       lambda: _attention(heads=None, layers=(2,), block_weight=0.0, aggregate="ratio")),
    "self_information": ("self_information-ql-v1", lambda: _self_information(kv_cache_mb=1024)),
    "self_information (contrastive)": ("self_information-contrastive-v1",
                                       lambda: _self_information(mode="contrastive")),
}
DEFAULT = ("bm25", "lexical", "learned", "attention", "self_information")


def _wrap(name: str) -> Any:
    from ._criteria_cache import DiskCachedCriterion

    tag, make = CRITERIA[name]
    return make() if tag is None else DiskCachedCriterion(name, tag, make())


def run_nq_rows(items: list[dict[str, Any]], names: Sequence[str], limits: dict[str, int]) -> dict[str, Any]:
    """Retention per criterion; a limited criterion runs on the cached items plus up to its limit of new ones."""
    from agent_tokred.units import segment

    from .bench_engine import run_nq

    out: dict[str, Any] = {}
    for name in names:
        crit = _wrap(name)
        subset = items
        if name in limits and hasattr(crit, "has"):
            fresh = limits[name]
            subset = []
            for it in items:
                cached = crit.has(segment(it["text"], "sentence"), it["question"])
                if cached or fresh > 0:
                    subset.append(it)
                    fresh -= 0 if cached else 1
        if not subset:
            print(f"  nq {name}: no scored questions (raise --limit)", file=sys.stderr)
            continue
        if hasattr(crit, "has"):
            prescore(subset, crit)
        res = run_nq(subset, {name: crit}, {})[name]
        res["fresh_calls"] = getattr(crit, "fresh_calls", len(subset))
        out[name] = res
    return out


def prescore(items: list[dict[str, Any]], crit: Any) -> None:
    """Score the items a disk-cached criterion has not scored yet, in unit-sharing order, with progress."""
    from agent_tokred.units import segment

    from ._criteria_order import overlap_order

    units = [segment(it["text"], "sentence") for it in items]
    todo = [i for i, us in enumerate(units) if not crit.has(us, items[i]["question"])]
    order = overlap_order([{u.text.strip() for u in units[i]} for i in todo])
    started = time.perf_counter()
    for done, k in enumerate(order, 1):
        i = todo[k]
        crit(units[i], items[i]["question"])
        if done % 5 == 0 or done == len(order):
            kv = getattr(crit.inner, "_kv_cache", None)
            hits = f", kv cache hits {kv.hits}/{kv.hits + kv.misses}" if kv is not None else ""
            print(f"  prescore {crit.name}: {done}/{len(order)} new in {time.perf_counter() - started:.0f} s{hits}",
                  file=sys.stderr, flush=True)


def run_tools(per_family: int, names: Sequence[str]) -> dict[str, Any]:
    """Evidence kept per criterion and rate on the first ``per_family`` test cases of each family."""
    from agent_tokred import compress
    from agent_tokred.tokens import resolve_counter

    from ._tool_cases import load_cases
    from ._tools_measure import evidence_share
    from .bench_tools import quick_slice

    cases = quick_slice(load_cases("test"), per_family)
    counter = resolve_counter("o200k_base")
    out: dict[str, Any] = {"cases": len(cases), "per_family": per_family, "families": sorted({c.family for c in cases})}
    for name in names:
        crit = _wrap(name)
        per_rate: dict[str, float] = {}
        over = 0
        for rate in RATES_TOOLS:
            shares = []
            for c in cases:
                budget = math.ceil(rate * counter.count(c.text))
                r = compress(c.text, query=c.query, target_tokens=budget, criterion=crit, tokenizer="o200k_base")
                shares.append(evidence_share(c, r.text))
                over += counter.count(r.text) > budget
            per_rate[str(rate)] = statistics.mean(shares)
        out[name] = {"evidence": per_rate, "over_budget": over}
        print(f"  tools {name:<32} " + "  ".join(f"{k}:{v:.3f}" for k, v in per_rate.items()), file=sys.stderr)
    return out


def speed_one(name: str, repeats: int) -> dict[str, Any]:
    """Cold and warm tokens/s of one criterion alone (run in a fresh process), model memory.

    Warm is measured twice: on the same text with a new question (what an agent re-compressing its
    context for the next question sees; per-unit caches hit) and on new texts of the same shape
    (14 other NQ passages each; nothing seen before).
    """
    from agent_tokred.tokens import resolve_counter
    from agent_tokred.units import segment

    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz", limit=14 * (repeats + 1))
    counter = resolve_counter("o200k_base")
    texts = ["\n\n".join(r["ctxs"][0]["text"] for r in rows[14 * k : 14 * k + 14]) for k in range(repeats + 1)]
    units = [segment(t, "sentence") for t in texts]
    crit = CRITERIA[name][1]()
    if CRITERIA[name][0] is not None:
        import torch  # noqa: F401  (imported first, so the memory measured below is the model's)
    before = _rss_mb()
    cold = _timed(crit, units[0], rows[0]["question"])
    model_mb = _rss_mb() - before
    warm = statistics.median(_timed(crit, units[0], rows[k + 1]["question"]) for k in range(repeats))
    fresh = [counter.count(texts[k]) / _timed(crit, units[k], rows[14 * k]["question"]) for k in range(1, repeats + 1)]
    tokens = counter.count(texts[0])
    return {"input_tokens": tokens, "cold_s": cold, "warm_s": warm,
            "tokens_per_s_cold": tokens / cold, "tokens_per_s_warm": tokens / warm,
            "tokens_per_s_warm_new_text": statistics.median(fresh), "model_mb": model_mb}


def _timed(crit: Any, units: Any, query: str) -> float:
    started = time.perf_counter()
    crit(units, query)
    return time.perf_counter() - started


def _rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc (0.0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def run_speed(names: Sequence[str], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        cmd = [sys.executable, "-m", "bench.bench_criteria", "--speed-one", name, "--repeats", str(repeats)]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        try:
            out[name] = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[name] = {"error": res.stderr.strip().splitlines()[-1:] or ["no output"]}
        print(f"  speed {name}: {out[name]}", file=sys.stderr)
    return out


def _cmd(args: argparse.Namespace) -> str:
    parts = ["python -m bench.bench_criteria", f"--n {args.n}", f"--criteria {','.join(args.criteria)}"]
    parts[2] = "--criteria " + ",".join(c for c in args.criteria if not c.startswith("learned ("))
    parts += [f"--limit {x}" for x in args.limit] + [f"--weights {x}" for x in args.weights]
    parts += [f"--tools {args.tools}"] if args.tools else []
    parts += [f"--tools-criteria {','.join(args.tools_criteria)}"] if args.tools and args.tools_criteria else []
    parts += ["--no-speed"] if args.no_speed else []
    parts += [f"--repeats {args.repeats}"] if args.repeats != 3 else []
    return " ".join(parts)


def report(raw: dict[str, Any], cmd: str) -> str:
    from .bench_engine import RATES

    speed: dict[str, dict[str, Any]] = raw.get("speed", {})
    rows = []
    for name, v in raw["nq"].items():
        s = speed.get(name, {})
        rows.append([name, v["n"], *[v["rates"][str(r)]["retention"] for r in RATES],
                     sum(v["rates"][str(r)]["over_budget"] for r in RATES),
                     s.get("tokens_per_s_cold", "-"), s.get("tokens_per_s_warm", "-"),
                     s.get("tokens_per_s_warm_new_text", "-"), s.get("model_mb", "-")])
    md = ["### Criteria: NQ answer retention and speed (one run)\n",
          markdown_table(["criterion", "n", *[f"keep {int(r * 100)}%" for r in RATES], "over budget",
                          "tokens/s cold", "tokens/s warm (same text, new question)", "tokens/s warm (new text)",
                          "model MB (RSS added)"], rows,
                         f"NQ: build_nq(200) items (gold + 19 hard distractors), sentence units, o200k_base; "
                         f"speed on one {next(iter(speed.values()), {}).get('input_tokens', '?')}-token input, "
                         f"criterion alone, fresh process per criterion, 2 shared CPU cores, "
                         f"{_threads()}. Command: `{cmd}`")]
    if "tools" in raw:
        t = raw["tools"]
        md += [f"\n### Criteria on real tool outputs ({t['cases']} test cases: the first {t.get('per_family', '')} "
               "per family of "
               f"{', '.join(t['families'])})\n",
               markdown_table(["criterion", *[f"evidence kept {int(r * 100)}%" for r in RATES_TOOLS], "over budget"],
                              [[k, *[v["evidence"][str(r)] for r in RATES_TOOLS], v["over_budget"]]
                               for k, v in t.items() if isinstance(v, dict)], f"Command: `{cmd}`")]
    return "\n".join(md)


def _threads() -> str:
    import os

    n = os.environ.get("AGENT_TOKRED_TORCH_THREADS", "")
    return f"torch threads {n}" if n else "torch threads: default"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--criteria", type=lambda s: s.split(","), default=list(DEFAULT))
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help="score at most N new questions for NAME (cached ones are always used)")
    p.add_argument("--tools", type=int, default=0, help="test cases per tool-output family (0: no tool bench)")
    p.add_argument("--tools-criteria", type=lambda s: s.split(","), default=None,
                   help="criteria for the tool bench (default: those of --criteria)")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="also a row 'learned (NAME)' for a weights file of agent-tokred train (e.g. a student)")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--speed-one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.speed_one:
        print(json.dumps(speed_one(args.speed_one, args.repeats)))
        return 0
    unknown = [c for c in [*args.criteria, *(args.tools_criteria or [])] if c not in CRITERIA]
    if unknown:
        p.error(f"unknown criteria {unknown}; valid: {', '.join(CRITERIA)}")
    limits = {k: int(v) for k, v in (x.split("=", 1) for x in args.limit)}
    for label, path in (x.split("=", 1) for x in args.weights):
        CRITERIA[f"learned ({label})"] = (None, _learned_from(path))
        args.criteria.append(f"learned ({label})")
    from .bench_engine import build_nq

    raw: dict[str, Any] = {"nq": run_nq_rows(build_nq(args.n), args.criteria, limits)}
    if args.tools:
        raw["tools"] = run_tools(args.tools, args.tools_criteria or args.criteria)
    if not args.no_speed:
        raw["speed"] = run_speed([c for c in args.criteria if not c.startswith("learned (")], args.repeats)
    raw["command"] = _cmd(args)
    write_outputs(args.out, "criteria", report(raw, raw["command"]), raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
