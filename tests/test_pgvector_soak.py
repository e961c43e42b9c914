"""A short soak in CI: writer and reader processes on one PostgreSQL + pgvector database.

The 10-minute run is ``python -m bench._pg_soak --minutes 10`` (README, "Merging memory store");
this one runs ~20 s with 2 writers and 2 readers racing on 3 namespaces and audits the result:
nothing lost, duplicated, resurrected or seen across namespaces, vector rows mirroring records.
"""

from __future__ import annotations

import os

import pytest

from tests.test_pgvector import _server_has_pgvector

pytestmark = pytest.mark.server


def test_short_soak_loses_and_duplicates_nothing() -> None:
    uri = os.environ.get("AGENT_TOKRED_POSTGRES_URI")
    if not uri:
        pytest.skip("no PostgreSQL server: set AGENT_TOKRED_POSTGRES_URI (.ci/postgres.sh start)")
    if not _server_has_pgvector(uri):
        pytest.skip("the PostgreSQL server has no pgvector")
    from bench._pg_soak import run_soak

    res = run_soak(uri, seconds=20, writers=2, readers=2, n_namespaces=3)
    assert res["exit_codes"] == [0, 0, 0, 0], res
    assert res["ops"].get("put", 0) > 10 and res["searches"] > 10, res
    assert res["merged_memories"] > 0, res  # consolidations did race
    bad = {k: res[k] for k in ("lost", "duplicated", "resurrected", "cross_namespace_results",
                               "cross_namespace_sources", "vector_rows_not_mirroring_records", "reader_errors")}
    assert all(v == 0 for v in bad.values()), (bad, res["examples"])
