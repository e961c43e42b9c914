"""The pure core of the integration layer: reduce_messages, StoreArchive, the recall tool."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_from_dict,
)
from langgraph.store.memory import InMemoryStore

from agent_tokred import Compressor, InMemoryArchive
from agent_tokred.errors import InvalidInputError
from agent_tokred.integration._content import MessageTally, content_text
from agent_tokred.integration.archive import StoreArchive, scope_labels
from agent_tokred.integration.messages import orphaned_tool_calls, reduce_messages, reduce_tool_message
from agent_tokred.integration.policy import ContextPolicy, make_policy
from agent_tokred.integration.recall import make_recall_tool
from agent_tokred.tokens import resolve_counter

COMPRESSOR = Compressor(criterion="lexical")
TALLY = MessageTally(resolve_counter(None))


def log_output(n: int = 300, needle: str = "ERROR worker-77 disk full") -> str:
    lines = [f"2024-05-01 12:{i // 60 % 60:02d}:{i % 60:02d} INFO worker-{i} heartbeat ok" for i in range(n)]
    lines.insert(n // 2, f"2024-05-01 12:30:00 {needle}")
    return "\n".join(lines)


def json_output(n: int = 150) -> str:
    return json.dumps(
        {"orders": [{"id": f"ORD-{i}", "total": i * 3.5, "status": "shipped"} for i in range(n)]}
    )


def prose_output(n: int = 60) -> str:
    return " ".join(f"Paragraph {i} says the weather in town {i} was mild and dry." for i in range(n)) + (
        " The vault code is 7391."
    )


def call(name: str, cid: str, **args: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": cid}])


def conversation(outputs: list[str], *, question: str = "Which worker has an ERROR?") -> list:
    msgs: list = [SystemMessage("You are an SRE assistant."), HumanMessage(question)]
    for i, out in enumerate(outputs):
        msgs += [call("read", f"c{i}", part=str(i)), ToolMessage(out, tool_call_id=f"c{i}", name="read")]
    return msgs


def reduce(msgs, archive=None, **policy):
    return reduce_messages(
        msgs,
        policy=make_policy(criterion="lexical", **policy),
        compressor=COMPRESSOR,
        archive=archive if archive is not None else InMemoryArchive(),
    )


@pytest.mark.parametrize(
    "output", [log_output(), json_output(), prose_output()], ids=["log", "json", "prose"]
)
def test_tool_output_held_to_message_budget_and_original_archived(output: str) -> None:
    arc = InMemoryArchive()
    out, report = reduce(conversation([output]), arc, message_budget=120)
    tool = out[-1]
    mark = tool.response_metadata["agent_tokred"]
    assert TALLY.content(tool) <= 120
    assert mark["tokens_before"] == TALLY.text(output) and mark["action"] == "compressed"
    assert arc.get(mark["handle"]) == output
    assert mark["handle"] in tool.content  # the model is told how to recall it
    assert report.messages[0].handle == mark["handle"] and report.tokens_after < report.tokens_before


def test_query_aware_keeps_the_needle() -> None:
    out, _ = reduce(conversation([log_output(400)]), message_budget=100)
    assert "ERROR worker-77" in out[-1].content


def test_call_budget_holds_and_protects_system_latest_request_and_last_turns() -> None:
    msgs = conversation([log_output(200), json_output(120), prose_output(40), log_output(100, "ERROR x")])
    out, report = reduce(msgs, message_budget=600, call_budget=1200, protect_last_n_turns=1)
    assert report.within_budget and TALLY.total(out) <= 1200 == report.budget
    assert out[0] == msgs[0] and out[1] == msgs[1]  # system prompt and the request are untouched
    assert out[-2] == msgs[-2]  # the last turn's AI call is untouched ...
    assert out[-1].response_metadata["agent_tokred"]["action"] == "compressed"  # ... its output only held
    assert 500 < TALLY.content(out[-1]) <= 600  # to the per-message budget, not squeezed
    assert orphaned_tool_calls(out) == []


def test_protected_turns_can_exceed_the_call_budget_and_say_so() -> None:
    msgs = conversation([log_output(200), log_output(100, "ERROR x")])
    out, report = reduce(msgs, message_budget=600, call_budget=300, protect_last_n_turns=2)
    assert not report.within_budget and report.tokens_after > 300
    assert orphaned_tool_calls(out) == [] and out[2] == msgs[2]


def test_pairs_dropped_together_with_recallable_note() -> None:
    arc = InMemoryArchive()
    msgs = conversation([log_output(150), json_output(80), prose_output(20), "short result"])
    out, report = reduce(
        msgs, arc, message_budget=400, call_budget=300, protect_last_n_turns=2, floor_tokens=200
    )
    assert orphaned_tool_calls(out) == []
    dropped = [m for m in report.messages if m.action == "dropped_pair"]
    assert dropped and report.dropped_handles == tuple(m.handle for m in dropped)
    restored = messages_from_dict(json.loads(arc.get(dropped[0].handle)))
    assert restored[0].tool_calls[0]["id"] == "c0" and restored[1].content == msgs[3].content
    note = next(m for m in out if m.response_metadata.get("agent_tokred", {}).get("action") == "dropped_pair")
    assert dropped[0].handle in note.content and not note.tool_calls


def test_idempotent() -> None:
    arc = InMemoryArchive()
    msgs = conversation([log_output(200), json_output(100), prose_output(30)])
    once, _ = reduce(msgs, arc, message_budget=200, call_budget=700)
    twice, report = reduce(once, arc, message_budget=200, call_budget=700)
    assert twice == once and not report.changed


def test_input_list_not_modified() -> None:
    msgs = conversation([log_output(200)])
    snapshot = [m.model_copy(deep=True) for m in msgs]
    reduce(msgs, message_budget=100)
    assert msgs == snapshot


@pytest.mark.parametrize(
    "tool_msg",
    [
        ToolMessage(log_output(), tool_call_id="c0", name="read", status="error"),
        ToolMessage("Traceback (most recent call last):\n" + log_output(), tool_call_id="c0", name="read"),
        ToolMessage(log_output(), tool_call_id="c0", name="vault"),
        ToolMessage(log_output(), tool_call_id="c0", name="recall"),
        ToolMessage(
            log_output(),
            tool_call_id="c0",
            name="read",
            response_metadata={"agent_tokred": {"action": "recall", "handle": "tkr-0"}},
        ),
    ],
    ids=["error-status", "traceback", "protected-tool", "recall-tool", "recall-marker"],
)
def test_never_touched(tool_msg: ToolMessage) -> None:
    msgs = [HumanMessage("q"), call("read", "c0"), tool_msg]
    out, _ = reduce(
        msgs, message_budget=50, call_budget=100, protect_last_n_turns=0, protected_tools={"vault"}
    )
    assert out[-1] == tool_msg


def test_recall_results_are_marked_when_they_arrive() -> None:
    msg = ToolMessage(log_output(), tool_call_id="c0", name="recall")
    out, report = reduce_tool_message(
        msg, policy=ContextPolicy(message_budget=10), compressor=COMPRESSOR, archive=InMemoryArchive()
    )
    assert out.content == msg.content and out.response_metadata["agent_tokred"]["action"] == "recall"
    assert not report.changed


def test_list_content_blocks_keep_images_and_lose_nothing() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    blocks = [{"type": "text", "text": log_output(200)}, image, {"type": "text", "text": prose_output(30)}]
    arc = InMemoryArchive()
    out, _ = reduce(
        [HumanMessage("q"), call("read", "c0"), ToolMessage(blocks, tool_call_id="c0")],
        arc,
        message_budget=150,
    )
    new = out[-1]
    assert image in new.content and TALLY.content(new) <= 150
    assert json.loads(arc.get(new.response_metadata["agent_tokred"]["handle"])) == blocks


@pytest.mark.parametrize(
    "msg",
    [
        ToolMessage("", tool_call_id="c0"),
        ToolMessage(content={"rows": list(range(400))}, tool_call_id="c0"),  # type: ignore[arg-type]
        ToolMessage(content=None, tool_call_id="c0"),  # type: ignore[arg-type]
        ToolMessage("\x00\x01\x02" * 3000, tool_call_id="c0"),
        ToolMessage([], tool_call_id="c0"),
    ],
    ids=["empty", "dict", "none", "binary", "empty-list"],
)
def test_bad_tool_outputs_do_not_crash_or_lose_data(msg: ToolMessage) -> None:
    arc = InMemoryArchive()
    out, report = reduce([HumanMessage("q"), call("read", "c0"), msg], arc, message_budget=50)
    new = out[-1]
    if new is msg:
        assert all(r.action == "skipped" for r in report.messages)
    else:
        assert arc.get(new.response_metadata["agent_tokred"]["handle"]) == content_text(msg.content)


def test_messages_without_ids_and_unknown_types_pass_through() -> None:
    odd = [
        ChatMessage(role="critic", content=prose_output(40)),
        FunctionMessage(name="f", content=prose_output(40)),
    ]
    msgs = [HumanMessage("q"), *odd, call("read", "c0"), ToolMessage(log_output(), tool_call_id="c0")]
    assert all(m.id is None for m in msgs)
    out, _ = reduce(msgs, message_budget=80, call_budget=10_000)
    assert out[1:3] == odd and TALLY.content(out[-1]) <= 80


def test_dict_messages_are_read_and_junk_refused() -> None:
    out, _ = reduce([{"role": "user", "content": "hi"}], message_budget=80)
    assert isinstance(out[0], HumanMessage)
    with pytest.raises(InvalidInputError):
        reduce("not messages")  # type: ignore[arg-type]


def test_very_long_single_message() -> None:
    out, _ = reduce(conversation([log_output(8000)]), message_budget=500)
    assert TALLY.content(out[-1]) <= 500


def test_policy_errors_name_the_field() -> None:
    with pytest.raises(InvalidInputError, match="message_budget"):
        make_policy(message_budget=0)
    with pytest.raises(InvalidInputError, match="strategy"):
        make_policy(strategy="shrink")
    with pytest.raises(InvalidInputError, match="nonsense"):
        make_policy(nonsense=1)


# -- archive isolation and recall --------------------------------------------------------------------


def test_store_archive_isolation() -> None:
    store = InMemoryStore()
    a, b = StoreArchive(store, ("thread", "A")), StoreArchive(store, ("thread", "B"))
    handle = a.put("secret of A")
    assert a.get(handle) == "secret of A" and b.get(handle) is None
    assert b.put("secret of A") != handle  # the same text gets another handle elsewhere
    assert a.get("not-a-handle") is None and a.get("../" + handle) is None
    assert make_recall_tool(b).invoke({"handle": handle}).startswith("No original")
    assert make_recall_tool(a).invoke({"handle": handle}) == "secret of A"


async def test_store_archive_async_twins() -> None:
    arc = StoreArchive(InMemoryStore(), ("user", "u.1"))  # dots are escaped for LangGraph labels
    handle = await arc.aput("original", output="short")
    assert await arc.aget(handle) == "original" and await arc.ais_output("short")
    assert await make_recall_tool(arc).ainvoke({"handle": handle}) == "original"


def test_recall_pages_long_originals() -> None:
    arc = InMemoryArchive()
    text = log_output(3000)
    handle = arc.put(text)
    tool = make_recall_tool(arc, page_chars=10_000)
    pages, offset = [], 0
    while True:
        page = tool.invoke({"handle": handle, "offset": offset})
        body, _, tail = page.rpartition("\n[recall: characters ")
        pages.append(body)
        offset += len(body)
        if "for the rest" not in tail:
            break
    assert "".join(pages) == text


def test_scope_labels() -> None:
    cfg = {"configurable": {"thread_id": "t1", "user_id": "u1"}}
    assert scope_labels("thread", config=cfg) == ("thread", "t1")
    assert scope_labels("user", config=cfg, context={"user_id": "ctx"}) == ("user", "ctx")
    assert scope_labels("thread", config={}) == ("thread", "default")
    with pytest.raises(ValueError, match="thread"):
        scope_labels("planet")


# -- invariants over random conversations ------------------------------------------------------------

OUTPUTS = st.sampled_from([log_output(120), json_output(60), prose_output(25), "ok", "", "x" * 10])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    outputs=st.lists(OUTPUTS, min_size=1, max_size=6), budget=st.integers(150, 3000), keep=st.integers(0, 3)
)
def test_invariants_on_random_conversations(outputs: list[str], budget: int, keep: int) -> None:
    msgs = conversation(outputs)
    arc = InMemoryArchive()
    out, report = reduce(msgs, arc, message_budget=200, call_budget=budget, protect_last_n_turns=keep)
    assert orphaned_tool_calls(out) == []
    assert out[0] == msgs[0] and out[1] == msgs[1]
    assert report.tokens_after == TALLY.total(out)
    if report.within_budget:
        assert report.tokens_after <= budget
    for m in out:
        mark = m.response_metadata.get("agent_tokred")
        if mark and mark["action"] in ("compressed", "squeezed"):
            assert arc.get(mark["handle"]) in [content_text(x.content) for x in msgs]
    again, second = reduce(out, arc, message_budget=200, call_budget=budget, protect_last_n_turns=keep)
    assert again == out and not second.changed


# -- regressions: the call budget over a long research session (demo 2) --------------------------------


def search_result(q: int, k: int) -> str:
    """A retrieved passage: short prose sentences, one of them naming where item ``q`` was made."""
    filler = " ".join(
        f"The {w} hall of museum {q}-{k}-{i} opened in 19{i:02d} and shows {i + 3} paintings."
        for i, w in enumerate(["north", "south", "east", "west", "upper", "lower", "old", "new", "side", "main"])
    )
    return f"[{k + 1}] Item {q}: Item {q} was made in town {q} by hand. {filler}"


def research_session(questions: int, searches: int = 3, latest: bool = True) -> list:
    """Demo 2's shape: per question, a request, ``searches`` search pairs and an answer; then a new request."""
    msgs: list = [SystemMessage("Answer with the search tool.")]
    for q in range(questions):
        msgs.append(HumanMessage(f"Where was item {q} made?"))
        for k in range(searches):
            msgs += [call("search", f"q{q}s{k}", query=f"item {q} origin {k}"),
                     ToolMessage(search_result(q, k), tool_call_id=f"q{q}s{k}", name="search")]
        msgs.append(AIMessage(f"Item {q} was made in town {q}, the catalogue says."))
    if latest:
        msgs.append(HumanMessage(f"Where was item {questions} made?"))
    return msgs


