"""Fault injection: failing and slow scorers, broken stores and tokenizers; the agent run goes on.

* a criterion that raises, or cannot load its model, falls back to the lexical criterion with a
  warning (``on_scorer_error="raise"`` raises ``ScorerFailedError`` instead);
* a criterion slower than ``timeout_s`` is abandoned for the lexical one (``on_timeout="raise"``:
  ``CompressionTimeoutError``), and timed-out calls never pile up threads;
* inside a ``create_agent`` run with the offline fake model, every such fault leaves the run going
  and loses nothing (a message that cannot be reduced is kept whole).

Each injected fault and its outcome are counted in :data:`tests.strategies.STATS`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from agent_tokred import (
    CompressionTimeoutError,
    Compressor,
    InMemoryArchive,
    ModelNotAvailableError,
    ScorerFailedError,
    compress,
    make_budget,
)
from agent_tokred import _timeout as timeout_mod
from agent_tokred.errors import InvalidInputError, UnknownNameError
from agent_tokred.integration._content import MessageTally
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.messages import orphaned_tool_calls
from agent_tokred.integration.middleware import TokenReductionMiddleware
from agent_tokred.tokens import resolve_counter
from agent_tokred.units import Unit
from tests.strategies import tally

TEXT = " ".join(f"Sentence {i} talks about the weather in town {i}." for i in range(80)) + " The code is 7391."
LOG = "\n".join(f"2024-05-01 12:00:{i % 60:02d} INFO api-{i} ok" for i in range(300)) + "\n2024-05-01 ERROR api-7 disk"
TALLY = MessageTally(resolve_counter(None))
BUDGET = make_budget(target_tokens=40)


def boom(units: Sequence[Unit], query: str | None) -> Sequence[float]:
    raise RuntimeError("scorer exploded")


def not_installed(units: Sequence[Unit], query: str | None) -> Sequence[float]:
    raise ModelNotAvailableError("pip install 'agent-tokred[models]'")


def wrong_length(units: Sequence[Unit], query: str | None) -> Sequence[float]:
    return [1.0]


def nan_scores(units: Sequence[Unit], query: str | None) -> Sequence[float]:
    return [float("nan")] * len(units)


class FlakyCriterion:
    """Scores fine ``ok_calls`` times, then raises (a model that breaks mid-run)."""

    name = "flaky"

    def __init__(self, ok_calls: int = 1) -> None:
        self.calls = 0
        self.ok_calls = ok_calls

    def __call__(self, units: Sequence[Unit], query: str | None) -> np.ndarray:
        self.calls += 1
        if self.calls > self.ok_calls:
            raise RuntimeError("CUDA error: device lost")
        return np.linspace(1.0, 0.0, len(units))


class SlowCriterion:
    """Sleeps ``seconds`` (cooperatively stoppable, so the test leaves no thread behind)."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.release = threading.Event()
        self.finished = 0

    def __call__(self, units: Sequence[Unit], query: str | None) -> np.ndarray:
        self.release.wait(self.seconds)
        self.finished += 1
        return np.ones(len(units))


@pytest.fixture
def slow() -> Iterator[SlowCriterion]:
    crit = SlowCriterion(30.0)
    yield crit
    crit.release.set()  # let abandoned workers finish
    deadline = time.monotonic() + 5
    while timeout_mod.abandoned_scorers() and time.monotonic() < deadline:
        time.sleep(0.01)


