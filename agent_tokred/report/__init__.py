"""Reports of agent runs: typed records, a static HTML page and PNG plots.

Example:
    >>> from agent_tokred.report import ComponentTokens, RunRecord, StepRecord, render_report
    >>> run = RunRecord("a", "A", (StepRecord(0, (ComponentTokens("history", 500, 200),)),))
    >>> "<svg" in render_report([run])
    True
"""

from __future__ import annotations

from .html import render_item, render_report, render_run, write_report
from .records import (
    ComponentTokens,
    ItemRecord,
    RunRecord,
    StepRecord,
    segments_from_texts,
    summary_rows,
)

__all__ = [
    "ComponentTokens",
    "ItemRecord",
    "RunRecord",
    "StepRecord",
    "render_item",
    "render_report",
    "render_run",
    "segments_from_texts",
    "summary_rows",
    "write_report",
]
