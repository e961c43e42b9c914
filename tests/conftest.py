"""Shared fixtures: offline by default, real data slices, one model load per session."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LANGSMITH_TRACING", "false")

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def read_data(name: str, limit: int) -> list[dict[str, Any]]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def nq_rows() -> list[dict[str, Any]]:
    return read_data("nq_oracle_dev.jsonl.gz", 30)


@pytest.fixture(scope="session")
def kv_rows() -> list[dict[str, Any]]:
    return read_data("kv_retrieval_75_dev.jsonl.gz", 10)
