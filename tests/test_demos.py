"""The demos (short versions, offline), the demo/bench runners and their CLI commands."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("langchain")
from demos._common import DemoResult, DemoSkipped  # noqa: E402

DEMO_MODULES = {
    "tools": ("demos.tools_agent", ("bench.bfcl", "agent_tokred.integration.middleware")),
    "rag": ("demos.rag_agent", ("agent_tokred.integration.documents", "agent_tokred.integration.middleware")),
    "reasoning": ("demos.reasoning_agent", ("agent_tokred.integration.overthinking",)),
    "fewshot": ("demos.fewshot", ("agent_tokred.integration.example_selector",)),
}


def load_demo(name: str) -> Any:
    module, deps = DEMO_MODULES[name]
    for dep in deps:
        try:
            importlib.import_module(dep)
        except ImportError as exc:
            pytest.skip(f"demo {name} needs {dep}, which is missing: {exc}")
    return importlib.import_module(module)


def run_demo(name: str) -> DemoResult:
    try:
        return load_demo(name).run(True, None)
    except DemoSkipped as exc:
        pytest.skip(str(exc))


def check_common(res: DemoResult) -> None:
    run = res.run
    assert run.steps, "a demo must record its model calls"
    assert all(s.tokens_after <= s.tokens_before for s in run.steps)
    assert run.tokens_with < run.tokens_without, "agent-tokred saved nothing"
    assert run.items and all("".join(t for t, _ in it.segments) for it in run.items)
    for it in run.items:  # every item tiles its original and shows something dropped or kept
        assert it.kept_chars + it.dropped_chars == len(it.original)


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def test_tools_demo_replays_bfcl_with_arguments_surviving() -> None:
    res = run_demo("tools")
    check_common(res)
    assert "replayed" in res.run.mode
    assert res.signal == "argument survival"
    assert percent(res.without) == 1.0 and percent(res.with_) >= 0.9
    comps = res.run.component_totals()
    assert comps["tool outputs"][1] < comps["tool outputs"][0] / 2  # the long outputs were held to budget
    assert {s.group for s in res.run.steps} == set(res.raw["trajectories"])


def test_tools_demo_model_driven_path_uses_live_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--model`` goes through init_chat_model and the live BFCL backends; a scripted stand-in replays
    the ground truth, so the live tools must return what the recorded replay returned."""
    module = load_demo("tools")
    import langchain.chat_models

    from agent_tokred.integration.fake_model import ScriptedChatModel
    from bench.bfcl import load_trajectories, scripted_responses

    try:
        picked = iter(module.pick(load_trajectories(), True))
    except Exception as exc:
        pytest.skip(f"BFCL data not available: {exc}")
    asked: list[str] = []

    def fake_init(spec: str, **kwargs: Any) -> Any:
        asked.append(spec)
        return ScriptedChatModel(script=scripted_responses(next(picked)))

    monkeypatch.setattr(langchain.chat_models, "init_chat_model", fake_init)
    live = module.run(True, "test:stand-in")
    replayed = run_demo("tools")
    assert asked == ["test:stand-in"] * 2 and live.run.mode == "model-driven: test:stand-in"
    assert live.signal == "copied args in view" and percent(live.with_) >= 0.9
    assert [s.tokens_before for s in live.run.steps] == [s.tokens_before for s in replayed.run.steps]


@pytest.mark.model
def test_rag_demo_keeps_answers() -> None:
    res = run_demo("rag")
    check_common(res)
    assert res.signal == "answer kept"
    assert percent(res.with_) <= percent(res.without) and percent(res.with_) >= 0.5
    assert res.raw["searches"] == 3 * res.raw["questions"]
    assert "retrieved documents" in res.run.component_totals()


def test_reasoning_demo_cuts_earlier_thinking_only() -> None:
    res = run_demo("reasoning")
    check_common(res)
    assert "replayed" in res.run.mode
    comps = res.run.component_totals()
    assert comps["reasoning"][1] < comps["reasoning"][0]
    assert comps["history"][1] == comps["history"][0]  # questions and answers are never touched
    assert res.raw["cut"] >= 1 and percent(res.with_) == 1.0


@pytest.mark.model
def test_fewshot_demo_stays_in_budget() -> None:
    module = load_demo("fewshot")
    res = run_demo("fewshot")
    check_common(res)
    for step in res.run.steps:
        examples = next(c for c in step.components if c.name == "examples")
        assert examples.after <= module.BUDGET + 5  # the block is counted exactly; the prompt adds separators
    assert res.signal in ("same-template examples", "mean similarity of examples")


def test_run_all_writes_table_plots_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_demo("reasoning")
    from demos.runner import run_all

    summary = run_all(True, tmp_path, None, ["reasoning"])
    assert summary["status"] == {"reasoning": "ok"}
    for name in ("summary.md", "summary.json", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    if "context_plot" in summary["paths"]:
        assert (tmp_path / "context_tokens.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "summary.md").read_text()
    assert "| 3. Reasoning agent" in table and "answer kept" in table
    page = (tmp_path / "report.html").read_text()
    assert 'class="drop"' in page and "GSM8K" in page
    out = capsys.readouterr().out
    assert "report.html" in out and "saved" in out
    with pytest.raises(ValueError, match="valid: tools, rag, reasoning, fewshot"):
        run_all(True, tmp_path, None, ["nope"])


def test_cli_demo_and_bench_commands(tmp_path: Path) -> None:
    from agent_tokred._cli_apps import find_repo_root
    from agent_tokred.cli import build_parser

    assert find_repo_root("demos") == ROOT and find_repo_root("bench") == ROOT
    args = build_parser().parse_args(["demo", "--quick", "--only", "reasoning", "--out", str(tmp_path)])
    assert args.quick and args.only == ["reasoning"]
    args = build_parser().parse_args(["bench", "--quick", "--only", "engine"])
    assert args.only == ["engine"] and args.func.__name__ == "_cmd_bench"


@pytest.fixture
def fake_benches(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.__main__ as runner

    def ok_run(quick: bool, out_dir: Path) -> dict[str, Any]:
        (out_dir / "fake_ok.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
        return {"quick": quick, "value": 42}

    def bad_run(quick: bool, out_dir: Path) -> dict[str, Any]:
        raise RuntimeError("boom")

    for name, fn in (("bench_fake_ok", ok_run), ("bench_fake_bad", bad_run)):
        module = types.ModuleType(f"bench.{name}")
        module.run = fn  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"bench.{name}", module)
    monkeypatch.setattr(runner, "available", lambda: ["bench_fake_ok", "bench_fake_bad"])


def test_bench_runner_reports_a_failing_bench_and_goes_on(tmp_path: Path, fake_benches: None) -> None:
    import bench.__main__ as runner

    status = runner.main(["--quick", "--out", str(tmp_path)])
    assert status == 1  # one bench failed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["benches"]["bench_fake_ok"]["raw"] == {"quick": True, "value": 42}
    assert summary["benches"]["bench_fake_bad"]["status"] == "failed"
    assert "boom" in summary["benches"]["bench_fake_bad"]["error"]
    text = (tmp_path / "SUMMARY.md").read_text()
    assert "| 1 | 2 |" in text and "failed: RuntimeError: boom" in text
    assert runner.main(["--only", "fake_ok", "--out", str(tmp_path)]) == 0
    assert runner.main(["--only", "missing", "--out", str(tmp_path)]) == 2
