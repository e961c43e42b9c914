"""The lexical criterion: fast, model-free scoring from rarity, entities, digits and query overlap.

It is the zero-dependency fast path and the fallback when a model criterion fails. A unit scores
high when it holds rare words of this input (IDF over units), numbers, ids and other protected
spans, capitalised names, error markers, and above all terms of the query (BM25-style saturation).

Example:
    >>> from agent_tokred.units import segment
    >>> units = segment("The cat sat. Paris is the capital of France.", "sentence")
    >>> scores = lexical(units, "capital of France")
    >>> scores[1] > scores[0]
    True
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from .._patterns import CJK, PROTECTED
from .._protected_fast import terms_and_protected
from ..units import Unit

_TERM = re.compile(rf"(?:{PROTECTED.pattern})|{CJK.pattern}|\w+")
# = (?<![.!?]\s)(?<!^)\b[A-Z][a-z]+ with the capital first, so the engine skips to capitals
_CAPITALS = re.compile(r"[A-Z](?<![.!?]\s.)(?<!\w.)(?<!^.)[a-z]+")
# (?<!\w) = \b before a word character, and the engine tries it faster than \b under re.I
_ALARM = re.compile(r"(?<!\w)(?:error|exception|traceback|fail(?:ed|ure)?|fatal|warn(?:ing)?|denied|timeout|invalid)\b", re.I)
_ALARM_STEMS = ("error", "exception", "traceback", "fail", "fatal", "warn", "denied", "timeout", "invalid")


def _alarm(raw: str) -> bool:
    """``_ALARM.search(raw)``; ASCII text without any stem (lower-cased) cannot match and skips the regex."""
    if raw.isascii():
        low = raw.lower()
        if not any(stem in low for stem in _ALARM_STEMS):
            return False
    return _ALARM.search(raw) is not None


STOP_WORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "also", "may", "might", "must", "shall", "us", "let", "one", "two", "get", "got", "like", "well", "much", "many", "even", "still", "yet", "via", "per", "de", "la", "le", "what's", "it's", "i'm", "don't", "can't", "won't", "isn't", "aren't", "wasn't", "weren't"]
)


def terms(text: str) -> list[str]:
    """Lower-cased terms of ``text``: protected spans whole, CJK per character, else word characters."""
    return list(_cached_terms(text)[0])


@lru_cache(maxsize=65536)
def _cached_terms(text: str) -> tuple[tuple[str, ...], int]:
    # Units are scored by more than one pass (lexical, record ranking); the regex is the costly part.
    return terms_and_protected(text)  # = (lower-cased _TERM.findall(text), len(PROTECTED.findall(text)))


def _idf(units_terms: Sequence[list[str]]) -> dict[str, float]:
    n = len(units_terms)
    df: Counter[str] = Counter()
    for ts in units_terms:
        df.update(set(ts))
    return {t: math.log((n + 1) / (d + 0.5)) + 1.0 for t, d in df.items()}


def _content_score(raw: str, ts: list[str], idf: dict[str, float]) -> float:
    content = [t for t in ts if t not in STOP_WORDS]
    if not content:
        return 0.0
    info = sum(idf.get(t, 1.0) for t in content) / max(len(ts), 1)
    protected = _cached_terms(raw)[1]  # = len(PROTECTED.findall(raw)), from the terms' own scan
    capitals = len(_CAPITALS.findall(raw))
    bonus = 0.6 * min(protected, 4) + 0.3 * min(capitals, 4) + (1.5 if _alarm(raw) else 0.0)
    return info + bonus / max(1.0, math.sqrt(len(ts)))


def _whole(span: str, text: str) -> bool:
    """``span`` occurs in ``text`` as a whole token (``8`` is not found inside ``3377618313``)."""
    return re.search(rf"(?<![\w.]){re.escape(span)}(?![\w])", text) is not None


def lexical(units: Sequence[Unit], query: str | None = None) -> list[float]:
    """Score units by informativeness and, when given, overlap with ``query``.

    Args:
        units: units of one input.
        query: the task or question; its terms (and exact ids/numbers) dominate the score.

    Returns:
        One float per unit; higher means keep.
    """
    if not units:
        return []
    units_terms = [terms(u.text) for u in units]
    idf = _idf(units_terms)
    q_terms = [t for t in terms(query or "") if t not in STOP_WORDS]
    q_set = set(q_terms)
    q_protected = {m.group().lower() for m in PROTECTED.finditer(query or "")}
    avg_len = sum(len(ts) for ts in units_terms) / len(units_terms) or 1.0
    scores: list[float] = []
    for unit, ts in zip(units, units_terms):
        score = _content_score(unit.text, ts, idf)
        if q_set and ts:
            tf = Counter(t for t in ts if t in q_set)
            norm = 1.2 * (0.25 + 0.75 * len(ts) / avg_len)
            bm25 = sum(idf.get(t, 1.0) * (c * 2.2) / (c + norm) for t, c in tf.items())
            low = unit.text.lower()
            exact = sum(1 for p in q_protected if p in low and _whole(p, low))
            score = 3.0 * bm25 + 25.0 * exact + 0.5 * score
        scores.append(score)
    return scores
