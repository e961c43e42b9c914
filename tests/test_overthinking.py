"""Tests of the overthinking detector: segmentation, candidates, cuts, bad input, integration, CLI."""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

from agent_tokred.errors import InvalidInputError, UnknownNameError
from agent_tokred.integration.overthinking import (
    MARK,
    OverthinkingCallbackHandler,
    OverthinkingMiddleware,
    amonitor_stream,
    make_overthinking_node,
    monitor_stream,
    truncate_earlier_reasoning,
)
from agent_tokred.overthinking import (
    ConfidenceDetector,
    ConvergenceDetector,
    CutStrategy,
    OverthinkingConfig,
    OverthinkingMonitor,
    OverthinkingStop,
    detect_overthinking,
    extract_candidates,
    final_answer,
    lexical_redundancy,
    normalize_answer,
    segment_steps,
    split_trace,
    truncate_blocks,
)
from agent_tokred.overthinking.answers import mentions
from agent_tokred.overthinking.cli import register
from agent_tokred.overthinking.detectors import computed_mention

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reasoning_traces_dev.jsonl.gz"

THINKING = (
    "James runs 3 sprints 3 times a week, 60 meters each.\n\n"
    "Per session: 3 * 60 = 180 meters. Then 180 * 3 = 540 meters. So the total is 540 meters.\n\n"
    "Alternatively, total sprints: 3 * 3 = 9, and 9 * 60 = 540. So again 540 meters.\n\n"
    "Wait, let me double-check the wording once more. He runs 3 sprints each time, 3 times a week, "
    "each sprint is 60 meters, so there is no round trip to count and nothing else to add here.\n\n"
    "Hmm, is there another reading of the problem? No. Each way of computing it gives the same total.\n\n"
    "Let me verify the arithmetic again: 9 times 60 is 540. Yes, 540 meters."
)
ANSWER = "He runs a total of **540** meters a week.\n\n\\boxed{540}"
QUESTION = "James runs 3 sprints 3 times a week. He runs 60 meters each sprint. How many meters a week?"


def _config(**kw: Any) -> OverthinkingConfig:
    return OverthinkingConfig(min_removed_tokens=1, **kw)


def _agent_config() -> OverthinkingConfig:
    # Earlier agent turns often end in a tool call, not a numeric answer: online convergence decides.
    return _config(k=2)


# --- segmentation and trace forms -------------------------------------------------------------


@pytest.mark.parametrize(
    ("trace", "form"),
    [
        ("<think>" + THINKING + "</think>" + ANSWER, "tagged"),
        (THINKING + "</think>" + ANSWER, "close_only"),
        ([{"type": "reasoning", "reasoning": THINKING}, {"type": "text", "text": ANSWER}], "blocks"),
        ([{"type": "thinking", "thinking": THINKING}, {"type": "text", "text": ANSWER}], "blocks"),
    ],
)
def test_trace_forms_split_and_cut_the_same(trace: Any, form: str) -> None:
    split = split_trace(trace)
    assert split.form == form
    assert split.thinking == THINKING
    assert split.answer == ANSWER
    res = detect_overthinking(trace, question=QUESTION, config=_config())
    assert res.cut and res.reason == "converged"
    assert res.text.endswith(ANSWER)
    assert res.kept_thinking.startswith(THINKING[: res.cut_char])


def test_steps_tile_the_text_and_split_at_reflection_turns() -> None:
    text = "So 3*4 = 12. Wait, let me check. 3*4 is 12.\n\nAlternatively, 4+4+4 = 12.\n\\[\n a = b. Wait \n\\]"
    steps = segment_steps(text, offset=5)
    assert "".join(s.text for s in steps) == text
    assert [s.start - 5 for s in steps] == [text.index(s.text) for s in steps]
    assert steps[1].text.startswith("Wait, let me check.")
    assert all(s.kind == "step" for s in steps)
    # "Wait" inside display math does not start a step.
    assert not any(s.text.startswith("Wait \n") for s in steps)


def test_tagged_render_round_trips() -> None:
    trace = "<think>a\n\nb</think>c"
    split = split_trace(trace)
    assert split.render() == trace


