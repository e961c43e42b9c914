"""Real long-horizon agent trajectories: BFCL v4 ``multi_turn_long_context``, replayed offline.

The Berkeley Function-Calling Leaderboard (``bfcl-eval`` wheel, Apache-2.0) ships multi-turn tasks, their
ground-truth tool calls and stdlib-only simulated backends (file system, trading bot, travel booking,
vehicle control, messaging, tickets, math). Executing the ground-truth calls against the backends loaded
with ``long_context=True`` (:mod:`bench._bfcl_replay`) gives real tool outputs (200 trajectories, 1,203
outputs, up to ~20k tokens each); they are cached as one ``.json.gz`` file.

Each model call of a replay is a :class:`Step`: the model is called once per ground-truth tool call (it
emits that call) and once more after the last tool result of a turn (it answers). :func:`to_messages`
gives the LangChain messages the model sees at a step; :func:`scripted_responses` gives what a scripted
fake model must return, in order, to replay the trajectory through a real agent.

Example:
    >>> from bench.bfcl import load_trajectories, steps, to_messages  # doctest: +SKIP
    >>> traj = load_trajectories(limit=1)[0]  # doctest: +SKIP
    >>> msgs = to_messages(traj, upto_step=len(steps(traj)) - 1)  # context of the last model call
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._bfcl_replay import (
    BACKEND_MODULES,
    BFCL_VERSION,
    CATEGORY,
    BFCLNotAvailableError,
    default_cache_dir,
    fetch_source,
    format_output,
    parse_call,
    replay_all,
)

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, BaseMessage

__all__ = [
    "BACKEND_MODULES",
    "BFCL_VERSION",
    "BFCLNotAvailableError",
    "Step",
    "ToolCall",
    "Trajectory",
    "Turn",
    "default_cache_dir",
    "fetch_source",
    "format_output",
    "load_trajectories",
    "parse_call",
    "replay",
    "scripted_responses",
    "steps",
    "to_messages",
    "trajectory_from_dict",
    "trajectory_to_dict",
]

_CACHE_FORMAT = 3


@dataclass(frozen=True)
class ToolCall:
    """One executed ground-truth call: ``name(**args)``, the backend's output as text, the backend class."""

    name: str
    args: dict[str, Any]
    output_text: str
    backend: str = ""


@dataclass(frozen=True)
class Turn:
    """One user request and the ground-truth calls that serve it."""

    user_text: str
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class Trajectory:
    """A replayed BFCL task: its id, its turns, the backends it uses and their tool schemas.

    ``tools`` are BFCL's function docs (``{"name", "description", "parameters", "response"}``; parameter
    types are BFCL's, e.g. ``"dict"`` for objects) of the involved backends, minus the task's excluded
    functions.
    """

    id: str
    turns: tuple[Turn, ...]
    involved_classes: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def calls(self) -> list[ToolCall]:
        """All calls, in order."""
        return [c for t in self.turns for c in t.calls]

    @property
    def main_backend(self) -> str:
        """The backend class that serves most of the calls."""
        counts: dict[str, int] = {}
        for c in self.calls:
            counts[c.backend] = counts.get(c.backend, 0) + 1
        return max(counts, key=lambda b: counts[b]) if counts else ""


@dataclass(frozen=True)
class Step:
    """One model call of a replay.

    Attributes:
        index: position among the trajectory's steps (``0`` = the first model call).
        turn: the turn it belongs to.
        n_messages: how many messages of the full transcript the model sees (a prefix).
        call: the ground-truth call the model makes at this step, or ``None`` for a turn's closing answer.
        call_index: that call's position in the trajectory (``-1`` for a closing answer).
        query: the latest user request at this step.
    """

    index: int
    turn: int
    n_messages: int
    call: ToolCall | None
    call_index: int
    query: str = field(repr=False)


def replay(root: Path, limit: int | None = None) -> list[Trajectory]:
    """Replay the tasks of an unzipped wheel (see :func:`fetch_source`) without touching the cache."""
    return [trajectory_from_dict(d) for d in replay_all(root, limit=limit)]


