"""The memory bench runs in CI (quick mode): SQLite always, PostgreSQL when a server is configured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def test_quick_memory_bench_on_the_real_backends(tmp_path: Path) -> None:
    from bench import bench_memory

    backends = ["sqlite"] + (["postgres"] if os.environ.get("AGENT_TOKRED_POSTGRES_URI") else [])
    raw = bench_memory.run(True, tmp_path, backends)
    rows = {(r["backend"], r["store"]): r for r in raw["history"]}
    for backend in backends:
        merged, plain = rows[(backend, "merging")], rows[(backend, "unmerged")]
        assert merged["raw_tokens"] == plain["raw_tokens"] > 0
        assert merged["stored_tokens"] < 0.5 * plain["stored_tokens"]  # merging keeps far fewer tokens live
        assert merged["recall_at_5"] >= 0.9 * plain["recall_at_5"] > 0
    assert [s["backend"] for s in raw["scale"]] == backends
    table = (tmp_path / "bench_memory.md").read_text(encoding="utf-8")
    assert "python -m bench.bench_memory --quick --backends " + ",".join(backends) in table
