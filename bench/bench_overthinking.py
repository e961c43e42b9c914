"""Overthinking detector on real DeepSeek-R1 and QwQ-32B GSM8K traces (MiP-Overthinking data).

Measures, per model: thinking tokens removed, "answer kept" (among traces whose full thinking
reaches the gold answer, the share whose truncated thinking still contains it), the stricter
"derived kept" (the gold is still *derived*: a candidate, or a calculation's result in words), how often the cut lands before the
gold answer first appears, against two baselines (cut at the first "Wait" after the answer first
appears; cut at a fixed fraction), and the detector's speed per trace.

Tuning: the dev half (even positions within each model) picks ``k_anchored`` and the trigger (with a
conclusion; the largest removal with answer kept >= 99% for both models on dev, ties within 1 point
going to the more conservative trigger) and ``k`` / ``min_strength`` (online, no conclusion; the
largest removal with answer kept >= 98%).
The looser "mentioned" gate (cut at the first re-check once the conclusion's answer appears at
all) is tuned to keep the answer at least as often as the first-"Wait" baseline on dev.
Figures are reported on the test half (odd positions) and on all traces.

Stream mode (``bench/_overthinking_stream.py``): each test trace is streamed in 4-token chunks
through the monitor's online stop rule (weights and per-model thresholds fitted on the dev half by
``python -m bench._overthinking_tune``; also with the default threshold for any other model), with a
probe simulated from the trace, next to the earlier
convergence rule, the oracle (stop right after the gold answer first appears) and the first-"Wait"
baseline; DEER's and Dynasor-CoT's published reductions are quoted as reference rows.

Run: ``python -m bench.bench_overthinking [--quick] [--out bench/out]``
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_tokred.overthinking import (
    CutStrategy,
    OverthinkingConfig,
    detect_overthinking,
    split_trace,
)
from agent_tokred.overthinking.answers import extract_candidates, final_answer, mentions
from agent_tokred.overthinking.detectors import _candidates_cached, computed_mention
from bench._overthinking_baselines import COUNTER, Method, fixed_fraction, wait_after_first_answer
from bench._overthinking_stream import PUBLISHED, stream_results, stream_table

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reasoning_traces_dev.jsonl.gz"
MODELS = ("deepseek-r1", "qwq-32b")
COMMAND = "python -m bench.bench_overthinking"


def load(path: Path = DATA) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    seen: dict[str, int] = {}
    for r in recs:
        pos = seen.get(r["model"], 0)
        seen[r["model"]] = pos + 1
        r["split"] = "dev" if pos % 2 == 0 else "test"
        r["gold_value"] = r["gold"].split("####")[-1].strip().replace(",", "")
    return recs


def derives(thinking: str, gold: str) -> bool:
    """The thinking derives ``gold``: a stated candidate, or the result of a calculation in words."""
    return any(c.value == gold for c in extract_candidates(thinking)) or computed_mention(thinking, gold)


def detector_method(cfg: OverthinkingConfig) -> Method:
    def run(r: dict[str, Any]) -> str | None:
        res = detect_overthinking(r["trace"], question=r["question"], config=cfg)
        return None if res.reason == "not_a_trace" else res.kept_thinking

    return run


def _static(r: dict[str, Any]) -> dict[str, Any]:
    """What evaluation needs of a record, computed once."""
    if "_static" not in r:
        split = split_trace(r["trace"])
        gold = r["gold_value"]
        r["_static"] = {
            "thinking": split.thinking,
            "tokens": COUNTER.count(split.thinking),
            "reaches": bool(mentions(split.thinking, gold)),
            "derives": derives(split.thinking, gold),
            "final_is_gold": final_answer(split.answer) == gold,
        }
    return r["_static"]


def evaluate(recs: Sequence[dict[str, Any]], method: Method) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for model in MODELS:
        before = after = reach = kept = derive = kept_derived = cut = early = reach_cut = n = 0
        correct = kept_correct = 0
        for r in recs:
            if r["model"] != model:
                continue
            kept_thinking = method(r)
            if kept_thinking is None:
                continue
            st = _static(r)
            n += 1
            thinking, tb = st["thinking"], st["tokens"]
            was_cut = kept_thinking != thinking
            ta = COUNTER.count(kept_thinking) if was_cut else tb
            before, after = before + tb, after + min(ta, tb)
            cut += was_cut
            gold = r["gold_value"]
            if st["reaches"]:
                reach += 1
                held = not was_cut or bool(mentions(kept_thinking, gold))
                kept += held
                if st["final_is_gold"]:
                    correct += 1
                    kept_correct += held
                if was_cut:
                    reach_cut += 1
                    early += not held
            if st["derives"]:
                derive += 1
                kept_derived += not was_cut or derives(kept_thinking, gold)
        out[model] = {
            "traces": n,
            "removed_pct": 100.0 * (before - after) / max(before, 1),
            "answer_kept_pct": 100.0 * kept / max(reach, 1),
            "kept_when_final_correct_pct": 100.0 * kept_correct / max(correct, 1),
            "derived_kept_pct": 100.0 * kept_derived / max(derive, 1),
            "cut_before_answer_pct": 100.0 * early / max(reach_cut, 1),
            "cut_pct": 100.0 * cut / max(n, 1),
        }
    return out


def _pooled_kept(res: dict[str, dict[str, float]]) -> float:
    return min(v["answer_kept_pct"] for v in res.values())


def _pooled_removed(res: dict[str, dict[str, float]]) -> float:
    return statistics.mean(v["removed_pct"] for v in res.values())


def tune(
    dev: Sequence[dict[str, Any]], grid: Sequence[OverthinkingConfig], target: float
) -> tuple[OverthinkingConfig, list[Any]]:
    """Largest mean removal on ``dev`` with answer kept >= ``target`` % for every model.

    Configurations within 1 point of the best removal count as tied; the grid lists conservative ones
    first (re-check triggers before "any"), and the first tied one wins. When no configuration reaches
    the target, the one keeping the answer most often wins.
    """
    rows = []
    scored = []
    for cfg in grid:
        res = evaluate(dev, detector_method(cfg))
        rows.append({"config": _cfg_name(cfg), "dev": res})
        scored.append((_pooled_kept(res) >= target, _pooled_removed(res), _pooled_kept(res), cfg))
    ok = [s for s in scored if s[0]]
    if not ok:
        return max(scored, key=lambda s: (s[2], s[1]))[3], rows
    top = max(s[1] for s in ok)
    # Within 1 point of the best removal, the first (more conservative) configuration of the grid wins.
    return next(s[3] for s in ok if s[1] >= top - 1.0), rows


def where_baseline_leads(recs: Sequence[dict[str, Any]], method: Method, baseline: Method) -> dict[str, dict[str, int]]:
    """Traces (deriving the gold in full) where ``baseline`` removes over 20 tokens more than ``method``,
    and in how many of them the baseline's kept thinking no longer derives the gold (only mentions it)."""
    out: dict[str, dict[str, int]] = {}
    for model in MODELS:
        leads = underived = 0
        for r in recs:
            st = _static(r)
            if r["model"] != model or not st["derives"]:
                continue
            ours, theirs = method(r), baseline(r)
            if ours is None or theirs is None:
                continue
            if COUNTER.count(ours) > COUNTER.count(theirs) + 20:
                leads += 1
                underived += not derives(theirs, r["gold_value"])
        out[model] = {"baseline_removes_more": leads, "of_which_gold_no_longer_derived": underived}
    return out


