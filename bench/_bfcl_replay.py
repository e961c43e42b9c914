"""Fetching the ``bfcl-eval`` wheel and replaying its ground-truth calls against its own backends.

The wheel is downloaded with ``pip download --no-deps`` (its pinned dependencies are not wanted), unzipped
(data and backends only) and never installed; the backend modules are imported from the unzipped folder
by file path. Call strings are parsed with :mod:`ast` and never evaluated. :mod:`bench.bfcl` turns the
results into typed trajectories and caches them.

Example:
    >>> parse_call("cd(folder='document')")
    ('cd', [], {'folder': 'document'})
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BFCL_VERSION = "2026.3.23"  # pinned: the figures in bench/out are reproducible against this release
CATEGORY = "multi_turn_long_context"
_PKG = "bfcl_eval"
_BACKENDS = "bfcl_eval/eval_checker/multi_turn_eval/func_source_code"
# Class -> backend module, as in bfcl_eval/constants/executable_backend_config.py.
BACKEND_MODULES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system",
    "MathAPI": "math_api",
    "MessageAPI": "message_api",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
}
_STATELESS = frozenset({"MathAPI"})


class BFCLNotAvailableError(RuntimeError):
    """The ``bfcl-eval`` wheel could not be fetched (no package registry) or is not the expected one."""


# -- call strings ----------------------------------------------------------------------------------
def parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Parse a ground-truth call string such as ``"cd(folder='document')"`` without evaluating it.

    Args:
        text: one call, a plain function name applied to literal arguments.

    Returns:
        ``(name, positional_args, keyword_args)``; tuples and sets in literals stay Python values.

    Raises:
        ValueError: not a single call of a plain name, or an argument that is not a literal.

    Example:
        >>> parse_call("grep(file_name='final_report.pdf', pattern='budget analysis')")
        ('grep', [], {'file_name': 'final_report.pdf', 'pattern': 'budget analysis'})
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a call string: {text!r} ({exc.msg})") from exc
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a call of a plain function name: {text!r}")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    except ValueError as exc:
        raise ValueError(f"non-literal argument in call {text!r}") from exc
    if any(k.arg is None for k in node.keywords):
        raise ValueError(f"**kwargs are not supported in call {text!r}")
    return node.func.id, args, kwargs


def format_output(value: Any) -> str:
    """Tool output as the model sees it: strings as they are, JSON for data, ``str()`` otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


# -- fetching the wheel ----------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$AGENT_TOKRED_BFCL_CACHE`` or ``<agent_tokred cache>/bfcl``."""
    env = os.environ.get("AGENT_TOKRED_BFCL_CACHE")
    if env:
        return Path(env)
    from agent_tokred.models import cache_dir

    return cache_dir() / "bfcl"


