"""Strategies: how scored units are reduced (prune, merge, structure-preserving compaction).

Names are resolved once, at the boundary, by :func:`resolve_strategy` (as criteria are by
:func:`agent_tokred.criteria.resolve_criterion`); an unknown name raises
:class:`~agent_tokred.errors.UnknownNameError` listing the valid ones. Each entry names its
planning function as ``"module:attribute"`` (or gives it directly), imported only when it is used:

* ``"prune"``: keep the best units that fit (:func:`~agent_tokred.strategies.prune.plan_prune`);
* ``"compact"``: structure-preserving reduction of JSON, logs and tables
  (:class:`~agent_tokred.strategies.structured.JsonUnits`; prose is pruned);
* ``"merge"``: near-duplicate units merged, sources kept
  (:func:`~agent_tokred.strategies.text_merge.plan_text_merge`);
* ``"auto"``: ``compact`` for structured input and line logs, ``prune`` otherwise.

On text the compressor dispatches through the entry: its ``select`` step picks the units the
budget fit chooses among (:meth:`StrategySpec.select_units`; every unit when it has none, as for
``prune``), then the fit keeps the best of them that fit. A registered strategy with its own
``select`` step is what runs for ``Compressor(strategy=name)``.

Example:
    >>> from agent_tokred.strategies import resolve_strategy
    >>> resolve_strategy("prune").planner.__name__
    'plan_prune'
    >>> sorted(STRATEGIES)
    ['auto', 'compact', 'merge', 'prune']
    >>> resolve_strategy("prune").select_units(["a", "b"], [0.5, 0.1])
    ([0, 1], {})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownNameError

__all__ = [
    "STRATEGIES",
    "SelectUnits",
    "StrategySpec",
    "register_strategy",
    "resolve_strategy",
    "strategy_names",
]

SelectUnits = Callable[[Sequence[Any], Any], tuple[list[int], dict[int, tuple[int, ...]]]]
"""``(units, scores) -> (candidates, merged_into)``: the indices of the units the budget fit chooses
among, in order, and for each candidate that stands for others, their indices."""


def _load(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(target):
        return target
    module, attr = target.split(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return found


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy: its name, what it does, and where its planner lives.

    Attributes:
        name: the shorthand (``strategy="prune"``).
        summary: one line for help texts.
        target: ``"module:attribute"`` of the planning function or class (``""`` for ``auto``,
            which chooses another strategy per input).
        select: the :data:`SelectUnits` step run on text before the budget fit, as
            ``"module:attribute"`` or a callable (``""``: every unit is a candidate).
    """

    name: str
    summary: str
    target: str = ""
    select: str | SelectUnits = ""

    @property
    def planner(self) -> Callable[..., Any]:
        """The planning function or class (imported on first use)."""
        if not self.target:
            raise UnknownNameError("strategy planner", self.name, [n for n, s in STRATEGIES.items() if s.target])
        return _load(self.target)

    def select_units(self, units: Sequence[Any], scores: Any) -> tuple[list[int], dict[int, tuple[int, ...]]]:
        """The units the budget fit chooses among, and what each stands for (see :data:`SelectUnits`)."""
        if not self.select:
            return list(range(len(units))), {}
        candidates, merged_into = _load(self.select)(units, scores)
        return list(candidates), dict(merged_into)


STRATEGIES: dict[str, StrategySpec] = {
    "auto": StrategySpec("auto", "compact for structured input and line logs, prune otherwise"),
    "prune": StrategySpec("prune", "keep the best units that fit", "agent_tokred.strategies.prune:plan_prune"),
    "compact": StrategySpec("compact", "structure-preserving: JSON, logs, tables",
                            "agent_tokred.strategies.structured:JsonUnits"),
    "merge": StrategySpec("merge", "merge near-duplicate units, keeping their sources",
                          "agent_tokred.strategies.text_merge:plan_text_merge",
                          select="agent_tokred.strategies.text_merge:plan_text_merge"),
}


def register_strategy(spec: StrategySpec) -> None:
    """Register (or replace) a strategy under ``spec.name``."""
    if not spec.name or "+" in spec.name:
        raise UnknownNameError("strategy", spec.name, STRATEGIES)
    STRATEGIES[spec.name] = spec


def strategy_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(STRATEGIES)


def resolve_strategy(name: str) -> StrategySpec:
    """The registered strategy called ``name``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the valid ones).
    """
    spec = STRATEGIES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise UnknownNameError("strategy", name, STRATEGIES)
    return spec
