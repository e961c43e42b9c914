"""Tests of bench/bfcl.py: call-string parsing, the LangChain view and (wheel permitting) a replay."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not an installed package

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from bench.bfcl import (
    BFCLNotAvailableError,
    ToolCall,
    Trajectory,
    Turn,
    format_output,
    load_trajectories,
    parse_call,
    scripted_responses,
    steps,
    to_messages,
    trajectory_from_dict,
    trajectory_to_dict,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cd(folder='document')", ("cd", [], {"folder": "document"})),
        ("sort('final_report.pdf')", ("sort", ["final_report.pdf"], {})),
        ("ls(a=True)", ("ls", [], {"a": True})),
        ("mean(numbers=[1, 2.5, -3])", ("mean", [], {"numbers": [1, 2.5, -3]})),
        ("get_order_details(order_id=12446)", ("get_order_details", [], {"order_id": 12446})),
        ("f(x=None, y={'k': (1, 2)})", ("f", [], {"x": None, "y": {"k": (1, 2)}})),
        ("check_tire_pressure()", ("check_tire_pressure", [], {})),
        (
            "grep(file_name='a.txt',pattern='budget analysis')",
            ("grep", [], {"file_name": "a.txt", "pattern": "budget analysis"}),
        ),
    ],
)
def test_parse_call(text: str, expected: tuple) -> None:
    assert parse_call(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "cd(folder=os.system('x'))",
        "__import__('os').system('x')",
        "a.b(c=1)",
        "cd(folder=x)",
        "1 + 2",
        "cd(",
        "f(**{'a': 1})",
        "f(x=g(1))",
    ],
)
def test_parse_call_rejects_non_literal_or_non_call(text: str) -> None:
    with pytest.raises(ValueError):
        parse_call(text)


def test_format_output() -> None:
    assert format_output("plain") == "plain"
    assert format_output({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert format_output(3.5) == "3.5"
    assert format_output([..., 1]) == "[Ellipsis, 1]"  # not JSON: falls back to str(), as BFCL does


def _toy() -> Trajectory:
    return Trajectory(
        id="toy_1",
        turns=(
            Turn(
                "Move report.pdf to temp.",
                (
                    ToolCall("cd", {"folder": "document"}, "None"),
                    ToolCall("mv", {"source": "report.pdf", "destination": "temp"}, '{"result": "moved"}'),
                ),
            ),
            Turn("Say hello.", ()),
            Turn("List files.", (ToolCall("ls", {"a": True}, '{"current_directory_content": ["temp"]}'),)),
        ),
    )


def test_to_messages_pairs_every_tool_call_with_its_result() -> None:
    msgs = to_messages(_toy())
    ids = [c["id"] for m in msgs if isinstance(m, AIMessage) for c in m.tool_calls]
    results = [m for m in msgs if isinstance(m, ToolMessage)]
    assert ids == ["call_toy_1_0", "call_toy_1_1", "call_toy_1_2"]
    assert [m.tool_call_id for m in results] == ids
    for i, m in enumerate(msgs):  # each tool result directly follows the AI message that asked for it
        if isinstance(m, ToolMessage):
            prev = msgs[i - 1]
            assert isinstance(prev, AIMessage) and prev.tool_calls[0]["id"] == m.tool_call_id
            assert isinstance(m.content, str)
    assert sum(isinstance(m, HumanMessage) for m in msgs) == 3
    assert isinstance(msgs[-1], AIMessage) and not msgs[-1].tool_calls


def test_steps_are_prefixes_that_end_where_the_model_is_called() -> None:
    traj = _toy()
    all_steps = steps(traj)
    assert len(all_steps) == len(traj.calls) + len(traj.turns)
    full = to_messages(traj)
    for step in all_steps:
        ctx = to_messages(traj, upto_step=step.index)
        assert ctx == full[: step.n_messages]
        assert isinstance(ctx[-1], (HumanMessage, ToolMessage))  # the model is called after a user or tool message
        open_ids = {c["id"] for m in ctx if isinstance(m, AIMessage) for c in m.tool_calls}
        assert open_ids == {m.tool_call_id for m in ctx if isinstance(m, ToolMessage)}  # no orphan
        if step.call is not None:
            nxt = full[step.n_messages]
            assert isinstance(nxt, AIMessage) and nxt.tool_calls[0]["name"] == step.call.name
    assert [s.query for s in all_steps][:3] == ["Move report.pdf to temp."] * 3
    with pytest.raises(IndexError):
        to_messages(traj, upto_step=len(all_steps))


def test_scripted_responses_and_dict_round_trip() -> None:
    traj = _toy()
    responses = scripted_responses(traj)
    assert len(responses) == len(steps(traj))
    assert sum(bool(r.tool_calls) for r in responses) == len(traj.calls)
    assert trajectory_from_dict(trajectory_to_dict(traj)) == traj


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> list[Trajectory]:
    from bench.bfcl import default_cache_dir

    try:
        return load_trajectories(limit=2, cache_dir=default_cache_dir())
    except BFCLNotAvailableError as exc:
        pytest.skip(f"bfcl-eval wheel not available: {exc}")


def test_replay_produces_real_outputs(replayed: list[Trajectory]) -> None:
    assert len(replayed) == 2
    for traj in replayed:
        assert traj.id.startswith("multi_turn_long_context_")
        assert traj.turns and all(t.user_text.strip() for t in traj.turns)
        outputs = [c.output_text for c in traj.calls]
        assert outputs and all(isinstance(o, str) for o in outputs)
        assert not any(o.startswith("Error during execution") for o in outputs)
    assert max(len(c.output_text) for t in replayed for c in t.calls) > 1000  # long_context=True fills backends
    first = replayed[0].calls[0]
    assert (first.name, first.args) == ("cd", {"folder": "document"})


def test_replay_from_a_fresh_cache_matches_the_cached_one(replayed: list[Trajectory], tmp_path: Path) -> None:
    from bench.bfcl import default_cache_dir, fetch_source, replay

    root = fetch_source(default_cache_dir())  # the unzipped wheel is already there: no download
    fresh = replay(root, limit=2)
    assert fresh == replayed  # the backends are seeded: replays are deterministic


def test_argument_probes_find_values_copied_from_earlier_outputs() -> None:
    from bench.bfcl_probes import argument_probes, context_tokens, survived

    schema = {"name": "lock", "description": 'Lock doors. [Enum]: ["driver", "passenger"]', "parameters": {}}
    traj = Trajectory(
        id="toy_2",
        tools=(schema,),
        turns=(
            Turn("Book SFO to LAX.", (ToolCall("book", {"to": "LAX"}, '{"booking_id": "3426812", "door": "driver"}'),)),
            Turn(
                "Cancel it and lock up.",
                (
                    ToolCall("cancel", {"booking_id": "3426812", "to": "LAX"}, "{}"),
                    ToolCall("lock", {"door": ["driver"]}, "{}"),
                ),
            ),
        ),
    )
    probes = argument_probes(traj)
    # "LAX" came from the user, "driver" from the tool schema: only the booking id must be copied.
    assert [(p.label, p.value, p.source_call) for p in probes] == [("cancel.booking_id", "3426812", "book")]
    context = to_messages(traj, upto_step=probes[0].step)
    assert survived(context, probes) == [True]
    cleared = [m.model_copy(update={"content": "[cleared]"}) if isinstance(m, ToolMessage) else m for m in context]
    assert survived(cleared, probes) == [False]
    assert context_tokens(cleared) < context_tokens(context)
    assert not survived([HumanMessage("id 34268120")], probes)[0]  # whole tokens only
