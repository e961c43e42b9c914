"""Shared helpers of the benches: data paths, answer normalisation, tables, timing."""

from __future__ import annotations

import gzip
import json
import re
import statistics
import string
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"


def data_path(name: str) -> Path:
    """Path of a shared data file (``../shared/data`` relative to the project root)."""
    path = DATA / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the benches read ../shared/data/ next to the project root")
    return path


def read_jsonl_gz(name: str, limit: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with gzip.open(data_path(name), "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def normalize_answer(text: str) -> str:
    """NQ-Open normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def median_time(fn: Callable[[], Any], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"
        return str(v)

    lines = [f"| {' | '.join(headers)} |", f"|{'|'.join('---' for _ in headers)}|"]
    lines += [f"| {' | '.join(fmt(v) for v in row)} |" for row in rows]
    if caption:
        lines.append("")
        lines.append(caption)
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: Path, name: str, markdown: str, raw: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(markdown, encoding="utf-8")
    (out_dir / f"{name}.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False), encoding="utf-8")
