"""Baselines of the tool-output bench: head truncation, BM25 sentence/line selection, random, tool clearing.

Each baseline maps ``(text, query, budget)`` to a text within ``budget`` tokens of the bench's tokenizer,
independently of the engine (none of them calls :func:`agent_tokred.compress`).

* ``head``: the first ``budget`` tokens, decoded (exact in the tokenizer; re-counted and shortened until
  it fits).
* ``bm25-sentence``: the text cut into lines, lines over :data:`LONG_LINE` characters further cut after
  sentence ends and after ``},`` / ``],`` (so single-line JSON gives record-sized pieces), and pieces still
  over it cut after commas (a long list of names gives one piece per name); rank-bm25's
  ``BM25Okapi`` scores each piece against the query's terms; the best pieces are kept, in their original
  order, while they fit.
* ``random``: the same pieces in an order seeded by crc32 of the text, packed the same way.
* ``clear``: LangChain's ``ClearToolUsesEdit`` on the task's trajectory, see :func:`clearing_verdicts`.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any

LONG_LINE = 300
_PIECE = re.compile(r"(?<=[.!?])\s+|(?<=[}\]],)\s*")
_CLAUSE = re.compile(r"(?<=,)\s+")
_TERM = re.compile(r"[A-Za-z0-9_]+")


def pieces(text: str) -> list[str]:
    """Lines; long lines cut after sentence ends and ``},`` / ``],``, then after commas; joined back by newlines."""
    out: list[str] = []
    for line in text.splitlines():
        for piece in _PIECE.split(line) if len(line) > LONG_LINE else [line]:
            out.extend(p for p in (_CLAUSE.split(piece) if len(piece) > LONG_LINE else [piece]) if p.strip())
    return out


def _terms(text: str) -> list[str]:
    return [t.lower() for t in _TERM.findall(text)]


def pack(units: Sequence[str], order: Sequence[int], budget: int, count: Callable[[str], int]) -> str:
    """Keep units in ``order`` of preference while they fit; joined in their original order by newlines."""
    kept: set[int] = set()
    used = 0
    for i in order:
        cost = count(units[i]) + 1
        if used + cost <= budget:
            kept.add(i)
            used += cost
    text = "\n".join(units[i] for i in sorted(kept))
    for i in reversed(list(order)):  # the sum of unit counts can undercount the joined text by a token or two
        if count(text) <= budget:
            break
        kept.discard(i)
        text = "\n".join(units[j] for j in sorted(kept))
    return text


def bm25_select(text: str, query: str, budget: int, count: Callable[[str], int]) -> str:
    """BM25 sentence/line selection under ``budget`` tokens."""
    from rank_bm25 import BM25Okapi

    units = pieces(text)
    if not units:
        return ""
    scores = BM25Okapi([_terms(u) or ["_"] for u in units]).get_scores(_terms(query))
    order = sorted(range(len(units)), key=lambda i: (-scores[i], i))
    return pack(units, order, budget, count)


def random_select(text: str, query: str, budget: int, count: Callable[[str], int]) -> str:
    """Random pieces (seeded by crc32 of the text) under ``budget`` tokens."""
    units = pieces(text)
    order = list(range(len(units)))
    random.Random(zlib.crc32(text.encode("utf-8", "surrogatepass"))).shuffle(order)
    return pack(units, order, budget, count)


def head_truncate(text: str, budget: int, encoding: Any) -> str:
    """The first ``budget`` tokens of ``text`` in ``encoding`` (a tiktoken-style encoder with ``decode``)."""
    ids = encoding.encode(text)[: max(0, budget)]
    out = encoding.decode(ids)
    while ids and len(encoding.encode(out)) > budget:
        ids = ids[:-1]
        out = encoding.decode(ids)
    return str(out)


def clearing_verdicts(outputs: Sequence[str], rate: float, count: Callable[[str], int]) -> list[bool]:
    """Which of a trajectory's tool outputs LangChain's ``ClearToolUsesEdit`` keeps, at token rate ``rate``.

    The outputs (one task's, in replay order) become one context: a human turn, then for each output an
    AI message with its tool call and the ``ToolMessage``. The edit runs once on that context with
    ``trigger=0`` (always fires), ``keep=0`` and ``clear_at_least = ceil((1 - rate) * tool tokens)``: it
    clears the oldest outputs until it has reclaimed the share of tokens the rate asks for, the setting
    that spends the same tokens as the other methods. A cleared output keeps no evidence.

    Returns:
        ``True`` for each output left whole, ``False`` for each replaced by the placeholder.
    """
    from langchain.agents.middleware.context_editing import ClearToolUsesEdit
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    messages: list[Any] = [HumanMessage("task")]
    for i, out in enumerate(outputs):
        messages.append(AIMessage("", tool_calls=[{"name": "tool", "args": {}, "id": f"c{i}"}]))
        messages.append(ToolMessage(out, tool_call_id=f"c{i}", name="tool"))
    total = sum(count(o) for o in outputs)
    edit = ClearToolUsesEdit(trigger=0, keep=0, clear_at_least=max(1, math.ceil((1 - rate) * total)))

    def tokens(msgs: Sequence[Any]) -> int:
        return sum(count(m.content) if isinstance(m.content, str) else 0 for m in msgs)

    edit.apply(messages, count_tokens=tokens)
    return [not m.response_metadata.get("context_editing", {}).get("cleared") for m in messages[2::2]]
