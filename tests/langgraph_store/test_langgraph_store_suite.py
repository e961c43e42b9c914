"""LangGraph's own store tests, run against MergingStore (downloaded at test time, see fetch.py).

Each upstream file runs in a pytest subprocess, rooted in its unpacked distribution so its
``tests.embed_test_utils`` import resolves, with ``lg_store_plugin`` swapping in MergingStore.
Skipped with the reason when the distributions cannot be downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fetch import fetch  # noqa: E402

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def run_upstream(dist: Path, backend: str, out: Path, extra_env: dict[str, str] | None = None) -> dict[str, int]:
    """Run ``dist/tests/test_store.py`` against MergingStore; returns junit counts."""
    (dist / "pytest.ini").write_text(INI)
    xml = out / f"{dist.name}-{backend}.xml"
    env = {**os.environ, "PYTHONPATH": str(HERE), "TOKRED_LG_BACKEND": backend, **(extra_env or {})}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "lg_store_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "-c",
        str(dist / "pytest.ini"),
        "--rootdir",
        str(dist),
        f"--junitxml={xml}",
        "tests/test_store.py",
    ]
    proc = subprocess.run(cmd, cwd=dist, env=env, capture_output=True, text=True, timeout=900, check=False)
    print(proc.stdout[-4000:], proc.stderr[-2000:])
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["deselected"] = _deselected(proc.stdout)
    return counts


def _deselected(stdout: str) -> int:
    for line in stdout.splitlines():
        if "upstream tests deselected" in line:
            return int(line.split("MergingStore")[1].split(":")[1].split()[0])
    return 0


@pytest.fixture(scope="module")
def dists() -> dict[str, Path]:
    try:
        return fetch()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"LangGraph's store tests could not be downloaded: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["core", "sqlite"])
def test_langgraph_store_suite(dists: dict[str, Path], which: str, tmp_path: Path) -> None:
    counts = run_upstream(dists[which], "native", tmp_path)
    assert counts["failures"] == 0 and counts["errors"] == 0, counts
    assert counts["tests"] > 50


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("which", ["core", "sqlite"])
def test_langgraph_store_suite_postgres(dists: dict[str, Path], which: str, tmp_path: Path) -> None:
    uri = os.environ.get("AGENT_TOKRED_POSTGRES_URI") or os.environ.get("DATABASE_URI")
    if not uri:
        pytest.skip("no PostgreSQL server: set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)")
    counts = run_upstream(dists[which], "postgres", tmp_path, {"AGENT_TOKRED_POSTGRES_URI": uri})
    assert counts["failures"] == 0 and counts["errors"] == 0, counts
    assert counts["tests"] > 50
