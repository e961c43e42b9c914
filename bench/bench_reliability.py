"""Reliability figures: property cases, fuzz inputs, injected faults, concurrency, isolation, offline.

``python -m bench.bench_reliability [--quick] [--out bench/out]`` runs the reliability suites
(``tests/test_properties_messages.py``, ``test_fuzz.py``, ``test_faults.py``,
``test_concurrency.py``, ``test_isolation.py``, ``test_offline.py``) with pytest in a child process,
under a fixed hypothesis profile (``bench``: the CI example counts, deterministic; ``--quick``:
``dev``, a few dozen per test), and reads back the counters the tests keep
(:data:`tests.strategies.STATS`) and pytest's JUnit report. It writes ``reliability.md`` (tables:
cases per property with failures and data lost; fuzz inputs per entry point with exceptions by
type; faults injected and their outcomes; concurrency, isolation and offline scenarios) and
``reliability.json`` (raw counters).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import ROOT, markdown_table, write_outputs

SUITES = (
    "tests/test_properties_messages.py",
    "tests/test_fuzz.py",
    "tests/test_faults.py",
    "tests/test_concurrency.py",
    "tests/test_isolation.py",
    "tests/test_offline.py",
)
MESSAGE_ADAPTERS = ("reduce_messages", "middleware.model_call", "middleware.sticky", "node.tool_messages",
                    "node.pre_model_hook", "agent_run")
# property -> (counters whose "cases" check it, test-name fragments whose failure breaks it)
PROPERTIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "no orphaned tool call or tool message": (
        (*MESSAGE_ADAPTERS, "middleware.tool_call", "node.reasoning"),
        ("reduce_messages", "middleware", "sticky", "node", "hook", "reasoning", "agent_run")),
    "order preserved": ((*MESSAGE_ADAPTERS, "node.reasoning", "documents"),
                        ("reduce_messages", "middleware_model", "sticky", "node", "hook", "reasoning", "documents")),
    "budgets never exceeded (or exhausted and reported)": (
        (*MESSAGE_ADAPTERS, "middleware.tool_call", "documents", "compress"),
        ("reduce_messages", "middleware", "sticky", "node", "hook", "documents", "compress", "agent_run")),
    "system prompt and protected messages untouched": (
        MESSAGE_ADAPTERS, ("reduce_messages", "middleware_model", "sticky", "node", "hook", "agent_run")),
    "idempotent on its own output": (("idempotent",), ("invariants",)),
    "every removed text recoverable by its handle": (
        (*MESSAGE_ADAPTERS, "middleware.tool_call", "node.reasoning", "documents", "compress"),
        ("invariants",)),
}


def run_suites(quick: bool, workdir: Path) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]], float]:
    """Run the suites in a child pytest; returns (counters, test records, wall seconds)."""
    stats_path, junit = workdir / "stats.json", workdir / "junit.xml"
    env = {**os.environ, "HYPOTHESIS_PROFILE": "dev" if quick else "bench", "AGENT_TOKRED_BENCH_SCALE": "1.0",
           "AGENT_TOKRED_STATS_OUT": str(stats_path), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if quick:
        cmd += ["-m", "not model"]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - started
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    return stats, read_junit(junit), wall


def read_junit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfailed" if "xfail" in (child.get("type") or "") + (child.get("message") or "") else "skipped"
        records.append({"name": case.get("name", ""), "file": case.get("classname", ""),
                        "seconds": float(case.get("time", 0.0)), "outcome": outcome})
    return records


def property_rows(stats: dict[str, dict[str, int]], tests: list[dict[str, Any]]) -> list[list[Any]]:
    failed = [t["name"] for t in tests if t["outcome"] == "failed" and "properties" in t["file"]]
    rows = []
    for prop, (counters, fragments) in PROPERTIES.items():
        cases = sum(stats.get(c, {}).get("cases", 0) for c in counters)
        lost = sum(stats.get(c, {}).get("lost", 0) for c in counters)
        reduced = sum(stats.get(c, {}).get("reduced", 0) for c in counters)
        failures = sum(1 for name in failed if any(f in name for f in fragments))
        rows.append([prop, len(counters), cases, reduced if "recoverable" in prop else "", failures, lost])
    return rows


def fuzz_rows(stats: dict[str, dict[str, int]]) -> list[list[Any]]:
    rows = []
    for key in sorted(k for k in stats if k.startswith("fuzz:")):
        counts = stats[key]
        excs = ", ".join(f"{k.removeprefix('exc:')} {v}" for k, v in sorted(counts.items()) if k.startswith("exc:"))
        rows.append([key.removeprefix("fuzz:"), counts.get("inputs", 0), excs or "none"])
    return rows


def fault_rows(stats: dict[str, dict[str, int]]) -> list[list[Any]]:
    rows = []
    for key in sorted(k for k in stats if k.startswith("fault:")):
        counts = dict(stats[key])
        injected = counts.pop("injected", 0)
        lost = counts.pop("lost", 0)
        outcomes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items()))
        rows.append([key.removeprefix("fault:"), injected, outcomes, lost])
    return rows


def scenario_rows(stats: dict[str, dict[str, int]]) -> list[list[Any]]:
    rows = []
    for key in sorted(k for k in stats if k.split(":")[0] in ("concurrency", "isolation")):
        counts = stats[key]
        bad = counts.get("lost", 0) + counts.get("leaks", 0) + counts.get("mismatches", 0)
        rows.append([key, counts.get("cases", 0), bad])
    offline = stats.get("offline", {})
    if offline:
        rows.append(["offline: default paths with sockets blocked", offline.get("paths", 0),
                     offline.get("attempts", 0)])
    return rows


def run(quick: bool, out_dir: Path) -> dict[str, Any]:
    """Run the reliability suites and write ``reliability.md`` / ``reliability.json`` to ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="agent-tokred-reliability-") as tmp:
        stats, tests, wall = run_suites(quick, Path(tmp))
    outcomes = Counter(t["outcome"] for t in tests)
    cmd = f"python -m bench.bench_reliability{' --quick' if quick else ''}"
    profile = "dev (a few dozen cases per test)" if quick else "bench (the CI counts)"
    props, fuzz, faults, scen = property_rows(stats, tests), fuzz_rows(stats), fault_rows(stats), scenario_rows(stats)
    md = "\n".join([
        "## Reliability",
        "",
        markdown_table(["property", "adapters", "cases generated", "reductions checked", "failures", "data lost"],
                       props, caption=f"Generated message sequences and texts, hypothesis profile {profile}. "
                                      f"Produced by `{cmd}`."),
        markdown_table(["fuzzed entry point", "inputs tried", "documented exceptions raised"], fuzz,
                       caption="Bad bytes, broken JSON, junk messages and traces; any undocumented exception fails "
                               "the suite."),
        markdown_table(["fault injected", "times", "outcomes", "data lost"], faults,
                       caption="Scorer failures, timeouts, store and tokenizer outages; agent runs continue."),
        markdown_table(["scenario", "cases", "lost / leaked / mismatched (attempts for offline)"], scen,
                       caption="8 threads and 50 asyncio tasks; namespaces per user and thread; sockets blocked."),
        f"Tests: {outcomes.get('passed', 0)} passed, {outcomes.get('failed', 0)} failed, "
        f"{outcomes.get('skipped', 0)} skipped, {outcomes.get('xfailed', 0)} xfailed; suite wall time "
        f"{wall:.0f} s ({os.cpu_count()} CPUs).",
        "",
    ])
    raw = {"stats": stats, "tests": tests, "wall_seconds": wall, "profile": "dev" if quick else "bench",
           "outcomes": dict(outcomes)}
    write_outputs(out_dir, "reliability", md, raw)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few dozen cases per test (the dev profile)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    raw = run(args.quick, args.out)
    print((args.out / "reliability.md").read_text(encoding="utf-8"))
    sys.exit(1 if raw["outcomes"].get("failed") else 0)


if __name__ == "__main__":
    main()