# -- cache -----------------------------------------------------------------------------------------
def load_trajectories(
    limit: int | None = None, cache_dir: Path | str | None = None, *, version: str = BFCL_VERSION
) -> list[Trajectory]:
    """The replayed BFCL v4 ``multi_turn_long_context`` trajectories, in task order.

    The first call downloads the wheel and replays all 200 tasks (~seconds), then caches them as
    ``<cache_dir>/bfcl_v4_multi_turn_long_context-<version>.json.gz``; later calls read that file.

    Args:
        limit: return only the first ``limit`` trajectories.
        cache_dir: where the wheel and the replay are cached (default :func:`default_cache_dir`).
        version: the ``bfcl-eval`` release.

    Raises:
        BFCLNotAvailableError: the wheel is neither cached nor downloadable.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"bfcl_v4_{CATEGORY}-{version}.json.gz"
    trajectories = _read_cache(path)
    if trajectories is None:
        trajectories = replay(fetch_source(cache, version))
        _write_cache(path, trajectories, version)
    return trajectories[:limit] if limit is not None else trajectories


def _read_cache(path: Path) -> list[Trajectory] | None:
    if not path.is_file():
        return None
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, ValueError):
        return None  # a torn or foreign file: replay again
    if raw.get("format") != _CACHE_FORMAT:
        return None
    return [trajectory_from_dict(t, raw.get("tools", {})) for t in raw["trajectories"]]


def _write_cache(path: Path, trajectories: Sequence[Trajectory], version: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    docs: dict[str, dict[str, Any]] = {}
    for t in trajectories:
        for d in t.tools:
            docs.setdefault(str(d.get("name")), d)
    payload = {
        "format": _CACHE_FORMAT,
        "version": version,
        "category": CATEGORY,
        "tools": docs,
        "trajectories": [trajectory_to_dict(t, with_tools=False) for t in trajectories],
    }
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh)
    tmp.replace(path)


def trajectory_to_dict(t: Trajectory, *, with_tools: bool = True) -> dict[str, Any]:
    """Plain JSON form: ``{id, involved_classes, tool_names, turns: [{user_text, calls: [{name, args,
    output_text, backend}]}]}`` (plus ``tools``, the schemas, unless ``with_tools=False``)."""
    out: dict[str, Any] = {
        "id": t.id,
        "involved_classes": list(t.involved_classes),
        "tool_names": [d.get("name") for d in t.tools],
        "turns": [
            {
                "user_text": u.user_text,
                "calls": [
                    {"name": c.name, "args": c.args, "output_text": c.output_text, "backend": c.backend}
                    for c in u.calls
                ],
            }
            for u in t.turns
        ],
    }
    if with_tools:
        out["tools"] = list(t.tools)
    return out


def trajectory_from_dict(d: dict[str, Any], tools_by_name: dict[str, dict[str, Any]] | None = None) -> Trajectory:
    """Inverse of :func:`trajectory_to_dict` (schemas from ``d["tools"]`` or looked up by name)."""
    if "tools" in d:
        tools = tuple(d["tools"])
    else:
        tools = tuple((tools_by_name or {})[n] for n in d.get("tool_names", ()) if n in (tools_by_name or {}))
    return Trajectory(
        id=d["id"],
        involved_classes=tuple(d.get("involved_classes", ())),
        tools=tools,
        turns=tuple(
            Turn(
                u["user_text"],
                tuple(ToolCall(c["name"], c["args"], c["output_text"], c.get("backend", "")) for c in u["calls"]),
            )
            for u in d["turns"]
        ),
    )


# -- LangChain view --------------------------------------------------------------------------------
def call_id(trajectory: Trajectory, n: int) -> str:
    """The tool-call id of the trajectory's ``n``-th call."""
    return f"call_{trajectory.id}_{n}"


def closing_text(turn: Turn) -> str:
    """The scripted final answer of a turn (the benchmark has no reference answers)."""
    return "Done." if turn.calls else "Nothing to do."


def _transcript(trajectory: Trajectory) -> Iterator[tuple[Any, Step | None]]:
    """Messages in order, each paired with the step whose model call *follows* it (if any)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    count = 0
    n = 0
    index = 0
    for t, turn in enumerate(trajectory.turns):
        count += 1
        pending: Any = HumanMessage(content=turn.user_text)
        for call in turn.calls:
            yield pending, Step(index, t, count, call, n, turn.user_text)
            index += 1
            cid = call_id(trajectory, n)
            yield (
                AIMessage(
                    content="",
                    tool_calls=[{"name": call.name, "args": call.args, "id": cid, "type": "tool_call"}],
                ),
                None,
            )
            pending = ToolMessage(content=call.output_text, tool_call_id=cid, name=call.name)
            count += 2
            n += 1
        yield pending, Step(index, t, count, None, -1, turn.user_text)
        index += 1
        yield AIMessage(content=closing_text(turn)), None
        count += 1


def steps(trajectory: Trajectory) -> list[Step]:
    """Every model call of the replay (one per ground-truth call, plus one closing answer per turn)."""
    return [s for _, s in _transcript(trajectory) if s is not None]


def to_messages(trajectory: Trajectory, upto_step: int | None = None) -> list[BaseMessage]:
    """LangChain messages of a replay: the whole transcript, or what the model sees at ``upto_step``.

    A user turn is a ``HumanMessage``; each call is an ``AIMessage`` with one ``tool_calls`` entry (id
    ``call_<trajectory id>_<n>``) followed by its ``ToolMessage``; a turn ends with a short ``AIMessage``.

    Raises:
        IndexError: ``upto_step`` is not a step of the trajectory.
    """
    messages = [m for m, _ in _transcript(trajectory)]
    if upto_step is None:
        return messages
    all_steps = steps(trajectory)
    if not -len(all_steps) <= upto_step < len(all_steps):
        raise IndexError(f"step {upto_step} out of range: {trajectory.id} has {len(all_steps)} steps")
    return messages[: all_steps[upto_step].n_messages]


def scripted_responses(trajectory: Trajectory) -> list[AIMessage]:
    """What a scripted model returns at each step, in order (feed it to a fake chat model)."""
    from langchain_core.messages import AIMessage

    return [m for m in to_messages(trajectory) if isinstance(m, AIMessage)]


def main() -> int:
    """``python -m bench.bfcl``: replay (or read the cache) and print a short summary."""
    trajectories = load_trajectories()
    outputs = [c.output_text for t in trajectories for c in t.calls]
    print(
        f"{len(trajectories)} trajectories, {len(outputs)} tool outputs, "
        f"{sum(len(o) for o in outputs):,} chars; cache: {default_cache_dir()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
