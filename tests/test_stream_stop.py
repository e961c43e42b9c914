"""Tests of the online stop rule: incremental steps, chunk invariance, bounded work, probes, stops."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from pydantic import Field

from agent_tokred.errors import InvalidInputError
from agent_tokred.integration.overthinking import (
    AsyncOverthinkingCallbackHandler,
    OverthinkingCallbackHandler,
    aconclude,
    amake_answer_probe,
    amonitor_stream,
    conclude,
    conclusion_messages,
    make_answer_probe,
    monitor_stream,
)
from agent_tokred.overthinking import (
    OnlineStopRule,
    OverthinkingMonitor,
    OverthinkingStop,
    StopRecord,
    StopRuleConfig,
    segment_steps,
    split_trace,
)
from agent_tokred.overthinking import online as online_module
from agent_tokred.overthinking._incremental import IncrementalSteps

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reasoning_traces_dev.jsonl.gz"

SETTLED = (
    "He runs 3 * 3 = 9 sprints. So 9 * 60 = 540 meters.\n\nSo the total is 540 meters a week.\n\n"
    "Wait, let me double-check: 3 * 60 = 180 per session, 180 * 3 = 540. Yes, that's correct: 540 meters.\n\n"
    "So the answer is 540.\n\n"
)
RECHECK = "Wait, let me verify the whole thing once more from the start: 9 sprints of 60 meters is 540.\n\n"
REDUNDANT = SETTLED + RECHECK * 30
UNSETTLED = "Let me think about the problem. First I need the number of sprints per week.\n\n" * 5


def _chunks(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _feed(rule: OnlineStopRule, parts: Sequence[str]) -> Any:
    for part in parts:
        decision = rule.feed(part)
        if decision is not None:
            return decision
    return None


class ScriptedChatModel(GenericFakeChatModel):
    """A fake chat model that replies from a script and records what it was asked."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def _scripted(*replies: str) -> ScriptedChatModel:
    return ScriptedChatModel(messages=iter([AIMessage(r) for r in replies]))


@pytest.fixture(scope="module")
def real_thinking() -> list[tuple[str, str]]:
    if not DATA.exists():
        pytest.skip("shared real traces not available")
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    out = []
    for r in recs[::29]:
        split = split_trace(r["trace"])
        if split.thinking:
            out.append((split.thinking, r["question"]))
    return out


# --- incremental segmentation -------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            ["So 3*4 = 12. ", "Wait, let me check. ", "\n\n", "Hmm, ", "\\[ x = 1. Wait \\] ", "ok.\n", "a"]
        ),
        max_size=30,
    ),
    st.integers(1, 17),
)
def test_incremental_steps_equal_batch_segmentation(pieces: list[str], size: int) -> None:
    text = "".join(pieces)
    seg = IncrementalSteps()
    got = [s for part in _chunks(text, size) for s in seg.feed(part)] + seg.finish()
    assert [(s.start, s.text) for s in got] == [(u.start, u.text) for u in segment_steps(text)]
    assert "".join(s.text for s in got) == text


def test_incremental_steps_on_real_traces(real_thinking: list[tuple[str, str]]) -> None:
    for thinking, _ in real_thinking:
        seg = IncrementalSteps()
        got = [s for part in _chunks(thinking, 13) for s in seg.feed(part)] + seg.finish()
        assert [s.text for s in got] == [u.text for u in segment_steps(thinking)]


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_list_lines_do_not_stall_the_stream(size: int) -> None:
    # A sentence start followed by "- " (stripped before matching) once left its head undecided for
    # ever: no later step closed before the end of the stream, so the rule never decided again.
    text = (
        "Let me list what we know.\n\n- Akbar: 3 years old\n- Alessandro: 4 years old\n- Helene: 10 years old\n"
        "- Wilfred: ?\n\nTotal age of all four is 20, so Wilfred is 20 - 17 = 3.\n\n"
        "Wait, let me double-check: 3 + 4 + 10 + 3 = 20. Yes.\n\n" + "So the answer is 3. " * 10
    )
    seg = IncrementalSteps()
    before_end = [s for part in _chunks(text, size) for s in seg.feed(part)]
    steps = segment_steps(text)
    assert [s.start for s in before_end] == [u.start for u in steps[: len(before_end)]]
    assert len(before_end) == len(steps) - 1  # only the open last step waits for the end


