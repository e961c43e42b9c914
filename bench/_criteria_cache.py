"""Unit scores on disk: each (criterion, query, units) is scored once; every rate and rerun reuses it.

The model criteria cost seconds to minutes per NQ question on a small CPU, so the criteria bench keeps
their scores under ``<cache>/criteria_scores/<tag>/`` (``tag`` names the criterion and its settings;
change the tag when the criterion changes). Fresh scorings are timed; cached ones are not.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent_tokred.models import cache_dir
from agent_tokred.units import Unit


class DiskCachedCriterion:
    """Wraps a criterion; scores come from the disk cache when present.

    Attributes:
        name: the criterion's name in tables.
        fresh_seconds, fresh_tokens_chars, fresh_calls: time and input size of the scorings actually run.
    """

    def __init__(self, name: str, tag: str, inner: Any) -> None:
        self.name = name
        self.inner = inner
        self.folder = cache_dir() / "criteria_scores" / tag
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fresh_seconds = 0.0
        self.fresh_chars = 0
        self.fresh_calls = 0
        self.cached_calls = 0

    def key(self, units: Sequence[Unit], query: str | None) -> str:
        raw = "\x00".join([query or "", *(u.text for u in units)]).encode("utf-8", "surrogatepass")
        return hashlib.sha256(raw).hexdigest()[:32]

    def has(self, units: Sequence[Unit], query: str | None) -> bool:
        return (self.folder / f"{self.key(units, query)}.npy").exists()

    def __call__(self, units: Sequence[Unit], query: str | None) -> np.ndarray:
        file = self.folder / f"{self.key(units, query)}.npy"
        if file.exists():
            self.cached_calls += 1
            return np.load(file)
        started = time.perf_counter()
        scores = np.asarray(self.inner(units, query), dtype=np.float64)
        self.fresh_seconds += time.perf_counter() - started
        self.fresh_chars += sum(len(u.text) for u in units)
        self.fresh_calls += 1
        tmp = file.with_name(file.stem + ".tmp.npy")
        np.save(tmp, scores)
        tmp.replace(file)
        return scores
