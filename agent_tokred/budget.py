"""Budgets: how much of an input may remain, validated once at construction.

Exactly one of ``rate`` and ``target_tokens`` may bound the size (both together: the smaller
wins); ``threshold`` keeps only units whose normalised score reaches it (optionally also bounded).

Example:
    >>> from agent_tokred.budget import Budget
    >>> Budget(rate=0.25).tokens_for(1000)
    250
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import BudgetError


class Budget(BaseModel):
    """A token budget in the caller's tokenizer.

    Attributes:
        rate: share of the input's tokens to keep, in ``(0, 1]``.
        target_tokens: most tokens the result may have, ``>= 1``.
        threshold: keep units whose min-max normalised score is ``>=`` this, in ``[0, 1]``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float | None = Field(default=None, gt=0.0, le=1.0)
    target_tokens: int | None = Field(default=None, ge=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_mode(self) -> Budget:
        if self.rate is None and self.target_tokens is None and self.threshold is None:
            raise BudgetError("give rate, target_tokens or threshold")
        return self

    def tokens_for(self, tokens_before: int) -> int:
        """The most tokens a result of an input of ``tokens_before`` tokens may have."""
        limits = [tokens_before]
        if self.rate is not None:
            limits.append(math.floor(self.rate * tokens_before))
        if self.target_tokens is not None:
            limits.append(self.target_tokens)
        return max(0, min(limits))


def make_budget(
    rate: float | None = None, target_tokens: int | float | None = None, threshold: float | None = None
) -> Budget:
    """Build a :class:`Budget`, turning validation failures into :class:`BudgetError`.

    Raises:
        BudgetError: no mode given, ``rate`` outside ``(0, 1]``, ``target_tokens < 1``, or wrong types.
    """
    for name, value in (("rate", rate), ("target_tokens", target_tokens), ("threshold", threshold)):
        if isinstance(value, bool):
            raise BudgetError(f"{name} must be a number, got {value!r}")
    if isinstance(target_tokens, float):
        if not target_tokens.is_integer():
            raise BudgetError(f"target_tokens must be a whole number, got {target_tokens!r}")
        target_tokens = int(target_tokens)
    try:
        return Budget(rate=rate, target_tokens=target_tokens, threshold=threshold)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'budget'}: {e['msg']}" for e in exc.errors())
        raise BudgetError(
            f"invalid budget (rate={rate!r}, target_tokens={target_tokens!r}, threshold={threshold!r}): {problems}. "
            "rate must be in (0, 1], target_tokens >= 1, threshold in [0, 1]"
        ) from None


@dataclass(frozen=True)
class MessageBudget:
    """The budgets one message reduction runs under, from the policy to the plan (one value, read once).

    Built by :meth:`agent_tokred.messages.policy.ContextPolicy.budget_for`; the message engine reads
    nothing else about sizes.

    Attributes:
        total: most tokens the messages may hold in all (a call's or a saved history's; ``None``: no limit).
        per_message: most tokens one tool output keeps (``None``: no per-message limit).
        min_tokens: messages shorter than this are never compressed.
        floor_tokens: the smallest size an old message is squeezed to for ``total``.

    Example:
        >>> MessageBudget(total=8000, per_message=100, min_tokens=128).message_limit
        128
    """

    total: int | None
    per_message: int | None
    min_tokens: int = 0
    floor_tokens: int = 1

    @property
    def message_limit(self) -> int | None:
        """Tool outputs over this many tokens are held to ``per_message`` (never below ``min_tokens``)."""
        return None if self.per_message is None else max(self.per_message, self.min_tokens)
