"""Structured tool output in its own format: YAML, JSON lines, CSV/TSV and markdown tables (issue 13)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import yaml

from agent_tokred import compress
from agent_tokred._structured_input import parse_structured
from agent_tokred._tables import parse_table
from agent_tokred._yaml import dump_yaml, parse_yaml
from agent_tokred.criteria.record_model import FEATURES, shipped_model
from agent_tokred.criteria.records import field_prior, protect_candidates
from agent_tokred.units import Unit

EVENTS = [{"id": f"evt-{i:03d}", "title": f"Sync {i}", "zip": f"0{2100 + i}", "start": f"2026-12-{1 + i % 28:02d}",
           "ok": "yes" if i % 2 else "no", "attendees": [f"p{i}@example.com", "lead@example.com"]}
          for i in range(60)]
EVENTS[41]["title"] = "Budget review with Priya"


def _block_yaml() -> str:
    # unquoted zip codes and yes/no: a load/dump round trip would change them (octal-looking ints, booleans)
    lines = ["events:"]
    for e in EVENTS:
        lines += [f"- id: {e['id']}", f"  title: {e['title']}", f"  zip: {e['zip']}", f"  start: {e['start']}",
                  f"  ok: {e['ok']}", "  attendees:", *[f"  - {a}" for a in e["attendees"]]]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("rate", [0.5, 0.3, 0.15])
def test_block_yaml_stays_yaml_with_scalars_as_written(rate: float) -> None:
    text = _block_yaml()
    r = compress(text, query="When is the budget review with Priya?", rate=rate)
    assert r.fmt == "yaml" and r.tokens_after <= r.budget_tokens
    out = yaml.safe_load(r.text)
    assert isinstance(out, dict) and isinstance(out["events"], list)
    assert "evt-041" in r.text and "Budget review with Priya" in r.text  # the matching record
    assert any(isinstance(x, str) and x.startswith("… ") and "more event" in x for x in out["events"])
    original = {e["id"]: e for e in yaml.safe_load(text)["events"]}
    for item in out["events"]:
        if isinstance(item, dict) and "id" in item:  # kept fields load to exactly what the input loads to
            assert all(item[k] == original[item["id"]][k] for k in item if k != "…")
    for line in r.text.splitlines():  # kept zip codes are written as they were (no 1116 for 02134)
        if "zip:" in line:
            assert line.split("zip:")[1].strip() in text


def test_flow_yaml_is_read_as_yaml_not_broken_json() -> None:
    text = yaml.safe_dump({"reservation": "XEHM4B", "flights": EVENTS[:30]}, default_flow_style=True, width=10**6)
    r = compress(text, query="the flight evt-007", rate=0.3)
    assert r.fmt == "yaml" and r.tokens_after <= r.budget_tokens
    assert isinstance(yaml.safe_load(r.text), dict) and "evt-007" in r.text


def test_yaml_parser_refuses_prose_logs_and_custom_tags() -> None:
    assert parse_yaml("This is prose: with a colon.\nAnother line.\nA third one here.") is None
    assert parse_yaml("2024-01-01 12:00:00 ERROR: disk\n2024-01-01 12:00:01 INFO: ok\n2024-01-01 12:00:02 INFO: x") is None
    assert parse_yaml("a: !custom 1\nb: 2\nc: 3\n") is None
    assert parse_yaml("a: 1\na: 2\nb: 3\n") is None  # a repeated key cannot be rendered faithfully
    doc = parse_yaml("k: 02134\nflag: yes\nname: 'quoted'\n")
    assert dump_yaml(doc) == "k: 02134\nflag: yes\nname: 'quoted'\n"


def _csv(delim: str = ",") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\n")
    w.writerow(["name", "city", "balance"])
    for i in range(120):
        w.writerow([f"Customer {i}", "Lyon, France" if i % 3 == 0 else "Paris", f"{i * 7.5:.2f}"])
    return buf.getvalue()


@pytest.mark.parametrize("delim,fmt", [(",", "csv"), ("\t", "tsv")])
def test_delimited_tables_keep_header_width_and_the_asked_row(delim: str, fmt: str) -> None:
    text = _csv(delim)
    r = compress(text, query="What is the balance of Customer 77?", rate=0.15)
    assert r.fmt == fmt and r.tokens_after <= r.budget_tokens
    rows = list(csv.reader(io.StringIO(r.text), delimiter=delim))
    assert rows[0] == ["name", "city", "balance"] and all(len(row) == 3 for row in rows)
    assert ["Customer 77", "Paris", "577.50"] in rows
    assert any(row[0].startswith("… ") and "more rows" in row[0] for row in rows)


def test_markdown_table_keeps_title_header_and_separator() -> None:
    body = "\n".join(f"| {i} | host-{i} | {'offline' if i == 93 else 'serving'} |" for i in range(150))
    text = "Fleet status\n\n| # | host | state |\n|---|---|---|\n" + body + "\n"
    r = compress(text, query="which host is offline", rate=0.1)
    assert r.fmt == "markdown" and r.tokens_after <= r.budget_tokens
    assert r.text.startswith("Fleet status\n\n| # | host | state |\n|---|---|---|\n")
    assert "| 93 | host-93 | offline |" in r.text
    assert all(line.count("|") == 4 for line in r.text.splitlines()[2:] if line)


def test_json_lines_stay_one_record_per_line() -> None:
    text = "\n".join(json.dumps({"ts": i, "msg": "ok" if i != 88 else "quota exceeded for user-88"}) for i in range(200))
    r = compress(text, query="why did user-88 fail", rate=0.2)
    assert r.fmt == "jsonl" and r.tokens_after <= r.budget_tokens
    lines = [json.loads(ln) for ln in r.text.splitlines()]
    assert {"ts": 88, "msg": "quota exceeded for user-88"} in lines
    assert isinstance(lines[-1], str) and "more lines" in lines[-1]


def test_prose_and_logs_are_not_taken_for_tables_or_yaml() -> None:
    assert parse_structured("Paris is the capital of France. It has, by most counts, two million people.") is None
    assert parse_table("a,b\n1,2\n") is None  # too few rows
    assert parse_table("name,age\nAda,36\nAlan\nGrace,85\nLinus,54\n") is None  # ragged


def test_retrieved_documents_with_titles_stay_prose() -> None:
    # "Document [k] (Title: ...) text" blocks hold a colon per paragraph; read as YAML they were compacted
    # as one mapping (and rendered with changed line breaks), which cost answers on the NQ bench.
    docs = "\n\n".join(
        f"Document [{k}] (Title: Song {k}) Song {k} is a 19{60 + k} song by band {k}. It charted in {k} countries."
        for k in range(1, 21))
    assert parse_structured(docs) is None
    r = compress(docs, query="which band recorded song 7", rate=0.3, unit="sentence")
    assert not r.fmt and r.unit == "sentence" and r.tokens_after <= r.budget_tokens
    assert "Document [7] (Title: Song 7) Song 7 is a 1967 song by band 7." in r.text


def test_field_prior_and_protection_rules() -> None:
    units = [Unit('order_id: "#W1"', kind="field", path="$.order_id"), Unit("note: null", kind="field", path="$.note"),
             Unit('phone_number: "555-123-2002"', kind="field", path="$.phone_number"),
             Unit('sku: "SKU-123"', kind="field", path="$.sku")]
    prior = field_prior(units)
    assert prior[0] >= prior[2] > prior[1] and prior[1] <= 0.2  # null: only the depth term
    hits = protect_candidates(units, "my phone is 555-123-2002, how many SKU-123 left?")
    assert hits == [False, False, False, True]  # a code the task names is kept; a phone number only ranks


def test_shipped_record_scorer_loads_and_matches_features() -> None:
    from agent_tokred.criteria.record_model import RecordEnsemble, load_record_model

    model = shipped_model()
    assert isinstance(model, RecordEnsemble) and len(model.members) == 5
    assert all(m.w1.shape[0] == len(FEATURES) for m in model.members)
    x = np.random.default_rng(0).normal(size=(7, len(FEATURES)))
    mean = np.mean([m.probability(x) for m in model.members], axis=0)
    assert np.allclose(model.probability(x), mean) and model.rank(x, [3] * 7).shape == (7,)
    single = load_record_model(model.members[0].to_json({}))
    assert np.allclose(single.probability(x), model.members[0].probability(x))
    with pytest.raises(ValueError, match="without members"):
        load_record_model(json.dumps({"features": list(FEATURES), "members": []}))


def test_a_partly_kept_record_keeps_its_id() -> None:
    """Records of a list: the best-ranked id of a record comes before any other of its fields."""
    from agent_tokred.criteria.record_model import anchor_ids
    from agent_tokred.strategies.structured import JsonUnits

    bills = [{"bill_id": f"B{i}", "period": "2025-01", "total_due": 10.0 * i, "status": "Paid"} for i in range(3)]
    tree = JsonUnits.build(bills, max_unit_chars=8)
    paths = [u.path for u in tree.units]
    ranked = np.zeros(len(paths))
    ranked[paths.index("$[2].status")] = 0.9  # the model likes the status of record 2 only
    out = anchor_ids(ranked, tree.leaves)
    assert out[paths.index("$[2].bill_id")] > out[paths.index("$[2].status")]
    assert out[paths.index("$[0].bill_id")] == 0.0  # records with nothing kept are left alone
    # an id the task already states is not worth tokens: nothing is raised for it
    assert anchor_ids(ranked, tree.leaves, "pay bill B2")[paths.index("$[2].bill_id")] == 0.0
    # a single object (the root) is not a record of a list: its id is ranked as the model says
    one = JsonUnits.build({"customer_id": "C1", "city": "Paris"}, max_unit_chars=8)
    assert list(anchor_ids(np.array([0.1, 0.8]), one.leaves)) == [0.1, 0.8]


def test_named_criteria_rank_structured_output_through_the_record_scorer() -> None:
    """A named criterion is the record scorer's query-aware input (``record_scorer=True``, the default):
    named ``lexical`` gives what ``auto`` gives on JSON (auto scores structured output lexically);
    ``record_scorer=False`` is the criterion alone, and it is a different ranking."""
    from agent_tokred import Compressor
    from agent_tokred.budget import make_budget

    text = json.dumps({"events": EVENTS})
    query = "when is the budget review with Priya"
    budget = make_budget(rate=0.15)
    auto = Compressor().compress(text, query=query, budget=budget).text
    named = Compressor(criterion="lexical").compress(text, query=query, budget=budget).text
    alone = Compressor(criterion="lexical", record_scorer=False).compress(text, query=query, budget=budget).text
    assert named == auto
    assert compress(text, query=query, rate=0.15, criterion="lexical", record_scorer=False).text == alone
    for out in (named, alone):
        json.loads(out)
    assert "evt-041" in named
    half = make_budget(rate=0.5)  # the two rankings differ (at 15% both keep the same records)
    assert (Compressor(criterion="lexical").compress(text, query=query, budget=half).text
            != Compressor(criterion="lexical", record_scorer=False).compress(text, query=query, budget=half).text)

CAR = {"frontLeftTirePressure": 32.0, "frontRightTirePressure": 32.0, "rearLeftTirePressure": 30.0,
       "rearRightTirePressure": 30.0, "healthy_tire_pressure": True,
       "car_info": "; ".join(f"Setting{i}: value {i}, tires and wheels checked, sensor {i} normal" for i in range(40))}


def test_fields_the_task_names_are_kept_even_when_their_names_are_camel_case() -> None:
    from agent_tokred.criteria.record_model import key_matches, key_words

    assert key_words("frontLeftTirePressure") == {"front", "left", "tire", "pressure"}
    assert key_words("order_status") == {"order", "status"} and key_words("HTTPStatus") == {"http", "status"}
    units = [Unit("frontLeftTirePressure: 32", kind="field", path="$.frontLeftTirePressure"),
             Unit("note: x", kind="field", path="$.tires.note"), Unit("car_info: y", kind="field", path="$.car_info")]
    m = key_matches(units, "what is the tires' pressure?")
    assert m[0, 0] == 0.5 and m[1, 1] == 1.0 and m[2].tolist() == [0.0, 0.0]
    for rate in (0.5, 0.3, 0.15):
        r = compress(json.dumps(CAR), query="Check the current tire pressure for each tire", rate=rate)
        kept = json.loads(r.text)
        assert kept.get("frontLeftTirePressure") == 32.0 and r.tokens_after <= r.budget_tokens


def test_a_list_nothing_tells_apart_keeps_its_head_not_its_shortest_items() -> None:
    """Tickers of one list cost alike in the ranking: the first ones stay, not the one-letter ones."""
    symbols = ["NVDA", "OMEG", "JHGUN", "LMAT"] + [chr(65 + i % 26) * (1 + i % 3) for i in range(400)]
    r = compress(json.dumps(symbols), query="show me the current watchlist contents", rate=0.15)
    kept = json.loads(r.text)
    assert kept[:4] == ["NVDA", "OMEG", "JHGUN", "LMAT"] and r.tokens_after <= r.budget_tokens


def test_the_criterion_picks_the_sentences_of_a_long_text_field() -> None:
    from agent_tokred.criteria.record_model import pieces_by_criterion
    from agent_tokred.strategies.structured import JsonUnits

    tree = JsonUnits.build({"lines": ["One. Two. Three."], "n": 1}, max_unit_chars=6)
    pieces = [k for k, leaf in enumerate(tree.leaves) if leaf.piece >= 0]
    assert len(pieces) == 3
    ranked, scores = np.zeros(len(tree.leaves)), np.zeros(len(tree.leaves))
    ranked[pieces] = [0.9, 0.5, 0.1]  # the record ranking's slots for this field
    scores[pieces] = [0.0, 0.0, 7.0]  # the criterion likes the last sentence
    out = pieces_by_criterion(ranked, tree.leaves, scores)
    assert out[pieces].tolist() == [0.5, 0.1, 0.9]
    assert sorted(out.tolist()) == sorted(ranked.tolist())  # the slots are only handed out again
    text = json.dumps({"matching_lines": [" ".join(
        [f"The budget for item {i} was approved by the board without changes." for i in range(30)]
        + ["However, a server error was detected in the final testing phase."]
        + [f"Revenue for quarter {i} grew as the plan expected and margins held." for i in range(30)])]})
    r = compress(text, query="hunt for any mentions of 'server error'", rate=0.15)
    assert "a server error was detected" in r.text


def test_an_id_every_sibling_shares_does_not_stand_for_the_record() -> None:
    from agent_tokred.criteria.record_model import anchor_ids
    from agent_tokred.strategies.structured import JsonUnits

    bills = [{"bill_id": f"B{i}", "customer_id": "C1001", "status": s} for i, s in enumerate(["Paid", "Overdue"])]
    tree = JsonUnits.build(bills, max_unit_chars=8)
    paths = [u.path for u in tree.units]
    ranked = np.zeros(len(paths))
    ranked[paths.index("$[1].status")] = 0.9
    ranked[paths.index("$[1].customer_id")] = 0.5  # ranked above the bill's own id
    out = anchor_ids(ranked, tree.leaves)
    assert out[paths.index("$[1].bill_id")] > out[paths.index("$[1].status")]
    assert out[paths.index("$[1].customer_id")] == 0.5


def test_record_scorer_option_must_be_a_bool() -> None:
    from agent_tokred import Compressor

    with pytest.raises(TypeError, match="record_scorer must be True or False"):
        Compressor(criterion="lexical", record_scorer="no")  # type: ignore[arg-type]