# --- candidates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "strength"),
    [
        ("so 9 * 60 = 540 meters", "540", 2),
        ("**540**", "540", 2),
        ("\\boxed{540}", "540", 3),
        ("the answer is 540.", "540", 3),
        ("Therefore, he runs 540 meters.", "540", 2),
        ("x = 1,080.00", "1080", 1),
        ("**Answer:** Jordan would earn \\$140 in one week", "140", 3),
        ("The cost is \\$3,\\!000.", "3000", 1),
        ("\\boxed{\\dfrac{400}{11}}", "400/11", 3),
        ("the answer is Paris.", "paris", 3),
        ("所以答案是 42。", "42", 3),
    ],
)
def test_candidate_extraction(text: str, value: str, strength: int) -> None:
    cands = extract_candidates(text)
    assert any(c.value == value and c.strength == strength for c in cands), cands


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("\\boxed{3\\frac{5}{7}}", "26/7"),  # a mixed number, not its fraction part
        ("\\boxed{-\\frac{3}{4}}", "-3/4"),
        ("\\boxed{\\frac{10}{2}}", "5"),
        ("**Final Answer**\n\\[\\boxed{400/11}\\]", "400/11"),  # not the numerator
        ("\\boxed{12 \\times 3 = 36}", "36"),  # the result, not the first operand
        ("\\boxed{(2,3)}", "(2,3)"),  # a pair, not the number 23
        ("\\boxed{3,\\!000}", "3000"),
        ("The total is $1,234.50.", "1234.5"),
    ],
)
def test_final_answer_forms(answer: str, value: str) -> None:
    assert final_answer(answer) == value


def test_digit_groups_are_threes() -> None:
    assert [c.value for c in extract_candidates("the days are 25,26,27, so the total is 78")] == ["25", "78"]
    assert mentions("days 25,26,27", "252627") == []


def test_a_boxed_fraction_is_one_candidate() -> None:
    # "the answer is \\(\\boxed{\\dfrac{400}{11}}\\)" once gave 400 (the numerator) as the final answer.
    text = "Thus, the final answer is \\(\\boxed{\\dfrac{400}{11}}\\)."
    assert [c.value for c in extract_candidates(text)] == ["400/11"]
    assert final_answer(text) == "400/11"


@pytest.mark.parametrize(
    ("text", "value", "computed"),
    [
        ("63 minus 40 is 23, and then minus 8 more would be 15.", "15", True),
        ("Monday's $80 plus Wednesday's $30 would give a total of $110.", "110", True),
        ("That leaves him with $12.00 after 12.48 - 0.48.", "12", False),  # the operation comes after
        ("12.48 minus 0.48 leaves him with $12.00.", "12", True),
        ("Then, divide both sides by 3:\n\nS = 18 / 3\n\nS = 6", "6", True),
        ("So 40 divided by 1.1 is 400/11, about 36.36.", "400/11", True),
        ("Paul needs 15 more cupcakes, maybe.", "15", False),
        ("The older son is 12 years old, so 12 candles.", "12", False),
        ("So 12 * 40 is 480 inches.", "12", False),  # an operand, not a result
    ],
)
def test_computed_mention(text: str, value: str, computed: bool) -> None:
    assert computed_mention(text, value) is computed


def test_a_result_in_words_opens_the_gate_even_for_a_number_of_the_question() -> None:
    # 6 is also in the question ("6 times"): a restatement does not open the gate, "S = 6" after solving does.
    thinking = (
        "Ruby is 6 times as old as Sam. So 6S + 9 = 3(S + 9), which gives 3S = 18.\n\n"
        "Then, divide both sides by 3:\n\nS = 18 / 3\n\nS = 6\n\n"
        "Wait, so Sam is 6 years old now? Let me check: Ruby is 36, in 9 years 45 = 3 * 15. Yes.\n\n"
        "Hmm, let me double-check my equations again just to be sure I didn't make any mistakes, "
        "going through the whole statement once more from the start."
    )
    question = "Ruby is 6 times older than Sam. In 9 years, Ruby will be 3 times as old as Sam. How old is Sam now?"
    res = detect_overthinking(thinking + "</think>\\boxed{6}", question=question, config=_config())
    assert res.cut and res.cut_char is not None
    assert thinking[res.cut_char :].startswith("Wait, so Sam is 6")
    assert res.answer_kept


