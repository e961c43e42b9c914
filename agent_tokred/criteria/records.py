"""What makes a field of a record worth its tokens, for structured tool output with a task.

Agents copy identifiers, names, dates and amounts from one tool output into their next call or
their answer, and they ask for the record that matches the task. Three signals, all model-free:

* :func:`field_prior`: a field's role from its key and value (``order_id``, ``email``, ``date``, an
  id-like value score high; long free text low) and its depth (a record's own fields before the
  details nested in it).
* :func:`record_match`: how well the whole record a field belongs to matches the task (BM25 of the
  record's text against the task's terms, exact names and ids counting most), so the fields of a
  matching record rise together and the record is kept whole.
* :func:`density`: the structured strategy ranks by score per token, since a field costs its length.

Example:
    >>> from agent_tokred.units import Unit
    >>> units = [Unit("order_id: #W123", kind="field", path="$.order_id"),
    ...          Unit("note: thanks for shopping with us", kind="field", path="$.note")]
    >>> p = field_prior(units)
    >>> bool(p[0] > p[1])
    True
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from .._patterns import PROTECTED
from ..strategies.structured import array_head_prior
from ..units import Unit
from .base import rank_normalize
from .lexical import STOP_WORDS, terms

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]")
_ID_KEY = re.compile(r"(?:^|[_\-\s])(?:id|ids|uuid|guid|key|ref|code|number|no|num|sku|handle|slug)$|[a-z](?:Id|ID|Ids)$",
                     re.I)
_ROLE_KEYS = frozenset(
    ["name", "title", "subject", "from", "to", "sender", "recipient", "recipients", "author", "owner", "user", "username", "email", "phone", "date", "time", "start", "end", "due", "created", "updated", "timestamp", "status", "state", "type", "kind", "amount", "price", "total", "balance", "cost", "currency", "path", "file", "filename", "url", "link", "location", "city", "zip", "address", "symbol", "ticker", "channel", "label", "category", "origin", "destination", "flight", "departure", "arrival"]
)
_IDENT_VALUE = re.compile(r"^[#@]?[A-Za-z]*[_\-]?\d[\w\-#@./:]*$|^[A-Za-z]+[_\-][\w\-]+$")


_STRICT_ID_KEY = re.compile(r"(?:^|[_\-\s])(?:id|ids|uuid|guid)$|^(?:id|ids|uuid)$|[a-z](?:Id|ID|Ids)$", re.I)
# an identifier with letters and digits (SKU-123, #W2378156, user-0042), unlike a phone number or zip code
_CODE_VALUE = re.compile(r"^(?=[^\s]*[a-z])(?=[^\s]*\d)[#@]?[\w][\w\-#@./:]*$", re.I)
_TOKEN = re.compile(r"[#@]?\w[\w\-#@./:]*\w|\w")
_EMPTY = frozenset(["null", "None", "", "[]", "{}", "~", "false"])


@lru_cache(maxsize=65536)
def path_steps(path: str) -> tuple[str | int, ...]:
    """``$.a.b[2]["x y"]`` -> ``("a", "b", 2, "x y")``, memoised: every signal of the record scorer reads
    each unit's path."""
    steps: list[str | int] = []
    for m in _STEP.finditer(path):
        if m.group(1) is not None:
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append(int(m.group(2)))
        else:
            steps.append(m.group(3)[1:-1])
    return tuple(steps)


def _key_and_value(unit: Unit) -> tuple[str, str]:
    steps = path_steps(unit.path)
    key = next((s for s in reversed(steps) if isinstance(s, str)), "")
    text = unit.text
    value = text.split(": ", 1)[1] if ": " in text[: len(key) + 4] and key else text
    return key, value.strip().strip('"')


def field_prior(units: Sequence[Unit], values: Sequence[Any] | None = None) -> np.ndarray:
    """A prior in ``[0, 1]`` per field unit from its key, its value and its depth (0 for text units).

    ``values`` are the units' values in the tree (from the structured strategy); a unit that holds a
    whole object or list then scores by the best of its own fields (``payment_methods: {...}``
    holding an ``id``, ``orders: ["#W1", "#W2"]`` holding ids). Without it the value is read from
    the unit's text.
    """
    out = np.zeros(len(units))
    for k, unit in enumerate(units):
        if not unit.path:
            continue
        key = _key_and_value(unit)[0] if values is None else _last_key(unit.path)
        value: Any = _key_and_value(unit)[1] if values is None else values[k]
        depth = sum(1 for s in path_steps(unit.path) if isinstance(s, str))
        out[k] = _prior(key, value, 0) + 0.2 / (1 + max(0, depth - 1))
    return np.clip(out, 0.0, 1.0)