def is_note(m) -> bool:
    return m.response_metadata.get("agent_tokred", {}).get("action") == "dropped_pair"


def test_dropped_pairs_collapse_into_one_note_never_dearer_than_them() -> None:
    msgs = research_session(6)
    arc = InMemoryArchive()
    out, report = reduce(msgs, arc, message_budget=None, call_budget=1200)
    assert report.within_budget and TALLY.total(out) <= 1200 and orphaned_tool_calls(out) == []
    notes = [m for m in out if is_note(m)]
    assert notes and all(not (is_note(a) and is_note(b)) for a, b in itertools.pairwise(out))  # one note per run
    assert len(notes) <= 6  # at most one per question, not one per dropped pair
    for rec in (r for r in report.messages if r.action == "dropped_pair"):
        assert rec.tokens_after < rec.tokens_before  # a note never costs more than what it replaces
    # the demo's symptom: user/AI text ("history") grew when each pair became a longer note (+19 tokens
    # of history per pair here); a run of one pair may still become one note (more user/AI text than
    # the pair's call, fewer tokens than the pair), so history may grow by less than one note
    history = [TALLY.count(m) for m in msgs if not isinstance(m, ToolMessage)]
    grown = sum(TALLY.count(m) for m in out if not isinstance(m, ToolMessage)) - sum(history)
    assert grown < min(TALLY.count(n) for n in notes)
    # no two AI messages in a row: a note before a kept answer is folded into it
    assert not any(isinstance(a, AIMessage) and isinstance(b, AIMessage) and not b.tool_calls
                   for a, b in itertools.pairwise(out))
    folded = next(m for m in notes if isinstance(m, AIMessage) and "the catalogue says" in m.content)
    back = messages_from_dict(json.loads(arc.get(folded.response_metadata["agent_tokred"]["handle"])))
    assert [type(m).__name__ for m in back] == ["AIMessage", "ToolMessage"] * 3 + ["AIMessage"]
    assert back[1].content == msgs[3].content and back[-1].content == content_text(msgs[8].content)
    again, second = reduce(out, arc, message_budget=None, call_budget=1200)
    assert again == out and not second.changed


