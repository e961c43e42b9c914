"""Property-based tests: every middleware and node keeps the message-sequence contracts.

Over generated conversations (system / human / AI / tool messages, tool calls with ids answered in
any order, content blocks, reasoning, empty and huge messages, CJK and emoji, JSON and code tool
outputs) and generated policies, each adapter must:

* never create an orphaned tool call or tool result;
* keep the messages in order (some reduced, some tool-call pairs replaced by one note, nothing else);
* hold tool outputs to ``message_budget`` and the call to its budget, or have exhausted every
  reduction the policy allows (and say so in the report);
* leave system prompts, the latest request, protected tools, error traces and the protected last
  turns untouched;
* be idempotent on its own output;
* keep every removed text recoverable through its handle (also through the recall tool).

Counts: ``HYPOTHESIS_PROFILE=ci`` (default) runs thousands of cases per property in total;
``HYPOTHESIS_PROFILE=dev`` a few dozen. ``bench.bench_reliability`` reports the figures.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain.agents.middleware.types import ModelRequest, ModelResponse
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.store.memory import InMemoryStore

from agent_tokred import InMemoryArchive, compress
from agent_tokred._jsonlike import parse_json_like
from agent_tokred.archive import Archive
from agent_tokred.errors import InvalidInputError
from agent_tokred.integration._content import content_text, marker
from agent_tokred.integration.archive import StoreArchive
from agent_tokred.integration.conversation import ConversationPlan
from agent_tokred.integration.documents import reduce_documents
from agent_tokred.integration.fake_model import ScriptedChatModel
from agent_tokred.integration.messages import orphaned_tool_calls, reduce_messages
from agent_tokred.integration.middleware import StickyTokenReductionMiddleware, TokenReductionMiddleware
from agent_tokred.integration.nodes import compress_reasoning_node, compress_tool_messages_node, make_pre_model_hook
from agent_tokred.integration.policy import ContextPolicy
from agent_tokred.integration.recall import make_recall_tool
from agent_tokred.overthinking import split_trace
from agent_tokred.strategies.structured import OMITTED_KEY
from agent_tokred.strategies.text_merge import hashed_embeddings
from agent_tokred.tokens import resolve_counter
from tests.strategies import (
    TOKENIZERS,
    cases,
    check_conversation,
    compressor_for,
    conversations,
    policies,
    policy_tally,
    small_texts,
    tally,
    texts,
)


@pytest.fixture(autouse=True, scope="module")
def _hashed_merge_embeddings() -> Iterator[None]:
    """The merge strategy embeds with MiniLM when installed; structure does not depend on the model."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("agent_tokred.strategies.text_merge._embed", lambda texts, embedder: hashed_embeddings(texts))
        yield


def scaled(policy: ContextPolicy, msgs: Sequence[BaseMessage], frac: float, field: str = "call_budget") -> ContextPolicy:
    """``policy`` with ``field`` set to ``frac`` of the conversation's size (budgets that bite)."""
    total = policy_tally(policy).total(msgs)
    return policy.model_copy(update={field: max(1, int(frac * total))})


def recall_exact(archive: Archive, handle: str) -> str | None:
    """What the recall tool returns for ``handle`` (one page holds any original here)."""
    answer = make_recall_tool(archive, page_chars=10**8).invoke({"handle": handle})
    return None if str(answer).startswith("No original is archived") else str(answer)


FRACTIONS = st.one_of(st.none(), st.floats(0.02, 1.3))


# -- the pure core ------------------------------------------------------------------------------------


@cases(700)
@given(msgs=conversations(), policy=policies(), frac=FRACTIONS)
def test_reduce_messages_invariants(msgs: list[BaseMessage], policy: ContextPolicy, frac: float | None) -> None:
    if frac is not None:
        policy = scaled(policy, msgs, frac)
    arc = InMemoryArchive()
    snapshot = [m.model_copy(deep=True) for m in msgs]
    comp = compressor_for(str(policy.tokenizer), policy.strategy)
    out, report = reduce_messages(msgs, policy=policy, compressor=comp, archive=arc, tally=policy_tally(policy))
    assert msgs == snapshot, "the input list was modified"
    check_conversation(msgs, out, arc, policy, report, budget=policy.call_budget,
                       get=(lambda h: recall_exact(arc, h)) if len(msgs) % 4 == 0 else None)
    again, second = reduce_messages(out, policy=policy, compressor=comp, archive=arc, tally=policy_tally(policy))
    assert again == out and not second.changed, "not idempotent on its own output"
    tally("idempotent", cases=1)


