"""Demos of agent-tokred: long-horizon agents with and without token reduction, offline.

Run them all with ``agent-tokred demo`` (or ``python -m demos``); see :mod:`demos.runner`.
"""

from __future__ import annotations

from .runner import DEMOS, main, run_all

__all__ = ["DEMOS", "main", "run_all"]
