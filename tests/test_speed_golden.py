"""Speed work never changes results: kept text on a fixed set of inputs hashes as before issue 16's second pass.

The inputs are built here from a seeded generator (prose with the spans segmentation must not cut,
JSON records, YAML, JSON lines, CSV, a markdown table and service logs, at about 2k and 9k tokens).
``tests/data/speed_golden.json`` holds the SHA-256 of ``compress(...).text`` for each input, criterion
and rate, computed on the code before the speed changes (engine 20b2f0b). A change that means to
alter results rewrites the file on purpose: ``python -m tests.test_speed_golden --write``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

from agent_tokred.archive import InMemoryArchive
from agent_tokred.budget import make_budget
from agent_tokred.compressor import Compressor

GOLDEN = Path(__file__).parent / "data" / "speed_golden.json"
CRITERIA = ("lexical", "learned", "auto")
RATES = (0.25, 0.1)

_WORDS = ("the", "river", "council", "voted", "against", "a", "plan", "to", "build", "bridge", "north", "of",
          "city", "in", "which", "engineers", "said", "costs", "would", "rise", "and", "Paris", "France",
          "Marie", "Curie", "won", "prize", "physics", "Dr.", "Smith", "e.g.", "approx.", "U.S.", "data", "is")
_SPANS = ("3.14", "$1,200.50", "42%", "2024-05-01", "2024-05-01 12:30:00", "12:30", "https://example.org/a/b.html",
          "http://x.io/p?q=1.", "/usr/lib/python3.", "../a/b/c...", "ops@example.com", "getUserName",
          "max_retry_count", "os.path.join()", "Foo::bar", "a->b", "0x1f2e3d4c5b", "550e8400-e29b-41d4-a716-446655440000",
          "v2.3.1", "~/src/app/", "iPhone", "日本語の文。", "“quoted.”", "(see p. 4).", "wait...", "really?!")
_SERVICES = ("api", "auth", "billing", "search")
_LEVELS = ("INFO", "INFO", "DEBUG", "WARN", "INFO", "ERROR")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_SPANS) if rng.random() < 0.15 else rng.choice(_WORDS) for _ in range(rng.randint(4, 22))]
    end = rng.choice([".", ".", ".", "?", "!", "…", '."', ".)"])
    return " ".join(words).capitalize() + end


def _prose(rng: random.Random, chars: int) -> str:
    parts: list[str] = []
    total = 0
    while total < chars:
        para = " ".join(_sentence(rng) for _ in range(rng.randint(2, 7)))
        para += rng.choice(["\n\n", "\n", " ", "\n\n  \n"])
        parts.append(para)
        total += len(para)
    return "".join(parts)


def _records(rng: random.Random, chars: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    total = 0
    while total < chars:
        i = len(rows)
        row: dict[str, object] = {
            "id": i, "sku": f"SKU-{1000 + i * 7}", "name": " ".join(rng.choice(_WORDS) for _ in range(3)),
            "price": round(rng.random() * 500, 2), "in_stock": rng.random() < 0.7,
            "tags": [rng.choice(_WORDS) for _ in range(rng.randint(0, 3))],
            "note": None if rng.random() < 0.3 else _sentence(rng),
        }
        rows.append(row)
        total += len(json.dumps(row))
    return rows


def _logs(rng: random.Random, chars: int) -> str:
    lines: list[str] = []
    total = 0
    while total < chars:
        i = len(lines)
        level = rng.choice(_LEVELS)
        svc = rng.choice(_SERVICES)
        msg = (f"payment {100000 + i * 13} declined: card expired" if level == "ERROR"
               else f"GET /v1/{svc}/items/{rng.randint(1, 9999)} 200 {rng.randint(3, 400)} ms")
        line = f"2024-05-01 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} {level} {svc}-{i % 5} {msg}"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def _table(rows: list[dict[str, object]], sep: str) -> str:
    keys = ["id", "sku", "name", "price", "in_stock"]
    if sep == "|":
        head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
        return head + "".join("| " + " | ".join(str(r[k]) for k in keys) + " |\n" for r in rows)
    return sep.join(keys) + "\n" + "".join(sep.join(str(r[k]) for k in keys) + "\n" for r in rows)


def build_inputs() -> dict[str, tuple[str, str]]:
    """``name -> (text, query)`` for every golden input (deterministic)."""
    out: dict[str, tuple[str, str]] = {}
    for size, chars in (("2k", 9_000), ("9k", 40_000)):
        rng = random.Random(f"golden-{size}")
        out[f"prose-{size}"] = (_prose(rng, chars), "who won the prize in physics in 2024-05-01")
        rows = _records(rng, chars // 2)
        target = rows[len(rows) // 2]
        query = f"what is the price of {target['sku']}"
        out[f"json-{size}"] = (json.dumps({"results": rows}), query)
        out[f"jsonl-{size}"] = ("\n".join(json.dumps(r) for r in rows), query)
        table_rows = _records(rng, chars * 2)
        table_query = f"is {table_rows[len(table_rows) // 3]['sku']} in stock"
        out[f"csv-{size}"] = (_table(table_rows, ","), table_query)
        out[f"md-{size}"] = (_table(table_rows, "|"), table_query)
        out[f"logs-{size}"] = (_logs(rng, chars), "which payments were declined and why")
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML is a core dependency
            continue
        out[f"yaml-{size}"] = (yaml.safe_dump({"results": rows}, sort_keys=False, allow_unicode=True), query)
    return out


def digest(text: str, query: str, criterion: str, rate: float) -> str:
    """SHA-256 of the kept text, its token count and kept-unit count."""
    comp = Compressor(criterion=criterion, archive=InMemoryArchive())
    r = comp.compress(text, query=query, budget=make_budget(rate=rate))
    return hashlib.sha256(f"{r.tokens_after}|{r.units_kept}|{r.text}".encode()).hexdigest()


def compute_all() -> dict[str, str]:
    return {f"{name}|{crit}|{rate}": digest(text, query, crit, rate)
            for name, (text, query) in build_inputs().items() for crit in CRITERIA for rate in RATES}


@pytest.fixture(scope="module")
def inputs() -> dict[str, tuple[str, str]]:
    return build_inputs()


@pytest.fixture(scope="module")
def golden() -> dict[str, str]:
    data: dict[str, str] = json.loads(GOLDEN.read_text(encoding="utf-8"))["digests"]
    return data


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("name", [f"{f}-{s}" for s in ("2k", "9k") for f in
                                  ("prose", "json", "jsonl", "csv", "md", "logs", "yaml")])
def test_kept_text_is_unchanged(inputs: dict[str, tuple[str, str]], golden: dict[str, str], name: str,
                                criterion: str) -> None:
    text, query = inputs[name]
    for rate in RATES:
        key = f"{name}|{criterion}|{rate}"
        assert digest(text, query, criterion, rate) == golden[key], (
            f"{key}: kept text changed; a speed change must not do that, an intended scoring change "
            "rewrites the digests: python -m tests.test_speed_golden --write")


if __name__ == "__main__":  # python -m tests.test_speed_golden --write
    digests = compute_all()
    if "--write" in sys.argv:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"engine": "20b2f0b (digests of the code before the speed changes)", "digests": digests}, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(digests, indent=1))