def test_whole_real_traces_close_their_steps_as_they_stream(real_thinking: list[tuple[str, str]]) -> None:
    for thinking, _ in real_thinking:
        seg = IncrementalSteps()
        closed = seg.feed(thinking)
        steps = segment_steps(thinking)
        assert [s.start for s in closed + seg.finish()] == [u.start for u in steps]
        # Steps still open at the end of the text are those within the last head window.
        assert all(u.start >= len(thinking) - 80 for u in steps[len(closed) + 1 :])


# --- the stop rule ------------------------------------------------------------------------------


def test_rule_stops_at_a_recheck_of_a_settled_answer() -> None:
    rule = OnlineStopRule()
    decision = _feed(rule, _chunks(REDUNDANT))
    assert decision is not None and decision.answer == "540" and decision.evidence == "score"
    assert REDUNDANT[: decision.cut_char].count("540") >= 4
    assert REDUNDANT[decision.cut_char :].startswith("Wait")
    assert decision.cut_char <= decision.seen_chars <= decision.cut_char + 60
    assert rule.feed("more text") is decision  # stopped: later text changes nothing


def test_the_answer_is_not_a_value_a_later_step_used_as_an_operand() -> None:
    # A re-check restates the total (a conclusion-like "So the total is 120") and then computes with it:
    # the answer so far is still 30, not the intermediate 120.
    rule = OnlineStopRule(question="15 floors with 8 units each; 3/4 are occupied. How many are unoccupied?",
                          config=StopRuleConfig(threshold=1.0))
    rule.feed("So the number of unoccupied units is 30.\n\nWait, let me check again. So the total is 120 units."
              "\n\nThen 120 / 4 leaves a quarter of them empty.\n\n")
    rule.finish()
    assert rule.answer == "30"
    fresh = OnlineStopRule(config=StopRuleConfig(threshold=1.0))
    fresh.feed("So the total is 120 units.\n\n")
    fresh.finish()
    assert fresh.answer == "120"  # nothing used it: it is the answer so far


@pytest.mark.parametrize(
    ("question", "thinking", "answer"),
    [
        # "Then 60 + 180 = 240" concludes 240 again inside the step that goes on to use it: 240 was used
        # after it was stated, so the answer so far is still 366.
        ("60 downloads in month one, three times as many in month two, 30% fewer in month three. How many "
         "downloads in total?",
         "So the total downloads should be 366.\n\nWait, let me double-check. Then 60 + 180 = 240. "
         "240 + 126 = 366. Yep.\n\n", "366"),
        # 2 is a number of the question, so "So ... 2" alone would be a restatement; "32 - 30 = 2" computes
        # it, and 30 was used after its re-check stated it.
        ("Peter has 32 ounces of water. Medium cubes use 2 ounces; his cubes use 12, 14 and 4 ounces. How "
         "many ounces are left?",
         "So Peter has 2 ounces left.\n\nWait, let me check. So the cubes use 12 + 14 + 4 = 30 ounces. "
         "32 - 30 = 2. Yes.\n\n", "2"),
    ],
)
def test_a_recheck_that_recomputes_a_step_does_not_make_its_intermediate_the_answer(
    question: str, thinking: str, answer: str
) -> None:
    rule = OnlineStopRule(question=question, config=StopRuleConfig(threshold=1.0))
    rule.feed(thinking)
    rule.finish()
    assert rule.answer == answer


def test_rule_does_not_stop_without_an_answer() -> None:
    rule = OnlineStopRule()
    assert _feed(rule, _chunks(UNSETTLED)) is None
    rule.finish()
    assert not rule.stopped