# -- the engine -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criterion", "kind"),
    [(boom, "failed"), (not_installed, "not installed"), (wrong_length, "failed"),
     (FlakyCriterion(ok_calls=0), "failed")],
    ids=["raises", "not-installed", "wrong-length", "flaky"],
)
def test_failing_scorer_falls_back_to_lexical_with_a_warning(
    criterion: Callable[..., Any], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agent_tokred")
    r = Compressor(criterion=criterion).compress(TEXT, query="what is the code", budget=BUDGET)
    assert r.criterion == "lexical" and kind in r.note and r.tokens_after <= 40 and "7391" in r.text
    assert any("falling back to lexical" in rec.getMessage() for rec in caplog.records)
    tally("fault:scorer raises", injected=1, fallback=1)


def test_nan_scores_count_as_lowest_and_the_budget_holds() -> None:
    r = Compressor(criterion=nan_scores).compress(TEXT, budget=BUDGET)
    assert r.criterion == "nan_scores" and 0 < r.tokens_after <= 40
    tally("fault:scorer returns NaN", injected=1, defined_result=1)


@pytest.mark.parametrize("criterion", [boom, not_installed, wrong_length])
def test_failing_scorer_raises_when_configured(criterion: Callable[..., Any]) -> None:
    with pytest.raises(ScorerFailedError, match="failed"):
        Compressor(criterion=criterion, on_scorer_error="raise").compress(TEXT, budget=BUDGET)
    with pytest.raises(ScorerFailedError):
        compress(TEXT, target_tokens=40, criterion=criterion, on_scorer_error="raise")
    tally("fault:scorer raises", injected=1, raised=1)


def test_scorer_breaking_mid_run_keeps_later_calls_working() -> None:
    flaky = FlakyCriterion(ok_calls=2)
    comp = Compressor(criterion=flaky)
    crits = [comp.compress(TEXT + f" Run {i}.", budget=BUDGET).criterion for i in range(5)]
    assert crits == ["flaky", "flaky", "lexical", "lexical", "lexical"]
    tally("fault:scorer breaks mid-run", injected=3, fallback=3)


@pytest.mark.model
def test_a_model_that_cannot_load_falls_back(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agent_tokred")
    comp = Compressor(criterion="relevance", criterion_options={"model": str(tmp_path / "no-such-model")})
    r = comp.compress(TEXT, query="the code", budget=BUDGET)
    assert r.criterion == "lexical" and r.tokens_after <= 40 and "not installed" in r.note
    with pytest.raises(ScorerFailedError):
        Compressor(criterion="relevance", criterion_options={"model": str(tmp_path / "x")},
                   on_scorer_error="raise").compress(TEXT, query="the code", budget=BUDGET)
    tally("fault:model fails to load", injected=2, fallback=1, raised=1)


def test_slow_scorer_times_out_to_lexical(slow: SlowCriterion, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agent_tokred")
    r = Compressor(criterion=slow, timeout_s=0.1).compress(TEXT, query="the code", budget=BUDGET)
    assert r.criterion == "lexical" and "timed out" in r.note and r.tokens_after <= 40
    assert slow.finished == 0  # it returned while the 30 s scorer was still running: it did not wait for it
    assert any("timed out" in rec.getMessage() for rec in caplog.records)
    r2 = compress(TEXT, target_tokens=40, criterion=slow, timeout_s=0.05)
    assert r2.criterion == "lexical"
    tally("fault:slow scorer", injected=2, fallback=2)


def test_slow_scorer_raises_when_configured(slow: SlowCriterion) -> None:
    with pytest.raises(CompressionTimeoutError, match="time limit"):
        Compressor(criterion=slow, timeout_s=0.05, on_timeout="raise").compress(TEXT, budget=BUDGET)
    with pytest.raises(CompressionTimeoutError):
        compress(TEXT, target_tokens=40, criterion=slow, timeout_s=0.05, on_timeout="raise")
    assert issubclass(CompressionTimeoutError, TimeoutError)
    tally("fault:slow scorer", injected=2, raised=2)


def test_fast_scorer_under_a_timeout_is_used_and_per_call_override(slow: SlowCriterion) -> None:
    fast = FlakyCriterion(ok_calls=10**6)
    assert Compressor(criterion=fast, timeout_s=30).compress(TEXT, budget=BUDGET).criterion == "flaky"
    comp = Compressor(criterion=slow)  # no default limit: the per-call one applies
    assert comp.compress(TEXT, budget=BUDGET, timeout_s=0.05).criterion == "lexical"


def test_timed_out_calls_do_not_pile_up_threads(slow: SlowCriterion) -> None:
    comp = Compressor(criterion=slow, timeout_s=0.02)
    before = threading.active_count()
    for _ in range(timeout_mod.MAX_ABANDONED_SCORERS + 6):
        assert comp.compress(TEXT, budget=BUDGET).criterion == "lexical"
    assert timeout_mod.abandoned_scorers() <= timeout_mod.MAX_ABANDONED_SCORERS
    assert threading.active_count() - before <= timeout_mod.MAX_ABANDONED_SCORERS
    slow.release.set()
    deadline = time.monotonic() + 5
    while timeout_mod.abandoned_scorers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert timeout_mod.abandoned_scorers() == 0  # finished workers release their slot
    tally("fault:slow scorer", injected=timeout_mod.MAX_ABANDONED_SCORERS + 6,
          fallback=timeout_mod.MAX_ABANDONED_SCORERS + 6)


def test_scorer_error_inside_the_timeout_thread_is_handled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agent_tokred")
    assert Compressor(criterion=boom, timeout_s=5).compress(TEXT, budget=BUDGET).criterion == "lexical"
    with pytest.raises(ScorerFailedError):
        Compressor(criterion=boom, timeout_s=5, on_scorer_error="raise").compress(TEXT, budget=BUDGET)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True])
def test_bad_timeouts_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="timeout_s"):
        Compressor(timeout_s=bad)
    with pytest.raises(InvalidInputError):
        compress(TEXT, target_tokens=10, criterion="lexical", timeout_s=bad)
    with pytest.raises(UnknownNameError, match="on_timeout"):
        Compressor(on_timeout="ignore")  # type: ignore[arg-type]