# -- agent middleware ----------------------------------------------------------------------------------


def split_system(msgs: list[BaseMessage]) -> tuple[SystemMessage | None, list[BaseMessage]]:
    if msgs and isinstance(msgs[0], SystemMessage):
        return msgs[0], msgs[1:]
    return None, msgs


@cases(350)
@given(msgs=conversations(), policy=policies(), frac=FRACTIONS, use_async=st.booleans())
def test_middleware_model_call_invariants(
    msgs: list[BaseMessage], policy: ContextPolicy, frac: float | None, use_async: bool
) -> None:
    if frac is not None:
        policy = scaled(policy, msgs, frac)
    store = InMemoryStore()
    mw = TokenReductionMiddleware(policy, store=store)
    system, rest = split_system(msgs)
    seen: list[ModelRequest] = []

    def handler(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        return ModelResponse(result=[AIMessage("ok")])

    async def ahandler(request: ModelRequest) -> ModelResponse:
        return handler(request)

    request = ModelRequest(model=ScriptedChatModel(), messages=cast(Any, list(rest)), system_message=system,
                           state=cast(Any, {"messages": msgs}))
    if use_async:
        asyncio.run(mw.awrap_model_call(request, ahandler))
    else:
        mw.wrap_model_call(request, handler)
    assert request.messages == rest and request.system_message is system  # the request is not modified
    view = seen[0]
    out = [view.system_message, *view.messages] if view.system_message is not None else list(view.messages)
    report = mw.reports[-1]
    arc = mw.engine.archive(config={})
    check_conversation(msgs, out, arc, policy, report, budget=policy.call_budget, prop="middleware.model_call")


@cases(350)
@given(msgs=conversations(max_turns=2), policy=policies(), use_async=st.booleans())
def test_middleware_tool_call_invariants(msgs: list[BaseMessage], policy: ContextPolicy, use_async: bool) -> None:
    store = InMemoryStore()
    mw = TokenReductionMiddleware(policy, store=store)
    arc = mw.engine.archive(config={})
    calls = {c["id"]: c for m in msgs if isinstance(m, AIMessage) for c in m.tool_calls}
    tally_ = policy_tally(policy)
    for i, msg in enumerate(msgs):
        if not isinstance(msg, ToolMessage):
            continue
        request = ToolCallRequest(tool_call=calls[msg.tool_call_id], tool=None, state={"messages": msgs[:i]},
                                  runtime=None)  # type: ignore[arg-type]

        async def ahandler(_: ToolCallRequest, msg: ToolMessage = msg) -> ToolMessage:
            return msg

        def handler(_: ToolCallRequest, msg: ToolMessage = msg) -> ToolMessage:
            return msg

        new = asyncio.run(mw.awrap_tool_call(request, ahandler)) if use_async else mw.wrap_tool_call(request, handler)
        assert isinstance(new, ToolMessage) and new.tool_call_id == msg.tool_call_id and new.name == msg.name
        plan = ConversationPlan([msg], policy)
        mark = marker(new) or {}
        if msg.name == policy.recall_tool_name:
            assert mark.get("action") == "recall" and new.content == msg.content
        elif mark.get("action") == "compressed":
            assert policy.message_budget is not None and tally_.content(new) <= policy.message_budget
            assert arc.get(str(mark["handle"])) == (msg.content if isinstance(msg.content, str)
                                                   else json.dumps(msg.content, ensure_ascii=False, default=str))
        else:
            assert new == msg
            limit = None if policy.message_budget is None else max(policy.message_budget, policy.min_tokens)
            skipped = any(r.action == "skipped" for r in mw.reports[-1].messages) if mw.reports else False
            assert plan.fixed[0] or limit is None or tally_.content(msg) <= limit or skipped
        tally("middleware.tool_call", cases=1, lost=0)


@cases(300)
@given(msgs=conversations(), policy=policies(), frac=st.floats(0.02, 1.3))
def test_sticky_history_edit_invariants(msgs: list[BaseMessage], policy: ContextPolicy, frac: float) -> None:
    policy = scaled(policy, msgs, frac, "context_budget")
    mw = StickyTokenReductionMiddleware(policy, store=InMemoryStore())
    update = mw.before_model(cast(Any, {"messages": msgs}), cast(Any, None))
    if update is None:
        out = msgs
    else:
        remove, *out = update["messages"]
        assert isinstance(remove, RemoveMessage) and remove.id == REMOVE_ALL_MESSAGES
    report = mw.reports[-1] if mw.reports else None
    check_conversation(msgs, out, mw.engine.archive(config={}), policy, report if update else None,
                       budget=policy.context_budget, prop="middleware.sticky")
    again = mw.before_model(cast(Any, {"messages": out}), cast(Any, None))
    assert again is None, "sticky edit not stable on its own output"
    tally("idempotent", cases=1)


# -- LangGraph nodes -----------------------------------------------------------------------------------


def apply_update(msgs: list[BaseMessage], update: dict[str, Any]) -> list[BaseMessage]:
    """The state after a node's ``messages`` update (replace by id, or remove-all then the list)."""
    new = update.get("messages")
    if not new:
        return list(msgs)
    if isinstance(new[0], RemoveMessage) and new[0].id == REMOVE_ALL_MESSAGES:
        return list(new[1:])
    by_id = {m.id: m for m in new}
    assert all(m.id for m in msgs), "an update by id needs ids on every message"
    return [by_id.get(m.id, m) for m in msgs]


@cases(250)
@given(msgs=conversations(), policy=policies())
def test_tool_messages_node_invariants(msgs: list[BaseMessage], policy: ContextPolicy) -> None:
    reports: list[Any] = []
    store = InMemoryStore()
    node = compress_tool_messages_node(policy, store=store, on_report=[reports.append])
    out = apply_update(msgs, node.invoke({"messages": msgs}))
    check_conversation(msgs, out, StoreArchive(store, ("thread", "default")), policy, None, prop="node.tool_messages")
    for r in reports:  # the per-message pass only: tool outputs compressed (or left whole, with a reason)
        assert all(rec.action in ("compressed", "skipped") and rec.role == "tool" for rec in r.messages)
    assert node.invoke({"messages": out}) == {}, "not idempotent on its own output"
    tally("idempotent", cases=1)


@cases(250)
@given(msgs=conversations(), policy=policies(), frac=FRACTIONS)
def test_pre_model_hook_invariants(msgs: list[BaseMessage], policy: ContextPolicy, frac: float | None) -> None:
    if frac is not None:
        policy = scaled(policy, msgs, frac)
    store = InMemoryStore()
    reports: list[Any] = []
    hook = make_pre_model_hook(policy, store=store, on_report=[reports.append])
    out = hook.invoke({"messages": msgs})["llm_input_messages"]
    check_conversation(msgs, out, StoreArchive(store, ("thread", "default")), policy, reports[-1],
                       budget=policy.call_budget, prop="node.pre_model_hook")


@cases(250)
@given(msgs=conversations(), mode=st.sampled_from(["cut", "drop"]), budget=st.one_of(st.none(), st.integers(1, 200)),
       tokenizer=st.sampled_from(TOKENIZERS))
def test_reasoning_node_invariants(msgs: list[BaseMessage], mode: str, budget: int | None, tokenizer: str) -> None:
    store = InMemoryStore()
    node = compress_reasoning_node(mode, reasoning_budget=budget, store=store, criterion="lexical",  # type: ignore[arg-type]
                                   tokenizer=tokenizer)
    out = apply_update(msgs, node.invoke({"messages": msgs}))
    arc = StoreArchive(store, ("thread", "default"))
    assert orphaned_tool_calls(out) == []
    humans = [i for i, m in enumerate(msgs) if isinstance(m, HumanMessage)]
    last_human = humans[-1] if humans else 0
    checked = 0
    counter = resolve_counter(tokenizer)
    assert len(out) == len(msgs)
    for i, (old, new) in enumerate(zip(msgs, out)):
        mark = marker(new)
        if mark is None or mark == marker(old):
            assert new == old
            continue
        assert i < last_human and isinstance(old, AIMessage) and isinstance(new, AIMessage)
        assert new.id == old.id and new.tool_calls == old.tool_calls  # pairs and ids survive
        if mode == "drop":
            assert mark["dropped"] and mark["tokens_after"] == 0
        elif budget is not None and not mark["dropped"]:
            assert mark["tokens_after"] <= budget or mark["tokens_after"] <= mark["tokens_before"]
        assert _answer(new) == _answer(old), "the answer part changed"
        want = (old.additional_kwargs["reasoning_content"] if mark["content_type"] == "reasoning_content"
                else old.content if isinstance(old.content, str) else json.dumps(old.content, ensure_ascii=False,
                                                                                  default=str))
        assert arc.get(str(mark["handle"])) == want
        assert counter.count("") == 0
        checked += 1
    assert apply_update(out, node.invoke({"messages": out})) == out, "not idempotent"
    tally("node.reasoning", cases=1, reduced=checked, lost=0)
    tally("idempotent", cases=1)


def _answer(msg: AIMessage) -> Any:
    """The non-reasoning part of an AI message (what a reasoning reduction must never change)."""
    if isinstance(msg.content, str):
        split = split_trace(msg.content)
        return split.answer if split.form in ("tagged", "close_only", "unterminated") else msg.content
    return [b for b in msg.content if not (isinstance(b, dict) and b.get("type") in
                                           ("reasoning", "thinking", "redacted_thinking"))]


# -- documents -------------------------------------------------------------------------------------------


@cases(300)
@given(
    docs=st.lists(st.tuples(texts, st.booleans()), max_size=8),
    query=st.one_of(st.none(), small_texts),
    document_budget=st.one_of(st.none(), st.integers(1, 300)),
    total_budget=st.one_of(st.none(), st.integers(1, 1500)),
    min_tokens=st.integers(0, 64),
    tokenizer=st.sampled_from(TOKENIZERS),
)
def test_reduce_documents_invariants(
    docs: list[tuple[str, bool]], query: str | None, document_budget: int | None, total_budget: int | None,
    min_tokens: int, tokenizer: str,
) -> None:
    items: list[Document | str] = [Document(t, metadata={"n": i}) if as_doc else t
                                   for i, (t, as_doc) in enumerate(docs)]
    arc = InMemoryArchive()
    comp = compressor_for(tokenizer)
    try:
        out, report = reduce_documents(items, query=query, compressor=comp, archive=arc,
                                       document_budget=document_budget, total_budget=total_budget,
                                       min_tokens=min_tokens, criterion="lexical")
    except InvalidInputError:  # the documented refusal of binary-looking text
        assert any(looks_binary(t) for t, _ in docs) or looks_binary(query or "")
        tally("documents", cases=1, refused=1)
        return
    counter = comp.counter
    texts_ = [d.page_content if isinstance(d, Document) else d for d in items]
    records = {r.index: r for r in report.messages}
    kept = [i for i in range(len(items)) if i not in records or records[i].action == "compressed"]
    assert len(out) == len(kept)
    for i, o in zip(kept, out):  # order and types preserved; compressed ones within their budget
        assert type(o) is type(items[i])
        if i in records:
            text = o.page_content if isinstance(o, Document) else o
            assert document_budget is None or counter.count(text) <= max(document_budget, min_tokens)
        else:
            assert o is items[i]
    lost = sum(arc.get(r.handle) != texts_[r.index] for r in report.messages)
    assert lost == 0, "a compressed or dropped document cannot be recovered"
    assert report.tokens_after == sum(counter.count(o.page_content if isinstance(o, Document) else o) for o in out)
    if total_budget is not None:
        assert report.tokens_after <= total_budget and report.within_budget
    _, second = reduce_documents(out, query=query, compressor=comp, archive=arc, document_budget=document_budget,
                                 total_budget=total_budget, min_tokens=min_tokens, criterion="lexical")
    assert not second.messages, "not idempotent on its own output"
    tally("documents", cases=1, reduced=len(report.messages), lost=lost)
    tally("idempotent", cases=1)


# -- the engine under every adapter ---------------------------------------------------------------------


@cases(1500)
@given(
    text=texts,
    query=st.one_of(st.none(), small_texts),
    target=st.integers(1, 400),
    rate=st.one_of(st.none(), st.floats(0.05, 1.0)),
    strategy=st.sampled_from(["auto", "prune", "compact", "merge"]),
    unit=st.sampled_from(["auto", "auto", "word", "sentence", "line", "paragraph"]),
    tokenizer=st.sampled_from(TOKENIZERS),
)
def test_compress_invariants(
    text: str, query: str | None, target: int, rate: float | None, strategy: str, unit: str, tokenizer: str
) -> None:
    arc = InMemoryArchive()
    try:
        r = compress(text, query=query, target_tokens=target if rate is None else None, rate=rate,
                     criterion="lexical", strategy=strategy, unit=unit, tokenizer=tokenizer,  # type: ignore[arg-type]
                     archive=arc)
    except InvalidInputError:  # the documented refusal of binary-looking text, never a crash
        assert any(looks_binary(t) for t in (text, query or ""))
        tally("compress", cases=1, refused=1)
        return
    counter = resolve_counter(tokenizer)
    assert r.tokens_after == counter.count(r.text) <= r.budget_tokens, "budget exceeded"
    assert arc.get(r.handle) == text and r.original == text, "original not recoverable"
    r.text.encode("utf-8")  # no lone surrogates: CJK and emoji are never cut inside a code point
    if r.changed and r.kept_spans:  # kept text appears in order, unaltered
        pos = 0
        for a, b in r.kept_spans:
            found = r.text.find(text[a:b].strip(), pos)
            assert found >= 0, f"kept span {a}:{b} missing or out of order"
            pos = found
    parsed = parse_json_like(text) if strategy in ("auto", "compact") else None
    if parsed is not None and r.changed and r.text:
        value = json.loads(r.text)  # JSON in, valid JSON out
        if value or r.budget_tokens >= 12:  # below that even the omission markers cannot fit
            check_json_accounting(parsed[0], value)
    again = compress(r.text, query=query, target_tokens=target if rate is None else None, rate=rate,
                     criterion="lexical", strategy=strategy, unit=unit, tokenizer=tokenizer,  # type: ignore[arg-type]
                     archive=arc)
    if r.changed:
        assert again.text == r.text, "compression not idempotent on its own output"
    tally("compress", cases=1, reduced=int(r.changed), lost=0)
    tally("idempotent", cases=1)


def looks_binary(text: str) -> bool:
    sample = text[:65536]
    return sum(1 for ch in sample if (ch < " " and ch not in "\n\r\t\f\v") or ch == "\x7f") > 0.1 * len(sample)


def check_json_accounting(before: Any, after: Any) -> None:
    """Compacted JSON drops nothing silently: every dropped field or item is counted by a marker."""
    if isinstance(before, dict) and isinstance(after, dict):
        marks = [k for k in after if k not in before and k.startswith(OMITTED_KEY)]
        keys = [k for k in after if k not in marks]
        assert set(keys) <= set(before), "a field was invented"
        dropped = len(before) - len(keys)
        if dropped:
            assert marks and str(after[marks[0]]).startswith(f"{dropped} "), f"{dropped} field(s) dropped silently"
        for k in keys:
            check_json_accounting(before[k], after[k])
    elif isinstance(before, list) and isinstance(after, list):
        last = after[-1] if after else None
        is_mark = isinstance(last, str) and re.fullmatch(r"… \d+ (more items?|items? omitted)", last) is not None
        kept = after[:-1] if is_mark else after
        dropped = len(before) - len(kept)
        if dropped:
            assert is_mark and str(last).startswith(f"… {dropped} "), f"{dropped} item(s) dropped silently"
        else:
            for x, y in zip(before, kept):
                check_json_accounting(x, y)


# -- a whole agent run -------------------------------------------------------------------------------------


@cases(60)
@given(
    outputs=st.lists(st.lists(texts, min_size=1, max_size=2), min_size=1, max_size=3),
    policy=policies(protect_last_n_turns=1),
)
def test_agent_run_invariants(outputs: list[list[str]], policy: ContextPolicy) -> None:
    results = {f"c{i}_{k}": out for i, step in enumerate(outputs) for k, out in enumerate(step)}

    @tool
    def search(q: str) -> str:
        """Search (returns the generated output for the call)."""
        return results[q]

    script: list[Any] = [
        AIMessage("", tool_calls=[{"name": "search", "args": {"q": f"c{i}_{k}"}, "id": f"c{i}_{k}"}
                                  for k in range(len(step))])
        for i, step in enumerate(outputs)
    ] + [AIMessage("done")]
    model = ScriptedChatModel(script=script)
    store = InMemoryStore()
    mw = TokenReductionMiddleware(policy, store=store)
    agent = create_agent(model, [search], middleware=[mw], system_prompt="You are terse.", store=store)
    final = agent.invoke({"messages": [HumanMessage("find it")]})["messages"]
    assert final[-1].content == "done" and orphaned_tool_calls(final) == []
    arc = StoreArchive(store, ("thread", "default"))
    tally_ = policy_tally(policy)
    lost = 0
    for seen in model.received:  # every model call: no orphan, within budget or reported
        assert orphaned_tool_calls(seen) == []
    for m in final:
        if isinstance(m, ToolMessage):
            mark = marker(m) or {}
            if mark.get("action") == "compressed":
                lost += arc.get(str(mark["handle"])) != results[m.tool_call_id]
                assert policy.message_budget is not None and tally_.content(m) <= policy.message_budget
            else:
                assert content_text(m.content) == results[m.tool_call_id]
    assert lost == 0
    for r in mw.reports:
        assert r.budget is None or r.within_budget == (r.tokens_after <= r.budget)
    tally("agent_run", cases=1, lost=lost)
