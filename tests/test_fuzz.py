"""Fuzzing the public parsing entry points with bad bytes and broken structure.

Every entry point either returns its defined result or raises one of the documented error
classes (``TokredError`` and its subclasses; ``SystemExit(2)`` for CLI usage errors). Nothing else
escapes, and nothing in an input is ever evaluated. Counters per entry point (inputs tried,
exceptions by type) go to :data:`tests.strategies.STATS` for ``bench.bench_reliability``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langgraph.store.memory import InMemoryStore

from agent_tokred import InMemoryArchive, compress
from agent_tokred._jsonlike import parse_json_like
from agent_tokred.cli import main as cli_main
from agent_tokred.errors import TokredError
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.messages import reduce_messages
from agent_tokred.integration.policy import make_policy
from agent_tokred.integration.recall import make_recall_tool
from agent_tokred.overthinking import detect_overthinking, split_trace
from agent_tokred.tokens import resolve_counter
from tests.strategies import TEXT_KINDS, cases, compressor_for, make_text, tally

DOCUMENTED: tuple[type[BaseException], ...] = (TokredError,)
WORK = Path(tempfile.mkdtemp(prefix="agent-tokred-fuzz-"))
CANARY = WORK / "pwned"

# Inputs that would do something if they were ever evaluated, imported or unpickled.
PAYLOADS = (
    f"__import__('pathlib').Path({str(CANARY)!r}).write_text('x')",
    f"{{'a': __import__('pathlib').Path({str(CANARY)!r}).write_text('x')}}",
    f"[(lambda: open({str(CANARY)!r}, 'w'))()]",
    "{'a': [1] * 10**9}",
    "{'a': 9**9**9}",
    "\x80\x81\xfe\xff",
    "cos\nsystem\n(S'echo pwned'\ntR.",  # a pickle program
    "!!python/object/apply:os.system ['echo pwned']",
    '{"a": 1e999, "b": NaN, "c": -Infinity}',
    "```json\n{broken\n```",
    "\ufeff{\"bom\": true}",
)


# Nesting far past Python's recursion limit. One long run of one character is also one BPE piece, which
# the pure-Python tokenizer merges in quadratic time: these are run once each, not thousands of times.
DEEP = (
    "[" * 50_000 + "]" * 50_000,
    "{" * 20_000,
    '{"a": ' * 5000 + "1" + "}" * 5000,
    "(" * 10_000 + ")" * 10_000,
    "(" * 2000 + ")" * 2000,
    "[" * 3000 + "]" * 3000,
    '{"a": [' * 1500 + "1" + "]}" * 1500,
)


def record(entry: str, exc: BaseException | None) -> None:
    tally(f"fuzz:{entry}", inputs=1, **({f"exc:{type(exc).__name__}": 1} if exc is not None else {}))


def run_entry(entry: str, fn: Callable[[], Any], allowed: tuple[type[BaseException], ...] = DOCUMENTED) -> Any:
    """Call ``fn``; a documented error is recorded and swallowed, anything else fails the test."""
    try:
        result = fn()
    except allowed as exc:
        record(entry, exc)
        return None
    except BaseException as exc:
        record(entry, exc)
        raise AssertionError(f"{entry}: undocumented {type(exc).__name__}: {exc}") from exc
    record(entry, None)
    return result


def mutate(text: str, edits: list[tuple[float, int, str]]) -> str:
    """Apply edits (position as a fraction, operation, character) to ``text``."""
    chars = list(text)
    for where, op, ch in edits:
        pos = int(where * len(chars))
        if op == 0 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op == 1:
            chars.insert(pos, ch)
        elif chars:
            chars[min(pos, len(chars) - 1)] = ch
    return "".join(chars)


EDIT_CHARS = [*'{}[]":,\'\\ \n\x00\ud800é😀0-eE.nNtf', "…", "</think>", "<think>"]
edits = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2), st.sampled_from(EDIT_CHARS)), max_size=8)
structured = st.builds(make_text, st.sampled_from(["json", "records", "pyliteral", "fenced", "logs", "csv"]),
                       st.integers(0, 999), st.sampled_from(["s", "s", "m"]))
broken_json = st.one_of(st.builds(mutate, structured, edits), st.sampled_from(PAYLOADS))
any_text = st.one_of(st.text(max_size=300), broken_json,
                     st.builds(make_text, st.sampled_from(TEXT_KINDS), st.integers(0, 999), st.just("s")))
bad_bytes = st.one_of(st.binary(max_size=400), st.builds(lambda t, b: t.encode("utf-8", "surrogatepass")[:200] + b,
                                                         any_text, st.binary(max_size=8)))


def teardown_module() -> None:
    assert not CANARY.exists(), "an input was evaluated"


# -- JSON-like tool outputs -------------------------------------------------------------------------


@cases(2000)
@given(text=st.one_of(broken_json, st.text(max_size=200), st.sampled_from(DEEP)))
def test_parse_json_like_never_raises(text: str) -> None:
    result = run_entry("parse_json_like", lambda: parse_json_like(text), allowed=())
    assert result is None or (isinstance(result[0], (dict, list)) and result[1] in ("json", "jsonl", "pyliteral"))
    assert not CANARY.exists()


@cases(1200)
@given(text=broken_json, target=st.integers(1, 200), strategy=st.sampled_from(["auto", "compact"]))
def test_compress_broken_json(text: str, target: int, strategy: str) -> None:
    r = run_entry("compress(json-like)", lambda: compress(text, target_tokens=target, criterion="lexical",
                                                          strategy=strategy, archive=InMemoryArchive()))  # type: ignore[arg-type]
    if r is not None:
        assert r.tokens_after <= r.budget_tokens
        if parse_json_like(text) is not None and r.changed and r.text:
            json.loads(r.text)  # structured input, structured output


@pytest.mark.parametrize("text", DEEP[4:], ids=["parens-2000", "brackets-3000", "objects-1500"])
def test_compress_deeply_nested_input(text: str) -> None:
    r = run_entry("compress(json-like)", lambda: compress(text, target_tokens=50, criterion="lexical",
                                                          archive=InMemoryArchive()))
    assert r is not None and r.tokens_after <= 50
    if parse_json_like(text) is not None:
        json.loads(r.text)


@cases(1500)
@given(data=bad_bytes, target=st.integers(1, 100), query=st.one_of(st.none(), st.binary(max_size=40)))
def test_compress_bad_bytes(data: bytes, target: int, query: bytes | None) -> None:
    r = run_entry("compress(bytes)", lambda: compress(data, query=query.decode("utf-8", "replace") if query else None,
                                                      target_tokens=target, criterion="lexical",
                                                      archive=InMemoryArchive()))
    if r is not None:
        assert r.original == data.decode("utf-8") and r.tokens_after <= r.budget_tokens


@cases(600)
@given(value=st.one_of(st.integers(), st.floats(), st.none(), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.text(max_size=20)),
       rate=st.one_of(st.none(), st.floats(allow_nan=True)), target=st.one_of(st.none(), st.integers(-5, 5),
                                                                             st.floats(-1, 1)))
def test_compress_bad_arguments(value: Any, rate: Any, target: Any) -> None:
    run_entry("compress(args)", lambda: compress(value, rate=rate, target_tokens=target, criterion="lexical"))


# -- reasoning traces -----------------------------------------------------------------------------------

tags = st.sampled_from(["<think>", "</think>", "<thinking>", "</THINK>", "<think >", "Wait,", "\n\n", "42", "Answer: 7"])
traces = st.one_of(
    st.builds(lambda parts: "".join(parts), st.lists(st.one_of(tags, st.text(max_size=40)), max_size=12)),
    st.builds(mutate, st.builds(make_text, st.just("prose"), st.integers(0, 999), st.just("s")).map(
        lambda t: f"<think>{t}\nWait, check again: 4.</think>The answer is 4."), edits),
)
junk_blocks = st.lists(st.one_of(
    st.text(max_size=20), st.none(), st.integers(), st.booleans(),
    st.fixed_dictionaries({"type": st.sampled_from(["reasoning", "thinking", "text", "image", "summary"])},
                          optional={"reasoning": st.one_of(st.text(max_size=30), st.integers(), st.none()),
                                    "thinking": st.one_of(st.text(max_size=30), st.none()),
                                    "text": st.one_of(st.text(max_size=30), st.lists(st.text(max_size=3))),
                                    "summary": st.one_of(st.lists(st.one_of(st.none(), st.dictionaries(
                                        st.sampled_from(["text", "type"]), st.text(max_size=10)))), st.text())}),
), max_size=6)


@cases(1500)
@given(trace=st.one_of(traces, junk_blocks), question=st.one_of(st.none(), st.text(max_size=30)),
       untagged=st.sampled_from(["answer", "thinking"]))
def test_overthinking_traces(trace: Any, question: str | None, untagged: str) -> None:
    run_entry("split_trace", lambda: split_trace(trace, untagged=untagged))  # type: ignore[arg-type]
    result = run_entry("detect_overthinking",
                       lambda: detect_overthinking(trace, question=question, untagged=untagged))  # type: ignore[arg-type]
    if result is not None:
        assert result.thinking_tokens_after <= result.thinking_tokens_before


# -- the command line ---------------------------------------------------------------------------------------


def run_cli(entry: str, argv: list[str], stdin: bytes = b"") -> int:
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return cli_main(argv)

    code = run_entry(entry, call, allowed=(SystemExit,))
    return 2 if code is None else int(code)


@cases(400)
@given(data=st.one_of(bad_bytes, any_text.map(lambda t: t.encode("utf-8", "surrogatepass"))),
       flags=st.lists(st.sampled_from([["--target-tokens", "5"], ["--rate", "0.3"], ["--rate", "7"],
                                       ["--target-tokens", "0"], ["--json"], ["--criterion", "nope"],
                                       ["--criterion", "lexical"], ["--unit", "line"], ["--quiet"],
                                       ["--tokenizer", "approx"], ["--target-tokens", "x"]]), max_size=3))
def test_cli_compress(data: bytes, flags: list[list[str]]) -> None:
    path = WORK / "input.bin"
    path.write_bytes(data)
    argv = ["compress", str(path), *[a for f in flags for a in f]]
    if not any(f[0] in ("--target-tokens", "--rate") for f in flags):
        argv += ["--target-tokens", "20"]
    if not any(f[0] == "--criterion" for f in flags):
        argv += ["--criterion", "lexical"]
    assert run_cli("cli compress", argv) in (0, 2)


@cases(300)
@given(lines=st.lists(st.one_of(st.binary(max_size=60), st.builds(
    lambda t, q: json.dumps({"trace": t, "question": q}).encode(), traces, st.one_of(st.none(), st.text(max_size=9))),
    st.just(b'{"trace": 5}'), st.just(b"[1, 2]"), st.just(b"")), max_size=5),
    suffix=st.sampled_from([".jsonl", ".txt"]))
def test_cli_overthinking(lines: list[bytes], suffix: str) -> None:
    path = WORK / f"traces{suffix}"
    path.write_bytes(b"\n".join(lines))
    assert run_cli("cli overthinking", ["overthinking", str(path), "--json"]) in (0, 2)


# -- messages, policies, handles, tokenizers ------------------------------------------------------------

junk = st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=10), st.binary(max_size=5)),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
                        ["role", "content", "type", "tool_calls", "id", "tool_call_id"]), c, max_size=4)
                    | st.tuples(st.sampled_from(["human", "ai", "tool", "bogus"]), c), max_leaves=8)


@cases(800)
@given(messages=st.one_of(junk, st.lists(junk, max_size=5)))
def test_reduce_messages_junk(messages: Any) -> None:
    policy = make_policy(criterion="lexical", message_budget=5, call_budget=10)
    run_entry("reduce_messages(junk)", lambda: reduce_messages(messages, policy=policy, compressor=compressor_for(
        "o200k_base"), archive=InMemoryArchive()))


@cases(600)
@given(fields=st.dictionaries(st.sampled_from(["message_budget", "call_budget", "min_tokens", "strategy",
                                               "criterion", "query_source", "protected_tools", "timeout_s",
                                               "on_timeout", "archive_scope", "bogus"]), junk, max_size=3))
def test_make_policy_junk(fields: dict[str, Any]) -> None:
    run_entry("make_policy", lambda: make_policy(**fields))


@cases(800)
@given(handle=st.one_of(st.text(max_size=40), st.from_regex(r"tkr-[0-9a-f]{24}", fullmatch=True),
                        st.text(alphabet="tkr-0123456789abcdef\"' ", max_size=32)),
       offset=st.integers(-5, 10**6))
def test_recall_and_archive_with_any_handle(handle: str, offset: int) -> None:
    store = InMemoryStore()
    arc = StoreArchive(store, ("thread", "t"))
    real = arc.put("the original")
    tool = make_recall_tool(arc)
    answer = run_entry("recall tool", lambda: tool.invoke({"handle": handle, "offset": offset}))
    got = run_entry("StoreArchive.get", lambda: arc.get(handle))
    assert isinstance(answer, str) and (got is None or handle == real)
    if handle != real:
        assert "the original" not in answer


@cases(300)
@given(spec=st.one_of(st.text(max_size=20), st.sampled_from(["hf:", "hf:../../etc/passwd", "hf:/nonexistent",
                                                             "hf:gpt2", "o200k", "cl100k_base "])))
def test_resolve_counter_names(spec: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    counter = run_entry("resolve_counter", lambda: resolve_counter(spec), allowed=(TokredError, OSError))
    if counter is not None:
        assert counter.count("hello world") >= 1


def test_dict_messages_with_bad_bytes_are_refused_cleanly() -> None:
    policy = make_policy(criterion="lexical", message_budget=5)
    msgs: list[Any] = [{"role": "user", "content": "\ud800 broken"}, HumanMessage("ok")]
    out = run_entry("reduce_messages(junk)", lambda: reduce_messages(msgs, policy=policy, compressor=compressor_for(
        "o200k_base"), archive=InMemoryArchive()))
    assert out is not None and len(out[0]) == 2