def test_operands_are_not_conclusions() -> None:
    assert not [c for c in extract_candidates("So that is 100 plus 50, right?") if c.value == "50"]
    assert normalize_answer("$1,080.00") == "1080"
    assert final_answer("Both give 180 and then \\boxed{540}.") == "540"
    assert mentions("It is $1,080.00, not 10800.", "1080") == [6]


# --- the cut ----------------------------------------------------------------------------------


def test_cut_keeps_answer_in_thinking_and_the_conclusion() -> None:
    trace = THINKING + "</think>" + ANSWER
    res = detect_overthinking(trace, question=QUESTION, config=_config())
    assert res.cut_index is not None and res.cut_index >= 1
    kept = res.kept_thinking
    assert "540" in kept[: res.cut_char]
    assert res.answer_kept and res.stable_answer == "540"
    assert res.text == kept + "</think>" + ANSWER
    assert "tokens of redundant re-checking removed" in kept
    assert res.removed_text == THINKING[res.cut_char :]
    assert 0 < res.thinking_tokens_after < res.thinking_tokens_before
    assert res.evidence[0] == "convergence"


def test_idempotent_on_its_own_output() -> None:
    first = detect_overthinking(THINKING + "</think>" + ANSWER, config=_config())
    again = detect_overthinking(first.text, config=_config())
    assert again.reason == "already_truncated" and not again.cut
    assert again.text == first.text


def test_online_mode_needs_k_rederivations() -> None:
    trace = THINKING + "</think>" + ANSWER
    strict = detect_overthinking(trace, question=QUESTION, config=_config(use_conclusion=False, k=5))
    loose = detect_overthinking(trace, question=QUESTION, config=_config(use_conclusion=False, k=2))
    assert not strict.cut and strict.reason == "not_converged"
    assert loose.cut and loose.stable_answer == "540"


def test_cut_never_before_the_conclusions_answer_is_derived() -> None:
    thinking = (
        "First 3 * 60 = 180.\n\nWait, 180 per session.\n\nThen 180 * 3 = 540.\n\n"
        "Wait, check: 3 * 180 is 540 again, the per-session count of 180 meters is right, "
        "nothing changes at all."
    )
    res = detect_overthinking(thinking + "</think>**540**", config=_config())
    assert res.cut and res.cut_char is not None
    assert "540" in thinking[: res.cut_char]


@pytest.mark.parametrize(
    ("trigger", "cut_at"), [("reflection", "But let me check"), ("recheck", "Wait, let me verify")]
)
def test_mentioned_gate_cuts_at_the_first_recheck_not_at_a_reading_doubt(trigger: str, cut_at: str) -> None:
    # The real failure: a doubt about the problem's reading opens right after the first answer, and
    # the other reading is the gold one; "recheck" keeps such turns and cuts at the next re-check.
    thinking = (
        "Three paid hours: 15 + 30 + 60 = $105.\n\n"
        "But let me check if there's another interpretation: every later hour costs $30, so 15 + 30 + 30 = $75.\n\n"
        "Wait, let me verify the first reading again: 15 + 30 + 60 is 105, doubling each hour.\n\n"
        "Wait, yes, 105 once more, nothing changes."
    )
    cfg = _config(anchor_gate="mentioned", strategy=CutStrategy(triggers=(trigger,)))
    res = detect_overthinking(thinking + "</think>**$105**", config=cfg)
    assert res.cut and res.cut_char is not None
    assert thinking[res.cut_char :].startswith(cut_at)
    assert ("75" in thinking[: res.cut_char]) is (trigger == "recheck")


def test_confidence_gate_opens_after_one_confident_derivation() -> None:
    thinking = "So 6 * 7 = 42 here.\n\nWait, let me re-check the multiplication once more to be very safe."
    tokens = [(ch, -0.01) for ch in thinking]
    cfg = _config(use_conclusion=False, k=3)
    without = detect_overthinking(thinking, config=cfg, untagged="thinking")
    with_lp = detect_overthinking(thinking, config=cfg, untagged="thinking", logprobs=tokens)
    assert not without.cut
    assert with_lp.cut and with_lp.reason == "confident"
    unsure = [(ch, -3.0) for ch in thinking]
    assert not detect_overthinking(thinking, config=cfg, untagged="thinking", logprobs=unsure).cut
    with pytest.raises(InvalidInputError):
        ConfidenceDetector([("a", "x")])


