"""Fit the online stop rule's weights and threshold on the dev half (even positions) of the real traces.

Each dev trace is replayed through :class:`~agent_tokred.overthinking.online.OnlineStopRule` in
recording mode: at every step opening the rule's features and its current answer are kept. A
logistic model is fitted (numpy, L2, Newton steps) to predict "the answer the trace concludes
with has already been stated" (the model's own conclusion, not the gold answer). Then, per model,
the bias is shifted (a stricter or looser threshold) to remove the most thinking with the first
opening scoring above 0.5 while the gold answer stays in the kept thinking in at least ``--min-kept``
% of that model's dev traces (among those whose full thinking reaches it). The shipped weights
carry the strictest model's shift (the default for any model); the other models' thresholds go
in ``MODEL_THRESHOLDS`` (``StopRuleConfig.for_model``).

Run: ``python -m bench._overthinking_tune`` (prints the weights and thresholds to paste into
``agent_tokred/overthinking/_stop_features.py``; the shipped ones: the defaults, ``--min-kept 99``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent_tokred.overthinking import split_trace
from agent_tokred.overthinking.answers import final_answer, mentions
from agent_tokred.overthinking.online import FEATURES, OnlineStopRule, StopRuleConfig
from agent_tokred.tokens import resolve_counter

COUNTER = resolve_counter()
_RECORD = StopRuleConfig(threshold=1.0, confidence_threshold=1.0)


def trail(r: dict[str, Any]) -> dict[str, Any] | None:
    """The features, answers and token positions of every step opening of one record (cached)."""
    if "_trail" in r:
        return r["_trail"]  # type: ignore[no-any-return]
    split = split_trace(r["trace"])
    if split.form == "not_a_trace" or not split.thinking.strip():
        r["_trail"] = None
        return None
    rule = OnlineStopRule(question=r["question"], config=_RECORD, record=True)
    rule.feed(split.thinking)
    rule.finish()
    thinking = split.thinking
    starts = [start for _, start, _, _ in rule.trail]
    pieces = [thinking[a:b] for a, b in zip([0, *starts], [*starts, len(thinking)])]
    cum = np.cumsum([COUNTER.count(p) for p in pieces])
    gold = r["gold_value"]
    first_gold = mentions(thinking, gold)
    r["_trail"] = {
        "x": np.array([[f[k] for k in FEATURES] for _, _, f, _ in rule.trail], dtype=float).reshape(-1, len(FEATURES)),
        "answers": [a for *_, a in rule.trail],
        "starts": starts,
        "tokens_at": [int(t) for t in cum[:-1]],
        "total": int(cum[-1]),
        "first_gold": first_gold[0] if first_gold else None,
        "final": final_answer(split.answer),
    }
    final = r["_trail"]["final"]
    first_final = mentions(thinking, final) if final else []
    r["_trail"]["first_final"] = first_final[0] if first_final else None
    r["_trail"]["has"] = np.array([a is not None for a in r["_trail"]["answers"]], dtype=bool)
    return r["_trail"]  # type: ignore[no-any-return]


def fit(recs: Sequence[dict[str, Any]], l2: float = 1.0, iters: int = 30) -> dict[str, float]:
    """L2-regularised logistic regression (Newton steps) of "the concluded answer was already stated"."""
    xs, ys = [], []
    for r in recs:
        t = trail(r)
        if t is None or t["first_final"] is None or not len(t["x"]):
            continue
        xs.append(t["x"])
        ys.append(np.array([s > t["first_final"] for s in t["starts"]], dtype=float))
    x, y = np.vstack(xs), np.concatenate(ys)
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[0, 0] = 0.0  # no penalty on the bias
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60, 60)))
        grad = x.T @ (p - y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(x.shape[1])
        w -= np.linalg.solve(hess, grad)
    return {k: round(float(v), 3) for k, v in zip(FEATURES, w)}


def calibrate(
    groups: Sequence[Sequence[dict[str, Any]]], w: np.ndarray, min_kept: float, step: float = 0.05
) -> list[float]:
    """Per model group, the bias shift removing the most on dev with answer kept >= ``min_kept`` %.

    Shifts run from -8 to 0 (a negative shift is a stricter rule than the logistic fit's own 0.5).
    """
    shifts = []
    for traces in groups:
        best, best_removed = -8.0, -1.0
        for b in np.arange(-8.0, step / 2, step):
            trial = w.copy()
            trial[0] += b
            removed, kept = objective([traces], trial)
            if kept >= min_kept and removed > best_removed:
                best, best_removed = float(b), removed
        shifts.append(round(best, 2))
    return shifts


def main() -> None:
    from bench.bench_overthinking import MODELS, load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-kept", type=float, default=99.0, help="answer kept %% to reach on dev, per model")
    parser.add_argument("--l2", type=float, default=1.0)
    args = parser.parse_args()
    dev = [r for r in load() if r["split"] == "dev"]
    groups = [_stack(dev, m) for m in MODELS]
    fitted = fit(dev, l2=args.l2)
    w = np.array([fitted[k] for k in FEATURES])
    shifts = calibrate(groups, w, args.min_kept)
    strict = min(shifts)  # the default (any model): the strictest model's shift
    w[0] += strict
    print("DEFAULT_WEIGHTS =", {k: round(float(v), 3) for k, v in zip(FEATURES, w)})
    thresholds = {m: round(1.0 / (1.0 + math.exp(s - strict)), 4) for m, s in zip(MODELS, shifts)}
    print("MODEL_THRESHOLDS =", thresholds)
    for m, g, s in zip(MODELS, groups, shifts):
        trial = w.copy()
        trial[0] += s - strict
        removed, kept = objective([g], trial)
        print(f"dev {m} (step-level replay): removed {removed:.1f} %, answer kept {kept:.1f} %")


def _stack(recs: Sequence[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    return [t for r in recs if r["model"] == model and (t := trail(r)) is not None and len(t["x"])]


def objective(groups: Sequence[Sequence[dict[str, Any]]], w: np.ndarray) -> tuple[float, float]:
    """(mean removed %, min answer kept %) over model groups of first openings with ``x @ w > 0``."""
    removed, kept_pct = [], []
    for traces in groups:
        before = after = reach = kept = 0
        for t in traces:
            z = t["x"] @ w
            ok = (z > 0) & t["has"]
            i = int(np.argmax(ok)) if ok.any() else None
            before += t["total"]
            after += t["tokens_at"][i] if i is not None else t["total"]
            if t["first_gold"] is not None:
                reach += 1
                kept += (i is not None and t["starts"][i] > t["first_gold"]) or i is None
        removed.append(100.0 * (before - after) / max(before, 1))
        kept_pct.append(100.0 * kept / max(reach, 1))
    return float(np.mean(removed)), float(min(kept_pct))


if __name__ == "__main__":
    main()