def test_call_budget_holds_whenever_the_protected_part_fits() -> None:
    msgs = research_session(20)  # 20 answered questions: notes alone would exceed a small budget
    arc = InMemoryArchive()
    out, report = reduce(msgs, arc, message_budget=None, call_budget=300)
    assert report.within_budget and report.tokens_after == TALLY.total(out) <= 300 and report.note == ""
    assert out[0] == msgs[0] and out[-1] == msgs[-1] and orphaned_tool_calls(out) == []
    assert not isinstance(out[1], AIMessage)  # a note opening the conversation speaks as the user
    handles = report.dropped_handles
    assert handles and all(arc.get(h) for h in handles)  # everything removed stays recallable
    again, second = reduce(out, arc, message_budget=None, call_budget=300)
    assert again == out and not second.changed


def test_over_budget_only_for_protected_content_and_the_report_says_why() -> None:
    msgs = research_session(3)
    protected = TALLY.count(msgs[0]) + TALLY.count(msgs[-1])  # the system prompt and the request
    out, report = reduce(msgs, message_budget=None, call_budget=protected - 1, protect_last_n_turns=1)
    assert not report.within_budget and report.tokens_after == TALLY.total(out) > protected - 1
    assert f"{protected} tokens are protected" in report.note
    assert report.as_metadata()["note"] == report.note and orphaned_tool_calls(out) == []
    out, fits = reduce(msgs, message_budget=None, call_budget=protected, protect_last_n_turns=1)
    assert fits.within_budget and TALLY.total(out) <= protected and fits.note == ""
    assert out == [msgs[0], msgs[-1]] and fits.dropped_handles  # even the notes yield; originals archived