def test_detectors_score_every_step_in_unit_range() -> None:
    steps = segment_steps(THINKING)
    for det in (ConvergenceDetector(k=2), lexical_redundancy):
        scores = det(steps, QUESTION)
        assert len(scores) == len(steps)
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert ConvergenceDetector(k=2)(steps, QUESTION)[0] == 0.0


def test_config_and_strategy_validate() -> None:
    with pytest.raises(InvalidInputError):
        OverthinkingConfig(k=0)
    with pytest.raises(UnknownNameError):
        OverthinkingConfig(redundancy="bm25")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        CutStrategy(triggers=("nope",))
    with pytest.raises(InvalidInputError):
        split_trace(42)  # type: ignore[arg-type]


def test_truncate_blocks_keeps_text_and_tool_blocks() -> None:
    blocks = [
        {"type": "reasoning", "reasoning": "abc"},
        {"type": "reasoning", "reasoning": "def ghi"},
        {"type": "tool_call", "name": "f", "args": {}, "id": "1"},
        {"type": "text", "text": "x"},
    ]
    out = truncate_blocks(blocks, 9, "[cut]")  # "abc\n\ndef ghi": offset 9 is inside "def ghi"
    assert out[0] == blocks[0]
    assert out[1]["reasoning"] == "def [cut]"
    assert out[2:] == blocks[2:]


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trace", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("The answer is 4.", "no_thinking"),
        ("</think>The answer is 4.", "no_thinking"),
        (
            "Let me think about the colours of the sky and the sea.\n\nWait, hmm.</think>The answer is 12.",
            "answer_not_in_thinking",
        ),
        ("So x = 3.\n\nWait, hmm, x = 5 then.</think>The answer is 12.", "answer_not_in_thinking"),
        ("Let me think about the colours of the sky.\n\nWait, hmm, maybe.</think>", "no_answer"),
        (
            "Error after 6 attempts: Error code: 500 - {'error': {'message': 'Internal Server Error', "
            "'type': 'internal_error', 'param': None, 'code': 'invalid_request_error'}}",
            "not_a_trace",
        ),
        ("<think>So 2+2 = 4.\n\nWait, check.</think>4", "not_worth"),
    ],
)
def test_bad_inputs_give_defined_results(trace: str, reason: str) -> None:
    res = detect_overthinking(trace)
    assert res.reason == reason
    assert not res.cut and res.removed_text == ""
    assert res.thinking_tokens_after == res.thinking_tokens_before


def test_truncated_trace_without_close_tag_is_cut_online() -> None:
    res = detect_overthinking("<think>" + THINKING, config=_config(k=2))
    assert res.form == "unterminated" and res.cut
    assert res.text.startswith("<think>") and "</think>" not in res.text


def test_chinese_trace() -> None:
    thinking = (
        "小明有3个苹果，又买了4个。3 + 4 = 7。所以一共是7个。\n\n"
        "等等，让我再检查一下。3加4等于7，没错。\n\n"
        "或者换一种方法：4 + 3 = 7。所以答案是7。\n\n"
        "嗯，再验证一次，确实是7个苹果，没有其他需要考虑的情况了，我们可以放心地给出答案。"
    )
    res = detect_overthinking(thinking + "</think>答案是 **7**。", config=_config())
    assert res.cut and res.stable_answer == "7"
    assert "7" in res.kept_thinking[: res.cut_char]
    assert res.text.endswith("</think>答案是 **7**。")


def test_latex_heavy_trace() -> None:
    thinking = (
        "We need $\\frac{3}{4} \\times 120$.\n\n\\[\n\\frac{3}{4} \\times 120 = 90\n\\]\n\n"
        "So the result is $90$.\n\n"
        "Wait, let me double-check: $120 \\div 4 = 30$, and $30 \\times 3 = 90$. Yes.\n\n"
        "Alternatively, $0.75 \\times 120 = 90$. Consistent with \\(\\boxed{90}\\)."
    )
    res = detect_overthinking(thinking + "</think>\\[\\boxed{90}\\]", config=_config())
    assert res.cut and res.stable_answer == "90"
    assert res.text.endswith("\\[\\boxed{90}\\]")