@pytest.mark.parametrize("size", [1, 3, 8, 50])
def test_decision_does_not_depend_on_chunk_size(size: int) -> None:
    whole = OnlineStopRule().feed(REDUNDANT)
    parts = _feed(OnlineStopRule(), _chunks(REDUNDANT, size))
    assert whole is not None and parts is not None
    assert (parts.cut_char, parts.answer, parts.step_index) == (whole.cut_char, whole.answer, whole.step_index)


def test_chunk_invariance_on_real_traces(real_thinking: list[tuple[str, str]]) -> None:
    for thinking, question in real_thinking:
        whole = OnlineStopRule(question=question).feed(thinking)
        parts = _feed(OnlineStopRule(question=question), _chunks(thinking, 7))
        assert (whole.cut_char if whole else None) == (parts.cut_char if parts else None)


def test_each_step_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = online_module.extract_candidates

    def counting(text: str, offset: int = 0) -> Any:
        calls.append(len(text))
        return real(text, offset)

    monkeypatch.setattr(online_module, "extract_candidates", counting)
    rule = OnlineStopRule(config=StopRuleConfig(threshold=1.0))
    text = UNSETTLED * 4
    _feed(rule, _chunks(text, 3))
    # Work is per closed step, not per chunk: candidates are read once per step, never the prefix.
    assert len(calls) == rule.steps.index < len(text) // 3
    assert sum(calls) <= len(text) and len(rule.steps.open) < 100


def test_logprob_confidence_gate() -> None:
    text = "So 9 * 60 = 540 meters.\n\nWait, let me check that once more with care.\n\n"
    tokens = [(text[i : i + 4], -0.01) for i in range(0, len(text), 4)]
    rule = OnlineStopRule(config=StopRuleConfig(threshold=1.0))
    decision = None
    for i in range(0, len(tokens), 3):
        piece = tokens[i : i + 3]
        decision = rule.feed("".join(t for t, _ in piece), logprobs=piece)
        if decision:
            break
    assert decision is not None and decision.evidence == "confidence" and decision.answer == "540"
    unsure = OnlineStopRule(config=StopRuleConfig(threshold=1.0))
    assert _feed(unsure, [text]) is None  # no log-probs: the gate stays shut


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 1.5}, {"probe_k": 0}, {"min_chars": -1}, {"weights": {"nope": 1.0}}],
)
def test_config_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        StopRuleConfig(**kwargs)


# --- probes with a scripted chat model ----------------------------------------------------------


def test_probe_stops_when_two_probe_answers_agree() -> None:
    model = _scripted("500}", "540}", "540}")
    probe = make_answer_probe(model, [HumanMessage("How many meters?")])
    cfg = StopRuleConfig(threshold=1.0, probe_floor=0.0, probe_k=2)
    rule = OnlineStopRule(config=cfg, probe=probe)
    decision = _feed(rule, _chunks(SETTLED + RECHECK * 5, 9))
    assert decision is not None and decision.evidence == "probe" and decision.answer == "540"
    assert rule.probe_answers == ["500", "540", "540"]
    asked = model.seen[-1][-1]
    assert isinstance(asked, AIMessage) and asked.content.endswith("\\boxed{")
    assert asked.additional_kwargs == {"prefix": True}
    assert decision.cut_char < len(SETTLED + RECHECK * 5)


def test_conclusion_styles_and_answers() -> None:
    msgs = [HumanMessage("q")]
    ask = conclusion_messages(msgs, "So 540.", style="ask")
    assert isinstance(ask[-1], HumanMessage) and "So 540." in ask[-1].text
    with pytest.raises(InvalidInputError):
        conclusion_messages(msgs, "x", style="bogus")  # type: ignore[arg-type]
    done = conclude(_scripted("The answer is \\boxed{540}."), msgs, "So 540.")
    assert (done.answer, done.style) == ("540", "ask")
    assert conclude(_scripted("1,080}"), msgs, "x", style="prefill").answer == "1080"