def _cfg_name(cfg: OverthinkingConfig) -> str:
    trig = "+".join(cfg.strategy.triggers)
    if cfg.use_conclusion and cfg.anchor_gate == "mentioned":
        return f"gate=answer mentioned, triggers={trig}"
    if cfg.use_conclusion:
        return f"k_anchored={cfg.k_anchored}, triggers={trig}"
    return f"k={cfg.k}, min_strength={cfg.min_strength}, triggers={trig}"


def cached(method: Method) -> Method:
    """Compute a method once per record (test and all share the work)."""
    memo: dict[int, str | None] = {}

    def run(r: dict[str, Any]) -> str | None:
        if id(r) not in memo:
            memo[id(r)] = method(r)
        return memo[id(r)]

    return run


def speed(recs: Sequence[dict[str, Any]], cfg: OverthinkingConfig, repeats: int = 3) -> dict[str, float]:
    """Per trace: median over repeats of wall time and of process CPU time (less hurt by a shared CPU)."""
    wall, cpu = [], []
    for r in recs:
        w, c = [], []
        for _ in range(repeats):
            _candidates_cached.cache_clear()
            t0, c0 = time.perf_counter(), time.process_time()
            detect_overthinking(r["trace"], question=r["question"], config=cfg)
            w.append(time.perf_counter() - t0)
            c.append(time.process_time() - c0)
        wall.append(statistics.median(w) * 1000)
        cpu.append(statistics.median(c) * 1000)
    wall.sort()
    return {
        "median_ms": statistics.median(wall),
        "p90_ms": wall[int(0.9 * (len(wall) - 1))],
        "median_cpu_ms": statistics.median(cpu),
    }


