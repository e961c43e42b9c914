"""The layers of docs/ARCHITECTURE.md, checked from the source: imports point down, no cycles.

Every module's imports are read with ``ast`` (function-level lazy imports and ``TYPE_CHECKING``
imports included: a lazy import is still a dependency). Each module is placed in a layer::

    apps         graphs/  memory/  demos/  bench/
    cli          agent_tokred.cli, __main__, _cli_apps, the sub-commands' ``cli`` modules
    integration  agent_tokred.integration (the only library code that may import langchain/langgraph)
    engines      compressor, overthinking, examples, _example_*, store, messages, learned training, report
    parts        units, tokens, criteria, strategies, budget, archive, models, errors, ...

A module may import its own layer or any layer below; modules must not import each other in a
cycle. Library modules stay under ``MAX_LINES`` lines and functions under ``MAX_PARAMETERS``
parameters (a public class's constructor with keyword-only options excepted). Known violations
in code owned elsewhere are listed in ``ALLOWED_*`` below, each with its reason, so that this test
passes today and fails on any new violation (and on a listed one that is gone, so the list only
shrinks).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("agent_tokred", "graphs", "memory", "demos", "bench")
LAYERS = ("parts", "engines", "integration", "cli", "apps")
RANK = {name: i for i, name in enumerate(LAYERS)}

_PARTS = (
    "units", "tokens", "_bpe", "_patterns", "_jsonlike", "_forms", "_validate", "_timeout", "criteria",
    "strategies", "budget", "archive", "models", "_model_paths", "_smollm2", "reduction", "errors",
    "learned", "learned.model", "learned.features", "learned.static",
)
_ENGINES = (
    "compressor", "overthinking", "examples", "_example_select", "_example_cluster", "store", "messages",
    "learned.data", "learned.distill", "learned.train", "report",
)
_CLI = ("cli", "__main__", "_cli_apps", "learned.cli", "overthinking.cli")
_LIBRARY_PLACES: dict[str, str] = {
    "agent_tokred.integration": "integration",
    **{f"agent_tokred.{m}": "parts" for m in _PARTS},
    **{f"agent_tokred.{m}": "engines" for m in _ENGINES},
    **{f"agent_tokred.{m}": "cli" for m in _CLI},
}
_FRAMEWORKS = ("langchain", "langchain_core", "langgraph", "langsmith")

# (importer, imported module) pairs that point up today, in code this change does not own.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

# Library modules outside agent_tokred.integration that import a framework today.
ALLOWED_FRAMEWORK: dict[str, str] = {}

# Import cycles (as sorted tuples of modules) that exist today in code this change does not own.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}

MAX_LINES = 400
MAX_PARAMETERS = 8

# Functions (module.qualname) over MAX_PARAMETERS today, in code this change does not own.
ALLOWED_LONG_SIGNATURES: dict[str, str] = {
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Every module of the library and the applications, by dotted name."""
    out: dict[str, Path] = {}
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "out" in path.relative_to(ROOT).parts:
                continue
            out[_module_name(path)] = path
    return out


def _imported(name: str, path: Path) -> Iterator[str]:
    """Dotted names a module imports (relative imports resolved).

    ``from m import sub`` yields ``m.sub`` when that is a module, and ``m`` itself only when some
    imported name is not a module (``from . import _bpe`` depends on ``_bpe``, not on the package).
    """
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names]
            if not all(sub in known for sub in subs):
                yield target
            yield from subs


@lru_cache(maxsize=1)
def graph() -> dict[str, frozenset[str]]:
    """Module -> the project modules it imports (the importing module itself left out)."""
    known = modules()
    out: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        targets = {t for t in _imported(name, path) if t in known and t != name}
        out[name] = frozenset(targets)
    return out


def framework_imports(name: str) -> set[str]:
    return {t for t in _imported(name, modules()[name]) if t.split(".")[0] in _FRAMEWORKS}


def layer_of(name: str) -> str | None:
    """The layer of a module: its longest placed prefix (``None`` when it is placed nowhere)."""
    if name.split(".")[0] in ("graphs", "memory", "demos", "bench"):
        return "apps"
    if name == "agent_tokred":
        return "engines"  # the package facade re-exports the compressor
    parts = name.split(".")
    for end in range(len(parts), 1, -1):
        place = _LIBRARY_PLACES.get(".".join(parts[:end]))
        if place is not None:
            return place
    if len(parts) == 2 and parts[1].startswith("_"):
        return "parts"  # an unlisted private helper at the top is a part (its imports are checked as one)
    return None


def _signatures(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, str | None]]:
    """``(qualname, function, enclosing class)`` for every function of a module, nested ones included."""
    work: list[tuple[ast.AST, str, str | None]] = [(tree, "", None)]
    while work:
        node, prefix, cls = work.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child, cls
                work.append((child, f"{prefix}{child.name}.", None))
            elif isinstance(child, ast.ClassDef):
                work.append((child, f"{prefix}{child.name}.", child.name))