def test_freed_tokens_go_back_to_the_newest_squeezed_output() -> None:
    msgs = research_session(5, latest=False)[:-1]  # the 5th question still researching, 3 searches done
    first = msgs[-6:-4]  # its first search: not protected (the last 2 turns are)
    out, report = reduce(msgs, message_budget=None, call_budget=1500)
    assert report.within_budget and TALLY.total(out) <= 1500
    assert first[1] in out  # old questions were dropped for it, not the current research squeezed


def test_squeezed_prose_keeps_whole_sentences() -> None:
    prose = " ".join(f"Sentence {i} says that the evening ferry from the harbour to island {i} leaves at {i % 12 + 1} "
                     f"pm on weekdays, and at {i % 12 + 2} pm on public holidays and weekends." for i in range(20))
    msgs = conversation([prose, "ok", "ok"], question="When does the island 7 ferry leave?")
    budget = TALLY.total(conversation(["", "ok", "ok"])) + 80  # room for one sentence, not for two
    out, report = reduce(msgs, message_budget=None, call_budget=budget, protect_last_n_turns=2)
    squeezed = out[3]
    assert squeezed.response_metadata["agent_tokred"]["action"] == "squeezed" and report.within_budget
    body = squeezed.content.rsplit("\n[cut from", 1)[0]
    pieces = [p.strip() for p in body.split("…") if p.strip()]
    assert pieces and all(p.endswith(".") and p.startswith("Sentence") and p in prose for p in pieces)


def test_prose_that_cannot_keep_a_whole_sentence_is_dropped_not_fragmented() -> None:
    long_sentence = ", ".join(f"clause {i} about the harbour crane {i}" for i in range(30)) + "."
    prose = " ".join([long_sentence] * 4)
    msgs = conversation([prose, "ok", "ok"])
    budget = TALLY.total(conversation(["", "ok", "ok"])) + 90  # room for the floor: squeezing would fit
    out, report = reduce(msgs, message_budget=None, call_budget=budget, protect_last_n_turns=2)
    assert report.within_budget and orphaned_tool_calls(out) == []
    assert [r.action for r in report.messages] == ["dropped_pair"]  # no word fragments of it are shown
    assert not any("clause" in content_text(m.content) for m in out)
