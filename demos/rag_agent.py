"""Demo 2: a research agent over a local corpus, with the document compressor and the middleware.

Corpus: the 1,000 Wikipedia passages of NaturalQuestions-Open (``../shared/data/nq_oracle_dev.jsonl.gz``)
behind a BM25 retriever (top 5). The agent (``create_agent``) answers a series of questions in one
session; for each it searches three times (the question, the most promising article's title, the
question's keywords) and then answers. Offline the agent is driven by a small deterministic
researcher model (an extractive reader: it quotes the retrieved sentence that best matches the
question); ``model="provider:name"`` drives it with a real chat model instead.

With agent-tokred: every search result passes through :class:`TokredDocumentCompressor`
(query-aware, MiniLM relevance + lexical; 120 tokens per document, 400 per search), and
``TokenReductionMiddleware(call_budget=4000)`` squeezes older research when a call would exceed it.
Task-success signal: **answer kept**, whether a gold answer is still in the retrieved text the model
sees when it answers.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent_tokred.report.records import ItemRecord, RunRecord, StepRecord, segments_from_texts

from ._agent import Recorder
from ._common import DemoResult, context_by_component, count, normalize_answer, pct, progress, read_jsonl_gz

NAME = "rag"
TITLE = "2. Research agent (RAG over NQ passages)"
TOP_K = 5
DOCUMENT_BUDGET, SEARCH_BUDGET, CALL_BUDGET = 120, 400, 4000
SEARCHES_PER_QUESTION = 3
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "has", "have", "how", "in", "is", "it", "its", "many", "much", "of", "on", "or", "the", "to", "was", "were", "what", "when", "where", "which", "who", "whom", "whose", "why", "with", "first", "last", "name", "called"]
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class BM25:
    """Okapi BM25 over passages (k1=1.5, b=0.75), enough for a local demo corpus."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs = [Counter(words(t)) for t in texts]
        self.lengths = np.array([sum(d.values()) for d in self.docs], dtype=float)
        self.avg = float(self.lengths.mean()) if len(self.docs) else 1.0
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self.k1, self.b = k1, b

    def top(self, query: str, k: int) -> list[int]:
        scores = np.zeros(len(self.docs))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.avg)
        for w in set(words(query)):
            idf = self.idf.get(w)
            if idf is None:
                continue
            tf = np.array([d.get(w, 0) for d in self.docs], dtype=float)
            scores += idf * tf * (self.k1 + 1) / (tf + norm)
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def keywords(question: str) -> str:
    return " ".join(w for w in words(question) if w not in _STOP)


def format_docs(docs: Sequence[Any]) -> str:
    return "\n\n".join(f"[{d.metadata.get('rank', i)}] {d.metadata.get('title', '')}: {d.page_content}"
                       for i, d in enumerate(docs, 1))


