"""Per-case measures of the tool-output bench: evidence kept, tokens kept, over budget, still parses.

"Evidence kept" is the share of a case's evidence strings that occur in the reduced text verbatim or
JSON-escaped (:func:`bench._tools_base.contains_evidence`). "Parses" asks whether a JSON, JSON lines, YAML,
CSV or TSV output is still that format: JSON/JSON lines load, YAML loads to the same top-level type, CSV/TSV
keeps the header row and every row has the header's number of fields. Other formats are not checked.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import yaml

from ._tools_base import ToolCase, contains_evidence

PARSED_FORMATS = ("json", "jsonl", "yaml", "csv", "tsv")


@dataclass(frozen=True)
class CaseResult:
    """One method on one case at one rate.

    Attributes:
        family: the case's family.
        fmt: the case's format.
        method: the method's name.
        rate: the share of tokens asked for.
        tokens: the case's tokens.
        budget: ``ceil(rate * tokens)``.
        tokens_after: tokens of the reduced text.
        evidence_kept: share of the evidence strings still present.
        parses: whether the output still parses as its format (``None``: format not checked).
        seconds: wall time of the method on this case.
        error: the exception's text when the method failed (then the output counts as empty).
        case_index: the case's position in the run (pairs methods on the same case).
    """

    family: str
    fmt: str
    method: str
    rate: float
    tokens: int
    budget: int
    tokens_after: int
    evidence_kept: float
    parses: bool | None
    seconds: float
    error: str = ""
    case_index: int = -1

    @property
    def over_budget(self) -> bool:
        return self.tokens_after > self.budget


def evidence_share(case: ToolCase, text: str) -> float:
    """Share of ``case.evidence`` present in ``text``."""
    return sum(contains_evidence(text, e) for e in case.evidence) / len(case.evidence)


def _top_type(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "sequence" if isinstance(value, list) else "scalar"


def parses_as(case: ToolCase, text: str) -> bool | None:
    """Whether ``text`` is still valid in ``case.fmt`` (``None`` for formats not checked)."""
    if case.fmt not in PARSED_FORMATS:
        return None
    try:
        if case.fmt == "json":
            json.loads(text)
        elif case.fmt == "jsonl":
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if not lines:
                return False
            for ln in lines:
                json.loads(ln)
        elif case.fmt == "yaml":
            return _top_type(yaml.safe_load(text)) == _top_type(yaml.safe_load(case.text))
        else:
            return _table_parses(case, text)
    except (ValueError, yaml.YAMLError, csv.Error):
        return False
    return True


def _table_parses(case: ToolCase, text: str) -> bool:
    delim = "," if case.fmt == "csv" else "\t"
    header = next(csv.reader(io.StringIO(case.text), delimiter=delim))
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim, strict=True) if r]
    return bool(rows) and rows[0] == header and all(len(r) == len(header) for r in rows)
