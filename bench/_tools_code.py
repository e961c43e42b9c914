"""Source-code cases: a file an agent reads (``cat``) to find a function, from pinned registry wheels.

How a case is made (``click`` and ``requests`` wheels, downloaded with ``pip download --no-deps``):

* **Text**: one module's source; when the module is longer than :data:`WINDOW_LINES` lines, a window of
  that many lines holding the function (seeded position), as a paged file read returns it.
* **Query**: what the function does, as a user would ask: "Which function does this: <summary>? Show me
  its signature." (the summary is the docstring's first paragraph, 4+ words; functions sharing one
  summary with another function of the module are left out).
* **Evidence**: the function's ``def`` line (stripped), the line an agent needs to name and call it.
  At most :data:`PER_MODULE` functions per module (seeded pick), so big modules do not dominate.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable

from ._tools_base import ToolCase
from ._tools_fetch import fetch_wheel

WHEELS: dict[str, tuple[str, str]] = {"click": ("8.1.8", "click/core.py"), "requests": ("2.32.3", "requests/api.py")}
WINDOW_LINES = 240
PER_MODULE = 6


def build() -> list[ToolCase]:
    """Every code case (all splits)."""
    cases: list[ToolCase] = []
    for project, (version, marker) in WHEELS.items():
        root = fetch_wheel(project, version, _python_files(project), marker)
        for path in sorted((root / project).rglob("*.py")):
            cases.extend(_module_cases(project, path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")))
    return cases


def _summary(doc: str) -> str:
    """The docstring's first paragraph on one line, without its final period."""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split()).rstrip(".")


def _python_files(project: str) -> Callable[[str], bool]:
    return lambda name: name.startswith(f"{project}/") and name.endswith(".py")


def _module_cases(project: str, rel: str, source: str) -> list[ToolCase]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            summary = _summary(ast.get_docstring(node) or "")
            if len(summary.split()) >= 4:
                found.append((node, summary))
    shared = {s for s in (f[1] for f in found) if sum(f[1] == s for f in found) > 1}
    found = [f for f in found if f[1] not in shared]  # two functions, one docstring: the query names neither
    rng = random.Random(rel)
    picked = sorted(rng.sample(found, k=min(PER_MODULE, len(found))), key=lambda f: f[0].lineno)
    cases = []
    for node, summary in picked:
        def_line = lines[node.lineno - 1].strip()
        if len(lines) > WINDOW_LINES:
            lo = max(0, min(node.lineno - 1 - rng.randrange(0, WINDOW_LINES // 2), len(lines) - WINDOW_LINES))
            text = "".join(lines[lo:lo + WINDOW_LINES])
        else:
            text = source
        if def_line not in text or len(text) < 200:
            continue
        query = f"Which function does this: {summary}? Show me its signature."
        cases.append(ToolCase("code", f"{rel}:{node.name}:{node.lineno}", query, text, (def_line,), "text"))
    return cases