def test_deadline_helper_passes_results_and_errors_through() -> None:
    assert timeout_mod.call_with_deadline(lambda: 7, 1.0) == 7
    with pytest.raises(ValueError, match="x"):
        timeout_mod.call_with_deadline(lambda: (_ for _ in ()).throw(ValueError("x")), 1.0)
    with pytest.raises(timeout_mod.ScoringTimedOut):
        timeout_mod.call_with_deadline(lambda: 7, 0.0)


# -- inside an agent run -----------------------------------------------------------------------------------


@tool
def read_logs(service: str) -> str:
    """Read a service's logs."""
    return LOG


@tool
def read_notes(service: str) -> str:
    """Read notes."""
    return TEXT


def run_agent(mw: TokenReductionMiddleware, store: Any = None) -> tuple[list[Any], ScriptedChatModel]:
    script = [
        AIMessage("", tool_calls=[{"name": "read_logs", "args": {"service": "api"}, "id": "c0"}]),
        AIMessage("", tool_calls=[{"name": "read_notes", "args": {"service": "api"}, "id": "c1"}]),
        AIMessage("api-7 has a full disk"),
    ]
    model = ScriptedChatModel(script=script)
    agent = create_agent(model, [read_logs, read_notes], middleware=[mw], store=store)
    out = agent.invoke({"messages": [HumanMessage("Which api instance has an ERROR?")]})["messages"]
    assert out[-1].content == "api-7 has a full disk", "the agent run did not finish"
    assert orphaned_tool_calls(out) == [] and all(orphaned_tool_calls(seen) == [] for seen in model.received)
    return out, model


def tool_outputs(out: list[Any]) -> list[ToolMessage]:
    return [m for m in out if isinstance(m, ToolMessage)]


@pytest.mark.parametrize("criterion", [boom, not_installed, FlakyCriterion(ok_calls=1)], ids=["raises", "missing",
                                                                                             "mid-run"])