def _table(title: str, results: dict[str, dict[str, dict[str, float]]]) -> str:
    head = (
        f"{title}\n\n| method | model | traces | thinking tokens removed % | answer kept % "
        "| kept, final answer correct % | derived kept % | cut before answer % | traces cut % |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for name, res in results.items():
        for model, v in res.items():
            lines.append(
                f"| {name} | {model} | {v['traces']:.0f} | {v['removed_pct']:.1f} | "
                f"{v['answer_kept_pct']:.1f} | "
                f"{v['kept_when_final_correct_pct']:.1f} | {v['derived_kept_pct']:.1f} | "
                f"{v['cut_before_answer_pct']:.1f} | {v['cut_pct']:.1f} |"
            )
    return head + "\n".join(lines) + "\n"


def _tuning_table(rows: Sequence[dict[str, Any]], chosen_cfgs: Sequence[OverthinkingConfig]) -> str:
    chosen = {_cfg_name(c) for c in chosen_cfgs}
    lines = [
        "Tuning on the dev half (removed % / answer kept %; chosen rows in bold):\n",
        "| config | " + " | ".join(MODELS) + " |",
        "|---|" + "---|" * len(MODELS),
    ]
    for row in rows:
        name = row["config"]
        kind = "online" if name.startswith("k=") else "with conclusion"
        label = f"**{kind}: {name}**" if name in chosen else f"{kind}: {name}"
        cells = [f"{row['dev'][m]['removed_pct']:.1f} / {row['dev'][m]['answer_kept_pct']:.1f}" for m in MODELS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(quick: bool, out_dir: Path) -> dict[str, Any]:
    recs = load()
    if quick:
        recs = [r for m in MODELS for r in [x for x in recs if x["model"] == m][:80]]
    dev = [r for r in recs if r["split"] == "dev"]
    test = [r for r in recs if r["split"] == "test"]
    base = OverthinkingConfig()
    triggers = (CutStrategy(), CutStrategy(triggers=("any",)))
    anchored_grid = [dataclasses.replace(base, k_anchored=k, strategy=t) for k in (1, 2, 3) for t in triggers]
    mention_grid = [
        dataclasses.replace(base, anchor_gate="mentioned", strategy=t)
        for t in (CutStrategy(triggers=("recheck",)), CutStrategy(triggers=("reflection",)), CutStrategy())
    ]
    online_grid = [
        dataclasses.replace(base, use_conclusion=False, k=k, min_strength=s) for k in (2, 3, 4) for s in (1, 2)
    ]
    anchored, anchored_rows = tune(dev, anchored_grid, target=99.0)
    # The looser gate (any mention of the conclusion's answer) is tuned to keep the answer at least as
    # often as the first-"Wait" baseline does on dev (its own kept figure, min over the models).
    wait_dev = _pooled_kept(evaluate(dev, wait_after_first_answer))
    mentioned, mention_rows = tune(dev, mention_grid, target=wait_dev)
    online, online_rows = tune(dev, online_grid, target=98.0)
    methods: dict[str, Method] = {
        f"detector, with conclusion ({_cfg_name(anchored)})": detector_method(anchored),
        f"detector, with conclusion ({_cfg_name(mentioned)})": detector_method(mentioned),
        f"detector, online ({_cfg_name(online)})": detector_method(online),
        'baseline: first "Wait" after the answer first appears': wait_after_first_answer,
        "baseline: fixed fraction 0.5": fixed_fraction(0.5),
        "baseline: fixed fraction 0.75": fixed_fraction(0.75),
    }
    methods = {name: cached(m) for name, m in methods.items()}
    results = {split: {n: evaluate(rs, m) for n, m in methods.items()} for split, rs in (("test", test), ("all", recs))}
    wait_name = 'baseline: first "Wait" after the answer first appears'
    leads = where_baseline_leads(test, methods[f"detector, with conclusion ({_cfg_name(anchored)})"], methods[wait_name])
    # Stream mode: each test trace streamed to the monitor in 4-token chunks; a stop ends the generation.
    results["stream"] = stream_results(test, online, _cfg_name(online), wait_after_first_answer)
    if not quick:
        # Redundancy as the only trigger, lexical vs MiniLM embeddings (slow: every 10th test trace).
        sub = test[::10]
        only_red = CutStrategy(triggers=("redundancy",))
        lex = dataclasses.replace(anchored, strategy=only_red, redundancy="lexical")
        emb = dataclasses.replace(anchored, strategy=only_red, redundancy="embedding")
        results["embedding subset"] = {
            "with conclusion, trigger = lexical redundancy >= 0.9": evaluate(sub, detector_method(lex)),
            "with conclusion, trigger = MiniLM redundancy >= 0.9": evaluate(sub, detector_method(emb)),
        }
    spd = {"with conclusion": speed(recs, anchored), "online": speed(recs, online)}
    out = {
        "command": COMMAND + (" --quick" if quick else ""),
        "tuned": {"anchored": _cfg_name(anchored), "mentioned": _cfg_name(mentioned), "online": _cfg_name(online)},
        "tuning_dev": anchored_rows + mention_rows + online_rows,
        "wait_baseline_dev_kept": wait_dev,
        "wait_baseline_leads_test": leads,
        "results": results,
        "speed_ms_per_trace": spd,
        "load_average_1m": os.getloadavg()[0],
    }
    md = [f"Overthinking detector on real R1 / QwQ-32B GSM8K traces (`{out['command']}`); tuned on the dev half.\n"]
    md.append(_tuning_table(anchored_rows + mention_rows + online_rows, (anchored, mentioned, online)))
    md.append(
        f'(The "mentioned" gate is tuned to keep the answer at least as often as the first-"Wait" '
        f"baseline does on dev: {wait_dev:.1f} %, the lower of the two models.)\n"
    )
    md.append(_table("Test half (not used for tuning):", results["test"]))
    md.append(
        'Where the first-"Wait" baseline removes more than the default detector (test half, traces that '
        "derive the gold): " + "; ".join(
            f"{m}: {v['baseline_removes_more']} traces, in {v['of_which_gold_no_longer_derived']} of them its "
            "kept thinking no longer derives the gold (it only mentions it)" for m, v in leads.items()) + ".\n"
    )
    md.append(_table("All traces:", results["all"]))
    md.append(
        "Test half, stream mode (each trace streamed token by token, 4 o200k tokens per chunk; a stop ends "
        'the generation: removed = thinking tokens never generated). The oracle and the first-"Wait" '
        "baseline know the answer; the probe is simulated from the trace (the latest candidate so far).\n\n"
        + stream_table(results["stream"])
    )
    md.append(
        "Published early-exit reductions (reference only: quoted from the papers, other models and "
        "benchmarks, real model probes; not measured here):\n\n| method | status | tokens | accuracy | probe |\n"
        "|---|---|---|---|---|\n" + "\n".join(PUBLISHED) + "\n"
    )
    if "embedding subset" in results:
        md.append(
            _table("Every 10th test trace, a redundancy detector as the only trigger:", results["embedding subset"])
        )
    md.append(
        f"Detector speed per trace, this CPU ({os.cpu_count()} cores, shared; 1-min load average "
        f"{out['load_average_1m']:.1f} at the end; median over traces of the median of 3 runs): "
        + ", ".join(
            f"{k} {v['median_ms']:.1f} ms wall (p90 {v['p90_ms']:.1f} ms), {v['median_cpu_ms']:.1f} ms CPU"
            for k, v in spd.items()
        )
        + "\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overthinking.md").write_text("\n".join(md), encoding="utf-8")
    (out_dir / "overthinking.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("\n".join(md))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 160-trace subset")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
