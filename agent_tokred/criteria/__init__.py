"""Criteria: how units are scored. Pass a name, a callable, or a weighted mix.

Names are resolved once, at the boundary, by :func:`resolve_criterion`:

* ``"lexical"``: model-free (IDF, entities, digits, query overlap); the fast path.
* ``"relevance"``: embedding similarity to the query (MiniLM by default).
* ``"attention"``: attention received from the query in a transformer (MiniLM by default).
* ``"self_information"``: a causal LM's log-probability of the query given each unit (SmolLM2 by
  default); surprisal without a query.
* ``"learned"``: a small trained scorer shipped with the package.
* ``"relevance+lexical"`` (any ``+``-joined names) or a ``{"relevance": 0.7, "lexical": 0.3}`` mix.

Example:
    >>> from agent_tokred.criteria import resolve_criterion
    >>> crit = resolve_criterion("lexical")
    >>> len(crit([], None))
    0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UnknownNameError
from ..units import Unit
from .base import Criterion, check_scores, rank_normalize
from .lexical import lexical

__all__ = ["CRITERIA", "Criterion", "MixedCriterion", "criterion_name", "register_criterion", "resolve_criterion"]

# name -> "module:attribute" (lazy, so a model criterion costs nothing until used) or a factory.
CRITERIA: dict[str, str | Callable[..., Criterion]] = {
    "lexical": lambda **_: lexical,
    "relevance": "agent_tokred.criteria.relevance:RelevanceCriterion",
    "attention": "agent_tokred.criteria.attention:AttentionCriterion",
    "self_information": "agent_tokred.criteria.self_information:SelfInformationCriterion",
    "learned": "agent_tokred.criteria.learned:LearnedCriterion",
}


def register_criterion(name: str, factory: str | Callable[..., Criterion]) -> None:
    """Register a criterion factory under ``name`` (a ``"module:attr"`` string or a callable)."""
    if not name or "+" in name:
        raise ValueError(f"criterion name {name!r} must be non-empty and contain no '+'")
    CRITERIA[name] = factory


def _build(name: str, options: Mapping[str, Any]) -> Criterion:
    if name not in CRITERIA:
        raise UnknownNameError("criterion", name, [*CRITERIA, "auto"])
    factory = CRITERIA[name]
    if isinstance(factory, str):
        module, attr = factory.split(":")
        factory = getattr(importlib.import_module(module), attr)
    crit: Criterion = factory(**options)
    return crit


class MixedCriterion:
    """A weighted sum of rank-normalised scores of several criteria."""

    def __init__(self, parts: Mapping[str, float], options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if not parts or any(w < 0 for w in parts.values()) or sum(parts.values()) <= 0:
            raise ValueError(f"a criterion mix needs non-negative weights with a positive sum; got {dict(parts)}")
        options = options or {}
        self.weights = dict(parts)
        self.parts = {name: _build(name, options.get(name, {})) for name in parts}
        self.name = "+".join(self.parts)

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> np.ndarray:
        total = np.zeros(len(units))
        for name, crit in self.parts.items():
            total += self.weights[name] * rank_normalize(check_scores(crit(units, query), len(units), name))
        return total


def resolve_criterion(
    spec: str | Mapping[str, float] | Criterion, options: Mapping[str, Any] | None = None
) -> Criterion:
    """Turn a criterion name, mix or callable into a callable criterion.

    Args:
        spec: a registered name, ``"a+b"`` (equal weights), a ``{name: weight}`` mapping, or a callable.
        options: keyword arguments for the named criterion's constructor (e.g. ``{"model": "..."}``);
            for mixes, a mapping of name to options.

    Raises:
        UnknownNameError: a name is not registered (the message lists the valid ones).
    """
    options = dict(options or {})
    if callable(spec) and not isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return MixedCriterion(spec, options)
    if isinstance(spec, str):
        if "+" in spec:
            names = [s.strip() for s in spec.split("+") if s.strip()]
            return MixedCriterion(dict.fromkeys(names, 1.0), options)
        return _build(spec, options)
    raise TypeError(f"criterion must be a name, a mapping of weights or a callable; got {type(spec)!r}")


def criterion_name(crit: object) -> str:
    """A readable name for a criterion (for records and reports)."""
    name = getattr(crit, "name", None) or getattr(crit, "__name__", None)
    if isinstance(name, str):
        return name
    return type(crit).__name__.removesuffix("Criterion").lower() or "custom"
