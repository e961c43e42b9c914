"""Stream-mode replay for ``bench_overthinking``: each trace is fed token by token to the monitor.

A trace's raw text (thinking, ``</think>``, answer) is tokenised with o200k_base and streamed in
chunks of ``chunk_tokens`` tokens (bytes decoded incrementally, as a client receives them) through
:class:`~agent_tokred.overthinking.OverthinkingMonitor`. At a stop, the generation ends: the
thinking tokens *removed* are the ones never generated (total thinking tokens minus those streamed
before the stop, so the re-check's first words that were generated count as spent); the thinking
kept is the part before the cut. Reported per model, among traces whose full thinking mentions
the gold answer: "answer kept" (the kept thinking still mentions it) and "extracted correct" (the
answer the stop reports, i.e. the one that would be returned without a conclusion call, is the
gold answer; counted among traces whose own final answer is correct, a trace not stopped counts
its own final answer).

The probe is simulated from the trace itself, honestly: at a checkpoint the "model" answers with
the latest answer candidate stated in the thinking so far (the answer the trace would give if
concluded there). A real model asked at that point may know more (or less) than it wrote.

Run through ``python -m bench.bench_overthinking`` (section "stream").
"""

from __future__ import annotations

import codecs
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent_tokred.overthinking import OverthinkingConfig, OverthinkingMonitor, split_trace
from agent_tokred.overthinking.answers import extract_candidates, final_answer, mentions
from agent_tokred.overthinking.monitor import Rule
from agent_tokred.overthinking.online import StopRuleConfig
from agent_tokred.tokens import TiktokenCounter

ENCODING = TiktokenCounter("o200k_base")
MODELS = ("deepseek-r1", "qwq-32b")


def token_chunks(text: str, chunk_tokens: int) -> list[str]:
    """``text`` as a client receives it in chunks of ``chunk_tokens`` tokens (UTF-8 decoded incrementally)."""
    ids = ENCODING.encode(text)
    pure = ENCODING._pure
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = []
    for i in range(0, len(ids), chunk_tokens):
        data = pure.decode_bytes(ids[i : i + chunk_tokens])
        piece = dec.decode(data, final=i + chunk_tokens >= len(ids))
        if piece:
            out.append(piece)
    return out


def latest_candidate_probe(thinking: str) -> str | None:
    """The simulated probe: the latest answer candidate stated in the thinking so far."""
    cands = [c for c in extract_candidates(thinking) if c.strength >= 1]
    return cands[-1].value if cands else None


def replay(
    r: dict[str, Any],
    *,
    rule: Rule = "online",
    chunk_tokens: int = 4,
    probe: Callable[[str], str | None] | None = None,
    config: OverthinkingConfig | None = None,
    per_model: bool = True,
) -> dict[str, Any] | None:
    """Stream one record through a monitor; the figures of its stop (``None``: not a trace).

    ``per_model``: the online rule uses the threshold calibrated for the record's model
    (``StopRuleConfig.for_model``); otherwise the default threshold (any model).
    """
    split = split_trace(r["trace"])
    if split.form == "not_a_trace" or not split.thinking.strip():
        return None
    stop_rule = StopRuleConfig.for_model(r["model"] if per_model else None)
    mon = OverthinkingMonitor(question=r["question"], rule=rule, probe=probe, config=config, stop_rule=stop_rule)
    t0 = time.process_time()
    n = 0
    for piece in token_chunks(split.prefix + split.thinking + split.closing + split.answer, chunk_tokens):
        n += 1
        if mon.feed_text(piece):
            break
    cpu = time.process_time() - t0
    total = ENCODING.count(split.thinking)
    if not mon.stopped or mon.record is None:
        return {
            "total": total,
            "generated": total,
            "kept": split.thinking,
            "answer": final_answer(split.answer),
            "stopped": False,
            "cpu_per_chunk": cpu / max(n, 1),
        }
    return {
        "total": total,
        "generated": min(total, mon.record.generated_tokens),
        "kept": mon.kept_reasoning,
        "answer": mon.record.answer,
        "stopped": True,
        "cpu_per_chunk": cpu / max(n, 1),
    }


def evaluate_stream(
    recs: Sequence[dict[str, Any]], run: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, dict[str, float]]:
    """Per model: removed %, answer kept %, extracted answer correct %, stops %, overshoot, CPU per chunk."""
    out: dict[str, dict[str, float]] = {}
    for model in MODELS:
        before = after = reach = kept = correct = right = n = stops = kept_ok = 0
        cpu: list[float] = []
        for r in recs:
            if r["model"] != model:
                continue
            res = run(r)
            if res is None:
                continue
            n += 1
            stops += res["stopped"]
            before, after = before + res["total"], after + res["generated"]
            cpu.append(res["cpu_per_chunk"])
            split = split_trace(r["trace"])
            gold = r["gold_value"]
            if mentions(split.thinking, gold):
                reach += 1
                kept += bool(mentions(res["kept"], gold))
                if final_answer(split.answer) == gold:
                    correct += 1
                    right += res["answer"] == gold
                    kept_ok += bool(mentions(res["kept"], gold))
        out[model] = {
            "traces": n,
            "removed_pct": 100.0 * (before - after) / max(before, 1),
            "answer_kept_pct": 100.0 * kept / max(reach, 1),
            "extracted_correct_pct": 100.0 * right / max(correct, 1),
            "kept_final_correct_pct": 100.0 * kept_ok / max(correct, 1),
            "stopped_pct": 100.0 * stops / max(n, 1),
            "cpu_us_per_chunk": 1e6 * statistics.median(cpu) if cpu else 0.0,
        }
    return out


