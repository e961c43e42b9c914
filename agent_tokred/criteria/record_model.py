"""A small learned model of which fields of a structured tool output an agent will need.

A one-hidden-layer network over cheap, model-free features of each field unit: its role (id-like
key, role key such as ``email`` or ``date``, id-like value, null, long free text), where it sits
(depth, array position, size of its collection, which top-level section), whether it holds a whole
object, what it costs, how well its record matches the task, whether its value is already stated in
the task, whether the task names the field (``frontLeftTirePressure`` for "tire pressure", its own
name or an enclosing one), and the criterion's query-aware score. The structured strategy ranks units
by the predicted probability per token (the greedy answer to "most evidence for the budget"), with
three rules on top: items of one list cost alike (:func:`item_costs`), the criterion picks the
sentences of a long text field (:func:`pieces_by_criterion`), and a record's own id comes with it
(:func:`anchor_ids`).

The shipped weights (``data/record_scorer.json``) are five such networks (seeds 0-4, probabilities
averaged) fitted on the dev split of ``bench.bench_tools`` (τ²-bench, BFCL, tables; the test split's
tasks are held out) by ``python -m bench.train_record_scorer --seeds 5``; the file records that.

Example:
    >>> from agent_tokred.units import Unit
    >>> units = [Unit("order_id: #W123", kind="field", path="$.order_id"),
    ...          Unit("note: null", kind="field", path="$.note")]
    >>> x = record_features(units, np.zeros(2), None, [(), ()], ["#W123", None], [6, 3])
    >>> x.shape == (2, len(FEATURES))
    True
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .._patterns import PROTECTED
from ..strategies.structured import ARRAY_HEAD_PRIOR, array_head_prior
from ..units import Unit
from .base import minmax_normalize, rank_normalize
from .lexical import STOP_WORDS, terms
from .records import (
    _EMPTY,
    _ID_KEY,
    _IDENT_VALUE,
    _ROLE_KEYS,
    _STRICT_ID_KEY,
    DEFAULT_WEIGHTS,
    RecordKeys,
    RecordWeights,
    _last_key,
    field_prior,
    known_values,
    path_steps,
    record_match,
    record_scores,
)

FEATURES: tuple[str, ...] = (
    "lexical_rank", "id_key", "role_key", "id_value", "empty", "long_text", "inv_depth", "array_item",
    "head_prior", "log_collection", "container", "log_cost", "section", "record_match", "in_record",
    "known", "field_prior", "key_match", "path_match",
)
HEAD_PRIOR = 0.5
WEIGHTS_FILE = Path(__file__).resolve().parent.parent / "data" / "record_scorer.json"


def record_features(
    units: Sequence[Unit], base: np.ndarray, query: str | None, records: RecordKeys,
    values: Sequence[Any], costs: Sequence[int],
) -> np.ndarray:
    """One row of :data:`FEATURES` per unit (see the module docstring)."""
    n = len(units)
    x = np.zeros((n, len(FEATURES)))
    if n == 0:
        return x
    x[:, 0] = rank_normalize(base) if n > 1 else 0.5
    parents = [u.path.rsplit("[", 1)[0] if u.path.endswith("]") else "" for u in units]
    sizes = Counter(p for p in parents if p)
    for k, (unit, value) in enumerate(zip(units, values)):
        key = _last_key(unit.path)
        base_key = key.lower().replace("-", "_")
        text = "" if isinstance(value, (dict, list)) or value is None else str(value).strip().strip('"')
        steps = path_steps(unit.path)
        x[k, 1] = 1.0 if (_ID_KEY.search(key) or base_key in ("id", "ids")) else 0.0
        x[k, 2] = 1.0 if (base_key.split("_")[-1] in _ROLE_KEYS or base_key in _ROLE_KEYS) else 0.0
        x[k, 3] = 1.0 if text and len(text) <= 64 and (_IDENT_VALUE.match(text) or PROTECTED.fullmatch(text)) else 0.0
        x[k, 4] = 1.0 if value is None or (text in _EMPTY and not isinstance(value, (dict, list))) else 0.0
        x[k, 5] = 1.0 if len(text) > 160 else 0.0
        x[k, 6] = 1.0 / (1 + sum(1 for s in steps if isinstance(s, str)))
        last_index = next((s for s in reversed(steps) if isinstance(s, int)), None)
        x[k, 7] = 1.0 if steps and isinstance(steps[-1], int) else 0.0
        x[k, 8] = 1.0 / (1 + last_index) if last_index is not None else 0.0
        x[k, 9] = math.log1p(sizes.get(parents[k], 0))
        x[k, 10] = 1.0 if isinstance(value, (dict, list)) else 0.0
        x[k, 11] = math.log1p(costs[k])
        x[k, 14] = 1.0 if records[k] else 0.0
    x[:, 12] = section_positions(units)
    x[:, 13] = record_match(units, query, records)
    x[:, 15] = known_values(units, query)
    x[:, 16] = field_prior(units, values)
    x[:, 17:19] = key_matches(units, query)
    return x


def section_positions(units: Sequence[Unit]) -> np.ndarray:
    """Where a unit's top-level field comes among the root object's fields, in ``[0, 1]`` (0 for a root
    list): later sections of an API response (a user's ``orders`` after the profile) hold what the next
    call needs more often than the profile the agent already knows. Positions inside lists do not count."""
    firsts = [path_steps(u.path)[:1] for u in units]
    order: dict[str, int] = {}
    for first in firsts:
        if first and isinstance(first[0], str) and first[0] not in order:
            order[first[0]] = len(order)
    if len(order) < 2:
        return np.zeros(len(units))
    return np.asarray([order[f[0]] / (len(order) - 1) if f and isinstance(f[0], str) else 0.0 for f in firsts])


_KEY_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def key_words(key: str) -> set[str]:
    """The words of a field name (``frontLeftTirePressure``, ``tire_pressure``, ``Tire-Pressure``: tire,
    pressure, ...), lower-cased, stop words and one-letter pieces out, a plural ``s`` dropped."""
    words = (w.lower() for w in _KEY_WORD.findall(key))
    return {_singular(w) for w in words if len(w) > 1 and w not in STOP_WORDS}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")) else word


def key_matches(units: Sequence[Unit], query: str | None) -> np.ndarray:
    """Per unit: the share of its own field name's words the query says ("tire pressure" names
    ``frontLeftTirePressure`` by half), and the best share among the names of the fields it lies in."""
    out = np.zeros((len(units), 2))
    if not query:
        return out
    asked = {w for t in terms(query) for w in key_words(t)} | key_words(query)
    shares: dict[str, float] = {}

    def share(key: str) -> float:
        known = shares.get(key)
        if known is None:
            words = key_words(key)
            known = shares[key] = len(words & asked) / len(words) if words else 0.0
        return known

    for k, unit in enumerate(units):
        keys = [s for s in path_steps(unit.path) if isinstance(s, str)]
        if keys:
            out[k, 0] = share(keys[-1])
            out[k, 1] = max((share(key) for key in keys[:-1]), default=0.0)
    return out


def evidence_per_token(p: np.ndarray, x: np.ndarray, costs: Sequence[int], power: float) -> np.ndarray:
    """Predicted evidence per token (``cost ** power``), the head of an array keeping a fixed prior on top
    (``HEAD_PRIOR * max(p) / (1 + i)``): lists in API responses are ordered and agents ask for "the first
    one", whatever the training data."""
    c = np.maximum(np.asarray(costs, dtype=np.float64), 1.0)
    head = x[:, FEATURES.index("head_prior")] * x[:, FEATURES.index("array_item")]
    return (p + HEAD_PRIOR * float(p.max(initial=0.0)) * head) / c**power


