"""Demo 1: a tool-using agent on BFCL v4 long-context tasks, with ``TokenReductionMiddleware``.

The agent is a real ``create_agent`` graph with the middleware (tool outputs held to 1,000 tokens when
they arrive, lexical criterion, ``recall`` tool added). Offline (the default) it is **replayed**: a
scripted chat model emits BFCL's ground-truth calls and the tools return the outputs those calls
produced on BFCL's simulated backends (real outputs, up to ~20k tokens). With ``model="provider:name"``
a real chat model (``init_chat_model``, keys from the environment) drives the agent against live
backends instead.

Context without agent-tokred is what the same run would have shown the model with every tool output
whole (the raw outputs are recorded as they leave the tools). Task-success signal: **argument
survival**, the share of later call arguments copied from earlier tool outputs (ids, names, paths)
that are still in the context the model sees when it needs them.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from agent_tokred.report.records import ItemRecord, RunRecord, StepRecord, segments_from_texts

from ._agent import Recorder
from ._common import DemoResult, DemoSkipped, context_by_component, count, pct, progress

NAME = "tools"
TITLE = "1. Tool agent (BFCL v4 long context)"
MESSAGE_BUDGET = 1000
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "int": "integer", "str": "string",
          "bool": "boolean", "list": "array"}


def _json_schema(node: Any) -> Any:
    """BFCL's parameter docs as JSON Schema (BFCL writes ``dict``/``float``/``tuple``/``any``)."""
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "type" and isinstance(v, str):
            if v != "any":
                out["type"] = _TYPES.get(v, v)
        else:
            out[k] = _json_schema(v)
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {}
    return out


def tool_schema(doc: dict[str, Any]) -> dict[str, Any]:
    params = _json_schema(doc.get("parameters") or {"type": "dict", "properties": {}})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return params


def replay_tools(trajectory: Any) -> list[Any]:
    """One tool per BFCL function; each returns, in order, the outputs recorded for its calls."""
    from langchain_core.tools import StructuredTool

    queues: dict[str, deque[str]] = {}
    for call in trajectory.calls:
        queues.setdefault(call.name, deque()).append(call.output_text)
    docs = {str(d["name"]): d for d in trajectory.tools}
    tools = []
    for name in sorted(set(docs) | set(queues)):
        doc = docs.get(name, {"description": name, "parameters": {}})

        def run(_name: str = name, **_kwargs: Any) -> str:
            queue = queues.get(_name)
            return queue.popleft() if queue else f"Error during execution: no recorded output for {_name}"

        tools.append(StructuredTool(name=name, description=str(doc.get("description", name))[:1024],
                                    args_schema=tool_schema(doc), func=run))
    return tools


def _bfcl_part(name: str) -> Any:
    """A name of the BFCL replay code (bench/), wherever it lives now."""
    for module in ("bench._bfcl_replay", "bench.bfcl"):
        try:
            found = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(found, name):
            return getattr(found, name)
    raise DemoSkipped(f"the BFCL replay code in bench/ has no {name!r}")


def live_tools(trajectory: Any) -> list[Any]:
    """Tools bound to fresh BFCL backends loaded with the task's long-context scenario."""
    from langchain_core.tools import StructuredTool

    fetch_source, load_backends, format_output = (_bfcl_part(n) for n in ("fetch_source", "load_backends",
                                                                          "format_output"))
    category, stateless = _bfcl_part("CATEGORY"), _bfcl_part("_STATELESS")
    root = fetch_source()
    path = root / "bfcl_eval" / "data" / f"BFCL_v4_{category}.json"
    task = next(json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln)["id"] == trajectory.id)
    backends = load_backends(root)
    methods: dict[str, Callable[..., Any]] = {}
    for cls in task["involved_classes"]:
        inst = backends[cls]()
        if cls not in stateless:
            inst._load_scenario(copy.deepcopy(task.get("initial_config", {}).get(cls, {})), long_context=True)
        methods.update({n: m for n, m in inspect.getmembers(inst, predicate=inspect.ismethod) if not n.startswith("_")})
    tools = []
    for doc in trajectory.tools:
        name = str(doc["name"])
        if name not in methods:
            continue

        def run(_m: Callable[..., Any] = methods[name], **kwargs: Any) -> str:
            try:
                return format_output(_m(**kwargs))
            except Exception as exc:  # the backend's own failure is shown to the model, as in BFCL
                return f"Error during execution: {exc}"

        tools.append(StructuredTool(name=name, description=str(doc.get("description", name))[:1024],
                                    args_schema=tool_schema(doc), func=run))
    return tools


def pick(trajectories: Sequence[Any], quick: bool) -> list[Any]:
    """The longest trajectories (by tool-output tokens, with copied-argument probes), per backend."""
    from bench.bfcl_probes import argument_probes

    per_backend = 1 if quick else 2
    backends = ("TradingBot", "VehicleControlAPI") if quick else (
        "TradingBot", "GorillaFileSystem", "VehicleControlAPI", "TravelAPI")
    chosen = []
    for backend in backends:
        pool = [t for t in trajectories if t.main_backend == backend and len(argument_probes(t)) >= 2]
        pool.sort(key=lambda t: (-sum(len(c.output_text) for c in t.calls), t.id))
        if quick:  # the quick run keeps to mid-sized trajectories
            pool = [t for t in pool if sum(len(c.output_text) for c in t.calls) < 40_000] or pool
        chosen += pool[:per_backend]
    return chosen


