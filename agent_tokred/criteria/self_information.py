"""Self-information criterion: a unit matters when a language model finds it surprising.

The signal of Selective-Context and LLMLingua: the surprisal ``-log p(token | prefix)`` of each token
under a small causal LM (SmolLM2-135M by default), pooled onto units. Predictable text (boilerplate,
repetition) scores low and is dropped first.

With a query, ``mode="contrastive"`` is LongLLMLingua's token-level *contrastive* signal: how much more predictable a token
becomes once the question is in front of it, ``surprisal(token | generic question, context) -
surprisal(token | question, context)``, clipped at 0. The baseline is the same template around a
content-free question ("What does the text say?"), not a bare context: otherwise the first tokens
of the text gain just from having *any* prefix (on NQ this baseline lifted the answer sentence from
43% to 63% top-10%) (a token the question makes *less* predictable is noise, not
evidence against it). Tokens the question explains (its entities, their attributes) gain; the rest
stay near zero, so a unit's contrastive score is the *sum* over its tokens: the information in it the
question accounts for. Plain surprisal is pooled by the *mean* (information density, length-neutral).
``mode="conditional"`` scores the plain surprisal with the question in the prefix instead.

``mode="query_likelihood"`` is LongLLMLingua's coarse, question-aware signal turned onto units: how well
each unit alone predicts the question, the mean ``log p(question token | unit, "Question:")``, i.e. minus
the question's self-information given the unit (units in one batch, left-padded so every question ends at
the same position; the vocabulary head runs on the question positions only). ``block_weight`` adds the
best score of the unit's block (paragraph, document), as a document-level ranking would.

Long inputs run in windows (each token scored once, with at least ``overlap`` tokens of context
before it; the question is repeated in each window), batched.

Example:
    >>> from agent_tokred.criteria.self_information import SelfInformationCriterion
    >>> from agent_tokred.units import segment
    >>> units = segment("The cat sat on the mat. Xq zvbr kwpl.", "sentence")
    >>> s = SelfInformationCriterion()(units, None)  # doctest: +SKIP
    >>> s[1] > s[0]  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError
from ..models import load_causal_lm
from ..units import Unit
from ._query_likelihood import PrefixKVCache, query_likelihood, start_ids
from ._windows import add_block_score, pad_batch, pool_token_scores, window_starts
from .base import unit_texts_with_offsets

Mode = Literal["auto", "surprisal", "conditional", "contrastive", "query_likelihood"]
MODES: tuple[Mode, ...] = ("auto", "surprisal", "conditional", "contrastive", "query_likelihood")
Pooling = Literal["auto", "mean", "sum", "max"]
POOLINGS: tuple[Pooling, ...] = ("auto", "mean", "sum", "max")


@dataclass(frozen=True)
class SelfInformationCriterion:
    """Score units by their surprisal under a causal LM, contrasted with the query when given.

    Attributes:
        model: ``"smollm2"`` (the shipped SmolLM2-135M-Instruct) or any local HF causal LM.
        mode: ``auto`` (``query_likelihood`` with a query, ``surprisal`` without), ``surprisal`` (ignore
            the query), ``conditional`` (surprisal after the query), ``contrastive`` (surprisal drop the
            query causes), ``query_likelihood`` (how well each unit predicts the query); the query modes
            fall back to ``surprisal`` when no query is given.
        window: tokens per forward pass, prefix included.
        overlap: context tokens carried into the next window so its first tokens are not scored blind.
        batch_size: windows per forward pass.
        pooling: token scores to a unit score: ``auto`` (``sum`` for ``contrastive``, else ``mean``),
            ``mean`` (length-neutral), ``sum`` or ``max``.
        query_template: how the query is put in front of the context; must contain ``{query}``.
        baseline_query: the content-free question the contrastive mode compares the query with.
        max_query_tokens: longer queries are cut to their first tokens.
        max_unit_tokens: ``query_likelihood`` reads at most this many tokens of a unit (its start).
        block_weight: ``query_likelihood`` only: weight of the block's best unit score added to each unit's.
        kv_cache_mb: ``query_likelihood`` only: memory for the key/value states of units already seen (a
            unit scored again, for another question, skips its own pass; same scores); 0 turns it off.

    Example:
        >>> crit = SelfInformationCriterion(mode="surprisal", window=256)
        >>> crit(segment("Hello there. Qzx vlp.", "sentence"), None)  # doctest: +SKIP
        [3.1, 9.8]
    """

    model: str = "smollm2"
    mode: Mode = "auto"
    window: int = 512
    overlap: int = 128
    batch_size: int = 2
    pooling: Pooling = "auto"
    query_template: str = "Question: {query}\n\n"
    baseline_query: str = "What does the text say?"
    max_query_tokens: int = 128
    max_unit_tokens: int = 64
    block_weight: float = 0.5
    kv_cache_mb: float = 256.0
    _kv_cache: PrefixKVCache | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}")
        if "{query}" not in self.query_template:
            raise ValueError(f"query_template must contain '{{query}}', got {self.query_template!r}")
        for name, low in (("window", 64), ("batch_size", 1), ("max_query_tokens", 1)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)!r}")
        if not 0 <= self.overlap <= self.window // 2:
            raise ValueError(f"overlap must be in [0, window // 2], got {self.overlap!r}")
        if not self.kv_cache_mb >= 0:
            raise ValueError(f"kv_cache_mb must be >= 0, got {self.kv_cache_mb!r}")
        if self.kv_cache_mb > 0:  # frozen: the cache is state, not configuration
            object.__setattr__(self, "_kv_cache", PrefixKVCache(self.kv_cache_mb))

    def resolved_mode(
        self, query: str | None
    ) -> Literal["surprisal", "conditional", "contrastive", "query_likelihood"]:
        """The mode actually used for this query (``auto`` and query-less calls resolved)."""
        if query is None or not query.strip() or self.mode == "surprisal":
            return "surprisal"
        return "query_likelihood" if self.mode == "auto" else self.mode

    def __call__(self, units: Sequence[Unit], query: str | None = None) -> list[float]:
        """One score per unit; higher means more informative (or more query-relevant)."""
        if not units:
            return []
        text, spans = unit_texts_with_offsets(units)
        tok, model = load_causal_lm(self.model)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids: list[int] = list(enc["input_ids"])
        if not ids:
            return [0.0] * len(units)
        mode = self.resolved_mode(query)
        if mode == "query_likelihood" and query is not None:
            scores_ql = query_likelihood(model, tok, [u.text for u in units], self._prompt_ids(tok, query, False),
                                         self.max_unit_tokens, self.batch_size * 8, self._kv_cache)
            return add_block_score(scores_ql, [u.group for u in units], self.block_weight).tolist()
        start = start_ids(tok)
        prefixes = [start]
        if mode != "surprisal" and query is not None:
            q_ids = list(tok(query, add_special_tokens=False, verbose=False)["input_ids"])
            if len(q_ids) > self.max_query_tokens:
                query = tok.decode(q_ids[: self.max_query_tokens])
            asks = [query] if mode == "conditional" else [self.baseline_query, query]
            prefixes = [start + self._prompt_ids(tok, q) for q in asks]
        cap = self.window - max(len(p) for p in prefixes)  # same windows in every pass
        if cap < 32:
            raise InvalidInputError(f"window {self.window} leaves {cap} context tokens after the query")
        passes = token_surprisal(model, tok, ids, prefixes, cap, self.overlap, self.batch_size)
        # The contrast is clipped at 0; NaN (a token nothing predicts) stays NaN and is skipped.
        scores = np.maximum(passes[0] - passes[1], 0.0) if mode == "contrastive" else passes[0]
        pooling = self.pooling
        if pooling == "auto":
            pooling = "sum" if mode == "contrastive" else "mean"
        return pool_token_scores(text, enc["offset_mapping"], scores, spans, pooling)

    def _prompt_ids(self, tok: Any, query: str, before: bool = True) -> list[int]:
        if not before:  # the question after a unit
            q_ids = list(tok(query.strip(), add_special_tokens=False, verbose=False)["input_ids"])
            glue = list(tok("\nQuestion:", add_special_tokens=False, verbose=False)["input_ids"])
            return glue + list(tok(" " + tok.decode(q_ids[: self.max_query_tokens]), add_special_tokens=False,
                                   verbose=False)["input_ids"])
        prompt = self.query_template.replace("{query}", query.strip())
        return list(tok(prompt, add_special_tokens=False, verbose=False)["input_ids"])


def token_surprisal(
    model: Any,
    tok: Any,
    ids: list[int],
    prefixes: list[list[int]],
    cap: int,
    overlap: int,
    batch_size: int,
) -> list[np.ndarray]:
    """Surprisal in nats of every token of ``ids``, once per prefix, with the same windows for each.

    Window ``k`` covers ``ids[s_k : s_k + cap]`` after the prefix; it scores the tokens not scored by
    window ``k - 1``, which have at least ``overlap`` tokens of context before them. A token nothing
    predicts (first token, empty prefix) gets NaN.

    Example:
        >>> tok, lm = load_causal_lm()  # doctest: +SKIP
        >>> token_surprisal(lm, tok, tok("a b c")["input_ids"], [[0]], 256, 64, 2)  # doctest: +SKIP
        [array([ 9.1, 6.3, 4.2])]
    """
    import torch

    overlap = min(overlap, cap // 2)
    starts = window_starts(len(ids), cap, overlap)
    jobs = []  # (pass, prefix, window start, first scored index)
    for p, prefix in enumerate(prefixes):
        for k, s in enumerate(starts):
            jobs.append((p, prefix, s, s if k == 0 else s + overlap))
    out = [np.full(len(ids), np.nan) for _ in prefixes]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for b0 in range(0, len(jobs), batch_size):
        batch = jobs[b0 : b0 + batch_size]
        x, mask = pad_batch([prefix + ids[s : s + cap] for _, prefix, s, _ in batch], pad)
        with torch.inference_mode():
            logits = _logits(model, x, mask)
            for i, (p, prefix, s, first) in enumerate(batch):
                end = min(s + cap, len(ids))
                # Token ids[j] sits at position len(prefix) + j - s; the logits one before predict it.
                pos = torch.arange(len(prefix) + first - s, len(prefix) + end - s)
                keep = pos >= 1
                pos, j = pos[keep], torch.arange(first, end)[keep]
                if not len(pos):
                    continue
                row = logits[i, pos - 1].double()
                target = torch.tensor([ids[t] for t in j.tolist()])
                nll = torch.logsumexp(row, dim=-1) - row.gather(1, target[:, None]).squeeze(1)
                out[p][j.numpy()] = nll.numpy()
    return out


def _logits(model: Any, x: Any, mask: Any) -> Any:
    try:
        return model(input_ids=x, attention_mask=mask, use_cache=False).logits
    except TypeError:  # models without a use_cache argument
        return model(input_ids=x, attention_mask=mask).logits
