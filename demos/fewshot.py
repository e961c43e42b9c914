"""Demo 4: few-shot prompting with budgeted example selection.

A small LangGraph graph (select examples → build the few-shot prompt → call the model) answers math
word problems. Without agent-tokred the prompt carries the 8 examples most similar to the question
(what LangChain's ``SemanticSimilarityExampleSelector(k=8)`` picks); with agent-tokred,
:class:`BudgetedExampleSelector` fills a 500-token budget with the examples worth their tokens
(relevance, diversity and length traded off per token). Both see the same MiniLM embeddings.

Pool: reasoning-gym ``gsm_symbolic`` problems (question, worked solution, answer) when reasoning-gym
is installed, else the GSM8K questions and gold solutions of ``../shared/data/reasoning_traces_dev``.
Selection quality: the share of chosen examples from the question's own template (reasoning-gym:
problems generated from the same GSM8K template; the fallback pool has no templates and reports the
mean similarity of the chosen examples instead). Offline the model is a stub (the prompt is what is
measured); with ``model="provider:name"`` a real model answers and accuracy is reported too.
"""

from __future__ import annotations

import re
import time
from typing import Any, TypedDict

import numpy as np

from agent_tokred.report.records import ItemRecord, RunRecord, StepRecord

from ._common import DemoResult, count, pct, progress, read_jsonl_gz

NAME = "fewshot"
TITLE = "4. Few-shot prompting (budgeted example selection)"
BUDGET = 500
BASELINE_K = 8
TEMPLATE = "Question: {question}\nReasoning: {reasoning}\nAnswer: {answer}"
SUFFIX = "Question: {question}\nReasoning:"
PREFIX = "Solve the problem. End with 'Answer: <number>'."
SEP = "\n\n"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

Example = dict[str, str]


def load_pool(quick: bool) -> tuple[list[Example], list[int], list[Example], list[int], str]:
    """(pool, pool templates, queries, query templates, source); templates are -1 without reasoning-gym."""
    n_pool, n_query = (80, 6) if quick else (300, 30)
    try:
        import reasoning_gym
    except ImportError:
        rows = read_jsonl_gz("reasoning_traces_dev.jsonl.gz")
        seen: dict[str, Example] = {}
        for r in rows:
            if "####" in r["gold"]:
                cot, answer = r["gold"].rsplit("####", 1)
                seen.setdefault(r["question"], {"question": r["question"], "reasoning": cot.strip(),
                                                "answer": answer.strip()})
        items = list(seen.values())
        queries = items[: n_query]
        pool = items[n_query : n_query + n_pool]
        return pool, [-1] * len(pool), queries, [-1] * len(queries), "GSM8K (reasoning_traces_dev)"

    def build(seed: int, size: int) -> tuple[list[Example], list[int]]:
        ds = reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed)
        out, templates = [], []
        for i in range(size):
            row = ds[i]
            cot = row["metadata"]["answer_cot"].rsplit("####", 1)[0].strip()
            out.append({"question": row["question"], "reasoning": cot, "answer": str(row["answer"])})
            templates.append(int(ds.task_indices[i]))
        return out, templates

    pool, pool_t = build(0, n_pool)
    queries, query_t = build(5_000_000, n_query)  # a held-apart seed: no query text is in the pool
    return pool, pool_t, queries, query_t, "reasoning-gym gsm_symbolic"


class State(TypedDict, total=False):
    question: str
    prompt: str
    answer: str