def test_agent_run_continues_when_the_scorer_fails(criterion: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agent_tokred")
    store = InMemoryStore()
    mw = TokenReductionMiddleware(message_budget=120, criterion=criterion, store=store)
    out, _ = run_agent(mw, store)
    arc = StoreArchive(store, ("thread", "default"))
    for msg, original in zip(tool_outputs(out), (LOG, TEXT)):
        mark = msg.response_metadata["agent_tokred"]
        assert TALLY.content(msg) <= 120 and arc.get(mark["handle"]) == original
    assert any("falling back to lexical" in r.getMessage() for r in caplog.records)
    tally("fault:scorer fails in an agent run", injected=1, run_continued=1, lost=0)


def test_agent_run_continues_when_the_scorer_must_raise() -> None:
    mw = TokenReductionMiddleware(message_budget=120, compressor=Compressor(criterion=boom, on_scorer_error="raise"))
    out, _ = run_agent(mw)
    assert [m.content for m in tool_outputs(out)] == [LOG, TEXT]  # left whole: nothing lost
    skipped = [r for rep in mw.reports for r in rep.messages if r.action == "skipped"]
    assert skipped and all("ScorerFailedError" in r.note for r in skipped)
    tally("fault:scorer fails in an agent run", injected=1, run_continued=1, kept_whole=1, lost=0)


@pytest.mark.parametrize("on_timeout", ["fallback", "raise"])
def test_agent_run_continues_when_the_scorer_times_out(on_timeout: str, slow: SlowCriterion) -> None:
    store = InMemoryStore()
    mw = TokenReductionMiddleware(message_budget=120, criterion=slow, timeout_s=0.05, on_timeout=on_timeout,
                                  store=store)
    assert mw.policy.timeout_s == 0.05 and mw.engine.compressor.timeout_s == 0.05
    out, _ = run_agent(mw, store)
    msgs = tool_outputs(out)
    if on_timeout == "fallback":
        assert all(TALLY.content(m) <= 120 for m in msgs)
        assert {r.criterion for rep in mw.reports for r in rep.messages} == {"lexical"}
    else:
        assert [m.content for m in msgs] == [LOG, TEXT]
        assert any("CompressionTimeoutError" in r.note for rep in mw.reports for r in rep.messages)
    tally("fault:slow scorer in an agent run", injected=1, run_continued=1, lost=0)


class BrokenStore(InMemoryStore):
    """A store whose writes fail (a database outage)."""

    def batch(self, ops: Any) -> Any:
        if any(type(op).__name__ == "PutOp" for op in ops):
            raise ConnectionError("store unavailable")
        return super().batch(ops)


def test_agent_run_continues_when_the_archive_store_fails(caplog: pytest.LogCaptureFixture) -> None:
    mw = TokenReductionMiddleware(message_budget=120, call_budget=400, criterion="lexical", store=BrokenStore())
    out, _ = run_agent(mw)
    assert [m.content for m in tool_outputs(out)] == [LOG, TEXT]  # not archived, so not reduced: nothing lost
    assert any("could not reduce" in r.getMessage() for r in caplog.records)
    tally("fault:archive store down", injected=1, run_continued=1, kept_whole=1, lost=0)


def test_agent_run_continues_when_the_tokenizer_fails() -> None:
    calls = {"n": 0}

    def flaky_count(text: str) -> int:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("tokenizer crashed")
        return len(text) // 4

    mw = TokenReductionMiddleware(message_budget=120, criterion="lexical", tokenizer=flaky_count)
    out, _ = run_agent(mw)
    assert [m.content for m in tool_outputs(out)] == [LOG, TEXT]
    tally("fault:tokenizer raises", injected=1, run_continued=1, kept_whole=1, lost=0)


def test_agent_run_continues_when_a_report_callback_fails() -> None:
    def bad_callback(report: Any) -> None:
        raise RuntimeError("telemetry down")

    store = InMemoryStore()
    out, _ = run_agent(TokenReductionMiddleware(message_budget=120, criterion="lexical", on_report=bad_callback,
                                                store=store), store)
    assert all(TALLY.content(m) <= 120 for m in tool_outputs(out))
    tally("fault:report callback raises", injected=1, run_continued=1, lost=0)


def test_archive_eviction_is_logged_never_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agent_tokred")
    arc = InMemoryArchive(max_chars=100)
    handles = [arc.put(f"original number {i} " * 3) for i in range(5)]
    assert arc.get(handles[-1]) is not None and arc.get(handles[0]) is None
    assert any("archive full" in r.getMessage() for r in caplog.records)