def _last_key(path: str) -> str:
    return next((s for s in reversed(path_steps(path)) if isinstance(s, str)), "")


def _prior(key: str, value: Any, level: int) -> float:
    if isinstance(value, (dict, list)):
        if level >= 3 or not value:
            return 0.0
        items = value.items() if isinstance(value, dict) else ((key, v) for v in value)
        best = max((_prior(str(k), v, level + 1) for k, v in list(items)[:50]), default=0.0)
        return 0.9 * best
    text = str(value).strip().strip('"')
    if text in _EMPTY or value is None:
        return 0.0  # a null or empty field says nothing an agent can use
    base = key.lower().replace("-", "_")
    score = 0.0
    if _ID_KEY.search(key) or base in ("id", "ids"):
        score += 0.6
    elif base.split("_")[-1] in _ROLE_KEYS or base in _ROLE_KEYS:
        score += 0.35
    if len(text) <= 64 and (_IDENT_VALUE.match(text) or PROTECTED.fullmatch(text)):
        score += 0.3
    if len(text) > 160:  # free text: worth keeping for what it says, not as a handle
        score -= 0.2
    return score


RecordKeys = Sequence[tuple[tuple[str | int, ...], ...]]


def record_match(units: Sequence[Unit], query: str | None, records: RecordKeys) -> np.ndarray:
    """How well the records a unit lies in match the query, in ``[0, 1]``: BM25 of each record's text
    against the query's terms (exact ids and names weigh most), normalised per collection, the
    unit taking the mean over its enclosing records (outer and inner)."""
    n = len(units)
    if not query or n == 0:
        return np.zeros(n)
    members: dict[tuple[str | int, ...], list[int]] = {}
    for k, recs in enumerate(records):
        for r in recs:
            members.setdefault(r, []).append(k)
    if not members:
        return np.zeros(n)
    q_terms = {t for t in terms(query) if t not in STOP_WORDS and len(t) > 1}
    q_exact = {m.group().lower() for m in PROTECTED.finditer(query) if len(m.group()) >= 3}
    unit_terms = [terms(u.text) for u in units]
    # records are compared with their siblings: the elements of the same collection
    by_parent: dict[tuple[str | int, ...], list[tuple[str | int, ...]]] = {}
    for r in members:
        by_parent.setdefault(r[:-1], []).append(r)
    rec_score: dict[tuple[str | int, ...], float] = {}
    for siblings in by_parent.values():
        tcs = [Counter(t for k in members[r] for t in unit_terms[k]) for r in siblings]
        df = Counter(t for tc in tcs for t in tc if t in q_terms)
        m = len(siblings)
        avg = sum(sum(tc.values()) for tc in tcs) / m or 1.0
        raw = []
        for tc in tcs:
            norm = 1.2 * (0.25 + 0.75 * sum(tc.values()) / avg)
            s = sum(math.log(1 + (m - df[t] + 0.5) / (df[t] + 0.5)) * tc[t] * 2.2 / (tc[t] + norm)
                    for t in q_terms & tc.keys())
            raw.append(s + 3.0 * sum(1 for t in q_exact if t in tc))
        hi = max(raw)
        for r, v in zip(siblings, raw):
            rec_score[r] = v / hi if hi > 0 else 0.0
    out = np.zeros(n)
    for k, recs in enumerate(records):
        if recs:
            out[k] = sum(rec_score[r] for r in recs) / len(recs)
    return out


def known_values(units: Sequence[Unit], query: str | None) -> np.ndarray:
    """1 for a field whose value the query already states (the agent knows it), else 0."""
    out = np.zeros(len(units))
    if not query:
        return out
    q = query.lower()
    for k, unit in enumerate(units):
        if unit.path:
            value = _key_and_value(unit)[1].lower()
            if len(value) >= 3 and value in q:
                out[k] = 1.0
    return out


