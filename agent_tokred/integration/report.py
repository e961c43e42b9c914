"""Telemetry records, as the integration layer exports them (defined in :mod:`agent_tokred.messages.report`).

Every middleware hook, node and document compression returns or emits a :class:`StepReport`. The
middleware keeps the latest ones, passes each to user callbacks and, when LangSmith tracing is on,
attaches :meth:`StepReport.as_metadata` to the current run.

Example:
    >>> r = StepReport(kind="model_call", tokens_before=900, tokens_after=300, seconds=0.01)
    >>> r.saved_tokens
    600
"""

from __future__ import annotations

from ..messages.report import Action, MessageReport, StepKind, StepReport

__all__ = ["Action", "MessageReport", "StepKind", "StepReport"]
