"""The overthinking detector: cut the redundant re-checking at the end of a reasoning trace.

Reasoning models keep re-verifying an answer they already reached ("Wait, let me double check...").
This engine segments the thinking into steps, scores them with detectors (answer convergence,
reflection turns, redundancy, confidence) and cuts at the first re-check after the answer has
settled, keeping the conclusion unchanged. While a model streams, :class:`OnlineStopRule` (through
:func:`monitor_stream` / :class:`OverthinkingMonitor`) stops the generation itself.

Example:
    >>> from agent_tokred.overthinking import detect_overthinking
    >>> r = detect_overthinking("So 2+2 = 4.\\n\\nThus 4.\\n\\nWait, check again: 4.</think>4")
    >>> r.reason
    'not_worth'
"""

from __future__ import annotations

from .answers import Candidate, extract_candidates, final_answer, normalize_answer
from .detect import DEFAULT_MARKER, OverthinkingConfig, OverthinkingResult, detect_overthinking
from .detectors import (
    ConfidenceDetector,
    ConvergenceDetector,
    EmbeddingRedundancyDetector,
    StepDetector,
    lexical_redundancy,
    recheck,
    reflection,
)
from .monitor import OverthinkingMonitor, OverthinkingStop, StopRecord
from .online import OnlineStopRule, Probe, StopDecision, StopRuleConfig
from .steps import is_reflection, segment_steps
from .strategy import CutStrategy
from .stream import AsyncMonitoredStream, MonitoredStream, amonitor_stream, monitor_stream
from .trace import SplitTrace, split_trace, truncate_blocks

__all__ = [
    "DEFAULT_MARKER",
    "AsyncMonitoredStream",
    "Candidate",
    "ConfidenceDetector",
    "ConvergenceDetector",
    "CutStrategy",
    "EmbeddingRedundancyDetector",
    "MonitoredStream",
    "OnlineStopRule",
    "OverthinkingConfig",
    "OverthinkingMonitor",
    "OverthinkingResult",
    "OverthinkingStop",
    "Probe",
    "SplitTrace",
    "StepDetector",
    "StopDecision",
    "StopRecord",
    "StopRuleConfig",
    "amonitor_stream",
    "detect_overthinking",
    "extract_candidates",
    "final_answer",
    "is_reflection",
    "lexical_redundancy",
    "monitor_stream",
    "normalize_answer",
    "recheck",
    "reflection",
    "segment_steps",
    "split_trace",
    "truncate_blocks",
]