def _copied_args_survival(rec: Recorder) -> tuple[int, int]:
    """Model-driven runs: of the call arguments copied from earlier tool outputs, how many were in view."""
    from bench.bfcl_probes import contains, message_text

    found = total = 0
    for i, view in enumerate(rec.views[1:], 1):
        raw = rec.raw_view(i)
        nxt = rec.states[i + 1] if i + 1 < len(rec.states) else None
        calls = [c for m in (nxt or [])[len(rec.states[i]):] for c in getattr(m, "tool_calls", None) or []]
        raw_text = "\n".join(message_text(m) for m in raw if getattr(m, "type", "") == "tool")
        seen = "\n".join(message_text(m) for m in view)
        for c in calls:
            for v in (str(x) for x in c["args"].values() if isinstance(x, (str, int, float)) and not isinstance(x, bool)):
                if len(v) >= 3 and contains(raw_text, v):
                    total += 1
                    found += contains(seen, v)
    return found, total


def run(quick: bool, model: str | None = None) -> DemoResult:
    """Run the demo; see the module docstring."""
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from agent_tokred.integration.fake_model import ScriptedChatModel
    from agent_tokred.integration.middleware import TokenReductionMiddleware

    try:
        from bench.bfcl import BFCLNotAvailableError, load_trajectories, scripted_responses
        from bench.bfcl_probes import argument_probes, survived
    except ImportError as exc:
        raise DemoSkipped(f"bench/bfcl.py is not available: {exc}") from exc
    try:
        trajectories = pick(load_trajectories(), quick)
    except BFCLNotAvailableError as exc:
        raise DemoSkipped(f"BFCL v4 data is not available: {exc}") from exc
    started = time.perf_counter()
    steps: list[StepRecord] = []
    items: list[ItemRecord] = []
    probes_with: list[bool] = []
    probes_without: list[bool] = []
    copied = [0, 0]
    for traj in progress(trajectories, "demo 1: BFCL trajectories"):
        if model:
            from langchain.chat_models import init_chat_model

            chat: Any = init_chat_model(model)
            tools = live_tools(traj)
        else:
            chat = ScriptedChatModel(script=scripted_responses(traj))
            tools = replay_tools(traj)
        rec = Recorder()
        tokred = TokenReductionMiddleware(message_budget=MESSAGE_BUDGET, criterion="lexical", trace_metadata=False)
        agent = create_agent(chat, tools, middleware=[tokred, rec.middleware], checkpointer=InMemorySaver(),
                             store=InMemoryStore())
        config: RunnableConfig = {"configurable": {"thread_id": traj.id}, "recursion_limit": 100}
        for turn in traj.turns:
            agent.invoke({"messages": [HumanMessage(turn.user_text)]}, config)
        base = len(steps)
        for i, view in enumerate(rec.views):
            before = context_by_component(rec.raw_view(i))
            after = context_by_component(view)
            label = f"{traj.id.rsplit('_', 1)[-1]}#{i}"
            steps.append(StepRecord.from_counts(base + i, before, after, label=label, group=traj.id))
        if not model:
            probes = argument_probes(traj)
            for p in probes:
                probes_with += survived(rec.views[p.step], [p])
                probes_without += survived(rec.raw_view(p.step), [p])
        else:
            found, total = _copied_args_survival(rec)
            copied[0] += found
            copied[1] += total
        final = agent.get_state(config).values["messages"]
        for m in final:
            original = rec.raw_outputs.get(m.tool_call_id) if getattr(m, "type", "") == "tool" else None
            if original is not None and m.content != original and len(items) < 16:
                seen_at = rec.step_of_tool_call(m.tool_call_id)
                step = None if seen_at is None else base + seen_at
                handle = ((m.response_metadata or {}).get("agent_tokred") or {}).get("handle", "")
                items.append(ItemRecord(
                    title=f"{traj.id}: tool output of {m.name}", segments=segments_from_texts(original, m.content),
                    tokens_before=count(original), tokens_after=count(m.content), step=step, kind="tool outputs",
                    handle=str(handle)))
    if model:
        survival_with = copied[0] / copied[1] if copied[1] else 1.0
        signal, without, with_ = "copied args in view", "100.0%", pct(survival_with)
        mode = f"model-driven: {model}"
    else:
        survival_with = sum(probes_with) / len(probes_with) if probes_with else 1.0
        survival_without = sum(probes_without) / len(probes_without) if probes_without else 1.0
        signal, without, with_ = "argument survival", pct(survival_without), pct(survival_with)
        mode = "replayed (scripted model emits BFCL ground-truth calls)"
    run_record = RunRecord(
        name=NAME, title=TITLE, steps=tuple(steps), items=tuple(items), mode=mode,
        description=(f"{len(trajectories)} BFCL v4 multi_turn_long_context tasks through create_agent + "
                     f"TokenReductionMiddleware(message_budget={MESSAGE_BUDGET}, criterion='lexical'); "
                     "steps of all tasks one after another. Tool outputs are the real outputs of BFCL's "
                     "simulated backends."),
        metrics=((signal, f"{without} → {with_}"),
                 ("probes" if not model else "copied args", str(len(probes_with) if not model else copied[1]))),
        seconds=time.perf_counter() - started,
    )
    raw = {"trajectories": [t.id for t in trajectories], "signal": signal, "with": survival_with,
           "probes": len(probes_with) if not model else copied[1], "mode": mode}
    return DemoResult(run_record, signal, without, with_, raw)