def density(scores: np.ndarray, costs: Sequence[int], power: float = 0.5) -> np.ndarray:
    """Score per token (``score / cost ** power``): what a budget buys, not what a unit is worth alone."""
    c = np.maximum(np.asarray(costs, dtype=np.float64), 1.0)
    return scores / c**power


@dataclass(frozen=True)
class RecordWeights:
    """How the structured strategy mixes its signals (tuned on the dev split of ``bench.bench_tools``).

    The mix is ``criterion * rank(base) + head * array_head + field * field_prior + record * record_match
    - known * known_values``, then divided by ``cost ** power``.
    """

    criterion: float = 0.1
    """Weight of the criterion's own scores, rank-normalised (they are weak on records alone)."""
    head: float = 0.5
    """Weight of the array-head prior: the first items of a list are what a reader sees first."""
    field: float = 1.0
    """Weight of the field prior (key, value kind and depth of each field)."""
    record: float = 1.0
    """Weight of how well a unit's enclosing records match the query (BM25 per record)."""
    known: float = 0.5
    """Penalty for fields whose value the query already states (the agent knows it)."""
    power: float = 0.3
    """How strongly a unit's token cost divides its score (0: not at all, 1: score per token)."""


DEFAULT_WEIGHTS = RecordWeights()


def record_scores(
    units: Sequence[Unit], base: np.ndarray, query: str | None, costs: Sequence[int], records: RecordKeys,
    weights: RecordWeights = DEFAULT_WEIGHTS, values: Sequence[Any] | None = None,
) -> np.ndarray:
    """The structured strategy's ranking: criterion, array-head, field and record signals, per token."""
    mixed = (weights.criterion * rank_normalize(base) + weights.head * array_head_prior(units)
             + weights.field * field_prior(units, values) + weights.record * record_match(units, query, records)
             - weights.known * known_values(units, query))
    return density(mixed + 1e-3, costs, weights.power)


def protect_candidates(
    units: Sequence[Unit], query: str, prose: Sequence[bool] = (), values: Sequence[Any] = ()
) -> list[bool]:
    """Per unit: a field or record holding a value the query names as a whole token, when that value is
    an id (letters and digits such as ``SKU-123`` or ``#W2378156``, or the value of an id key; a phone
    number or a zip code only ranks its record), or a sentence of a long text field holding an id,
    number or code the query names. At most 3 hits, else none (a query naming everything decides nothing).
    """
    low = query.lower()
    codes = {t for t in _TOKEN.findall(low) if len(t) >= 3 and _CODE_VALUE.match(t)}
    spans = {m.group().lower() for m in PROTECTED.finditer(query) if len(m.group()) >= 3}
    out = [False] * len(units)
    for k, unit in enumerate(units):
        key, value = _key_and_value(unit)
        v = value.lower()
        if k < len(prose) and prose[k]:
            out[k] = any(sp in v for sp in spans)
        elif codes and _holds_code(unit.text.lower(), codes):
            out[k] = True
        else:
            value_k = values[k] if k < len(values) else None
            pairs = list(value_k.items()) if isinstance(value_k, dict) else [(key, v)]
            out[k] = any(_names_id(str(kk), str(vv).lower(), low) for kk, vv in pairs)
    return out if sum(out) <= 3 else [False] * len(units)


def _holds_code(low: str, codes: set[str]) -> bool:
    """A token of ``low`` is one of ``codes`` (a code that is no substring cannot be a token: no scan)."""
    return any(c in low for c in codes) and any(t in codes for t in _TOKEN.findall(low))


def _names_id(key: str, value: str, query: str) -> bool:
    return (len(value) >= 3 and value in query and _STRICT_ID_KEY.search(key) is not None
            and re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w-])", query) is not None)


def protect_ids(units: list[Unit], query: str | None, prose: Sequence[bool], values: Sequence[Any]) -> list[Unit]:
    """Mark the units :func:`protect_candidates` picks as protected (force-kept); other query values (a
    zip code, a name) only rank their records: the agent already knows them."""
    if not query:
        return units
    hits = protect_candidates(units, query, prose, values)
    return [replace(u, protected=True) if hit else u for u, hit in zip(units, hits)] if any(hits) else units