async def test_async_conclusion_and_probe() -> None:
    msgs = [HumanMessage("q")]
    assert (await aconclude(_scripted("\\boxed{7}"), msgs, "x")).answer == "7"
    aprobe = amake_answer_probe(_scripted("540}", "540}"), msgs)
    parts = _chunks(SETTLED + RECHECK * 5, 9)

    async def source() -> AsyncIterator[str]:
        for p in parts:
            yield p

    mon = OverthinkingMonitor(stop_rule=StopRuleConfig(threshold=1.0, probe_floor=0.0))
    stream = amonitor_stream(source(), monitor=mon, aprobe=aprobe)
    got = [c async for c in stream]
    assert stream.stopped and stream.record is not None and stream.record.evidence == "probe"
    assert len(got) < len(parts)


# --- the stop: stream, record, callbacks --------------------------------------------------------


def test_stream_stop_reports_a_record() -> None:
    records: list[StopRecord] = []
    consumed: list[str] = []

    def source() -> Iterator[str]:
        for c in _chunks(REDUNDANT + "</think>540", 6):
            consumed.append(c)
            yield c

    mon = OverthinkingMonitor(on_stop=records.append, max_tokens=4000)
    out = "".join(monitor_stream(source(), monitor=mon))
    assert mon.stopped and len(records) == 1 and out == "".join(consumed)
    rec = records[0]
    assert rec.answer == "540" and rec.kept_chars == len(mon.kept_reasoning) <= rec.generated_chars
    assert 0 <= rec.overshoot_tokens <= 20 and rec.kept_tokens > 0
    assert rec.tokens_saved == 4000 - rec.generated_tokens
    assert "</think>" not in out and len(out) < len(REDUNDANT) / 3


def test_no_stop_after_the_answer_begins() -> None:
    mon = OverthinkingMonitor()
    for c in _chunks("<think>Let me see.</think>" + REDUNDANT, 7):
        assert not mon.feed_text(c)
    assert mon.reasoning == "Let me see." and mon.answer == REDUNDANT


def test_tags_split_across_chunks() -> None:
    mon = OverthinkingMonitor()
    for c in ["<thi", "nk>So 2+2", " = 4.</th", "ink>4"]:
        mon.feed_text(c)
    assert (mon.reasoning, mon.answer) == ("So 2+2 = 4.", "4")


def test_callback_handler_records_the_stop() -> None:
    seen: list[StopRecord] = []
    model = GenericFakeChatModel(messages=iter([AIMessage(REDUNDANT + "</think>540")]))
    handler = OverthinkingCallbackHandler(on_stop=seen.append)
    with pytest.raises(OverthinkingStop) as info:
        for _ in model.stream("q", config={"callbacks": [handler]}):
            pass
    assert info.value.record is not None and info.value.record is handler.records[0] is seen[0]
    assert info.value.record.answer == "540"


async def test_async_callback_handler_stops_astream() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(REDUNDANT + "</think>540")]))
    handler = AsyncOverthinkingCallbackHandler()
    received = 0
    with pytest.raises(OverthinkingStop):
        async for _ in model.astream("q", config={"callbacks": [handler]}):
            received += 1
    assert handler.monitor.stopped and handler.records and received < len(REDUNDANT) / 3


async def test_async_stream_of_reasoning_chunks() -> None:
    async def source() -> AsyncIterator[AIMessageChunk]:
        for c in _chunks(REDUNDANT, 11):
            yield AIMessageChunk(content="", additional_kwargs={"reasoning_content": c})

    stream = amonitor_stream(source())
    got = [c async for c in stream]
    assert stream.stopped and stream.stable_answer == "540" and len(got) < len(REDUNDANT) / 11 / 3


def test_monitor_passes_logprobs_to_the_confidence_gate() -> None:
    text = "So 9 * 60 = 540 meters.\n\nWait, let me check that once more with care.\n\n"
    mon = OverthinkingMonitor(stop_rule=StopRuleConfig(threshold=1.0))
    for i in range(0, len(text), 12):
        part = text[i : i + 12]
        if mon.feed_reasoning(part, logprobs=[(part, -0.02)]):
            break
    assert mon.stopped and mon.record is not None and mon.record.evidence == "confidence"
