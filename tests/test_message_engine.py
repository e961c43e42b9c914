"""The message engine on its own: message units, no LangChain (the integration tests cover the adapters)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent_tokred import Compressor, InMemoryArchive
from agent_tokred.budget import MessageBudget
from agent_tokred.errors import UnknownNameError
from agent_tokred.messages import (
    ContextPolicy,
    MessageTally,
    MessageUnit,
    derive_query,
    make_parts,
    orphaned_tool_calls,
    reduce_units,
)
from agent_tokred.messages.passes import CompactToolOutputs, FitTotal, Squeeze
from agent_tokred.messages.state import ReductionState
from agent_tokred.strategies import STRATEGIES, resolve_strategy
from agent_tokred.tokens import resolve_counter

COMPRESSOR = Compressor(criterion="lexical")
TALLY = MessageTally(resolve_counter(None))


def log(i: int, lines: int = 200) -> str:
    return "\n".join(f"INFO {i} request served in {k} ms from cache shard {k % 7}" for k in range(lines))


def conversation(turns: int) -> list[MessageUnit]:
    units = [MessageUnit(role="system", content="You are a careful ops agent.", speaker="none")]
    for t in range(turns):
        units += [
            MessageUnit(role="human", content=f"check service {t}"),
            MessageUnit(role="ai", content="", speaker="assistant",
                        tool_calls=({"name": "logs", "args": {"service": t}, "id": f"c{t}"},)),
            MessageUnit(role="tool", content=log(t), tool_call_id=f"c{t}", name="logs"),
            MessageUnit(role="ai", content=f"service {t} is fine", speaker="assistant"),
        ]
    return units


def run(units: list[MessageUnit], total: int | None, **policy: object) -> tuple[list[MessageUnit], object]:
    pol = ContextPolicy(**policy)  # type: ignore[arg-type]
    parts = make_parts(pol, COMPRESSOR, InMemoryArchive(), TALLY)
    return reduce_units(units, parts, budget=pol.budget_for(total))


@pytest.mark.parametrize("total", [600, 900, 1500])
def test_units_are_held_to_the_total_with_pairs_intact(total: int) -> None:
    units = conversation(6)
    out, report = run(units, total, message_budget=300)
    assert TALLY.total(out) <= total
    assert report.within_budget and report.tokens_after == TALLY.total(out)  # type: ignore[attr-defined]
    assert orphaned_tool_calls(out) == []
    assert out[0] is units[0] and out[-1] is units[-1]  # system prompt and the last turn untouched


def test_reducing_the_output_again_changes_nothing() -> None:
    out, _ = run(conversation(6), 900, message_budget=300)
    again, report = run(out, 900, message_budget=300)
    assert [a is b for a, b in zip(again, out)] == [True] * len(out)
    assert report.messages == ()  # type: ignore[attr-defined]


def test_removed_pairs_leave_one_note_whose_handle_holds_the_originals() -> None:
    units = conversation(6)
    pol = ContextPolicy(message_budget=300)
    archive = InMemoryArchive()
    out, _ = reduce_units(units, make_parts(pol, COMPRESSOR, archive, TALLY), budget=pol.budget_for(600))
    notes = [u for u in out if u.action == "dropped_pair"]
    assert len(notes) >= 1, "a 600-token budget over six 300-token tool outputs must remove pairs"
    for note in notes:
        handle = str((note.mark or {})["handle"])
        assert handle in content_of(note)
        archived = json.loads(archive.get(handle) or "[]")
        assert archived and all(isinstance(d, dict) and "type" in d for d in archived)


def content_of(unit: MessageUnit) -> str:
    return unit.content if isinstance(unit.content, str) else json.dumps(unit.content)


def test_untouched_units_are_the_input_objects_and_edits_are_flagged() -> None:
    units = conversation(2)
    out, _ = run(units, None, message_budget=100)
    for before, after in zip(units, out):
        assert (after is before) is (not after.edited)
        if after.edited:
            assert after.role == "tool" and after.action == "compressed"
            assert TALLY.content(after) <= 100


def test_query_is_derived_once_by_source() -> None:
    units = [MessageUnit(role="human", content=" why is shard 3 slow? "),
             MessageUnit(role="ai", content="checking shard 3 latency", speaker="assistant")]
    assert derive_query(units, "human") == "why is shard 3 slow?"
    assert derive_query(units, "plan") == "checking shard 3 latency"
    assert derive_query(units, "human+plan") == "why is shard 3 slow?\nchecking shard 3 latency"
    assert derive_query(units, "none") is None
    note = MessageUnit(role="human", content="[agent-tokred: 2 earlier messages]", mark={"action": "dropped_pair"})
    assert derive_query([*units, note], "human") == "why is shard 3 slow?"


def test_one_budget_value_from_policy_to_plan() -> None:
    pol = ContextPolicy(message_budget=100, min_tokens=128, floor_tokens=40, call_budget=5000)
    budget = pol.budget_for(pol.call_budget)
    assert budget == MessageBudget(total=5000, per_message=100, min_tokens=128, floor_tokens=40)
    assert budget.message_limit == 128  # max(message_budget, min_tokens), computed in one place
    assert ContextPolicy(message_budget=None).budget_for(None).message_limit is None


def test_passes_compose_and_each_has_one_method() -> None:
    for step in (CompactToolOutputs(), Squeeze(("tool",)), FitTotal()):
        public = [n for n in dir(step) if not n.startswith("_") and callable(getattr(step, n))]
        assert public == ["apply"]
    units = conversation(3)
    pol = ContextPolicy(message_budget=200)
    state = ReductionState(units, make_parts(pol, COMPRESSOR, InMemoryArchive(), TALLY), pol.budget_for(None), None)
    CompactToolOutputs().apply(state)
    assert all(TALLY.content(u) <= 200 for u in state.kept() if u.role == "tool")


def test_strategy_registry_resolves_names_once() -> None:
    assert set(STRATEGIES) == {"auto", "prune", "compact", "merge"}
    assert callable(resolve_strategy("merge").planner)
    with pytest.raises(UnknownNameError, match="valid names: auto, compact, merge, prune"):
        resolve_strategy("shrink")
    with pytest.raises(ValueError, match="unknown strategy"):
        ContextPolicy(strategy="shrink")


def test_the_engine_imports_no_framework() -> None:
    code = ("import sys, agent_tokred.messages, agent_tokred.messages.passes; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langchain', 'langchain_core', 'langgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_remembered_units_follow_the_message() -> None:
    from langchain_core.messages import AIMessage, ToolMessage

    from agent_tokred.integration._units import to_message, to_units

    tool = ToolMessage("first output", tool_call_id="c1", name="logs")
    first = to_units([tool])[0]
    assert to_units([tool])[0] is first  # the same message: the same unit
    tool.content = "second output"  # a new content object: read again
    second = to_units([tool])[0]
    assert second is not first and second.content == "second output" and to_message(second) is tool
    call = AIMessage("", tool_calls=[{"name": "logs", "args": {}, "id": "c1"}])
    unit = to_units([call])[0]
    assert unit.role == "ai" and [c["id"] for c in unit.tool_calls] == ["c1"] and unit.speaker == "assistant"
    assert (unit.tool_call_id, unit.status, to_units([tool])[0].status) == ("", None, "success")
