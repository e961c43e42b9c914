"""The compression engine: ``X' = P(X, E(X))`` under an exact token budget.

:func:`compress` is the one-call API; :class:`Compressor` holds a configuration (criterion,
strategy, tokenizer, archive) for reuse across many calls, as the middleware does.

Example:
    >>> from agent_tokred import compress
    >>> r = compress("Paris is in France. " * 50 + "The answer is 42.", query="what is the answer",
    ...              target_tokens=20, criterion="lexical")
    >>> r.tokens_after <= 20 and "42" in r.text
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, TypedDict

import numpy as np
from typing_extensions import Unpack  # typing.Unpack from Python 3.11

from ._forms import detect_form, has_header, render_lines
from ._structured_input import StructuredDoc, parse_structured
from ._timeout import ScoringTimedOut, call_with_deadline, check_timeout
from ._validate import ensure_text
from .archive import Archive, default_archive
from .budget import Budget, make_budget
from .criteria import Criterion, criterion_name, resolve_criterion
from .criteria.auto import auto_criterion
from .criteria.base import check_scores
from .criteria.lexical import lexical
from .criteria.record_model import rank_tree_units
from .criteria.records import DEFAULT_WEIGHTS, RecordWeights, protect_ids
from .errors import CompressionTimeoutError, ModelNotAvailableError, ScorerFailedError, UnknownNameError
from .reduction import Reduction
from .strategies import resolve_strategy
from .strategies.prune import estimate_costs, plan_prune, render_text
from .strategies.structured import JsonUnits, dropped_paths, unit_chars_for
from .tokens import CachedCounter, TokenCounter, resolve_counter, span_costs
from .units import GRANULARITIES, Granularity, Unit, protected_spans, segment

logger = logging.getLogger(__name__)

StrategyName = Literal["auto", "prune", "compact", "merge"]
UnitName = Literal["auto", "word", "sentence", "line", "paragraph"]
OnScorerError = Literal["fallback", "raise"]
OnTimeout = Literal["fallback", "raise"]

_MODEL_AUTO_MAX_TOKENS = 60_000
_MODEL_AUTO_MAX_UNITS = 1_500


class Compressor:
    """A reusable compression configuration.

    Args:
        criterion: a registered name (``"lexical"``, ``"relevance"``, ``"attention"``,
            ``"self_information"``, ``"learned"``), ``"a+b"`` mixes, a ``{name: weight}`` mapping, a
            callable, or ``"auto"`` (the learned scorer for prose and line-oriented text with a query,
            else lexical; structured data is then ranked by the record scorer).
        strategy: ``"prune"``, ``"compact"`` (structure-preserving: JSON, logs, tables), ``"merge"``
            (near-duplicate units merged first), or ``"auto"`` (compact for structured text, else prune).
        tokenizer: the counter budgets are met in (see :func:`agent_tokred.tokens.resolve_counter`).
        unit: text granularity, or ``"auto"`` (sentences, words for short texts).
        archive: where originals are kept (the process-wide in-memory archive by default).
        on_scorer_error: ``"fallback"`` (lexical criterion, with a warning) or ``"raise"``.
        criterion_options: constructor options for a named criterion (e.g. ``{"model": "..."}``).
        progress: called with a short stage name (``"counting"``, ``"scoring"``, ``"fitting"``) as
            a compression advances; the CLI shows these as a progress bar on long inputs.
        timeout_s: most seconds one compression may spend scoring (``None``: no limit). A slower
            criterion is abandoned for the lexical one; a model call already running cannot be
            interrupted and finishes in its worker thread (see :mod:`agent_tokred._timeout`).
        on_timeout: ``"fallback"`` (lexical, with a warning) or ``"raise"`` (``CompressionTimeoutError``).
        record_scorer: rank structured fields with the record scorer over the criterion's scores (default),
            or, ``False``, by a named criterion's scores alone (plus the array-head prior).
    """

    def __init__(
        self,
        *,
        criterion: str | Mapping[str, float] | Criterion = "auto",
        strategy: StrategyName = "auto",
        tokenizer: Any = None,
        unit: UnitName = "auto",
        archive: Archive | None = None,
        on_scorer_error: OnScorerError = "fallback",
        criterion_options: Mapping[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
        timeout_s: float | None = None,
        on_timeout: OnTimeout = "fallback",
        record_scorer: bool = True,
    ) -> None:
        resolve_strategy(strategy)  # the registry: an unknown name raises UnknownNameError listing the valid ones
        if unit != "auto" and unit not in GRANULARITIES:
            raise UnknownNameError("unit", unit, ("auto", *GRANULARITIES))
        if on_scorer_error not in ("fallback", "raise"):
            raise UnknownNameError("on_scorer_error policy", on_scorer_error, ("fallback", "raise"))
        if on_timeout not in ("fallback", "raise"):
            raise UnknownNameError("on_timeout policy", on_timeout, ("fallback", "raise"))
        self.timeout_s = check_timeout(timeout_s)
        self.on_timeout = on_timeout
        self._criterion_spec = criterion
        self._criterion: Criterion | None = None
        if criterion != "auto":
            self._criterion = resolve_criterion(criterion, criterion_options)
        self.strategy = strategy
        self.counter: TokenCounter = CachedCounter(resolve_counter(tokenizer))
        self.unit = unit
        self.archive = archive if archive is not None else default_archive()
        self.on_scorer_error = on_scorer_error
        self.progress = progress
        self.record_weights: RecordWeights = DEFAULT_WEIGHTS
        if not isinstance(record_scorer, bool):
            raise TypeError(f"record_scorer must be True or False, not {record_scorer!r}")
        self.record_scorer = record_scorer

    def _stage(self, name: str) -> None:
        if self.progress is not None:
            self.progress(name)

    # -- criterion -----------------------------------------------------------------------------
    def _pick_criterion(self, query: str | None, form: str, tokens: int) -> Criterion:
        if self._criterion is not None:
            return self._criterion
        if query and form in ("prose", "lines") and tokens <= _MODEL_AUTO_MAX_TOKENS:
            return auto_criterion()
        return lexical

    def _score(
        self, crit: Criterion, units: Sequence[Unit], query: str | None, deadline: float | None = None
    ) -> tuple[np.ndarray, str, str]:
        name = criterion_name(crit)
        self._stage("scoring")
        try:
            if deadline is None or crit is lexical:  # lexical is the bounded fallback: no thread needed
                raw = crit(units, query)
            else:
                raw = call_with_deadline(lambda: crit(units, query), deadline - time.perf_counter())
            return check_scores(raw, len(units), name), name, ""
        except (KeyboardInterrupt, SystemExit):
            raise
        except ScoringTimedOut as exc:
            if self.on_timeout == "raise":
                raise CompressionTimeoutError(f"criterion {name!r} ran past the time limit: {exc}") from None
            logger.warning("criterion %r timed out (%s); falling back to lexical", name, exc)
            return np.asarray(lexical(units, query)), "lexical", f"criterion {name} timed out; used lexical"
        except Exception as exc:
            if self.on_scorer_error == "raise":
                raise ScorerFailedError(f"criterion {name!r} failed: {exc}") from exc
            kind = "not installed" if isinstance(exc, ModelNotAvailableError) else "failed"
            logger.warning("criterion %r %s (%s); falling back to lexical", name, kind, exc)
            return np.asarray(lexical(units, query)), "lexical", f"criterion {name} {kind}; used lexical"

    # -- main entry ------------------------------------------------------------------------------
    def compress(self, text: str | bytes, *, query: str | None = None, budget: Budget,
                 force_keep: Sequence[str] = (), timeout_s: float | None = None) -> Reduction:
        """Reduce ``text`` to ``budget`` (see :func:`agent_tokred.compress`); ``timeout_s`` overrides the default."""
        started = time.perf_counter()
        limit = check_timeout(timeout_s) if timeout_s is not None else self.timeout_s
        deadline = None if limit is None else started + limit
        was_str = isinstance(text, str)
        own = isinstance(text, str) and self.archive.is_output(text)  # our own output is never refused
        text = text if isinstance(text, str) and own else ensure_text(text)
        if query is not None:
            query = ensure_text(query, what="query")
        self._stage("counting")
        tokens_before = self.counter.count(text)
        target = budget.tokens_for(tokens_before)
        base = Reduction(
            text=text, original=text, tokens_before=tokens_before, tokens_after=tokens_before,
            budget_tokens=target, handle="", tokenizer=self.counter.name,
        )
        if not text.strip():  # white space only: nothing to score; over a (zero) budget it goes entirely
            out = text if tokens_before <= target or own else ""
            return replace(base, text=out, tokens_after=self.counter.count(out), note="empty input",
                           handle=self.archive.put(text, output=out if out != text else None))
        if own or (not was_str and self.archive.is_output(text)):
            return replace(base, handle=self.archive.put(text), note="already reduced by agent-tokred; left as is")
        if tokens_before <= target and budget.threshold is None:
            return replace(base, handle=self.archive.put(text), note="within budget")

        doc = parse_structured(text) if self.strategy in ("auto", "compact") else None
        form = "json" if doc is not None else detect_form(text)
        crit = self._pick_criterion(query, form, tokens_before)
        if doc is not None:
            result = self._compact_tree(doc, crit, query, target, budget, deadline, force_keep)
        else:
            result = self._reduce_text(text, form, crit, query, budget, force_keep, tokens_before, deadline)
        out_text, info = result
        tokens_after = self.counter.count(out_text)
        if tokens_after > target:  # pragma: no cover - plan_prune guarantees this; keep the contract loud
            raise AssertionError(f"internal error: {tokens_after} tokens over budget {target}")
        handle = self.archive.put(text, output=out_text if out_text != text else None)
        return replace(
            base, text=out_text, tokens_after=tokens_after, handle=handle,
            seconds=time.perf_counter() - started, **info,
        )

    def _reduce_text(
        self, text: str, form: str, crit: Criterion, query: str | None, budget: Budget,
        force_keep: Sequence[str], tokens_before: int, deadline: float | None = None,
    ) -> tuple[str, dict[str, Any]]:
        target = budget.tokens_for(tokens_before)
        granularity, units = self._segment(text, form, target, tokens_before)
        if self._criterion is None and (granularity == "word" or len(units) > _MODEL_AUTO_MAX_UNITS):
            crit = lexical  # "auto" never embeds single words or thousands of units: too slow for the gain
        units = _protect(units, query, force_keep)
        if form == "lines" and units and self.strategy in ("auto", "compact") and has_header(units):
            units[0] = replace(units[0], protected=True)
        scores, crit_name, note = self._score(crit, units, query, deadline)
        strategy = self.strategy if self.strategy != "auto" else ("compact" if form == "lines" else "prune")
        candidates, merged_into = resolve_strategy(strategy).select_units(units, scores)  # registered step
        sub = [units[i] for i in candidates]
        sub_scores = scores[candidates]
        if strategy == "compact" and form == "lines" and granularity == "line":  # gap notes count lines
            def render(keep: Sequence[int]) -> str:
                return render_lines(units, [candidates[k] for k in keep])
        else:
            marker = {"sentence": "… ", "paragraph": "… ", "line": "…\n"}.get(granularity, "")

            def render(keep: Sequence[int]) -> str:
                return render_text(units, [candidates[k] for k in keep], marker)

        self._stage("fitting")
        costs = span_costs(self.counter, text, [(u.start, u.end) for u in sub]) if sub[0].start >= 0 else None
        plan = plan_prune(sub, sub_scores, budget_tokens=target, counter=self.counter, render=render,
                          threshold=budget.threshold, unit_costs=costs)  # costs: from the one input encoding
        if plan.tokens > target:  # not even the omission marker fits (tiny budget): the shortest honest text
            plan = replace(plan, keep=(), text="…" if self.counter.count("…") <= target else "")
        kept = [candidates[k] for k in plan.keep]
        spans = _merge_spans([(units[i].start, units[i].end) for i in kept])
        return plan.text, {
            "criterion": crit_name, "strategy": strategy, "unit": granularity, "units_total": len(units),
            "units_kept": len(kept) + sum(len(merged_into.get(i, ())) for i in kept), "kept_spans": spans,
            "note": note,
        }

    def _compact_tree(
        self, doc: StructuredDoc, crit: Criterion, query: str | None, target: int, budget: Budget,
        deadline: float | None = None, force_keep: Sequence[str] = (),
    ) -> tuple[str, dict[str, Any]]:
        tree = JsonUnits.build(doc.root, max_unit_chars=unit_chars_for(target), dump=doc.dump)
        units = protect_ids(list(tree.units), query, [lf.piece >= 0 for lf in tree.leaves], [lf.value for lf in tree.leaves])
        units = _protect(units, None, force_keep) if force_keep else units
        scores, crit_name, note = self._score(crit, units, query, deadline)
        # ids, roles and the fields of records that match the task first, per token; the array head has a prior
        costs = estimate_costs(units, self.counter)
        ranked = rank_tree_units(units, scores, query, tree, costs, self.record_weights,
                                 learned=self._criterion is None or self.record_scorer)
        self._stage("fitting")
        plan = plan_prune(units, ranked, budget_tokens=target, counter=self.counter, render=tree.render,
                          threshold=budget.threshold, unit_costs=costs)
        if not plan.keep and self.counter.count(plan.text) > target:
            # Not even an empty skeleton fits: fall back to the shortest valid document.
            empty = doc.empty_text
            plan = replace(plan, text=empty if self.counter.count(empty) <= target else "")
        return plan.text, {
            "criterion": crit_name, "strategy": "compact", "unit": "field", "units_total": len(units), "fmt": doc.fmt,
            "units_kept": len(plan.keep), "dropped_paths": dropped_paths(units, plan.keep), "note": note,
        }

    def _segment(self, text: str, form: str, target: int, tokens: int) -> tuple[Granularity, list[Unit]]:
        granularity: Granularity
        if self.unit != "auto":
            granularity = self.unit
        elif form == "lines":
            granularity = "line"
        else:
            sentences = segment(text, "sentence")
            if len(sentences) >= 4 and tokens / len(sentences) <= max(target, 1) / 2:
                return "sentence", sentences
            granularity = "word"
        return granularity, segment(text, granularity)


def _protect(units: list[Unit], query: str | None, force_keep: Sequence[str]) -> list[Unit]:
    """Force-keep units holding an id/number/URL the query names exactly, or a caller's span."""
    needles = [s for s in protected_spans(query or "") if len(s) >= 3] + [s for s in force_keep if s]
    if not needles or not units:
        return units
    hits = [i for i, u in enumerate(units) if any(n in u.text for n in needles)]
    if not hits or (len(hits) > max(3, len(units) // 4) and not force_keep):
        return units
    out = list(units)
    for i in hits:
        out[i] = replace(out[i], protected=True)
    return out


def _merge_spans(spans: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return tuple(merged)


class CompressOptions(TypedDict, total=False):
    """The options :func:`compress` takes besides the text, the query and the budget (see its Args)."""

    criterion: str | Mapping[str, float] | Criterion
    strategy: StrategyName
    tokenizer: Any
    unit: UnitName
    force_keep: Sequence[str]
    archive: Archive | None
    on_scorer_error: OnScorerError
    timeout_s: float | None
    on_timeout: OnTimeout
    record_scorer: bool


_OPTION_DEFAULTS: dict[str, Any] = {
    "criterion": "auto", "strategy": "auto", "tokenizer": None, "unit": "auto", "force_keep": (), "archive": None,
    "on_scorer_error": "fallback", "timeout_s": None, "on_timeout": "fallback",
    "record_scorer": True,
}


def compress(
    text: str | bytes,
    *,
    query: str | None = None,
    rate: float | None = None,
    target_tokens: int | None = None,
    threshold: float | None = None,
    **options: Unpack[CompressOptions],
) -> Reduction:
    """Compress ``text`` under an exact token budget, keeping what matters for ``query``.

    Args:
        text: prose, JSON (or JSON-like) tool output, logs or tables; ``str`` or UTF-8 ``bytes``.
        query: the task or question the result must still serve (makes criteria query-aware).
        rate: share of tokens to keep, in ``(0, 1]``.
        target_tokens: the most tokens the result may have, ``>= 1``.
        threshold: keep units whose normalised score reaches it, in ``[0, 1]``.
        **options: the typed keyword options of :class:`CompressOptions`, each with its default:
        criterion: how units are scored (see :class:`Compressor`).
        strategy: ``"auto"``, ``"prune"``, ``"compact"`` or ``"merge"``.
        tokenizer: the tokenizer the budget is met in (default ``o200k_base``).
        unit: text granularity, ``"auto"`` by default.
        force_keep: strings whose units are kept whenever anything can be kept.
        archive: where the original is archived (default: the process-wide in-memory archive).
        on_scorer_error: ``"fallback"`` to the lexical criterion with a warning, or ``"raise"``.
        timeout_s: most seconds spent scoring; a slower criterion is abandoned (``None``: no limit).
        on_timeout: ``"fallback"`` to the lexical criterion with a warning, or ``"raise"``.
        record_scorer: ``False`` ranks structured fields by a named criterion's scores alone.

    Returns:
        A :class:`~agent_tokred.reduction.Reduction`; ``tokens_after <= budget_tokens`` always, JSON in
        gives valid JSON out, and the original is archived under ``handle``.

    Raises:
        BudgetError: no budget, ``rate`` outside ``(0, 1]``, ``target_tokens < 1``.
        InvalidInputError: not text (binary junk, invalid UTF-8, wrong type).
        UnknownNameError: unknown criterion, strategy, unit or tokenizer name.
        ScorerFailedError: the criterion raised and ``on_scorer_error="raise"``.
        CompressionTimeoutError: scoring ran past ``timeout_s`` and ``on_timeout="raise"``.

    Example:
        >>> r = compress('{"items": [' + ",".join(f'{{"id": {i}}}' for i in range(200)) + "]}",
        ...              query="id 123", target_tokens=40, criterion="lexical")
        >>> import json; "123" in r.text and isinstance(json.loads(r.text), dict)
        True
    """
    unknown = sorted(set(options) - set(_OPTION_DEFAULTS))
    if unknown:
        raise UnknownNameError("compress() option", unknown[0], ("query", "rate", "target_tokens", "threshold",
                                                                 *_OPTION_DEFAULTS))
    opt: dict[str, Any] = {**_OPTION_DEFAULTS, **options}
    budget = make_budget(rate=rate, target_tokens=target_tokens, threshold=threshold)
    return _cached_compressor(opt).compress(text, query=query, budget=budget, force_keep=tuple(opt["force_keep"]),
                                            timeout_s=opt["timeout_s"])


_COMPRESSORS: dict[tuple[Any, ...], Compressor] = {}


def _cached_compressor(options: Mapping[str, Any]) -> Compressor:
    """One :class:`Compressor` per configuration (names as they are, other objects by identity)."""
    names = ("criterion", "strategy", "tokenizer", "unit", "archive", "on_scorer_error", "on_timeout",
             "record_scorer")
    key = tuple(options[n] if isinstance(options[n], (str, bool, type(None))) else id(options[n]) for n in names)
    if key in _COMPRESSORS:
        return _COMPRESSORS[key]
    comp = Compressor(**{n: options[n] for n in names})
    if len(_COMPRESSORS) < 64 and isinstance(options["criterion"], str):
        _COMPRESSORS[key] = comp
    return comp


