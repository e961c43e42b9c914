"""Shared hypothesis strategies and checks for the reliability suites (issue 9).

Importing this module registers and loads the hypothesis profiles (``HYPOTHESIS_PROFILE``:
``ci``, the default, runs thousands of cases per property; ``dev`` a few dozen; both
deterministic) and gives:

* text strategies: prose, CJK, emoji, code, logs, JSON and JSON-like tool outputs, unicode noise,
  empty and huge texts;
* message strategies: conversations of system / human / AI / tool messages with tool calls (unique
  ids, results in any order), content blocks (text, image, reasoning), ``<think>`` traces, error
  results and protected tools;
* policy strategies for :class:`~agent_tokred.integration.policy.ContextPolicy`;
* the invariant checks every adapter test reuses (pairs, order, budgets, protections, recovery);
* :data:`STATS`, counters of cases run and data lost per property, read by ``bench.bench_reliability``.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_from_dict,
)

from agent_tokred import Compressor
from agent_tokred._validate import ensure_text
from agent_tokred.archive import Archive
from agent_tokred.errors import InvalidInputError
from agent_tokred.integration._content import (
    MessageTally,
    block_text,
    content_text,
    marker,
)
from agent_tokred.integration.conversation import ConversationPlan
from agent_tokred.integration.messages import orphaned_tool_calls
from agent_tokred.integration.policy import ContextPolicy, make_policy
from agent_tokred.integration.report import StepReport
from agent_tokred.tokens import resolve_counter

# -- profiles ---------------------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
_NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]  # CI time stays bounded when a case fails
settings.register_profile("ci", max_examples=1000, phases=_NO_SHRINK, **_COMMON)
settings.register_profile("dev", max_examples=25, **_COMMON)  # shrinks failures to a minimal case
settings.register_profile("bench", max_examples=1000, phases=_NO_SHRINK, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE = PROFILE if PROFILE in ("ci", "dev", "bench") else "ci"
_SCALE = {"ci": 1.0, "dev": 0.02, "bench": float(os.environ.get("AGENT_TOKRED_BENCH_SCALE", "1.0"))}


def examples(n_ci: int) -> int:
    """The example count for a test: ``n_ci`` under the ``ci`` profile, a few dozen under ``dev``."""
    return max(10, round(n_ci * _SCALE.get(PROFILE, 1.0)))


def cases(n_ci: int) -> settings:
    """Settings for one property test: the selected profile with ``examples(n_ci)`` cases.

    The profile is a parent, not loaded globally, so other test modules keep their own settings.
    """
    return settings(settings.get_profile(PROFILE), max_examples=examples(n_ci))


# -- counters for the reliability bench ----------------------------------------------------------------

STATS: defaultdict[str, Counter[str]] = defaultdict(Counter)
_STATS_LOCK = threading.Lock()


def tally(prop: str, **counts: int) -> None:
    """Add ``counts`` (``cases=1``, ``lost=0``, ...) to property ``prop``'s counters."""
    with _STATS_LOCK:
        STATS[prop].update(counts)


