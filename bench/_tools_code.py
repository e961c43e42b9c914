"""Source-code cases: a file an agent reads (``cat``) to find a function, from pinned registry wheels.

How a case is made (``click`` and ``requests`` wheels, downloaded with ``pip download --no-deps``):

* **Text**: one module's source; when the module is longer than :data:`WINDOW_LINES` lines, a window of
  that many lines holding the function (seeded position), as a paged file read returns it.
* **Query**: what the function does, as a user would ask: "Which function <docstring summary, first
  letter lowered>? Show me its signature." (the first line of the function's docstring, 4+ words).
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
            doc = ast.get_docstring(node)
            summary = doc.strip().splitlines()[0].strip().rstrip(".") if doc else ""
            if len(summary.split()) >= 4:
                found.append((node, summary))
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
        query = f"Which function {summary[:1].lower()}{summary[1:]}? Show me its signature."
        cases.append(ToolCase("code", f"{rel}:{node.name}:{node.lineno}", query, text, (def_line,), "text"))
    return cases