# --- real data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_records() -> list[dict[str, Any]]:
    if not DATA.exists():
        pytest.skip(f"real data not found at {DATA}")
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    return recs[60:72] + recs[300:306]  # includes the R1 API error record (index 66)


def test_real_traces_slice(real_records: list[dict[str, Any]]) -> None:
    reasons = []
    for rec in real_records:
        res = detect_overthinking(rec["trace"], question=rec["question"])
        reasons.append(res.reason)
        split = split_trace(rec["trace"])
        if res.reason == "not_a_trace":
            assert rec["trace"].startswith("Error")
            continue
        assert res.text.endswith(split.answer)
        assert res.thinking_tokens_after <= res.thinking_tokens_before
        if res.cut:
            gold = rec["gold"].split("####")[-1].strip().replace(",", "")
            assert res.cut_char is not None and res.answer_kept
            # the settled answer is derived before the cut
            if res.stable_answer == gold:
                assert mentions(res.kept_thinking[: res.cut_char], gold)
    assert reasons.count("not_a_trace") == 1
    assert reasons.count("converged") >= len(real_records) // 2


# --- integration: middleware, node ------------------------------------------------------------


def _turns() -> list[Any]:
    return [
        HumanMessage(QUESTION, id="h1"),
        AIMessage(
            content=[
                {"type": "reasoning", "reasoning": THINKING},
                {"type": "text", "text": "Checking a tool."},
            ],
            tool_calls=[{"name": "calc", "args": {"x": "9*60"}, "id": "call1"}],
            id="a1",
        ),
        ToolMessage("540", tool_call_id="call1", id="t1"),
        AIMessage(THINKING + "</think>" + ANSWER, id="a2"),
        HumanMessage("And for 4 sprints?", id="h2"),
        AIMessage("", additional_kwargs={"reasoning_content": THINKING}, id="a3"),
        AIMessage(THINKING + "</think>" + ANSWER, id="a4"),
    ]


def test_earlier_turns_truncated_latest_untouched_tool_pairs_intact() -> None:
    msgs = _turns()
    out = truncate_earlier_reasoning(msgs, config=_agent_config())
    assert [m.id for m in out] == [m.id for m in msgs]
    assert [type(m) for m in out] == [type(m) for m in msgs]
    assert out[-1] is msgs[-1]  # the latest turn is left alone
    for i in (1, 3, 5):
        assert MARK in out[i].response_metadata
    a1, a1_old, a2 = out[1], msgs[1], out[3]
    assert isinstance(a1, AIMessage) and isinstance(a1_old, AIMessage) and isinstance(a2, AIMessage)
    assert a1.tool_calls == a1_old.tool_calls
    assert out[2] is msgs[2]
    assert isinstance(a1.content, list) and isinstance(a1_old.content, list)
    assert a1.content[1] == a1_old.content[1]
    first_block = a1.content[0]
    assert isinstance(first_block, dict) and "removed" in first_block["reasoning"]
    assert isinstance(a2.content, str) and a2.content.endswith(ANSWER)
    assert len(out[5].additional_kwargs["reasoning_content"]) < len(THINKING)
    # marked messages are not truncated twice
    again = truncate_earlier_reasoning(out, config=_agent_config())
    assert all(a is b for a, b in zip(again, out))


def test_signed_thinking_blocks_are_left_whole() -> None:
    msg = AIMessage(
        content=[
            {"type": "thinking", "thinking": THINKING, "signature": "sig"},
            {"type": "text", "text": "ok"},
        ],
        id="s",
    )
    out = truncate_earlier_reasoning([msg, AIMessage("last", id="l")], config=_config())
    assert out[0] is msg


class _RecordingModel(GenericFakeChatModel):
    seen: ClassVar[list[list[Any]]] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> _RecordingModel:
        return self

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        type(self).seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    async def _agenerate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        type(self).seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


