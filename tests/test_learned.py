"""The learned criterion: shipped weights load offline (numpy only), score sanely, and retrain."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent_tokred import compress
from agent_tokred.criteria import resolve_criterion
from agent_tokred.criteria.learned import LearnedCriterion
from agent_tokred.criteria.lexical import lexical
from agent_tokred.errors import InvalidInputError, ModelNotAvailableError
from agent_tokred.learned.data import (
    bench_question_ids,
    detect_format,
    examples_from_user_records,
    synthetic_kv_examples,
)
from agent_tokred.learned.features import FEATURE_NAMES, query_type, unit_features
from agent_tokred.learned.model import default_weights_path, load_scorer
from agent_tokred.strategies.structured import JsonUnits
from agent_tokred.units import Unit, segment

NQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "nq_oracle_dev.jsonl.gz"


@pytest.fixture(scope="session")
def crit() -> LearnedCriterion:
    return LearnedCriterion()


def test_shipped_weights_are_small_and_documented() -> None:
    path = default_weights_path()
    assert path.is_file()
    assert path.stat().st_size <= 5 * 1024 * 1024
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["feature_version"] and meta["features"] == list(FEATURE_NAMES)
    assert meta["config"]["holdout_bench"] is True
    assert all(s.get("held_out_bench_rows", 0) > 0 for s in meta["sources"] if s.get("format") == "nq")


def test_inference_needs_no_torch_and_no_network() -> None:
    code = (
        "import sys\n"
        "from agent_tokred.criteria.learned import LearnedCriterion\n"
        "from agent_tokred.units import segment\n"
        "s = LearnedCriterion()(segment('Paris is in France. Cats sleep.', 'sentence'), 'where is Paris')\n"
        "print(len(s), 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "NO_PROXY": "*", "HTTPS_PROXY": "http://127.0.0.1:9", "PATH": ""}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert res.stdout.split() == ["2", "False", "False"]


@pytest.mark.parametrize(
    "units",
    [
        segment("The first Nobel Prize in Physics went to Röntgen in 1901. It rained. 東京は日本の首都です。", "sentence"),
        segment("one", "word"),
        segment("a\n\n   \n\nb. c.", "sentence"),
        [Unit("   "), Unit("..."), Unit("")],
        list(JsonUnits.build({"a": [1, 2, 3], "b": {"c": "x" * 50}}, max_unit_chars=8).units),
        segment(" ".join(f"word{i}" for i in range(3000)), "word"),
    ],
    ids=["prose", "single", "blank-paragraphs", "empty-units", "json", "many-words"],
)
@pytest.mark.parametrize("query", ["who got the first nobel prize in physics", "", None, "??"])
def test_scores_finite_one_per_unit(crit: LearnedCriterion, units: list[Unit], query: str | None) -> None:
    scores = np.asarray(crit(units, query))
    assert scores.shape == (len(units),)
    assert np.all(np.isfinite(scores))


def test_empty_input(crit: LearnedCriterion) -> None:
    assert len(crit([], "anything")) == 0
    assert unit_features([], "q", load_scorer().vocab).shape == (0, len(FEATURE_NAMES))


@pytest.mark.parametrize(
    ("query", "relevant", "unrelated"),
    [
        ("who got the first nobel prize in physics",
         "The first Nobel Prize in Physics was awarded in 1901 to Wilhelm Röntgen.",
         "The river flows north through a wide valley of farms and small towns."),
        ("when was the eiffel tower built",
         "The Eiffel Tower was built between 1887 and 1889 in Paris.",
         "Penguins are flightless birds that live in the southern hemisphere."),
        ("why did the deploy job fail",
         "ERROR deploy job failed: permission denied on the config file.",
         "INFO cache warmed in 120 ms, 3400 entries loaded."),
        ("what is the capital of France", "Paris is the capital of France.", "Cats sleep a lot."),
    ],
)
@pytest.mark.parametrize("joiner", [" ", "\n\n"], ids=["same-paragraph", "own-paragraphs"])
def test_relevant_unit_outranks_unrelated(
    crit: LearnedCriterion, query: str, relevant: str, unrelated: str, joiner: str
) -> None:
    for order in ((relevant, unrelated), (unrelated, relevant)):
        units = segment(joiner.join(order), "sentence")
        scores = crit(units, query)
        best = units[int(np.argmax(scores))].text
        assert best.strip() == relevant


def test_without_query_scores_like_lexical(crit: LearnedCriterion) -> None:
    units = segment("Alpha beta. Gamma 42 delta. Epsilon.", "sentence")
    assert list(crit(units, None)) == pytest.approx(lexical(units, None))


def test_registered_and_budget_kept() -> None:
    c = resolve_criterion("learned")
    assert isinstance(c, LearnedCriterion)
    text = " ".join(f"Sentence {i} talks about topic {i % 7}." for i in range(200)) + " The secret code is AX-7781."
    r = compress(text, query="what is the secret code", rate=0.1, criterion="learned")
    assert r.tokens_after <= r.budget_tokens
    assert "AX-7781" in r.text and r.criterion == "learned"


def test_kv_lookup_picks_the_queried_field(crit: LearnedCriterion) -> None:
    ex = synthetic_kv_examples(5, seed=3)
    for e in ex:
        scores = np.asarray(crit(e.units, e.query))
        assert e.labels[int(scores.argmax())] == 1.0


def test_missing_or_foreign_weights_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="not found"):
        LearnedCriterion(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidInputError):
        LearnedCriterion(bad)
    from safetensors.numpy import save_file

    old = tmp_path / "old.safetensors"
    save_file({"x": np.zeros(1, np.float32)}, str(old), metadata={"agent_tokred": json.dumps({"feature_version": "0"})})
    with pytest.raises(InvalidInputError, match="feature version"):
        LearnedCriterion(old)


@pytest.mark.parametrize(("query", "kind"), [("who wrote hamlet", "who"), ("when did ww2 end", "when"),
                                              ("how many moons has mars", "quantity"), ("fix the build", "other"),
                                              (None, "none"), ("what year was it", "when")])
def test_query_type(query: str | None, kind: str) -> None:
    assert query_type(query) == kind


def test_user_records_label_the_units_that_hold_keep_strings() -> None:
    rows = [{"query": "which port", "text": '{"host": "a", "port": 8080, "tags": ["x", "y"]}', "keep": ["8080"]},
            {"query": "why", "text": "12:00 INFO start\n12:01 ERROR disk full\n12:02 INFO retry\n12:03 INFO ok\n"
             "12:04 INFO a\n12:05 INFO b\n", "keep": ["disk full"]}]
    ex = examples_from_user_records(rows)
    assert [sum(e.labels) for e in ex] == [1, 1]
    assert "8080" in ex[0].units[int(np.argmax(ex[0].labels))].text
    assert ex[1].units[0].kind == "line"
    assert [e.source for e in ex] == ["user", "user"]
    tagged = examples_from_user_records([{**rows[0], "family": "tau2-retail"}])
    assert tagged[0].source == "tau2-retail"
    with pytest.raises(InvalidInputError, match="family"):
        examples_from_user_records([{**rows[0], "family": 3}])
    with pytest.raises(InvalidInputError):
        examples_from_user_records([{"query": 1, "text": "x", "keep": []}])
    with pytest.raises(InvalidInputError):
        detect_format([{"query": "q", "text": "t", "keep": []}, {"question": "q"}])


def test_bench_questions_are_the_engine_bench_sample() -> None:
    held = bench_question_ids(1000)
    assert set(random.Random(0).sample(range(1000), 200)) <= held
    assert set(random.Random(0).sample(range(1000), 20)) <= held
    assert len(held) < 230


def _log_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        lines = [f"2024-05-0{1 + k % 9} 12:{m:02d}:00 INFO step {m} ok, {rng.randint(10, 99)} items" for m in range(30)]
        bad = rng.randrange(30)
        code = f"E{rng.randint(100, 999)}"
        lines[bad] = f"2024-05-0{1 + k % 9} 12:{bad:02d}:00 ERROR upload failed with code {code}: quota exceeded"
        out.append({"query": "why did the upload fail", "text": "\n".join(lines), "keep": [code]})
    return out


def test_training_on_a_tiny_slice_runs_and_lowers_the_loss(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from agent_tokred.learned.train import TrainConfig, train

    data = tmp_path / "logs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _log_records(12, seed=1)))
    files = [data] + ([NQ] if NQ.exists() else [])
    out = tmp_path / "w.safetensors"
    result = train(TrainConfig(data=tuple(files), out=out, epochs=4, synthetic_kv=6, limit=24, seed=0,
                               distractors="static", progress=False))
    assert result.train_losses[-1] < result.train_losses[0]
    assert out.is_file() and out.with_suffix(".json").is_file()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["seed"] == 0 and meta["metrics"]["train_inputs"] > 0
    tuned = LearnedCriterion(out)
    scores = tuned(segment("12:00 INFO ok\n12:01 ERROR upload failed with code E123\n12:02 INFO ok", "line"),
                   "why did the upload fail")
    assert int(np.argmax(scores)) == 1


def test_training_is_reproducible(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from agent_tokred.learned.train import TrainConfig, train

    data = tmp_path / "logs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _log_records(10, seed=2)))
    runs = [train(TrainConfig(data=(data,), out=tmp_path / f"w{k}.safetensors", epochs=2, synthetic_kv=4,
                              progress=False)) for k in range(2)]
    assert runs[0].train_losses == runs[1].train_losses
    assert (tmp_path / "w0.safetensors").read_bytes() == (tmp_path / "w1.safetensors").read_bytes()


def test_train_config_rejects_bad_values(tmp_path: Path) -> None:
    from agent_tokred.learned.train import TrainConfig

    with pytest.raises(InvalidInputError, match="epochs"):
        TrainConfig(data=(tmp_path,), out=tmp_path / "w", epochs=0)
    with pytest.raises(ValueError, match="vector source"):
        TrainConfig(data=(tmp_path,), out=tmp_path / "w", vectors="glove")  # type: ignore[arg-type]


def test_train_command_with_a_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("AGENT_TOKRED_CACHE", str(tmp_path / "cache"))  # teacher scores are cached there
    import argparse

    from agent_tokred.learned.cli import register

    data = tmp_path / "logs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _log_records(8, seed=4)))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "cli.safetensors"
    args = parser.parse_args(["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--synthetic-kv", "2",
                              "--teacher", "lexical", "--quiet"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["weights"] == str(out) and summary["size_bytes"] == out.stat().st_size
    assert json.loads(out.with_suffix(".json").read_text())["config"]["teacher"] == "lexical"