def _dump_stats() -> None:
    """Write :data:`STATS` to ``$AGENT_TOKRED_STATS_OUT`` at exit (read by ``bench.bench_reliability``)."""
    path = os.environ.get("AGENT_TOKRED_STATS_OUT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({k: dict(v) for k, v in STATS.items()}, fh, indent=1, sort_keys=True)


atexit.register(_dump_stats)


# -- texts ------------------------------------------------------------------------------------------
# Hypothesis draws the kind, size and a seed; the text itself is built by a seeded generator, which is
# far cheaper to draw than character by character (thousands of cases must fit the CI time budget).
# Raw hypothesis text (any code point but surrogates) is one of the kinds.

WORDS = (
    "the", "report", "server", "latency", "error", "user", "order", "shipped", "Paris", "database",
    "timeout", "retry", "budget", "token", "agent", "weather", "warehouse", "invoice", "42", "3.14",
    "ORD-1187", "2024-05-01", "https://example.com/a?b=1", "user@example.com", "0xdeadbeef",
    "東京", "天気", "データベース", "错误", "서버", "😀", "👍🏽", "👨‍👩‍👧", "🚀", "café", "naïve", "Ω",
)
CJK_CHARS = "日本語の文章です東京都天気予报错误数据库服务器请求超时한국어서버오류"
EMOJI = ("😀", "👍🏽", "🚀", "🔥", "✅", "❌", "👨‍👩‍👧", "🏳️‍🌈", "1️⃣")
TEXT_KINDS = ("prose", "cjk", "emoji", "mixed", "code", "logs", "json", "records", "pyliteral", "fenced",
              "csv", "empty", "blank")
SIZES = {"s": (1, 12), "m": (8, 30), "h": (100, 300)}


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 14))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?", "。", ":", ""])


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return rng.choice([None, True, 7, -3, 2.5, 10**12, "", rng.choice(WORDS), _sentence(rng)])
    if roll < 0.7:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return {rng.choice([*WORDS[:12], "id", "…"]): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


@lru_cache(maxsize=8192)
def make_text(kind: str, seed: int, size: str = "s") -> str:
    """A deterministic text of ``kind`` (see :data:`TEXT_KINDS`) and ``size`` (``s``, ``m``, ``h``)."""
    rng = random.Random(seed)
    n = rng.randint(*SIZES[size])
    if kind == "prose":
        return rng.choice([" ", "\n", "\n\n"]).join(_sentence(rng) for _ in range(n))
    if kind == "cjk":
        return "".join("".join(rng.choice(CJK_CHARS) for _ in range(rng.randint(3, 30))) + "。" for _ in range(n))
    if kind == "emoji":
        return " ".join("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 5))) for _ in range(n * 3))
    if kind == "mixed":
        return " ".join(rng.choice([_sentence(rng), "日本語のテキスト。", rng.choice(EMOJI), "\t", "\r\n"])
                        for _ in range(n * 2))
    if kind == "code":
        return "\n".join(f"def f_{i}(x):\n    return x * {i}  # {rng.choice(WORDS)}" for i in range(n))
    if kind == "logs":
        return "\n".join(f"2024-05-01 12:{i // 60 % 60:02d}:{i % 60:02d} "
                         f"{rng.choice(['INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'])} svc-{i} {_sentence(rng)}"
                         for i in range(n * 2))
    if kind == "csv":
        return "id,name,total,status\n" + "\n".join(f"{i},{rng.choice(WORDS)},{i * 2.5},ok" for i in range(n * 2))
    if kind in ("json", "pyliteral", "fenced"):
        value = {"data": [_json_value(rng) for _ in range(n)]} if rng.random() < 0.5 else [
            _json_value(rng) for _ in range(n)]
        if kind == "pyliteral":
            return repr(value)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.3, indent=rng.choice([None, 2]))
        return f"```json\n{text}\n```" if kind == "fenced" else text
    if kind == "records":
        return json.dumps({"results": [{"id": f"R-{i}", "title": _sentence(rng), "score": i / 7, "tags": ["a", "b"]}
                                       for i in range(n * 2)]}, ensure_ascii=False)
    if kind == "blank":
        return rng.choice([" ", "\n\n", "\t \n"])
    return ""


unicode_noise = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)  # any code point but surrogates
seeded_texts = st.builds(make_text, st.sampled_from(TEXT_KINDS), st.integers(0, 999),
                         st.sampled_from(["s"] * 14 + ["m"] * 5 + ["h"]))
small_texts = st.builds(make_text, st.sampled_from(TEXT_KINDS), st.integers(0, 999), st.just("s"))
texts = st.one_of(seeded_texts, seeded_texts, seeded_texts, seeded_texts, seeded_texts, unicode_noise)
word = st.sampled_from(WORDS)
sentence = st.builds(_sentence, st.integers(0, 999).map(random.Random))
prose = st.builds(make_text, st.just("prose"), st.integers(0, 999), st.sampled_from(["s", "m"]))


# -- messages ---------------------------------------------------------------------------------------

TOOL_NAMES = ("search", "read_logs", "get_weather", "run_sql", "recall")
IMAGE = {"type": "image", "url": "https://example.invalid/shot.png"}