def make_researcher() -> Any:
    """The offline researcher: three searches per question, then an extractive answer."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from pydantic import Field

    class ResearcherModel(GenericFakeChatModel):
        messages: Any = iter(())
        # question number -> (question text, searches issued): its own notes, so that what it is shown
        # (older results squeezed or dropped under the call budget) never makes it search forever
        notes: dict[int, tuple[str, int]] = Field(default_factory=dict)

        def bind_tools(self, tools: Any, **kwargs: Any) -> ResearcherModel:
            return self

        def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
            question, n = self.notes.get(len(humans), (str(messages[humans[-1]].content), 0))
            results = [str(m.content) for m in messages[humans[-1] + 1 :] if isinstance(m, ToolMessage)]
            if n < SEARCHES_PER_QUESTION:
                if n == 0:
                    query = question
                elif n == 1:
                    title = re.match(r"\[\d+\] ([^:\n]+):", results[-1]) if results else None
                    query = f"{title.group(1) if title else ''} {keywords(question)}".strip()
                else:
                    query = keywords(question)
                self.notes[len(humans)] = (question, n + 1)
                call = {"name": "search", "args": {"query": query}, "id": f"call_{len(humans)}_{n}", "type": "tool_call"}
                reply = AIMessage("", tool_calls=[call])
            else:
                wanted = set(words(question)) - _STOP
                sentences = [s for r in results for s in _SENTENCE.split(r) if s.strip()]
                best = max(sentences, key=lambda s: len(wanted & set(words(s))), default="I found nothing.")
                reply = AIMessage(f"From my {n} searches: {best.strip()[:400]}")
            return ChatResult(generations=[ChatGeneration(message=reply)])

    return ResearcherModel()


def pick_questions(rows: Sequence[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    n = 4 if quick else 20
    stride = len(rows) // n
    return [rows[i * stride] for i in range(n)]


def _tool_text_since_question(messages: Sequence[Any]) -> str:
    humans = [i for i, m in enumerate(messages) if getattr(m, "type", "") == "human"]
    start = humans[-1] if humans else 0
    return "\n".join(str(m.content) for m in messages[start:] if getattr(m, "type", "") == "tool")


def run(quick: bool, model: str | None = None) -> DemoResult:
    """Run the demo; see the module docstring."""
    from langchain.agents import create_agent
    from langchain_core.documents import Document
    from langchain_core.messages import HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import StructuredTool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.store.memory import InMemoryStore

    from agent_tokred.integration.documents import TokredDocumentCompressor
    from agent_tokred.integration.middleware import TokenReductionMiddleware

    rows = read_jsonl_gz("nq_oracle_dev.jsonl.gz")
    passages = {(r["ctxs"][0]["title"], r["ctxs"][0]["text"]) for r in rows}
    corpus = [Document(text, metadata={"title": title}) for title, text in sorted(passages)]
    bm25 = BM25([f"{d.metadata['title']} {d.page_content}" for d in corpus])
    compressor = TokredDocumentCompressor(document_budget=DOCUMENT_BUDGET, total_budget=SEARCH_BUDGET)
    last_raw: dict[str, str] = {}
    searches: list[tuple[str, str, str]] = []  # (query, raw, compressed)

    def search(query: str) -> str:
        docs = [Document(corpus[i].page_content, metadata={**corpus[i].metadata, "rank": r})
                for r, i in enumerate(bm25.top(query, TOP_K), 1)]
        raw = format_docs(docs)
        out = format_docs(compressor.compress_documents(docs, query))
        last_raw["text"] = raw
        searches.append((query, raw, out))
        return out

    tool = StructuredTool.from_function(search, name="search",
                                        description="Search the Wikipedia passages; returns the top 5.")
    questions = pick_questions(rows, quick)
    started = time.perf_counter()
    rec = Recorder(raw_source=lambda: last_raw.pop("text", None))
    if model:
        from langchain.chat_models import init_chat_model

        chat: Any = init_chat_model(model)
        system = ("Answer the user's question with the search tool: search up to three times, then answer "
                  "in one short sentence.")
    else:
        chat, system = make_researcher(), None
    tokred = TokenReductionMiddleware(message_budget=None, call_budget=CALL_BUDGET, criterion="lexical",
                                      trace_metadata=False)
    agent = create_agent(chat, [tool], system_prompt=system, middleware=[tokred, rec.middleware],
                         checkpointer=InMemorySaver(), store=InMemoryStore())
    config: RunnableConfig = {"configurable": {"thread_id": "research"}, "recursion_limit": 60}
    answer_steps: list[int] = []
    replies: list[str] = []
    for q in progress(questions, "demo 2: questions"):
        out = agent.invoke({"messages": [HumanMessage(q["question"])]}, config)
        answer_steps.append(len(rec.views) - 1)
        replies.append(str(out["messages"][-1].content))
    steps = [
        StepRecord.from_counts(i, context_by_component(rec.raw_view(i), tool_component="retrieved documents"),
                               context_by_component(view, tool_component="retrieved documents"), label=f"call {i}")
        for i, view in enumerate(rec.views)
    ]
    kept_with, kept_without, reader = [], [], []
    for q, i, reply in zip(questions, answer_steps, replies):
        golds = [normalize_answer(a) for a in q["answers"]]
        seen = normalize_answer(_tool_text_since_question(rec.views[i]))
        raw_seen = normalize_answer(_tool_text_since_question(rec.raw_view(i)))
        kept_with.append(any(g and g in seen for g in golds))
        kept_without.append(any(g and g in raw_seen for g in golds))
        reader.append(any(g and g in normalize_answer(reply) for g in golds))
    items = tuple(
        ItemRecord(title=f"search {k + 1}: {query!r}", segments=segments_from_texts(raw, comp),
                   tokens_before=count(raw), tokens_after=count(comp), kind="retrieved documents")
        for k, (query, raw, comp) in enumerate(searches[:18])
    )
    share_with = sum(kept_with) / len(kept_with)
    share_without = sum(kept_without) / len(kept_without)
    mode = f"model-driven: {model}" if model else "offline (deterministic researcher model, BM25, MiniLM)"
    run_record = RunRecord(
        name=NAME, title=TITLE, steps=tuple(steps), items=items, mode=mode,
        description=(f"{len(questions)} NQ questions in one session, {len(searches)} searches over "
                     f"{len(corpus)} passages; TokredDocumentCompressor(document_budget={DOCUMENT_BUDGET}, "
                     f"total_budget={SEARCH_BUDGET}) on every search, TokenReductionMiddleware("
                     f"call_budget={CALL_BUDGET})."),
        metrics=(("answer kept", f"{pct(share_without)} → {pct(share_with)}"),),
        seconds=time.perf_counter() - started,
    )
    raw_numbers = {"questions": len(questions), "searches": len(searches), "answer_kept_with": share_with,
                   "answer_kept_without": share_without, "reader_correct_with": sum(reader) / len(reader)}
    return DemoResult(run_record, "answer kept", pct(share_without), pct(share_with), raw_numbers)
