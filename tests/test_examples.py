"""Tests of budgeted in-context example selection (engine and LangChain selector)."""

from __future__ import annotations

import asyncio
import random
import zlib
from functools import partial

import numpy as np
import pytest

from agent_tokred.errors import BudgetError, InvalidInputError
from agent_tokred.examples import (
    ExampleCompression,
    ExamplePool,
    SelectionPolicy,
    format_key_values,
    greedy_select,
    select_examples,
)
from agent_tokred.tokens import resolve_counter

DIM = 64


def fake_embed(texts: list[str]) -> np.ndarray:
    """Deterministic bag of words hashed into DIM buckets (topics with shared words are similar)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            out[row, zlib.crc32(word.encode()) % DIM] += 1.0
    return out


TOPICS = {
    "cat": "cat kitten meow whiskers purr",
    "dog": "dog puppy bark leash fetch",
    "math": "sum add numbers plus total",
    "cook": "cook oven bake flour recipe",
}


def topic_examples(n_per_topic: int = 5, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for i in range(n_per_topic):
            question = " ".join(rng.choice(vocab) for _ in range(6)) + f" case {topic}{i}"
            reasoning = " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 60)))
            out.append({"question": question, "reasoning": reasoning, "answer": f"{topic}-{i}"})
    return out


def make_pool(examples=None, tokenizer="approx", **kw) -> ExamplePool:
    kw.setdefault("input_keys", ["question"])
    kw.setdefault("embed", fake_embed)
    return ExamplePool(topic_examples() if examples is None else examples, tokenizer=tokenizer, **kw)


# --- budget -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["cl100k_base", "approx"])
@pytest.mark.parametrize("budget", [1, 7, 25, 60, 150, 400, 5000])
@pytest.mark.parametrize(
    "policy",
    [
        SelectionPolicy(),
        SelectionPolicy(relevance_margin=None),
        SelectionPolicy(relevance_cut="margin"),
        SelectionPolicy(cluster_candidates=2),
        SelectionPolicy(strategy="relevance", diversity=0),
    ],
)
def test_never_over_budget(tokenizer: str, budget: int, policy: SelectionPolicy) -> None:
    pool = make_pool(tokenizer=tokenizer)
    counter = resolve_counter(tokenizer)
    for query in ("kitten purr", "bake flour", "sum numbers dog"):
        sel = pool.select(query, budget, policy=policy)
        assert sel.tokens_used <= budget
        assert counter.count(sel.text) == sel.tokens_used
        assert len(set(sel.indices)) == len(sel.indices)


def test_separator_tokens_are_counted() -> None:
    pool = make_pool(separator="\n\n=====\n\n", tokenizer="cl100k_base")
    sel = pool.select("cat kitten", 300, policy=SelectionPolicy(relevance_margin=None))
    assert len(sel.chosen) > 1
    assert sel.text.count("=====") == len(sel.chosen) - 1
    assert sel.tokens_used == resolve_counter("cl100k_base").count(sel.text) <= 300


# --- relevance and diversity ------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", list(TOPICS))
def test_most_relevant_topic_chosen_first(topic: str) -> None:
    pool = make_pool()
    sel = pool.select(TOPICS[topic], 400, policy=SelectionPolicy(order="selection"))
    assert len(sel.chosen) >= 1 and sel.tokens_used <= 400
    assert sel.chosen[0].example["answer"].startswith(topic)
    by_rel = pool.select(TOPICS[topic], 400)
    assert [c.relevance for c in by_rel.chosen] == sorted((c.relevance for c in by_rel.chosen), reverse=True)


def test_relevance_margin_keeps_off_topic_out_and_none_fills() -> None:
    pool = make_pool()
    margin = SelectionPolicy(relevance_cut="margin")
    sel = pool.select("kitten whiskers meow", 2000, policy=margin)
    assert sel.chosen and all(c.example["answer"].startswith("cat") for c in sel.chosen)
    filled = pool.select("kitten whiskers meow", 2000, policy=SelectionPolicy(relevance_margin=None))
    assert len(filled.chosen) > len(sel.chosen)
    assert (
        filled.indices
        == pool.select("kitten whiskers meow", 2000, policy=SelectionPolicy(relevance_cut="none")).indices
    )


def test_exact_duplicates_are_stored_once_and_never_both_chosen() -> None:
    examples = topic_examples()
    doubled = examples + [dict(e) for e in examples]
    pool = make_pool(doubled)
    assert len(pool) == len(examples)
    assert pool.duplicates == len(examples)
    sel = pool.select("kitten purr", 5000, policy=SelectionPolicy(relevance_margin=None))
    texts = [c.text for c in sel.chosen]
    assert len(texts) == len(set(texts))


def test_near_duplicates_skipped_by_threshold() -> None:
    # Same question, different answers: identical embeddings, different rendered text.
    examples = [{"question": "cat kitten purr", "answer": str(i)} for i in range(4)]
    examples.append({"question": "dog bark", "answer": "x"})
    pool = make_pool(examples)
    sel = pool.select("cat kitten purr", 500, policy=SelectionPolicy(relevance_margin=None))
    assert sum(c.example["question"] == "cat kitten purr" for c in sel.chosen) == 1


def naive_greedy(quality, vectors, costs, capacity, diversity, threshold, per_token):
    chosen, gains, left = [], [], capacity
    while True:
        best, best_key = None, 0.0
        for i in range(len(quality)):
            if i in chosen or costs[i] > left:
                continue
            sim = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
            if chosen and sim >= threshold:
                continue
            gain = quality[i] * (1 - diversity * max(0.0, sim))
            key = gain / costs[i] if per_token else gain
            if key > best_key + 1e-12:
                best, best_key = i, key
        if best is None:
            return chosen, gains
        sim = max((float(vectors[best] @ vectors[j]) for j in chosen), default=0.0)
        chosen.append(best)
        gains.append(quality[best] * (1 - diversity * max(0.0, sim)))
        left -= costs[best]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("per_token", [True, False])
def test_lazy_greedy_equals_naive_greedy(seed: int, per_token: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    vecs = rng.standard_normal((n, 8)).astype(np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    quality = rng.random(n)
    costs = rng.integers(1, 40, n)
    capacity = int(rng.integers(10, 200))
    got = greedy_select(quality, vecs, costs, capacity, diversity=0.6, duplicate_threshold=0.9, per_token=per_token)
    want = naive_greedy(quality, vecs, costs, capacity, 0.6, 0.9, per_token)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1], want[1])
    assert sum(costs[got[0]]) <= capacity


def test_celf_objective_at_least_each_strategy() -> None:
    pool = make_pool(topic_examples(8, seed=3))
    for query in ("kitten purr dog", "sum flour"):
        total = {
            s: sum(c.gain for c in pool.select(query, 120, policy=SelectionPolicy(strategy=s)).chosen)
            for s in ("celf", "per_token", "relevance")
        }
        assert total["celf"] >= max(total["per_token"], total["relevance"]) - 1e-9


# --- pool: incremental add, embeddings, caching -----------------------------------------------------------


def test_incremental_add_equals_building_at_once() -> None:
    examples = topic_examples(6, seed=1)
    at_once = make_pool(examples)
    inc = make_pool([])
    ids = []
    for i in range(0, len(examples), 5):
        ids += inc.add(examples[i : i + 5])
    assert ids == list(range(len(examples)))
    np.testing.assert_allclose(inc.vectors, at_once.vectors)
    assert inc.costs.tolist() == at_once.costs.tolist()
    for query in ("kitten purr", "bake flour oven", "sum plus"):
        for budget in (40, 200):
            assert inc.select(query, budget).indices == at_once.select(query, budget).indices


def test_precomputed_embeddings_and_query_vector() -> None:
    examples = topic_examples()
    vecs = fake_embed([e["question"] for e in examples])
    pool = ExamplePool(examples, input_keys=["question"], embeddings=vecs, embed=fake_embed, tokenizer="approx")
    by_text = pool.select("kitten purr", 200)
    by_vec = pool.select(budget=200, query_vector=fake_embed(["kitten purr"])[0])
    assert by_text.indices == by_vec.indices


def test_disk_cache_embeds_each_text_once(tmp_path) -> None:
    calls: list[int] = []

    def counting(texts):
        calls.append(len(texts))
        return fake_embed(texts)

    path = tmp_path / "vectors.npz"
    examples = topic_examples()
    first = make_pool(examples, embed=counting, cache=path, embed_name="fake")
    second = make_pool(
        [*examples, {"question": "new cat", "reasoning": "r", "answer": "a"}],
        embed=counting,
        cache=path,
        embed_name="fake",
    )
    assert calls == [len(examples), 1]
    np.testing.assert_allclose(second.vectors[: len(examples)], first.vectors, rtol=1e-6)
    with pytest.raises(InvalidInputError, match="embed_name"):
        make_pool(examples, embed=counting, cache=path)


def test_langchain_embeddings_object_accepted() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    pool = ExamplePool(topic_examples(), input_keys=["question"], embed=DeterministicFakeEmbedding(size=16))
    assert pool.vectors.shape == (len(topic_examples()), 16)
    assert pool.select("anything", 300).tokens_used <= 300


# --- bad input --------------------------------------------------------------------------------------------


def test_empty_pool_gives_empty_selection_with_reason() -> None:
    sel = make_pool([]).select("kitten", 100)
    assert sel.chosen == () and sel.tokens_used == 0 and sel.text == ""
    assert sel.reason is not None and "empty pool" in sel.reason


def test_example_bigger_than_budget_is_skipped() -> None:
    examples = [
        {"question": "cat kitten purr", "answer": "meow " * 300},
        {"question": "cat kitten whiskers", "answer": "short"},
    ]
    sel = make_pool(examples).select("cat kitten purr", 50)
    assert [c.example["answer"] for c in sel.chosen] == ["short"]
    assert sel.skipped_over_budget == 1
    assert sel.reason is None


def test_budget_too_small_for_any_example() -> None:
    sel = make_pool().select("kitten", 3)
    assert sel.chosen == ()
    assert sel.reason is not None and "budget too small" in sel.reason
    assert sel.skipped_over_budget == len(topic_examples())


@pytest.mark.parametrize("budget", [0, -5, 1.5, True, "100", None])
def test_non_positive_or_non_int_budget_raises(budget) -> None:
    with pytest.raises(BudgetError, match="budget"):
        make_pool().select("kitten", budget)


def test_missing_key_names_the_key() -> None:
    pool = make_pool()
    with pytest.raises(InvalidInputError, match="'question'"):
        pool.add([{"reasoning": "r", "answer": "a"}])
    with pytest.raises(InvalidInputError, match="'answer'"):
        pool.add([{"question": "q", "reasoning": "r"}])
    with pytest.raises(InvalidInputError, match="'reasoning'"):
        make_pool([{"question": "q", "answer": "a"}], compressible_key="reasoning")
    assert len(pool) == len(topic_examples())  # failed adds left the pool unchanged
    empty = make_pool([])
    with pytest.raises(InvalidInputError, match="example 1 is missing key 'answer'"):
        empty.add([{"question": "q", "answer": "a"}, {"question": "q2"}])
    assert empty.add([{"question": "q"}]) == [0]  # the failed batch set no schema


def test_other_bad_inputs() -> None:
    pool = make_pool()
    with pytest.raises(InvalidInputError, match="mapping"):
        pool.add(["not a dict"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="shape"):
        pool.add([{"question": "q", "reasoning": "r", "answer": "a"}], embeddings=np.zeros((2, DIM)))
    with pytest.raises(InvalidInputError, match="query"):
        pool.select(budget=10)
    with pytest.raises(InvalidInputError, match="query_vector"):
        pool.select(budget=10, query_vector=np.zeros(3))
    with pytest.raises(InvalidInputError, match="compressible_key"):
        pool.select("q", 10, compress=True)
    with pytest.raises(InvalidInputError, match="NaN"):
        ExamplePool([{"q": "a"}], embed=lambda t: np.full((len(t), 3), np.nan), tokenizer="approx")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"diversity": 1.5}, "diversity"),
        ({"temperature": 0}, "temperature"),
        ({"relevance_margin": -0.1}, "relevance_margin"),
        ({"duplicate_threshold": 0}, "duplicate_threshold"),
        ({"strategy": "dpp"}, "celf, per_token, relevance"),
        ({"relevance_cut": "gap"}, "cluster, margin, none"),
        ({"cluster_candidates": 1}, "cluster_candidates"),
        ({"cluster_candidates": True}, "cluster_candidates"),
        ({"order": "random"}, "relevance_last"),
    ],
)
def test_policy_validation(kwargs, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        SelectionPolicy(**kwargs)


# --- rendering, function API, compression ----------------------------------------------------------------


def test_default_formatter_and_callable_formatter_decide_what_is_counted() -> None:
    assert format_key_values({"q": "x", "a": "y"}) == "q: x\na: y"
    examples = topic_examples()
    plain = make_pool(examples)
    padded = make_pool(examples, formatter=lambda ex: "PADDING " * 20 + ex["question"])
    counter = resolve_counter("approx")
    assert plain.costs.tolist() == [counter.count(format_key_values(e)) for e in examples]
    assert padded.costs.tolist() == [counter.count("PADDING " * 20 + e["question"]) for e in examples]
    sel = padded.select("kitten", 200)
    assert all(c.text.startswith("PADDING") for c in sel.chosen)


def test_select_examples_function() -> None:
    sel = select_examples(
        topic_examples(),
        "bake flour recipe",
        200,
        input_keys=["question"],
        embed=fake_embed,
        tokenizer="cl100k_base",
    )
    assert sel.chosen and sel.tokens_used <= 200
    assert all(e["answer"].startswith("cook") for e in sel.examples)


def fake_compress(text, *, query=None, target_tokens=None, tokenizer=None):
    counter = resolve_counter(tokenizer)
    words = text.split()
    while words and counter.count(" ".join(words)) > target_tokens:
        words.pop()
    return " ".join(words)


@pytest.mark.parametrize("budget", [60, 150, 400])
def test_compression_fits_more_and_keeps_answer(budget: int) -> None:
    pool = make_pool(compressible_key="reasoning", tokenizer="cl100k_base")
    policy = SelectionPolicy(relevance_margin=None)
    plain = pool.select("kitten purr", budget, policy=policy)
    short = pool.select("kitten purr", budget, policy=policy, compress=ExampleCompression(compressor=fake_compress))
    assert short.tokens_used <= budget
    assert len(short.chosen) >= len(plain.chosen)
    assert any(c.compressed for c in short.chosen)
    originals = {id(o): o for o in short.originals}
    assert len(originals) == len(short.chosen)
    for chosen, original in zip(short.chosen, short.originals):
        assert chosen.example["answer"] == original["answer"]
        assert chosen.example["question"] == original["question"]
        assert len(chosen.example["reasoning"]) <= len(original["reasoning"])


def test_compression_with_the_real_compressor_lexical() -> None:
    import agent_tokred

    pool = make_pool(compressible_key="reasoning", tokenizer="cl100k_base")
    comp = partial(agent_tokred.compress, criterion="lexical")
    sel = pool.select("kitten purr", 120, compress=ExampleCompression(rate=0.4, compressor=comp))
    assert sel.tokens_used <= 120
    assert all(c.example["answer"].startswith("cat") for c in sel.chosen)


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.2, True, "half"])
def test_compression_rate_is_checked_at_construction(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="rate"):
        ExampleCompression(rate=bad)  # type: ignore[arg-type]


def test_compress_must_be_a_bool_or_compression() -> None:
    pool = make_pool(compressible_key="reasoning")
    with pytest.raises(InvalidInputError, match="ExampleCompression"):
        pool.select("kitten purr", 400, compress=0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ExampleCompression"):
        lc_selector(compressible_key="reasoning", compress="yes")


def test_compressor_returning_junk_is_a_clear_error() -> None:
    pool = make_pool(compressible_key="reasoning")
    with pytest.raises(InvalidInputError, match="compressor returned"):
        pool.select("kitten purr", 400, compress=ExampleCompression(compressor=lambda text, **kw: 42))


# --- LangChain selector -----------------------------------------------------------------------------------


def lc_selector(**kw):
    from langchain_core.prompts import PromptTemplate

    from agent_tokred.integration.example_selector import BudgetedExampleSelector

    prompt = PromptTemplate.from_template("Q: {question}\nWhy: {reasoning}\nA: {answer}")
    kw.setdefault("max_tokens", 150)
    sel = BudgetedExampleSelector(
        topic_examples(),
        example_prompt=prompt,
        input_keys=["question"],
        embeddings=fake_embed,
        tokenizer="cl100k_base",
        **kw,
    )
    return sel, prompt


def test_few_shot_prompt_template_uses_budgeted_selector() -> None:
    from langchain_core.prompts import FewShotPromptTemplate

    selector, prompt = lc_selector()
    few_shot = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=prompt,
        prefix="Solve.",
        suffix="Q: {question}\nA:",
        input_variables=["question"],
    )
    text = few_shot.format(question="kitten purr whiskers")
    chosen = selector.last_selection
    assert chosen is not None and chosen.chosen
    assert chosen.text in text
    assert resolve_counter("cl100k_base").count(chosen.text) <= 150
    assert "A: cat-" in text and "A: dog-" not in text


def test_few_shot_chat_prompt_template_uses_budgeted_selector() -> None:
    from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

    from agent_tokred.integration.example_selector import BudgetedExampleSelector

    chat_prompt = ChatPromptTemplate.from_messages([("human", "{question}"), ("ai", "{reasoning} => {answer}")])
    selector = BudgetedExampleSelector(
        topic_examples(),
        max_tokens=120,
        example_prompt=chat_prompt,
        input_keys=["question"],
        embeddings=fake_embed,
    )
    few_shot = FewShotChatMessagePromptTemplate(
        example_selector=selector, example_prompt=chat_prompt, input_variables=["question"]
    )
    messages = few_shot.format_messages(question="bake flour oven")
    assert messages and len(messages) % 2 == 0
    assert all("cook-" in m.content for m in messages[1::2])


async def test_async_twins_and_add_example() -> None:
    selector, _ = lc_selector(max_tokens=400)
    new_id = await selector.aadd_example({"question": "zebra stripes savanna", "reasoning": "z", "answer": "zebra"})
    assert new_id == len(topic_examples())
    assert selector.add_example({"question": "zebra stripes savanna", "reasoning": "z", "answer": "zebra"}) == new_id
    got = await selector.aselect_examples({"question": "zebra stripes savanna"})
    assert got and got[0]["answer"] == "zebra"
    assert got == selector.select_examples({"question": "zebra stripes savanna"})


def test_selector_bad_inputs() -> None:
    selector, _ = lc_selector()
    with pytest.raises(InvalidInputError, match="'question'"):
        selector.select_examples({"input": "kitten"})
    with pytest.raises(InvalidInputError, match="'answer'"):
        selector.add_example({"question": "q", "reasoning": "r"})
    with pytest.raises(BudgetError, match="max_tokens"):
        lc_selector(max_tokens=0)


def test_selector_with_compression_keeps_answers() -> None:
    selector, _ = lc_selector(
        max_tokens=100,
        compressible_key="reasoning",
        compress=ExampleCompression(compressor=fake_compress),
        policy=SelectionPolicy(relevance_margin=None),
    )
    got = selector.select_examples({"question": "kitten purr"})
    assert len(got) >= 1
    answers = {e["answer"] for e in topic_examples()}
    assert all(e["answer"] in answers for e in got)


def test_asyncio_gather_is_safe() -> None:
    selector, _ = lc_selector()

    async def many():
        return await asyncio.gather(*(selector.aselect_examples({"question": "kitten purr"}) for _ in range(4)))

    results = asyncio.run(many())
    assert all(r == results[0] for r in results)


# --- real model -------------------------------------------------------------------------------------------


@pytest.mark.model
def test_minilm_pool_picks_the_matching_problem_type() -> None:
    examples = [
        {"question": "Tom has 3 apples and buys 5 more. How many apples?", "answer": "8"},
        {"question": "A train travels 60 km per hour for 2 hours. How far?", "answer": "120 km"},
        {"question": "Translate 'bonjour' into English.", "answer": "hello"},
    ]
    pool = ExamplePool(examples, input_keys=["question"], tokenizer="cl100k_base")
    assert pool.vectors.shape == (3, 384)
    sel = pool.select("Sara has 4 pears and gets 6 more. How many pears does she have?", 40)
    assert sel.chosen[0].example["answer"] == "8"


def test_selection_does_not_expose_the_pool_for_mutation() -> None:
    pool = make_pool()
    sel = pool.select("kitten purr", 300)
    with pytest.raises(TypeError):
        sel.chosen[0].example["answer"] = "changed"  # type: ignore[index]
    copy = sel.examples[0]
    copy["answer"] = "changed"
    assert pool.select("kitten purr", 300).examples[0]["answer"] != "changed"


def test_selector_passes_the_pool_options_as_given(tmp_path: object) -> None:
    from langchain_core.prompts import PromptTemplate

    from agent_tokred.integration.example_selector import BudgetedExampleSelector

    prompt = PromptTemplate.from_template("Q: {question}\nA: {answer}")
    cache = f"{tmp_path}/vectors.npz"
    sel = BudgetedExampleSelector(topic_examples(), max_tokens=80, example_prompt=prompt, input_keys=["question"],
                                  embeddings=fake_embed, tokenizer="approx", separator="\n---\n",
                                  cache=cache, embed_name="fake")
    assert sel.pool.counter.name == resolve_counter("approx").name and sel.pool.separator == "\n---\n"
    assert sel.pool.sep_tokens == resolve_counter("approx").count("\n---\n")
    assert np.load(cache)["vectors"].shape[0] == len(topic_examples())  # cached under embed_name
    with pytest.raises(InvalidInputError, match="'tokeniser'; the pool's options are tokenizer"):
        BudgetedExampleSelector(topic_examples(), max_tokens=80, embeddings=fake_embed, tokeniser="approx")
