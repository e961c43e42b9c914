"""When messages move to memory and how much comes back: :class:`MemoryPolicy` (see :mod:`.memory`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InvalidInputError
from ..messages.policy import QuerySource
from ..store import _layout as layout


class MemoryPolicy(BaseModel):
    """When messages move to memory and how much of it comes back.

    Attributes:
        context_tokens: history size (tokens) above which old messages move to memory.
        keep_tokens: size the history is brought down to (default 60% of ``context_tokens``).
        keep_last_messages: the newest messages never moved (extended to keep tool pairs whole).
        recall_tokens: budget for the memories added to one model call (0 disables recall).
        recall_limit: memories searched per call.
        min_score: memories scoring below this similarity are not recalled.
        scope: whose memory: one per ``thread``, per ``user`` (``user_id`` from context or config),
            or ``global``.
        namespace_prefix: labels before the scope's (``("memory", "thread", <id>)`` by default).
        tokenizer: what the budgets are counted in (default ``o200k_base``).
        query_source: what memories are searched for: the latest human request, the model's latest
            plan (its last AI text), both, or nothing (no recall), as :class:`ContextPolicy`'s.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    context_tokens: int = Field(default=8000, ge=1)
    keep_tokens: int | None = Field(default=None, ge=0)
    keep_last_messages: int = Field(default=6, ge=0)
    recall_tokens: int = Field(default=1000, ge=0)
    recall_limit: int = Field(default=8, ge=1, le=100)
    min_score: float | None = None
    scope: Literal["thread", "user", "global"] = "thread"
    namespace_prefix: tuple[str, ...] = ("memory",)
    tokenizer: Any = None
    query_source: QuerySource = "human"

    @model_validator(mode="after")
    def _check(self) -> MemoryPolicy:
        if self.keep_tokens is not None and self.keep_tokens > self.context_tokens:
            raise InvalidInputError(f"keep_tokens ({self.keep_tokens}) must be <= context_tokens ({self.context_tokens})")
        check_namespace(self.namespace_prefix, "namespace_prefix", for_write=False)
        return self

    @property
    def keep_budget(self) -> int:
        """``keep_tokens``, or 60% of ``context_tokens`` when not set."""
        return self.keep_tokens if self.keep_tokens is not None else int(self.context_tokens * 0.6)


def check_namespace(ns: tuple[str, ...], what: str, *, for_write: bool = True) -> tuple[str, ...]:
    """The store's own label rules (:func:`agent_tokred.store._layout.check_namespace`), as an :class:`InvalidInputError`
    (a ``ValueError``) naming ``what``; ``for_write=False`` allows an empty tuple (a prefix)."""
    try:
        layout.check_namespace(tuple(ns), for_write=for_write)
    except layout.NamespaceError as exc:
        raise InvalidInputError(f"{what} labels must be non-empty strings without dots: {exc}") from None
    return ns


def make_memory_policy(policy: MemoryPolicy | Mapping[str, Any] | None = None, **overrides: Any) -> MemoryPolicy:
    """Build a :class:`MemoryPolicy`; bad fields raise :class:`InvalidInputError` naming them."""
    base = policy.model_dump() if isinstance(policy, MemoryPolicy) else dict(policy or {})
    if isinstance(policy, MemoryPolicy) and not overrides:
        return policy
    base.update(overrides)
    try:
        return MemoryPolicy(**base)
    except ValidationError as exc:
        raise InvalidInputError(
            f"invalid memory policy: {exc.errors()[0]['msg']} ({base}); fields: {', '.join(MemoryPolicy.model_fields)}"
        ) from None
