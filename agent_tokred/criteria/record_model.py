"""A small learned model of which fields of a structured tool output an agent will need.

Logistic regression over cheap, model-free features of each field unit: its role (id-like key,
role key such as ``email`` or ``date``, id-like value, null, long free text), where it sits (depth,
array position, size of its collection, place in the document), whether it holds a whole object,
what it costs, how well its record matches the task, whether its value is already stated in the
task, and the query-aware lexical score. The structured strategy ranks units by the predicted
probability per token (the greedy answer to "most evidence for the budget").

The shipped weights (``data/record_scorer.json``) were fitted on the dev split of
``bench.bench_tools`` (τ²-bench, BFCL, tables; the test split's tasks are held out) by
``python -m bench.train_record_scorer``; the file records that.

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
    record_match,
    record_scores,
    split_path,
)

FEATURES: tuple[str, ...] = (
    "lexical_rank", "id_key", "role_key", "id_value", "empty", "long_text", "inv_depth", "array_item",
    "head_prior", "log_collection", "container", "log_cost", "position", "record_match", "in_record",
    "known", "field_prior",
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
        steps = split_path(unit.path)
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
        x[k, 12] = k / max(1, n - 1)
        x[k, 14] = 1.0 if records[k] else 0.0
    x[:, 13] = record_match(units, query, records)
    x[:, 15] = known_values(units, query)
    x[:, 16] = field_prior(units, values)
    return x


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

    def rank(self, x: np.ndarray, costs: Sequence[int]) -> np.ndarray:
        """Expected evidence per token: the order in which the structured strategy keeps units.

        The head of an array keeps a fixed prior on top of the model (``HEAD_PRIOR * max(p) / (1 + i)``): lists
        in API responses are ordered and agents ask for "the first one", whatever the training data.
        """
        c = np.maximum(np.asarray(costs, dtype=np.float64), 1.0)
        head = x[:, FEATURES.index("head_prior")] * x[:, FEATURES.index("array_item")]
        p = self.probability(x)
        return (p + HEAD_PRIOR * float(p.max(initial=0.0)) * head) / c**self.power

    def to_json(self, meta: dict[str, Any]) -> str:
        return json.dumps({"features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                           "w1": self.w1.tolist(), "b1": self.b1.tolist(), "w2": self.w2.tolist(), "b2": self.b2,
                           "power": self.power, "meta": meta})

    @classmethod
    def from_json(cls, text: str) -> RecordModel:
        d = json.loads(text)
        if list(d["features"]) != list(FEATURES):
            raise ValueError("record scorer weights were fitted on other features; retrain them")
        return cls(np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["w1"]), np.asarray(d["b1"]),
                   np.asarray(d["w2"]), float(d["b2"]), float(d.get("power", 1.0)))


@lru_cache(maxsize=1)
def shipped_model() -> RecordModel | None:
    """The shipped weights, or ``None`` when the file is missing or unreadable (the heuristic is used)."""
    try:
        return RecordModel.from_json(WEIGHTS_FILE.read_text(encoding="utf-8"))
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
    if model is not None:
        ranked = model.rank(record_features(units, scores, query, tree.records(), values, costs), costs)
    else:
        ranked = record_scores(units, scores, query, costs, tree.records(), weights, values)
    return anchor_ids(ranked, tree.leaves, query)


def anchor_ids(ranked: np.ndarray, leaves: Sequence[Any], query: str | None = None) -> np.ndarray:
    """A record's id field ranks just above the best field kept inside that record.

    A record of a list kept without its identifier (a bill's dates without its ``bill_id``) cannot be
    named in the next tool call, so its best-ranked ``id``/``*_id`` field is taken before any other part
    of it (nested parts included). Single objects (the root, an ``address``) are left as ranked, and so
    is an id the query already states (the agent has it). ``leaves`` are the tree's leaves
    (``steps``, ``value``, ``piece``), one per unit.
    """
    known = (query or "").lower()
    id_of: dict[tuple[str | int, ...], int] = {}
    for k, leaf in enumerate(leaves):
        steps = leaf.steps
        record_field = len(steps) >= 2 and isinstance(steps[-2], int) and isinstance(steps[-1], str)
        scalar = leaf.value is not None and not isinstance(leaf.value, (dict, list))
        if (record_field and scalar and leaf.piece < 0 and _STRICT_ID_KEY.search(str(steps[-1]))
                and str(leaf.value).lower() not in known):
            j = id_of.get(steps[:-1], -1)
            if j < 0 or ranked[k] > ranked[j]:
                id_of[steps[:-1]] = k
    if not id_of:
        return ranked
    out = np.array(ranked, dtype=np.float64)
    for k, leaf in enumerate(leaves):
        for depth in range(len(leaf.steps)):
            anchor = id_of.get(leaf.steps[:depth])
            if anchor is not None and anchor != k and ranked[k] > 0:
                out[anchor] = max(out[anchor], ranked[k] * (1 + 1e-6))
    return out