@dataclass(frozen=True)
class RecordModel:
    """Standardise, one tanh hidden layer, a logistic output; ``power`` sets how strongly cost divides
    the probability in the ranking."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    power: float = 1.0

    def probability(self, x: np.ndarray) -> np.ndarray:
        h = np.tanh(((x - self.mean) / self.scale) @ self.w1 + self.b1)
        z = h @ self.w2 + self.b2
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def weights(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "w1": self.w1.tolist(),
                "b1": self.b1.tolist(), "w2": self.w2.tolist(), "b2": self.b2}

    def to_json(self, meta: dict[str, Any]) -> str:
        return json.dumps({"features": list(FEATURES), **self.weights(), "power": self.power, "meta": meta})

    @classmethod
    def from_dict(cls, d: dict[str, Any], power: float = 1.0) -> RecordModel:
        return cls(np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["w1"]), np.asarray(d["b1"]),
                   np.asarray(d["w2"]), float(d["b2"]), power)


@dataclass(frozen=True)
class RecordEnsemble:
    """Networks fitted with different seeds on the same rows; their probabilities are averaged, which
    keeps the ranking from hanging on one seed's quirks on inputs unlike the training data."""

    members: tuple[RecordModel, ...]
    power: float = 1.0

    def probability(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m.probability(x) for m in self.members], axis=0)

    def rank(self, x: np.ndarray, costs: Sequence[int]) -> np.ndarray:
        """Expected evidence per token: the order in which the structured strategy keeps units."""
        return evidence_per_token(self.probability(x), x, costs, self.power)

    def to_json(self, meta: dict[str, Any]) -> str:
        return json.dumps({"features": list(FEATURES), "members": [m.weights() for m in self.members],
                           "power": self.power, "meta": meta})