@st.composite
def blocks(draw: Any, *, reasoning: bool = False) -> list[Any]:
    """A list content: text blocks, plain strings, an image, and (for AI messages) reasoning."""
    kinds = ["text", "text", "str", "image", *(["reasoning"] if reasoning else [])]
    out: list[Any] = []
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=4)):
        if kind == "image":
            out.append(dict(IMAGE))
        elif kind == "reasoning":
            out.append({"type": "reasoning", "reasoning": draw(prose)})
        elif kind == "str":
            out.append(draw(small_texts))
        else:
            out.append({"type": "text", "text": draw(texts)})
    return out


def contents(*, reasoning: bool = False) -> st.SearchStrategy[Any]:
    return st.one_of(texts, texts, texts, blocks(reasoning=reasoning))


@st.composite
def tool_output(draw: Any) -> dict[str, Any]:
    body = draw(contents())
    status = draw(st.sampled_from(["success", "success", "success", "error"]))
    if draw(st.integers(0, 9)) == 0:
        body = "Traceback (most recent call last):\n" + make_text("code", draw(st.integers(0, 99)))
    return {"content": body, "status": status}


@st.composite
def conversations(draw: Any, *, max_turns: int = 4, system: bool | None = None) -> list[BaseMessage]:
    """An orphan-free conversation (every tool call answered, results in any order)."""
    with_ids = draw(st.booleans())
    counter = iter(range(10_000))
    msgs: list[BaseMessage] = []

    def add(msg: BaseMessage) -> None:
        if with_ids:
            msg.id = f"m{len(msgs)}"
        msgs.append(msg)

    if system if system is not None else draw(st.booleans()):
        add(SystemMessage(draw(st.one_of(prose, st.just("You are a helpful agent.")))))
    for _ in range(draw(st.integers(1, max_turns))):
        add(HumanMessage(draw(contents())))
        for _ in range(draw(st.integers(0, 2))):
            calls = [
                {"name": draw(st.sampled_from(TOOL_NAMES)), "id": f"call_{next(counter)}",
                 "args": draw(st.dictionaries(st.sampled_from(["q", "id", "page"]), word | st.integers(0, 99),
                                              max_size=2))}
                for _ in range(draw(st.integers(1, 3)))
            ]
            text = draw(st.one_of(st.just(""), sentence, blocks(reasoning=True)))
            add(AIMessage(text, tool_calls=calls))
            for c in draw(st.permutations(calls)):
                out = draw(tool_output())
                add(ToolMessage(out["content"], tool_call_id=c["id"], name=c["name"], status=out["status"]))
        if draw(st.booleans()):
            kind = draw(st.integers(0, 3))
            answer = draw(prose)
            if kind == 0:
                add(AIMessage(f"<think>{draw(prose)}\nWait, let me check again. {answer}</think>{answer}"))
            elif kind == 1:
                add(AIMessage(answer, additional_kwargs={"reasoning_content": draw(prose)}))
            else:
                add(AIMessage(draw(contents(reasoning=True))))
    return msgs


TOKENIZERS = ("o200k_base", "o200k_base", "cl100k_base", "approx")


@st.composite
def policies(draw: Any, **fixed: Any) -> ContextPolicy:
    """A valid policy with the lexical criterion (structural invariants need no model)."""
    fields: dict[str, Any] = {
        "message_budget": draw(st.one_of(st.none(), st.integers(1, 400))),
        "call_budget": draw(st.one_of(st.none(), st.integers(1, 4000))),
        "context_budget": draw(st.one_of(st.none(), st.integers(1, 4000))),
        "min_tokens": draw(st.integers(0, 160)),
        "floor_tokens": draw(st.integers(1, 96)),
        "protect_last_n_turns": draw(st.integers(0, 3)),
        "protected_tools": draw(st.frozensets(st.sampled_from(["get_weather", "run_sql"]))),
        "keep_error_traces": draw(st.booleans()),
        "compress_text": draw(st.booleans()),
        "drop_pairs": draw(st.booleans()),
        "annotate": draw(st.booleans()),
        "query_source": draw(st.sampled_from(["human", "plan", "human+plan", "none"])),
        "strategy": draw(st.sampled_from(["auto", "auto", "prune", "compact", "merge"])),
        "tokenizer": draw(st.sampled_from(TOKENIZERS)),
        "message_overhead_tokens": draw(st.integers(0, 5)),
        "criterion": "lexical",
    }
    fields.update(fixed)
    return make_policy(**fields)