def fetch_source(cache_dir: Path | None = None, version: str = BFCL_VERSION) -> Path:
    """Download (once) and unzip the ``bfcl-eval`` wheel's data and backends; return the unzipped root.

    Raises:
        BFCLNotAvailableError: ``pip download`` failed (no registry) and no wheel is cached.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache / f"bfcl_eval-{version}"
    if (root / _BACKENDS / "gorilla_file_system.py").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"bfcl_eval-{version}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(cache),
            f"bfcl-eval=={version}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BFCLNotAvailableError(f"could not run {' '.join(cmd)}: {exc}") from exc
        wheels = sorted(cache.glob(f"bfcl_eval-{version}-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise BFCLNotAvailableError(
                f"`pip download --no-deps bfcl-eval=={version}` failed (is a package registry reachable?): "
                + (tail if len(tail) <= 400 else tail[:200] + " … " + tail[-150:])
            )
    tmp = cache / f".unzip-{os.getpid()}"
    with zipfile.ZipFile(wheels[-1]) as zf:
        chain = _BACKENDS.split("/")
        inits = {"/".join([*chain[:d], "__init__.py"]) for d in range(1, len(chain))}
        wanted = [n for n in zf.namelist() if n.startswith((f"{_PKG}/data/", f"{_BACKENDS}/")) or n in inits]
        zf.extractall(tmp, members=wanted)  # zipfile strips absolute paths and ".." from member names
    if not (tmp / _BACKENDS / "gorilla_file_system.py").is_file():
        raise BFCLNotAvailableError(f"{wheels[-1].name} does not hold {_BACKENDS}/")
    if root.exists():  # another process unzipped it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(root)
    return root


# -- replay ----------------------------------------------------------------------------------------
def load_backends(root: Path) -> dict[str, type]:
    """Import the backend classes from the unzipped wheel by file path (nothing is installed).

    The backend modules import each other as ``bfcl_eval.eval_checker...``; that package chain is
    registered only while they load, from the unzipped folder, so no ``__init__`` with dependencies runs.
    """
    chain = _BACKENDS.split("/")
    before = set(sys.modules)
    classes: dict[str, type] = {}
    try:
        for depth in range(1, len(chain) + 1):
            name = ".".join(chain[:depth])
            if name in sys.modules:
                continue
            folder = root.joinpath(*chain[:depth])
            spec = importlib.util.spec_from_file_location(
                name, folder / "__init__.py", submodule_search_locations=[str(folder)]
            )
            if spec is None or spec.loader is None:
                raise BFCLNotAvailableError(f"cannot load package {name} from {folder}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        for cls, mod in BACKEND_MODULES.items():
            try:
                module = importlib.import_module(f"{'.'.join(chain)}.{mod}")
            except ImportError as exc:
                raise BFCLNotAvailableError(f"backend {mod} needs a missing module: {exc}") from exc
            classes[cls] = getattr(module, cls)
    finally:  # the loaded classes keep their module globals; the names need not stay registered
        for name in set(sys.modules) - before:
            if name == _PKG or name.startswith(f"{_PKG}."):
                del sys.modules[name]
    return classes


def replay_task(
    task: dict[str, Any],
    ground_truth: Sequence[Sequence[str]],
    backends: dict[str, type],
    func_docs: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Execute one task's ground-truth calls against fresh backends; the trajectory in its JSON form.

    The form is that of :func:`bench.bfcl.trajectory_to_dict`: ``{id, involved_classes, tools, turns: [{user_text,
    calls: [{name, args, output_text, backend}]}]}``.
    """
    methods: dict[str, tuple[str, Callable[..., Any]]] = {}
    for cls_name in task["involved_classes"]:
        if cls_name not in backends:
            raise ValueError(f"unknown BFCL backend {cls_name!r}; known: {', '.join(sorted(backends))}")
        instance = backends[cls_name]()
        if cls_name not in _STATELESS:
            config = copy.deepcopy(task.get("initial_config", {}).get(cls_name, {}))
            instance._load_scenario(config, long_context=True)
        for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
            if not name.startswith("_"):
                methods[name] = (cls_name, method)  # a later class wins a name clash, as in BFCL's executor
    turns: list[dict[str, Any]] = []
    questions = task["question"]
    if len(questions) != len(ground_truth):
        raise ValueError(f"{task['id']}: {len(questions)} turns but {len(ground_truth)} ground-truth turns")
    for messages, calls in zip(questions, ground_truth):
        user_text = "\n".join(m["content"] for m in messages if m.get("role") == "user")
        turns.append({"user_text": user_text, "calls": [_execute(c, methods) for c in calls]})
    excluded = set(task.get("excluded_function") or ())
    tools = [
        doc
        for cls in task["involved_classes"]
        for doc in (func_docs or {}).get(cls, [])
        if doc.get("name") not in excluded
    ]
    return {"id": task["id"], "involved_classes": list(task["involved_classes"]), "tools": tools, "turns": turns}


def _execute(call: str, methods: dict[str, tuple[str, Callable[..., Any]]]) -> dict[str, Any]:
    name, args, kwargs = parse_call(call)
    if name not in methods:
        output = f"Error during execution: name '{name}' is not defined"
        return {"name": name, "args": _jsonable(kwargs), "output_text": output, "backend": ""}
    backend, method = methods[name]
    try:
        bound = inspect.signature(method).bind(*args, **kwargs)
        named = dict(bound.arguments)
    except TypeError:
        named = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
    try:
        output = format_output(method(*args, **kwargs))
    except Exception as exc:  # the backend's own failure is part of the trajectory, as in BFCL
        output = f"Error during execution: {exc}"
    return {"name": name, "args": _jsonable(named), "output_text": output, "backend": backend}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else str(v)))


def replay_all(root: Path, category: str = CATEGORY, limit: int | None = None) -> list[dict[str, Any]]:
    """Replay every task of ``category`` (or the first ``limit``) from an unzipped wheel (JSON forms)."""
    data = root / _PKG / "data"
    tasks = _read_jsonl(data / f"BFCL_v4_{category}.json")[:limit]
    answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(data / "possible_answer" / f"BFCL_v4_{category}.json")}
    backends = load_backends(root)
    docs = load_func_docs(root)
    return [replay_task(t, answers[t["id"]], backends, docs) for t in tasks]


def load_func_docs(root: Path) -> dict[str, list[dict[str, Any]]]:
    """BFCL's function docs (tool schemas) per backend class."""
    folder = root / _PKG / "data" / "multi_turn_func_doc"
    return {cls: _read_jsonl(folder / f"{mod}.json") for cls, mod in BACKEND_MODULES.items()}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BFCLNotAvailableError(f"missing BFCL data file {path}")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