def load_record_model(text: str) -> RecordEnsemble:
    """A weights file: an ensemble (``"members"``), or one network (read as an ensemble of one)."""
    d = json.loads(text)
    if list(d["features"]) != list(FEATURES):
        raise ValueError("record scorer weights were fitted on other features; retrain them")
    power = float(d.get("power", 1.0))
    members = d.get("members", [d])
    if not members:
        raise ValueError("record scorer ensemble without members")
    return RecordEnsemble(tuple(RecordModel.from_dict(m, power) for m in members), power)


@lru_cache(maxsize=1)
def shipped_model() -> RecordEnsemble | None:
    """The shipped weights, or ``None`` when the file is missing or unreadable (the heuristic is used)."""
    try:
        return load_record_model(WEIGHTS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fit_model(x: np.ndarray, y: np.ndarray, w: np.ndarray, *, hidden: int = 16, epochs: int = 400,
              l2: float = 1e-4, seed: int = 0, power: float = 1.0) -> RecordModel:
    """Weighted cross-entropy, full-batch Adam, seeded: the same data gives the same weights."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    params = [rng.normal(0, 1 / math.sqrt(z.shape[1]), (z.shape[1], hidden)), np.zeros(hidden),
              rng.normal(0, 1 / math.sqrt(hidden), hidden), np.zeros(1)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    wn = w / w.sum()
    for t in range(1, epochs + 1):
        h = np.tanh(z @ params[0] + params[1])
        p = 1.0 / (1.0 + np.exp(-np.clip(h @ params[2] + params[3][0], -30, 30)))
        g_out = wn * (p - y)
        g_h = np.outer(g_out, params[2]) * (1 - h**2)
        grads = [z.T @ g_h + l2 * params[0], g_h.sum(axis=0), h.T @ g_out + l2 * params[2],
                 np.array([g_out.sum()])]
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] = params[i] - 0.02 * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return RecordModel(mean, scale, params[0], params[1], params[2], float(params[3][0]), power)


def rank_tree_units(
    units: Sequence[Unit], scores: np.ndarray, query: str | None, tree: Any, costs: Sequence[int],
    weights: RecordWeights = DEFAULT_WEIGHTS, *, learned: bool = True,
) -> np.ndarray:
    """The structured strategy's ranking of a tree's units.

    With ``learned`` (the default for every criterion; the criterion's ``scores``, rank-normalised, are the
    model's query-aware feature): the shipped model, or the hand-set mix when its weights are
    unreadable or the caller set its own :class:`RecordWeights`. Without it (``Compressor(record_scorer=False)``
    with a named criterion): that criterion's min-max normalised scores plus the array-head prior, so the
    named criterion alone decides.
    """
    if not learned and weights is DEFAULT_WEIGHTS:
        return minmax_normalize(scores) + ARRAY_HEAD_PRIOR * array_head_prior(units)
    values = [leaf.value for leaf in tree.leaves]
    model = shipped_model() if weights is DEFAULT_WEIGHTS else None
    per_item = item_costs(tree.leaves, costs)
    if model is not None:
        ranked = model.rank(record_features(units, scores, query, tree.records(), values, costs), per_item)
    else:
        ranked = record_scores(units, scores, query, per_item, tree.records(), weights, values)
    return anchor_ids(pieces_by_criterion(ranked, tree.leaves, scores), tree.leaves, query)


def pieces_by_criterion(ranked: np.ndarray, leaves: Sequence[Any], scores: np.ndarray) -> np.ndarray:
    """Inside one long text field cut into sentences, the criterion says which sentences come first.

    The record ranking decides how much of the field is worth its tokens (the ranks its pieces get
    among the other fields); the criterion, which reads the text against the task, decides which of
    its sentences take those ranks: the best-ranked slot goes to the sentence the criterion scores
    highest (ties: the earlier sentence).
    """
    groups: dict[tuple[str | int, ...], list[int]] = {}
    for k, leaf in enumerate(leaves):
        if leaf.piece >= 0:
            groups.setdefault(leaf.steps, []).append(k)
    out = np.array(ranked, dtype=np.float64)
    for members in groups.values():
        if len(members) > 1:
            slots = sorted((float(ranked[k]) for k in members), reverse=True)
            by_text = sorted(members, key=lambda k: (-float(scores[k]), k))
            for k, slot in zip(by_text, slots):
                out[k] = slot
    return out


def item_costs(leaves: Sequence[Any], costs: Sequence[int]) -> list[int]:
    """Costs for ranking: a scalar item of a list (``["NVDA", "OMEG", "W", ...]``) costs the median of
    its list's scalar items, so that items the task does not tell apart keep their order (the head of
    the list) instead of the shortest being taken first; every other unit costs its own tokens."""
    groups: dict[tuple[str | int, ...], list[int]] = {}
    for k, leaf in enumerate(leaves):
        steps = leaf.steps
        if steps and isinstance(steps[-1], int) and leaf.piece < 0 and not isinstance(leaf.value, (dict, list)):
            groups.setdefault(steps[:-1], []).append(k)
    out = list(costs)
    for members in groups.values():
        if len(members) > 1:
            median = int(np.median([costs[k] for k in members]))
            for k in members:
                out[k] = median
    return out


def anchor_ids(ranked: np.ndarray, leaves: Sequence[Any], query: str | None = None) -> np.ndarray:
    """A record's id field ranks just above the best field kept inside that record.

    A record of a list kept without its identifier (a bill's dates without its ``bill_id``) cannot be
    named in the next tool call, so its best-ranked ``id``/``*_id`` field is taken before any other part
    of it (nested parts included). The record's own id is preferred: one whose value no sibling shares
    (every bill's ``customer_id`` is the same, so it names none of them). Single objects (the root, an
    ``address``) are left as ranked (anchoring the root's id cost 9 points in τ² retail at 15% on the
    dev split), and so is an id the query already states (the agent has it). ``leaves`` are the tree's
    leaves (``steps``, ``value``, ``piece``), one per unit.
    """
    known = (query or "").lower()
    candidates = [
        k for k, leaf in enumerate(leaves)
        if len(leaf.steps) >= 2 and isinstance(leaf.steps[-2], int) and isinstance(leaf.steps[-1], str)
        and leaf.value is not None and not isinstance(leaf.value, (dict, list)) and leaf.piece < 0
        and _STRICT_ID_KEY.search(str(leaf.steps[-1])) and str(leaf.value).lower() not in known
    ]

    def column(k: int) -> tuple[tuple[str | int, ...], str, str]:  # (list, field, value) of a candidate
        steps = leaves[k].steps
        return steps[:-2], str(steps[-1]), str(leaves[k].value)

    seen = Counter(map(column, candidates))
    id_of: dict[tuple[str | int, ...], int] = {}
    for k in candidates:  # an id every sibling shares (the bills' customer_id) names none of them
        record = leaves[k].steps[:-1]
        j = id_of.get(record)
        if j is None or (seen[column(k)] == 1, ranked[k]) > (seen[column(j)] == 1, ranked[j]):
            id_of[record] = k
    if not id_of:
        return ranked
    out = np.array(ranked, dtype=np.float64)
    for k, leaf in enumerate(leaves):
        for depth in range(len(leaf.steps)):
            anchor = id_of.get(leaf.steps[:depth])
            if anchor is not None and anchor != k and ranked[k] > 0:
                out[anchor] = max(out[anchor], ranked[k] * (1 + 1e-6))
    return out