@lru_cache(maxsize=32)
def compressor_for(tokenizer: str, strategy: str = "auto") -> Compressor:
    return Compressor(criterion="lexical", strategy=strategy, tokenizer=tokenizer)  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def tally_for(tokenizer: str, overhead: int) -> MessageTally:
    return MessageTally(resolve_counter(tokenizer), overhead)


def policy_tally(policy: ContextPolicy) -> MessageTally:
    return tally_for(str(policy.tokenizer), policy.message_overhead_tokens)


# -- invariants ---------------------------------------------------------------------------------------
# The reducer may (1) replace a message by a marked, reduced copy (same type, id, tool calls), (2)
# replace a run of consecutive messages by one note (its own message, or folded into the AI text that
# follows the run), (3) leave whole groups out (recorded in the report with their handle). Expanding
# every note and reduced message through its handle, and adding the groups left out, must give back
# the input exactly, in order: that one walk checks order, "nothing else changed" and recovery.

NOTE = "dropped_pair"


def _key(msg: BaseMessage, content: Any = None) -> tuple[Any, ...]:
    calls = tuple((c.get("name"), c.get("id")) for c in getattr(msg, "tool_calls", None) or ())
    body = msg.content if content is None else content
    return (msg.type, json.dumps(body, sort_keys=True, ensure_ascii=False, default=str),
            getattr(msg, "tool_call_id", None), calls, msg.id)


def _archived_messages(text: str | None) -> list[BaseMessage] | None:
    if text is None:
        return None
    try:
        return list(messages_from_dict(json.loads(text)))
    except (ValueError, KeyError, TypeError):
        return None


def expand(
    inp: Sequence[BaseMessage], out: Sequence[BaseMessage], report: StepReport | None,
    get: Callable[[str], str | None],
) -> tuple[dict[int, int], int, int]:
    """Match the output back to the input; returns ``(origin of each non-note output, checked, lost)``.

    Asserts the order is kept and that nothing but reductions, notes and reported removals happened.
    """
    flat: list[tuple[tuple[Any, ...], int | None]] = []  # (key of an original, output index or None)
    checked = lost = 0
    for k, o in enumerate(out):
        mark = marker(o) or {}
        action = mark.get("action")
        if action == NOTE:
            checked += 1
            back = _archived_messages(get(str(mark.get("handle", ""))))
            assert str(mark.get("handle")) in content_text(o.content), "a note does not name its handle"
            if back is None:
                lost += 1
                continue
            host = bool(mark.get("host"))
            flat += [(_key(m), k if host and n == len(back) - 1 else None) for n, m in enumerate(back)]
        elif action in ("compressed", "squeezed"):
            checked += 1
            text = get(str(mark.get("handle", "")))
            if text is None:
                lost += 1
                continue
            content: Any = text
            if mark.get("content_type") == "blocks":
                content = json.loads(text)
            flat.append((_key(o, content), k))
        else:
            flat.append((_key(o), k))
    left_out: Counter[tuple[Any, ...]] = Counter()
    for rec in report.messages if report is not None else ():
        if rec.action == NOTE and rec.tokens_after == 0:
            back = _archived_messages(get(rec.handle))
            checked += 1
            if back is None:
                lost += 1
            else:
                left_out.update(_key(m) for m in back)
    origin: dict[int, int] = {}
    e = 0
    for i, src in enumerate(inp):
        key = _key(src)
        if e < len(flat) and flat[e][0] == key:
            if flat[e][1] is not None:
                origin[flat[e][1]] = i  # type: ignore[index]
            e += 1
        elif left_out[key] > 0:
            left_out[key] -= 1
        else:
            lost += 1
            raise AssertionError(f"input message {i} ({src.type}) is missing, changed or out of order")
    assert e == len(flat), "the output holds messages that are not in the input (or in another order)"
    assert not +left_out, "the report lists left-out messages that were not in the input"
    assert lost == 0, f"{lost} of {checked} reductions cannot be recovered exactly"
    return origin, checked, lost


