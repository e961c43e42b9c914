"""What message reduction may compress, how hard, and what it never touches.

A :class:`ContextPolicy` is one small validated value shared by the message engine and every
adapter over it (the middleware, the LangGraph nodes, ``wrap()`` and the document compressor).
:meth:`ContextPolicy.budget_for` turns it into the one :class:`~agent_tokred.budget.MessageBudget`
the engine plans with. Budgets are token counts in the model's own
tokenizer (``tokenizer=``, ``o200k_base`` by default).

Three budgets, from the smallest unit up:

* ``message_budget``: each tool output is held to it when it arrives (and in every model call).
* ``call_budget``: what one model call sees (system prompt, messages, tool-call arguments). Older
  tool outputs are squeezed harder first, then older human/AI text, then whole old tool-call pairs
  (and, if still needed, old AI texts, then old requests) are removed; each run of removed
  messages leaves one short note naming the handle of its archived originals. Older requests'
  messages go before the current request's own tool work. The budget holds whenever the protected
  part fits; otherwise the step's report says why not.
* ``context_budget``: the saved history, enforced only by the opt-in sticky edits
  (:class:`~agent_tokred.integration.middleware.StickyTokenReductionMiddleware`).

Example:
    >>> from agent_tokred.messages.policy import ContextPolicy
    >>> p = ContextPolicy(message_budget=500, call_budget=8000, protected_tools={"get_weather"})
    >>> "recall" in p.never_compress_tools
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..budget import MessageBudget
from ..errors import InvalidInputError
from ..strategies import resolve_strategy

QuerySource = Literal["human", "plan", "human+plan", "none"]
QUERY_SOURCES: tuple[str, ...] = ("human", "plan", "human+plan", "none")
ArchiveScope = Literal["thread", "user", "global"]
RECALL_TOOL_NAME = "recall"


class ContextPolicy(BaseModel):
    """How agent context is reduced.

    Attributes:
        message_budget: most tokens one tool output may keep (``None``: no per-message limit).
        call_budget: most tokens one model call may see, system prompt included (``None``: no limit).
        context_budget: most tokens the saved history may hold; used by sticky history edits only.
        min_tokens: messages shorter than this are never compressed (not worth a lossy edit).
        floor_tokens: the smallest size an old message is squeezed to before its whole tool-call
            pair is replaced by a note. Prose is squeezed by whole sentences: one that cannot keep
            a whole sentence goes to a note instead of being cut into word fragments.
        protect_last_n_turns: the last N turns are never squeezed for the call budget (a turn is one
            human message, or one AI message with the tool results that answer it). Tool outputs in
            them are still held to ``message_budget``.
        protected_tools: tool names whose outputs are never compressed (the recall tool always is).
        keep_error_traces: never compress tool messages with ``status="error"`` or that start with
            an error/traceback.
        compress_text: allow squeezing older human/AI text for the call budget.
        drop_pairs: allow replacing whole old tool-call pairs by a note (last resort); with
            ``compress_text`` also old human/AI texts, AI texts first.
        annotate: end each compressed message with a one-line note naming its handle.
        query_source: what conditions the criteria: the latest human request, the model's latest
            plan (its last AI text), both, or nothing.
        criterion: a criterion name, ``"a+b"`` mix, ``{name: weight}`` mapping or callable;
            ``"auto"`` picks relevance+lexical for prose with a query and lexical for JSON/logs.
        strategy: ``"auto"``, ``"prune"``, ``"compact"`` or ``"merge"``.
        tokenizer: the model's tokenizer (name, HF tokenizer, counter or callable); ``None``:
            ``o200k_base``.
        message_overhead_tokens: tokens charged per message for role/framing in budget sums.
        archive_scope: which namespace originals live in: per thread, per user or global.
        recall_page_chars: recall returns at most this many characters per call (with a pointer to
            the next page); smaller originals are returned whole.
        timeout_s: most seconds one compression may spend scoring (``None``: no limit); a slower
            criterion is abandoned for the lexical one (see :class:`~agent_tokred.compressor.Compressor`).
        on_timeout: ``"fallback"`` (lexical, with a warning) or ``"raise"`` (the message is then left whole).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    message_budget: int | None = Field(default=1000, ge=1)
    call_budget: int | None = Field(default=None, ge=1)
    context_budget: int | None = Field(default=None, ge=1)
    min_tokens: int = Field(default=128, ge=0)
    floor_tokens: int = Field(default=64, ge=1)
    protect_last_n_turns: int = Field(default=2, ge=0)
    protected_tools: frozenset[str] = frozenset()
    keep_error_traces: bool = True
    compress_text: bool = True
    drop_pairs: bool = True
    annotate: bool = True
    query_source: QuerySource = "human"
    criterion: Any = "auto"
    strategy: str = "auto"
    tokenizer: Any = None
    message_overhead_tokens: int = Field(default=3, ge=0)
    archive_scope: ArchiveScope = "thread"
    recall_page_chars: int = Field(default=40_000, ge=100)
    recall_tool_name: str = RECALL_TOOL_NAME
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    on_timeout: Literal["fallback", "raise"] = "fallback"

    @model_validator(mode="after")
    def _check(self) -> ContextPolicy:
        resolve_strategy(self.strategy)  # UnknownNameError (a ValueError) names the valid ones
        if not (isinstance(self.criterion, (str, Mapping)) or callable(self.criterion)):
            kind = type(self.criterion).__name__
            raise InvalidInputError(f"criterion must be a name, a mapping or a callable, got {kind}")
        return self

    @property
    def never_compress_tools(self) -> frozenset[str]:
        """Protected tool names plus the recall tool."""
        return self.protected_tools | {self.recall_tool_name}

    def budget_for(self, total: int | None) -> MessageBudget:
        """The budget of one reduction holding the messages to ``total`` tokens (``None``: per message only).

        Example:
            >>> ContextPolicy(message_budget=500, min_tokens=128).budget_for(8000).message_limit
            500
        """
        return MessageBudget(total=total, per_message=self.message_budget, min_tokens=self.min_tokens,
                             floor_tokens=self.floor_tokens)


def make_policy(policy: ContextPolicy | Mapping[str, Any] | None = None, **overrides: Any) -> ContextPolicy:
    """Build a :class:`ContextPolicy` from a policy, a mapping and/or keyword overrides.

    Raises:
        InvalidInputError: an unknown field or a value out of range (the message names both).

    Example:
        >>> make_policy(message_budget=200).message_budget
        200
    """
    base: dict[str, Any] = {}
    if isinstance(policy, (ContextPolicy, Mapping)):
        base = dict(policy)
    elif policy is not None:
        raise InvalidInputError(f"policy must be a ContextPolicy or a mapping, got {type(policy).__name__}")
    base.update(overrides)
    if "protected_tools" in base and base["protected_tools"] is not None:
        tools = base["protected_tools"]
        try:
            base["protected_tools"] = frozenset([tools] if isinstance(tools, str) else tools)
        except TypeError:  # not an iterable of names: let validation name the field
            base["protected_tools"] = tools
    try:
        return ContextPolicy(**base)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'policy'}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(ContextPolicy.model_fields)
        raise InvalidInputError(f"invalid context policy: {problems} (fields: {valid})") from None
