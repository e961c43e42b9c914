"""The one small exception tree of agent-tokred.

Every error the library raises on purpose derives from :class:`TokredError`. Errors about bad
arguments also derive from :class:`ValueError`, so ``except ValueError`` keeps working for callers
that do not know this package. Error text is meant for developers and logs, never for a model's
context.
"""

from __future__ import annotations

from collections.abc import Iterable


class TokredError(Exception):
    """Base class of every error agent-tokred raises on purpose."""


class InvalidInputError(TokredError, ValueError):
    """The input text or data cannot be processed (binary junk, wrong type, ...)."""


class BudgetError(TokredError, ValueError):
    """A budget is malformed (non-positive, rate outside (0, 1], none or several modes given)."""


class UnknownNameError(TokredError, ValueError):
    """A shorthand name (criterion, strategy, tokenizer) is not registered."""

    def __init__(self, kind: str, name: object, valid: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(self.valid)}")


class NotArchivedError(TokredError, KeyError):
    """No original is archived under a handle (a ``KeyError``, as a missing key is)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(TokredError, RuntimeError):
    """A model needed by a criterion is not installed; the message says what to install."""


class ScorerFailedError(TokredError, RuntimeError):
    """A criterion raised while scoring and the fallback policy says to raise."""


class CompressionTimeoutError(TokredError, TimeoutError):
    """A compression ran past its time limit and the policy says to raise."""
