"""agent-tokred: token reduction for LangGraph and LangChain agents.

Every reduction is ``X' = P(X, E(X))``: a criterion scores units, a strategy reduces them, and the
result fits an exact token budget in the caller's tokenizer. Originals are archived under handles.

Example:
    >>> import agent_tokred
    >>> r = agent_tokred.compress("A long tool output. " * 40, rate=0.25, criterion="lexical")
    >>> r.tokens_after <= r.budget_tokens
    True
"""

from __future__ import annotations

from .archive import InMemoryArchive, default_archive, recall
from .budget import Budget, make_budget
from .compressor import Compressor, compress
from .errors import (
    BudgetError,
    CompressionTimeoutError,
    InvalidInputError,
    ModelNotAvailableError,
    ScorerFailedError,
    TokredError,
    UnknownNameError,
)
from .reduction import Reduction
from .tokens import resolve_counter

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "BudgetError",
    "CompressionTimeoutError",
    "Compressor",
    "InMemoryArchive",
    "InvalidInputError",
    "ModelNotAvailableError",
    "Reduction",
    "ScorerFailedError",
    "TokredError",
    "UnknownNameError",
    "__version__",
    "compress",
    "default_archive",
    "make_budget",
    "recall",
    "resolve_counter",
]