def oracle_first_appearance(recs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Stop right after the gold answer first appears in the thinking (needs the gold: an upper bound)."""

    def run(r: dict[str, Any]) -> dict[str, Any] | None:
        split = split_trace(r["trace"])
        if split.form == "not_a_trace" or not split.thinking.strip():
            return None
        total = ENCODING.count(split.thinking)
        first = mentions(split.thinking, r["gold_value"])
        if not first:
            return {
                "total": total,
                "generated": total,
                "kept": split.thinking,
                "answer": None,
                "stopped": False,
                "cpu_per_chunk": 0.0,
            }
        rest = split.thinking[first[0] :]
        end = first[0] + next((i for i, ch in enumerate(rest) if ch.isspace()), len(rest))
        kept = split.thinking[:end]
        return {
            "total": total,
            "generated": ENCODING.count(kept),
            "kept": kept,
            "answer": r["gold_value"],
            "stopped": True,
            "cpu_per_chunk": 0.0,
        }

    return evaluate_stream(recs, run)


def stream_results(
    test: Sequence[dict[str, Any]],
    online: OverthinkingConfig,
    online_name: str,
    wait_baseline: Callable[[dict[str, Any]], str | None],
) -> dict[str, dict[str, dict[str, float]]]:
    """Stream-mode rows: the online rule, with a simulated probe, the earlier rule, oracle, baseline."""

    def wait_run(r: dict[str, Any]) -> dict[str, Any] | None:
        kept = wait_baseline(r)
        if kept is None:
            return None
        split = split_trace(r["trace"])
        total = ENCODING.count(split.thinking)
        return {
            "total": total,
            "generated": min(total, ENCODING.count(kept)),
            "kept": kept,
            "answer": final_answer(split.answer),
            "stopped": kept != split.thinking,
            "cpu_per_chunk": 0.0,
        }

    return {
        "**stream: online stop rule, per-model threshold** (tuned on dev)": evaluate_stream(test, replay),
        "stream: online stop rule, default threshold (any model; tuned on dev)": evaluate_stream(
            test, lambda r: replay(r, per_model=False)
        ),
        "stream: online rule (per-model threshold) + probe simulated from the trace (2 agreeing)": evaluate_stream(
            test, lambda r: replay(r, probe=latest_candidate_probe)
        ),
        f"stream: earlier convergence rule ({online_name})": evaluate_stream(
            test, lambda r: replay(r, rule="convergence", config=online)
        ),
        "oracle: stop right after the gold answer first appears": oracle_first_appearance(test),
        'first "Wait" after the answer appears (knows the final answer)': evaluate_stream(test, wait_run),
    }


def stream_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of stream-mode results."""
    lines = [
        "| method | model | traces | thinking tokens removed (not generated) % | answer kept % "
        "| kept, final answer correct % | extracted answer correct % | streams stopped % "
        "| CPU per 4-token chunk (us, median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for model, v in res.items():
            lines.append(
                f"| {name} | {model} | {v['traces']:.0f} | {v['removed_pct']:.1f} | {v['answer_kept_pct']:.1f} | "
                f"{v['kept_final_correct_pct']:.1f} | {v['extracted_correct_pct']:.1f} | {v['stopped_pct']:.1f} | {v['cpu_us_per_chunk']:.0f} |"
            )
    return "\n".join(lines) + "\n"


#: Published reductions (reference rows: quoted, not measured here; other models, benchmarks and set-ups).
PUBLISHED = (
    "| DEER (Yang et al., 2025, arXiv 2504.15895, abstract of v3) | published, not measured here | "
    "CoT length -19.1% to -80.1% on average (11 reasoning models, 10 benchmarks incl. GSM8K, MATH-500) | "
    'accuracy +0.3 to +5.0 points | real model probes (trial answer + confidence >= 0.95 at "Wait") |',
    "| Dynasor-CoT (Fu et al., arXiv 2412.20993; hao-ai-lab.github.io/blogs/dynasor-cot) | published, not measured here | "
    "-29% tokens dataset-wide (up to -81% on single problems) on AMC23, AIME24, MATH500 | "
    "matches baseline accuracy | real model probes every N tokens, consistent answers |",
)