def long_signatures() -> dict[str, int]:
    """Library functions over ``MAX_PARAMETERS`` (``self``/``cls``, ``*args`` and ``**kwargs`` not counted).

    A public class's ``__init__`` is exempt when at most one parameter besides ``self`` is
    positional and the rest are keyword-only options.
    """
    out: dict[str, int] = {}
    for name, path in modules().items():
        if not name.startswith("agent_tokred"):
            continue
        for qualname, fn, cls in _signatures(ast.parse(path.read_text(encoding="utf-8"))):
            positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args) if a.arg not in ("self", "cls")]
            count = len(positional) + len(fn.args.kwonlyargs)
            constructor = fn.name == "__init__" and cls is not None and not cls.startswith("_")
            if count > MAX_PARAMETERS and not (constructor and len(positional) <= 1):
                out[f"{name}.{qualname}"] = count
    return out


def long_modules() -> dict[str, int]:
    """Library modules over ``MAX_LINES`` lines."""
    sizes = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules().items()}
    return {n: size for n, size in sizes.items() if n.startswith("agent_tokred") and size > MAX_LINES}


def cycles() -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return sorted(found)


def upward_imports() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for name, targets in graph().items():
        for target in targets:
            a, b = layer_of(name), layer_of(target)
            if a is not None and b is not None and RANK[b] > RANK[a]:
                out[(name, target)] = f"{a} -> {b}"
    return out


def test_every_library_module_has_a_layer() -> None:
    unplaced = sorted(n for n in modules() if layer_of(n) is None)
    assert unplaced == [], f"place these modules in a layer in tests/test_architecture.py: {unplaced}"


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "agent_tokred.errors" in edges["agent_tokred.compressor"]
    # a function-level lazy import is an edge too
    assert "agent_tokred.models" in edges["agent_tokred.examples"]


def test_no_new_upward_import() -> None:
    found = upward_imports()
    new = sorted(set(found) - set(ALLOWED_UPWARD))
    assert new == [], "imports that point up a layer: " + "; ".join(f"{a} -> {b} ({found[(a, b)]})" for a, b in new)


def test_no_new_import_cycle() -> None:
    new = [c for c in cycles() if c not in ALLOWED_CYCLES]
    assert new == [], f"import cycles between modules: {new}"


def test_frameworks_only_in_integration_and_apps() -> None:
    offenders = sorted(
        n for n in modules()
        if layer_of(n) not in ("integration", "apps") and framework_imports(n) and n not in ALLOWED_FRAMEWORK
    )
    assert offenders == [], f"only agent_tokred.integration (and the apps) may import langchain/langgraph: {offenders}"


def test_the_library_never_edits_sys_path() -> None:
    """The installed library reaches the applications only as child processes (``python -m demos``)."""
    offenders = sorted(n for n in modules() if layer_of(n) != "apps" and "sys.path" in modules()[n].read_text())
    assert offenders == []


def test_no_new_function_over_the_parameter_limit() -> None:
    new = {n: c for n, c in long_signatures().items() if n not in ALLOWED_LONG_SIGNATURES}
    assert new == {}, f"functions over {MAX_PARAMETERS} parameters (group options in a dataclass): {new}"


def test_the_signature_check_sees_long_signatures() -> None:
    tree = ast.parse("class A:\n    def __init__(self, a, *, b, c, d, e, f, g, h, i): ...\n"
                     "class _B:\n    def __init__(self, a, *, b, c, d, e, f, g, h, i): ...\n"
                     "def outer():\n    def inner(a, b, c, d, e, f, g, h, i, **kw): ...\n")
    seen = {q: (len(fn.args.args) + len(fn.args.kwonlyargs), cls) for q, fn, cls in _signatures(tree)}
    assert seen == {"A.__init__": (10, "A"), "_B.__init__": (10, "_B"), "outer": (0, None), "outer.inner": (9, None)}


def test_no_library_module_over_the_line_limit() -> None:
    assert long_modules() == {}, f"modules over {MAX_LINES} lines (split by concept): {long_modules()}"


@pytest.mark.parametrize("kind", ["upward", "framework", "cycle", "signature"])
def test_allow_lists_only_shrink(kind: str) -> None:
    """A listed violation that is fixed must leave its allow-list (so it cannot come back unnoticed)."""
    if kind == "upward":
        stale = sorted(set(ALLOWED_UPWARD) - set(upward_imports()))
    elif kind == "framework":
        stale = sorted(n for n in ALLOWED_FRAMEWORK if n not in modules() or not framework_imports(n))
    elif kind == "signature":
        stale = sorted(set(ALLOWED_LONG_SIGNATURES) - set(long_signatures()))
    else:
        stale = sorted(set(ALLOWED_CYCLES) - set(cycles()))
    assert stale == [], f"fixed, remove from ALLOWED in tests/test_architecture.py: {stale}"
