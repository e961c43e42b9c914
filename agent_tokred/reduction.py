"""The typed record every reduction returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class TokenChange:
    """Tokens before and after a reduction: the part every result record shares.

    Records that build on it (:class:`Reduction`, the message engine's step and message reports, the
    store's consolidation report) take these two as keyword arguments.

    Example:
        >>> TokenChange(tokens_before=900, tokens_after=300).saved_tokens
        600
    """

    tokens_before: int
    tokens_after: int

    @property
    def saved_tokens(self) -> int:
        """``tokens_before - tokens_after``."""
        return self.tokens_before - self.tokens_after

    @property
    def ratio(self) -> float:
        """``tokens_after / tokens_before`` (1.0 for an empty input)."""
        return self.tokens_after / self.tokens_before if self.tokens_before else 1.0


@dataclass(frozen=True)
class Reduction(TokenChange):
    """The result of one reduction ``X' = P(X, E(X))``.

    Attributes:
        text: the reduced text (valid JSON when the input was JSON).
        original: the input, unchanged (also archived under ``handle``).
        tokens_before: tokens of ``original`` in ``tokenizer``.
        tokens_after: tokens of ``text`` in ``tokenizer``; never more than ``budget_tokens``.
        budget_tokens: the budget the result was held to.
        handle: where the original is archived (``agent_tokred.recall(handle)``).
        criterion: name of the scoring criterion (``"none"`` when nothing was reduced).
        strategy: name of the reduction strategy (``"none"`` when nothing was reduced).
        tokenizer: name of the token counter.
        unit: the unit the strategy worked on (``sentence``, ``line``, ``field`` ...).
        units_total: how many units the input had.
        units_kept: how many were kept (whole or merged).
        kept_spans: character spans of ``original`` that were kept (text strategies only), for views
            that grey out what was dropped.
        dropped_paths: JSON paths dropped (structured strategy only).
        fmt: the structured format the input was read as and the result is written in (``json``,
            ``jsonl``, ``pyliteral``, ``yaml``, ``csv``, ``tsv``, ``markdown``; empty for text).
        seconds: wall time of the reduction.
        note: why nothing was reduced, or a fallback that happened (empty when neither).
    """

    text: str
    original: str
    budget_tokens: int
    handle: str
    kept_spans: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    dropped_paths: tuple[str, ...] = field(default=(), repr=False)
    criterion: str = "none"
    strategy: str = "none"
    tokenizer: str = ""
    unit: str = ""
    units_total: int = 0
    units_kept: int = 0
    fmt: str = ""
    seconds: float = 0.0
    note: str = ""

    @property
    def changed(self) -> bool:
        """True when the text differs from the original."""
        return self.text != self.original

    def segments(self) -> list[tuple[str, bool]]:
        """The original as ``(text, kept)`` pieces, for views that show dropped text greyed out.

        For structured reductions (no character spans) the whole original is one piece marked
        kept only when nothing changed.
        """
        if not self.changed:
            return [(self.original, True)] if self.original else []
        if not self.kept_spans:
            return [(self.original, False)]
        pieces: list[tuple[str, bool]] = []
        pos = 0
        for a, b in self.kept_spans:
            if a > pos:
                pieces.append((self.original[pos:a], False))
            pieces.append((self.original[a:b], True))
            pos = b
        if pos < len(self.original):
            pieces.append((self.original[pos:], False))
        return pieces