def check_untouched(
    inp: Sequence[BaseMessage], out: Sequence[BaseMessage], origin: dict[int, int], policy: ContextPolicy
) -> None:
    """System prompts, the latest request, protected tools, error traces and recall results unchanged;
    human/AI messages of the protected last turns unchanged."""
    plan = ConversationPlan(list(inp), policy)
    kept = {i: out[k] for k, i in origin.items()}
    for j, src in enumerate(inp):
        keep = plan.fixed[j] or j == plan.latest_human or (
            plan.turn[j] in plan.protected_turns and plan.roles[j] in ("human", "ai"))
        if keep:
            assert kept.get(j) == src, f"protected message {j} ({plan.roles[j]}) was changed or removed"


def refusable(msg: BaseMessage) -> bool:
    """True when some text of ``msg`` is not text (binary-looking): the library leaves such messages whole."""
    content = msg.content
    parts = [content] if isinstance(content, str) else [block_text(b) for b in content] if isinstance(
        content, list) else []
    for part in parts:
        if part is None:
            continue
        try:
            ensure_text(part)
        except InvalidInputError:
            return True
    return False


def check_message_budget(
    inp: Sequence[BaseMessage], out: Sequence[BaseMessage], origin: dict[int, int], policy: ContextPolicy,
    report: StepReport | None,
) -> None:
    """Each compressible tool output over its limit is held to ``message_budget`` (or reported skipped)."""
    if policy.message_budget is None:
        return
    tally_ = policy_tally(policy)
    plan = ConversationPlan(list(inp), policy)
    limit = max(policy.message_budget, policy.min_tokens)
    skipped = {r.index for r in (report.messages if report else ()) if r.action == "skipped"}
    for k, j in origin.items():
        src, o = inp[j], out[k]
        if plan.roles[j] != "tool" or plan.fixed[j] or marker(src) is not None:
            continue
        if tally_.content(src) > limit and j not in skipped and not (report is None and refusable(src)):
            assert tally_.content(o) <= policy.message_budget, (
                f"tool output {j}: {tally_.content(o)} tokens > message budget {policy.message_budget}")


def check_call_budget(
    inp: Sequence[BaseMessage], out: Sequence[BaseMessage], origin: dict[int, int], policy: ContextPolicy,
    report: StepReport, budget: int | None,
) -> None:
    """The report is truthful; a call over budget only when even leaving out everything removable
    could not make it fit (with pair dropping on)."""
    tally_ = policy_tally(policy)
    total = tally_.total(out)
    assert report.tokens_after == total and report.tokens_before == tally_.total(inp)
    if budget is None:
        return
    assert report.within_budget == (total <= budget)
    if total <= budget:
        return
    assert getattr(report, "note", "x"), "an over-budget call does not say why"
    plan = ConversationPlan(list(inp), policy)
    groups = getattr(plan, "drop_groups", None)
    if not policy.drop_pairs or groups is None:
        return
    where = {j: k for k, j in origin.items()}
    removable = sum(tally_.count(o) for o in out if (marker(o) or {}).get("action") == NOTE)
    for group in groups(text=policy.compress_text):
        if all(j in where and (marker(out[where[j]]) or {}).get("action") != NOTE for j in group):
            removable += sum(tally_.count(out[where[j]]) for j in group)
    assert total - removable > budget, (
        f"over budget ({total} > {budget}) although leaving out {removable} removable tokens would fit")


def check_conversation(
    inp: Sequence[BaseMessage], out: Sequence[BaseMessage], archive: Archive, policy: ContextPolicy,
    report: StepReport | None, *, budget: int | None = None, prop: str = "reduce_messages",
    get: Callable[[str], str | None] | None = None,
) -> dict[int, int]:
    """All structural invariants of one reduction; returns the origin map. Updates :data:`STATS`."""
    before = set(orphaned_tool_calls(inp))
    assert set(orphaned_tool_calls(out)) <= before, "the reduction created an orphaned tool call or result"
    origin, checked, lost = expand(inp, out, report, get or archive.get)
    check_untouched(inp, out, origin, policy)
    check_message_budget(inp, out, origin, policy, report)
    if report is not None:
        check_call_budget(inp, out, origin, policy, report, budget)
    tally(prop, cases=1, reduced=checked, lost=lost, changed=int(list(out) != list(inp)),
          over_budget=int(report is not None and not report.within_budget))
    return origin
