"""The long agent history of :mod:`bench.bench_memory`: BFCL v4 trajectories with planted facts.

Each user request, each tool call with its output and each closing answer is one memory. Facts are
planted at evenly spaced points: half as user turns ("remember: ..."), half as a note line at the
top of a real tool output; "deep" facts go in the middle of long tool outputs, past the 256 word
pieces MiniLM reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

PLACES = ["north warehouse", "lab 7", "the rooftop garden", "server room B", "the marina office", "gym locker 12"]
PEOPLE = ["Priya", "Tomasz", "Keiko", "Oluwaseun", "Mateo", "Ingrid", "Farah", "Declan"]
TEMPLATES = [
    ("the access code for {p} is {v}", "what is the access code for {p}?", "code"),
    ("{q}'s passport number is {v}", "what is {q}'s passport number?", "passport"),
    ("the wifi password at {p} is {v}", "what is the wifi password at {p}?", "word"),
    ("{q} moved the team offsite to {v}", "where did {q} move the team offsite to?", "city"),
    ("{q}'s emergency contact phone is {v}", "what is {q}'s emergency contact phone?", "phone"),
    ("the parking spot reserved for {q} is {v}", "which parking spot is reserved for {q}?", "spot"),
]
# Deep facts name other people and places, so they do not compete with the others for the top 5.
DEEP_PLACES = ["the east depot", "lab 12", "the harbour kiosk", "archive room C", "the ski lodge", "bay 4"]
DEEP_PEOPLE = ["Anneliese", "Bartholomew", "Chidinma", "Dmitri", "Esperanza", "Fumiko", "Gunnar", "Hyun-woo"]
DEEP_MIN_CHARS = 3000  # a deep fact sits past the middle: well after MiniLM's 256 word pieces
CITIES = ["Lisbon", "Tallinn", "Hobart", "Valparaiso", "Kraków", "Nagoya", "Tromsø", "Cusco", "Windhoek", "Ghent"]


@dataclass(frozen=True)
class Fact:
    key: str
    text: str
    question: str
    answer: str
    where: str  # "turn", "tool" (a note atop a tool output) or "deep" (inside a long one)


def _value(kind: str, rng: random.Random) -> str:
    if kind == "code":
        return f"{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGHJK')}"
    if kind == "passport":
        return f"X{rng.randint(10_000_000, 99_999_999)}"
    if kind == "word":
        return f"{rng.choice(['amber', 'cobalt', 'saffron', 'teal'])}-{rng.choice(['otter', 'falcon', 'lynx'])}-{rng.randint(10, 99)}"
    if kind == "city":
        return rng.choice(CITIES)
    if kind == "phone":
        return f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    return f"P{rng.randint(1, 9)}-{rng.randint(100, 999)}"


def make_facts(
    n: int, seed: int = 7, people: list[str] = PEOPLE, places: list[str] = PLACES, distinct_questions: bool = False
) -> list[Fact]:
    rng = random.Random(seed)
    facts: list[Fact] = []
    seen: set[str] = set()
    while len(facts) < n:
        text, question, kind = rng.choice(TEMPLATES)
        p, q = rng.choice(places), rng.choice(people)
        mark = question.format(p=p, q=q) if distinct_questions else (text, p, q)
        if mark in seen:
            continue
        seen.add(mark)  # type: ignore[arg-type]
        value = _value(kind, rng)
        where = "turn" if len(facts) % 2 == 0 else "tool"
        facts.append(
            Fact(f"fact{len(facts):03d}", text.format(p=p, q=q, v=value), question.format(p=p, q=q), value, where)
        )
    return facts


def build_history(
    n_trajectories: int | None, n_facts: int, n_deep: int = 0
) -> tuple[list[tuple[str, dict[str, Any]]], list[Fact]]:
    """The long history as (key, value) memories, oldest first, with the facts planted.

    The first ``n_facts`` alternate between user turns and notes atop tool outputs; ``n_deep`` more
    go in the middle of tool outputs of over ``DEEP_MIN_CHARS`` characters.
    """
    from .bfcl import closing_text, load_trajectories

    items: list[tuple[str, dict[str, Any]]] = []
    for ti, traj in enumerate(load_trajectories(limit=n_trajectories)):
        for ui, turn in enumerate(traj.turns):
            items.append((f"t{ti:03d}u{ui}", {"text": f"user: {turn.user_text}", "kind": "human"}))
            for ci, call in enumerate(turn.calls):
                text = f"tool {call.name}({call.args}) result: {call.output_text}"
                items.append((f"t{ti:03d}u{ui}c{ci}", {"text": text, "kind": "tool"}))
            items.append((f"t{ti:03d}u{ui}a", {"text": f"assistant: {closing_text(turn)}", "kind": "ai"}))
    facts = make_facts(n_facts)
    deep = make_facts(n_deep, 11, DEEP_PEOPLE, DEEP_PLACES, distinct_questions=True)
    tool_slots = [i for i, (_, v) in enumerate(items) if v["kind"] == "tool"]
    inserts: list[tuple[int, tuple[str, dict[str, Any]]]] = []
    used: set[int] = set()
    for j, fact in enumerate(facts):
        spot = (j + 0.5) / len(facts)  # evenly spread over the history
        if fact.where == "tool":
            i = tool_slots[int(spot * len(tool_slots))]
            key, value = items[i]
            head, _, rest = value["text"].partition(" result: ")
            items[i] = (key, {**value, "text": f"{head} result: note: {fact.text}.\n{rest}"})
            facts[j] = Fact(key, fact.text, fact.question, fact.answer, "tool")
            used.add(i)
        else:
            said = {"text": f"user: please remember that {fact.text}.", "kind": "human"}
            inserts.append((int(spot * len(items)), (fact.key, said)))
    long_slots = [i for i in tool_slots if i not in used and len(items[i][1]["text"]) >= DEEP_MIN_CHARS]
    for j, fact in enumerate(deep):
        i = long_slots[int((j + 0.5) / len(deep) * len(long_slots))]
        key, value = items[i]
        text = value["text"]
        cut = min(
            (p + 1 for p in (text.find(", ", len(text) // 2), text.find("\n", len(text) // 2)) if p >= 0),
            default=len(text),
        )
        items[i] = (key, {**value, "text": f"{text[:cut]} note: {fact.text}. {text[cut:]}"})
        facts.append(Fact(key, fact.text, fact.question, fact.answer, "deep"))
    for pos, item in reversed(inserts):
        items.insert(pos, item)
    return items, facts