def make_graph(selector: Any, chat: Any) -> Any:
    """select → prompt → model, as a LangGraph graph."""
    from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
    from langgraph.graph import END, START, StateGraph

    few_shot = FewShotPromptTemplate(example_selector=selector, example_prompt=PromptTemplate.from_template(TEMPLATE),
                                     prefix=PREFIX, suffix=SUFFIX, input_variables=["question"], example_separator=SEP)

    def build_prompt(state: State) -> State:
        return {"prompt": few_shot.format(question=state["question"])}

    def answer(state: State) -> State:
        return {"answer": str(chat.invoke(state["prompt"]).content)}

    graph = StateGraph(State)
    graph.add_node("build_prompt", build_prompt)
    graph.add_node("answer", answer)
    graph.add_edge(START, "build_prompt")
    graph.add_edge("build_prompt", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def _last_number(text: str) -> str:
    found = _NUMBER.findall(text.split("Answer:")[-1]) or _NUMBER.findall(text)
    if not found:
        return ""
    value = float(found[-1].replace(",", ""))
    return str(int(value)) if value.is_integer() else str(value)


def run(quick: bool, model: str | None = None) -> DemoResult:
    """Run the demo; see the module docstring."""
    from langchain_core.example_selectors.base import BaseExampleSelector
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.prompts import PromptTemplate

    from agent_tokred.integration.example_selector import BudgetedExampleSelector
    from agent_tokred.models import embed

    pool, pool_t, queries, query_t, source = load_pool(quick)
    started = time.perf_counter()
    render = PromptTemplate.from_template(TEMPLATE)
    ours = BudgetedExampleSelector(pool, max_tokens=BUDGET, example_prompt=render, input_keys=["question"],
                                   separator=SEP, cache=True)
    vectors = np.asarray(ours.pool.vectors)
    query_vecs = np.asarray(embed([q["question"] for q in queries]))
    chosen_baseline: list[list[int]] = []

    class TopKSelector(BaseExampleSelector):
        """The k most similar examples (cosine of the same MiniLM vectors), as a similarity selector."""

        def add_example(self, example: dict[str, str]) -> Any:
            raise NotImplementedError

        def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
            q = embed([input_variables["question"]])[0]
            top = [int(i) for i in np.argsort(-(vectors @ q), kind="stable")[:BASELINE_K]]
            chosen_baseline.append(top)
            return [pool[i] for i in top]

    if model:
        from langchain.chat_models import init_chat_model

        chat: Any = init_chat_model(model)
    else:
        chat = FakeListChatModel(responses=["(offline demo: no model is called; the prompt is what is measured)"])
    without_graph, with_graph = make_graph(TopKSelector(), chat), make_graph(ours, chat)
    steps: list[StepRecord] = []
    items: list[ItemRecord] = []
    precision_with, precision_without, sim_with, sim_without, correct = [], [], [], [], [0, 0]
    for k, (q, qt) in enumerate(progress(list(zip(queries, query_t)), "demo 4: questions")):
        base = without_graph.invoke({"question": q["question"]})
        mine = with_graph.invoke({"question": q["question"]})
        selection = ours.last_selection
        assert selection is not None
        picked = [c.index for c in selection.chosen]
        top = chosen_baseline[-1]
        question_part = count(PREFIX + SEP + SUFFIX.format(question=q["question"]))
        steps.append(StepRecord.from_counts(
            k, {"examples": count(base["prompt"]) - question_part, "question": question_part},
            {"examples": count(mine["prompt"]) - question_part, "question": question_part}, label=q["question"][:60]))
        qv = query_vecs[k]
        sim_without.append(float(np.mean(vectors[top] @ qv)))
        sim_with.append(float(np.mean(vectors[picked] @ qv)) if picked else 0.0)
        if qt >= 0:
            precision_without.append(sum(pool_t[i] == qt for i in top) / len(top))
            precision_with.append(sum(pool_t[i] == qt for i in picked) / len(picked) if picked else 0.0)
        if model:
            correct[0] += int(_last_number(base["answer"]) == _last_number(q["answer"]))
            correct[1] += int(_last_number(mine["answer"]) == _last_number(q["answer"]))
        if len(items) < 10:
            order = top + [i for i in picked if i not in top]
            pieces = []
            for j, i in enumerate(order):
                tag = "" if qt < 0 else (" [same template]" if pool_t[i] == qt else " [other template]")
                pieces.append((render.format(**pool[i]) + tag + (SEP if j < len(order) - 1 else ""), i in picked))
            items.append(ItemRecord(
                title=f"question {k + 1}: {q['question'][:90]}", segments=tuple(pieces),
                tokens_before=steps[-1].components[0].before, tokens_after=steps[-1].components[0].after, step=k,
                kind="examples",
                note=f"kept: the {len(picked)} example{'s' if len(picked) != 1 else ''} chosen within {BUDGET} "
                     f"tokens; dropped: the rest of the "
                     f"top {BASELINE_K} by similarity" + ("" if qt < 0 else f"; question template {qt}")))
    if precision_with:
        signal = "same-template examples"
        without, with_ = pct(float(np.mean(precision_without))), pct(float(np.mean(precision_with)))
    else:
        signal = "mean similarity of examples"
        without, with_ = f"{np.mean(sim_without):.3f}", f"{np.mean(sim_with):.3f}"
    metrics = [(signal, f"{without} → {with_}"), ("pool", f"{len(pool)} ({source})")]
    if model:
        metrics.append(("accuracy", f"{pct(correct[0] / len(queries))} → {pct(correct[1] / len(queries))}"))
    run_record = RunRecord(
        name=NAME, title=TITLE, steps=tuple(steps), items=tuple(items),
        mode=f"model-driven: {model}" if model else "offline (MiniLM selection; the prompt is measured)",
        description=(f"{len(queries)} questions; without: the {BASELINE_K} most similar examples; with: "
                     f"BudgetedExampleSelector(max_tokens={BUDGET}) in a LangGraph select → prompt → model graph."),
        metrics=tuple(metrics), seconds=time.perf_counter() - started,
    )
    raw = {"pool": len(pool), "source": source, "queries": len(queries), "budget": BUDGET,
           "precision_with": float(np.mean(precision_with)) if precision_with else None,
           "precision_without": float(np.mean(precision_without)) if precision_without else None,
           "similarity_with": float(np.mean(sim_with)), "similarity_without": float(np.mean(sim_without))}
    if model:
        raw["accuracy"] = {"without": correct[0] / len(queries), "with": correct[1] / len(queries)}
    return DemoResult(run_record, signal, without, with_, raw)