@pytest.mark.parametrize("edit_history", [False, True])
async def test_middleware_in_an_agent(edit_history: bool) -> None:
    from langchain.agents import create_agent

    _RecordingModel.seen = []
    model = _RecordingModel(messages=iter([AIMessage("done", id="r1"), AIMessage("done", id="r2")]))
    mw = OverthinkingMiddleware(config=_agent_config(), edit_history=edit_history)
    agent = create_agent(model, tools=[], middleware=[mw])
    history = _turns()
    result = agent.invoke({"messages": history})
    sent = _RecordingModel.seen[-1]
    by_id = {m.id: m for m in sent}
    assert MARK in by_id["a1"].response_metadata and by_id["a1"].tool_calls == history[1].tool_calls
    assert "t1" in by_id
    state_a1 = next(m for m in result["messages"] if m.id == "a1")
    assert (MARK in state_a1.response_metadata) is edit_history
    if edit_history:
        assert "removed_text" in state_a1.response_metadata[MARK]
    # async twin
    model2 = _RecordingModel(messages=iter([AIMessage("done", id="r3")]))
    agent2 = create_agent(model2, tools=[], middleware=[OverthinkingMiddleware(config=_agent_config())])
    await agent2.ainvoke({"messages": _turns()})
    assert MARK in {m.id: m for m in _RecordingModel.seen[-1]}["a2"].response_metadata


def test_langgraph_node_updates_by_id() -> None:
    node = make_overthinking_node(config=_agent_config())
    update = node({"messages": _turns()})
    assert {m.id for m in update["messages"]} == {"a1", "a2", "a3"}
    assert node({"messages": [HumanMessage("hi", id="x")]}) == {}


# --- streaming --------------------------------------------------------------------------------


def _chunks(text: str, size: int = 7) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


REDUNDANT = (
    "First 3 * 60 = 180. So 180 * 3 = 540 meters.\n\n"
    "So the total is 540.\n\nThus he runs 540 meters.\n\n"
    + "Wait, let me double-check that again very carefully: 9 * 60 = 540.\n\n"
    * 40
)
# The question the trace answers: the online rule reads its numbers and what it asks.
REDUNDANT_Q = "James runs 3 sprints 3 times a week, 60 meters each. How many meters a week?"


def test_stream_monitor_stops_early_and_returns_the_text() -> None:
    consumed = []

    def source() -> Iterator[str]:
        for c in _chunks(REDUNDANT):
            consumed.append(c)
            yield c

    stream = monitor_stream(source(), config=_config(k=2), question=REDUNDANT_Q)
    out = "".join(stream)
    assert stream.stopped and stream.stable_answer == "540"
    assert out == stream.text == "".join(consumed)
    assert len(out) < len(REDUNDANT) / 4
    assert "540" in stream.kept_reasoning and out.startswith(stream.kept_reasoning)


def test_stream_monitor_does_not_stop_a_non_redundant_stream() -> None:
    text = "Let me think. 3 * 4 = 12.\n\nThen add 5 to get 17.</think>The answer is 17."
    stream = monitor_stream(_chunks(text), config=_config(k=2))
    assert "".join(stream) == text and not stream.stopped


async def test_async_stream_monitor_with_message_chunks() -> None:
    async def source() -> AsyncIterator[AIMessageChunk]:
        for c in _chunks(REDUNDANT, 11):
            yield AIMessageChunk(content="", additional_kwargs={"reasoning_content": c})
        yield AIMessageChunk(content="The answer is 540.")

    stream = amonitor_stream(source(), config=_config(k=2), question=REDUNDANT_Q)
    got = [c async for c in stream]
    assert stream.stopped and len(got) < len(REDUNDANT) / 11 / 4
    assert stream.kept_reasoning.count("540") >= 3


def test_callback_handler_stops_a_streaming_chat_model() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(REDUNDANT + "</think>540")]))
    handler = OverthinkingCallbackHandler(config=_config(k=2), question=REDUNDANT_Q)
    received = []
    with pytest.raises(OverthinkingStop) as info:
        for chunk in model.stream("q", config={"callbacks": [handler]}):
            received.append(chunk.content)
    assert info.value.result is not None and info.value.result.stable_answer == "540"
    assert len(info.value.produced) < len(REDUNDANT) / 4
    assert handler.monitor.stopped


def test_monitor_answer_channel_never_stops() -> None:
    mon = OverthinkingMonitor(config=_config(k=2))
    mon.feed_reasoning("So 9*60 = 540.\n\n")
    mon.feed_answer("Thus 540. Thus 540.\n\nWait, 540.")
    assert not mon.stopped


# --- CLI --------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agent-tokred")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_text_and_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.txt"
    trace.write_text(THINKING + "</think>" + ANSWER, encoding="utf-8")
    assert _cli(["overthinking", str(trace)]) == 0
    out = capsys.readouterr()
    assert out.out.endswith(ANSWER) and "removed" in out.out
    assert _cli(["overthinking", str(trace), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reason"] == "converged" and summary["stable_answer"] == "540"
    jl = tmp_path / "t.jsonl"
    jl.write_text(
        json.dumps({"id": 1, "trace": THINKING + "</think>" + ANSWER, "question": QUESTION})
        + "\n"
        + json.dumps({"id": 2, "trace": "Error code: 500 - Internal Server Error"})
        + "\n",
        encoding="utf-8",
    )
    assert _cli(["overthinking", str(jl)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["reason"] for x in lines] == ["converged", "not_a_trace"]
    assert _cli(["overthinking", str(tmp_path / "missing.txt")]) == 2


def test_presets_name_the_two_tuned_cuts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``max_removal`` cuts at the first re-check once the final answer is mentioned; ``default`` waits
    until the thinking derives it."""
    from agent_tokred.errors import UnknownNameError

    assert OverthinkingConfig.preset("default") == OverthinkingConfig()
    wide = OverthinkingConfig.preset("max_removal")
    assert wide.anchor_gate == "mentioned" and wide.strategy.triggers == ("recheck",)
    with pytest.raises(UnknownNameError, match="max_removal"):
        OverthinkingConfig.preset("fast")
    # 540 is mentioned (a guess) before it is derived: the wide preset may cut at the first re-check after it
    trace = ("I vaguely remember 540 from a similar problem, but let me work it out.\n\n"
             "Wait, let me double-check that properly. Each sprint is 60 meters and he does 3 sprints.\n\n"
             "So 3 * 60 = 180 meters per session, and 180 * 3 = 540 meters a week.\n\n"
             "Wait, let me double-check: 3 * 3 = 9 sprints, 9 * 60 = 540. Yes, 540.\n\n"
             "Alternatively, maybe a sprint is a round trip? No. So 540 it is.</think>He runs **540** meters.")
    default = detect_overthinking(trace)
    eager = detect_overthinking(trace, config=wide)
    assert eager.cut_char is not None and default.cut_char is not None and eager.cut_char < default.cut_char
    assert "540" in eager.kept_thinking and eager.text.endswith("He runs **540** meters.")
    path = tmp_path / "t.txt"
    path.write_text(trace, encoding="utf-8")
    assert _cli(["overthinking", str(path), "--json", "--preset", "max_removal"]) == 0
    assert json.loads(capsys.readouterr().out)["cut_char"] == eager.cut_char


# --- invariants on arbitrary input --------------------------------------------------------------

_PIECES = [
    "So 3 * 4 = 12.",
    "Wait, let me double-check: 12.",
    "Alternatively, 4 + 4 + 4 = 12.",
    "Hmm, the answer is 12.",
    "Then 12 - 5 = 7.",
    "\\[ \\frac{1}{2} \\times 24 = 12 \\]",
    "等等，让我再检查一下。",
    "**12**",
    "",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.sampled_from(_PIECES), max_size=12),
    noise=st.text(max_size=40),
    seps=st.sampled_from(["\n\n", " ", "\n"]),
    close=st.booleans(),
    answer=st.sampled_from(["", "The answer is 12.", "\\boxed{7}", "Blue."]),
)
def test_any_trace_gives_a_consistent_result(
    pieces: list[str], noise: str, seps: str, close: bool, answer: str
) -> None:
    thinking = seps.join(pieces) + noise
    trace = thinking + ("</think>" + answer if close else "")
    res = detect_overthinking(trace, config=_config(k=2))
    assert res.thinking_tokens_after < res.thinking_tokens_before or not res.cut
    assert res.text.endswith(res.answer)
    if res.cut:
        assert res.cut_char is not None and res.cut_index is not None and res.cut_index >= 1
        assert res.kept_thinking.startswith(res.thinking[: res.cut_char])
        assert res.thinking[: res.cut_char] + res.removed_text == res.thinking
        assert detect_overthinking(res.text, config=_config(k=2)).reason == "already_truncated"
    else:
        assert res.kept_thinking == res.thinking and res.removed_text == ""
