"""Cheap features of each unit given the query: word pieces, static vectors, counts; no model pass.

One call tokenises all units and the query once (Rust fast tokenizer) and computes every feature with
numpy over the concatenated token ids; the only per-unit Python is a few regular expressions.

Feature groups (see :data:`FEATURE_NAMES`):

* query match: BM25 of the unit, IDF-weighted query coverage, query bigrams found, exact ids/numbers;
  the same at block level (the unit's paragraph or document, ``Unit.group``) and for the block's head
  (first unit: a title or heading), and coverage of the neighbouring units;
* meaning: cosine of IDF-weighted static vectors of unit, block and query, and the block's best cosine;
* answer type: the question word (who / when / where / how many / what / other) next to what the unit
  offers (years, numbers, capitalised names absent from the query, share of new words);
* shape: position in the block and in the input, block size, length, mean IDF.

Key match and meaning features are also given relative to the input (z-score and gap to the best
unit), because a criterion's scores are only ever compared within one call.

Example:
    >>> from agent_tokred.units import segment
    >>> x = unit_features(segment("Paris is in France. Cats sleep.", "sentence"), "where is Paris", vocab)  # doctest: +SKIP
    >>> x.shape == (2, len(FEATURE_NAMES))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .._patterns import PROTECTED
from ..units import Unit
from .static import StaticVocabulary

FEATURE_VERSION = "1"

QUERY_TYPES = ("who", "when", "where", "quantity", "what", "other", "none")
_BASE = (
    "bm25", "cover", "bigram", "exact", "cos",
    "block_bm25", "block_cover", "block_cos", "block_best_cos", "head_cover", "prev_cover", "next_cover",
    "year", "numbers", "new_names", "novelty",
    "pos_in_block", "is_head", "block_size", "pos_in_input", "length", "mean_idf",
)
_RELATIVE = ("bm25", "cover", "bigram", "cos", "block_bm25", "block_cover", "block_cos", "head_cover")
FEATURE_NAMES: tuple[str, ...] = (
    *_BASE,
    *(f"{f}_z" for f in _RELATIVE),
    *(f"{f}_gap" for f in _RELATIVE),
    *(f"q_{t}" for t in QUERY_TYPES),
)

# Each starts with one character class (a word boundary as a look-behind after it), so the engine skips to
# candidates: = \b(?:1[0-9]{3}|20[0-9]{2})s?\b, \d+(?:[.,]\d+)* and \b[A-Z][\w'’-]* (tested against these).
_YEAR = re.compile(r"[12](?<!\w.)(?:(?<=1)[0-9]{3}|(?<=2)0[0-9]{2})s?\b")
_NUMBER = re.compile(r"\d\d*(?:[.,]\d+)*")
_NAME = re.compile(r"[A-Z](?<!\w.)[\w'’-]*")
_WORD = re.compile(r"\w+")
_QTYPE = (
    ("quantity", re.compile(r"\bhow (?:many|much|long|old|far|big|tall|often)\b")),
    ("when", re.compile(r"\bwhen\b|\bwhat (?:year|date|time|day|month|century|decade)\b")),
    ("who", re.compile(r"\bwho(?:m|se)?\b")),
    ("where", re.compile(r"\bwhere\b")),
    ("what", re.compile(r"\bwhat\b|\bwhich\b|\bname\b")),
)
_K1, _B = 1.2, 0.75
_VECTOR_BLOCK = 1_024  # word pieces gathered at once for the static vectors (a block stays in cache: 2x faster than 16k)


def query_type(query: str | None) -> str:
    """The question's answer type: one of :data:`QUERY_TYPES`."""
    if not query or not query.strip():
        return "none"
    head = query.lower()[:80]
    for name, pattern in _QTYPE:
        if pattern.search(head):
            return name
    return "other"


def _relative(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    std = float(x.std())
    z = (x - x.mean()) / std if std > 1e-9 else np.zeros_like(x)
    return z, x - x.max()


def _segment_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of ``values`` rows over ``[starts[k], starts[k+1])`` (empty ranges give zeros)."""
    n = len(starts) - 1
    out = np.zeros((n, *values.shape[1:]), dtype=np.float32)
    if len(values) == 0 or n == 0:
        return out
    nonempty = starts[1:] > starts[:-1]
    out[nonempty] = np.add.reduceat(values, starts[:-1][nonempty], axis=0)
    return out


def _weighted_vector_sums(vectors: np.ndarray, ids: np.ndarray, w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``_segment_sums(vectors[ids] * w[:, None], starts)``, a block of units at a time.

    The gathered ``(tokens, dim)`` matrix of a whole input would be gigabytes at a million tokens;
    blocks keep it to a few megabytes and give the same sums (each unit is summed in one block).
    """
    n = len(starts) - 1
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    k = 0
    while k < n:
        end = int(np.searchsorted(starts, starts[k] + _VECTOR_BLOCK, side="right")) - 1
        end = min(max(end, k + 1), n)
        a, b = int(starts[k]), int(starts[end])
        out[k:end] = _segment_sums(vectors[ids[a:b]] * w[a:b, None], starts[k : end + 1] - a)
        k = end
    return out


def _block_sums(rows: np.ndarray, block: np.ndarray, nb: int) -> np.ndarray:
    """``out[b] = sum of rows[i] with block[i] == b`` in float64, added in row order as ``np.add.at`` does.

    Text units come in block order, so each block is one contiguous run: ``reduceat`` over the runs
    adds the same rows in the same order (bit-identical sums, a test checks) without ``add.at``'s
    per-row dispatch.
    """
    out = np.zeros((nb, rows.shape[1]))
    if len(block) == 0 or rows.shape[1] == 0:
        return out
    if np.all(block[1:] >= block[:-1]):
        runs = np.flatnonzero(np.concatenate([[True], block[1:] != block[:-1]]))
        out[block[runs]] = np.add.reduceat(rows.astype(np.float64), runs, axis=0)
    else:
        np.add.at(out, block, rows)
    return out


def _lookup(keys: np.ndarray, values: np.ndarray, x: np.ndarray, default: float) -> np.ndarray:
    """``values`` of ``x`` in sorted ``keys``; ``default`` where ``x`` is absent."""
    if not len(keys):
        return np.full(len(x), default)
    pos = np.minimum(np.searchsorted(keys, x), len(keys) - 1)
    return np.where(keys[pos] == x, values[pos], default)


def _bm25(tf: np.ndarray, idf_q: np.ndarray, length: np.ndarray) -> np.ndarray:
    avg = float(length.mean()) or 1.0
    norm = _K1 * (1 - _B + _B * length / avg)
    return ((tf * (_K1 + 1)) / (tf + norm[:, None] + 1e-12) * idf_q[None, :]).sum(axis=1)


def unit_features(units: Sequence[Unit], query: str | None, vocab: StaticVocabulary) -> np.ndarray:
    """Features of each unit for ``query``: shape ``(len(units), len(FEATURE_NAMES))``, float32, finite.

    Args:
        units: units of one input (any kind; their texts are scored).
        query: the question or task; ``None`` or blank zeroes the query features.
        vocab: tokenizer and static vectors.
    """
    n = len(units)
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    q = (query or "").strip()
    texts = [u.text for u in units]
    ids_all, starts_all = vocab.encode([*texts, q])
    q_ids = ids_all[starts_all[n] :]
    ids, starts = ids_all[: starts_all[n]], starts_all[: n + 1]
    lengths = np.diff(starts).astype(np.float64)
    seg = np.repeat(np.arange(n), np.diff(starts))
    content = vocab.content[ids]

    # IDF over units, on the input's own distinct tokens.
    uniq, inv = np.unique(ids, return_inverse=True)
    pairs = np.unique(seg * len(uniq) + inv)
    df = np.bincount(pairs % max(len(uniq), 1), minlength=len(uniq)).astype(np.float64)
    idf_uniq = np.log((n + 1) / (df + 0.5)) + 1.0
    idf_tok = idf_uniq[inv]
    max_idf = float(np.log((n + 1) / 0.5) + 1.0)

    # Query terms: distinct content pieces, with the input's IDF (unseen pieces: the maximum).
    q_terms = np.unique(q_ids[vocab.content[q_ids]]) if q_ids.size else np.zeros(0, dtype=np.int64)
    idf_q = _lookup(uniq, idf_uniq, q_terms, max_idf)
    groups = np.asarray([u.group for u in units])
    block_keys, block = np.unique(groups, return_inverse=True)
    nb = len(block_keys)
    feats: dict[str, np.ndarray] = {}

    # Query-term frequencies per unit: (n, Q).
    nq = len(q_terms)
    tf = np.zeros((n, nq))
    if nq:
        tpos = np.searchsorted(q_terms, ids)
        hit = (tpos < nq) & (q_terms[np.minimum(tpos, nq - 1)] == ids)
        tf = np.bincount(seg[hit] * nq + tpos[hit], minlength=n * nq).reshape(n, nq).astype(np.float64)
    q_mass = float(idf_q.sum()) or 1.0
    feats["bm25"] = _bm25(tf, idf_q, lengths)
    feats["cover"] = (tf > 0) @ idf_q / q_mass
    block_tf = _block_sums(tf, block, nb)  # whole counts: exact in any order
    block_len = np.bincount(block, weights=lengths, minlength=nb)
    feats["block_bm25"] = _bm25(block_tf, idf_q, block_len)[block]
    feats["block_cover"] = ((block_tf > 0) @ idf_q / q_mass)[block]

    # Query bigrams (adjacent pieces) present in the unit.
    big = np.zeros(n)
    if q_ids.size > 1 and ids.size > 1:
        v = len(vocab.tokens)
        q_pairs = np.unique(q_ids[:-1] * v + q_ids[1:])
        same = seg[:-1] == seg[1:]
        found = np.isin(ids[:-1] * v + ids[1:], q_pairs) & same
        big = np.bincount(seg[:-1][found], minlength=n).astype(np.float64)
    feats["bigram"] = np.log1p(big)
    needles = [m.group().lower() for m in PROTECTED.finditer(q) if len(m.group()) >= 3]
    feats["exact"] = (np.asarray([sum(1 for s in needles if s in low) for low in map(str.lower, texts)],
                                 dtype=np.float64) if needles else np.zeros(n))

    # Static meaning: IDF-weighted mean vectors, cosine to the query.
    w = np.where(content, idf_tok, 0.0)
    usum = _weighted_vector_sums(vocab.vectors, ids, w, starts)
    bsum = _block_sums(usum, block, nb)
    qw = _lookup(uniq, idf_uniq, q_ids, max_idf) * vocab.content[q_ids]
    qvec = (vocab.vectors[q_ids] * qw[:, None]).sum(axis=0) if q_ids.size else np.zeros(vocab.dim)
    qn = float(np.linalg.norm(qvec))

    def cosine(m: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(m, axis=1)
        return np.where((norms > 0) & (qn > 0), m @ qvec / np.maximum(norms * qn, 1e-12), 0.0)

    feats["cos"] = cosine(usum)
    feats["block_cos"] = cosine(bsum)[block]
    best = np.full(nb, -1.0)
    np.maximum.at(best, block, feats["cos"])
    feats["block_best_cos"] = best[block]

    # Structure: position inside the block, the block's head unit, neighbours.
    order = np.lexsort((np.arange(n), block))
    first_of_block = np.full(nb, n, dtype=np.int64)
    np.minimum.at(first_of_block, block, np.arange(n))
    rank = np.empty(n, dtype=np.int64)
    counts = np.bincount(block, minlength=nb)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(n) - offsets[block[order]]
    feats["head_cover"] = feats["cover"][first_of_block][block]
    prev_ok = np.concatenate([[False], block[1:] == block[:-1]])
    next_ok = np.concatenate([block[:-1] == block[1:], [False]])
    feats["prev_cover"] = np.where(prev_ok, np.roll(feats["cover"], 1), 0.0)
    feats["next_cover"] = np.where(next_ok, np.roll(feats["cover"], -1), 0.0)
    feats["pos_in_block"] = rank / np.maximum(counts[block] - 1, 1)
    feats["is_head"] = (rank == 0).astype(np.float64)
    feats["block_size"] = np.log1p(counts[block].astype(np.float64))
    feats["pos_in_input"] = np.arange(n) / max(n - 1, 1)
    feats["length"] = np.log1p(lengths)
    n_content = np.bincount(seg, weights=content.astype(np.float64), minlength=n)
    feats["mean_idf"] = np.bincount(seg, weights=w, minlength=n) / np.maximum(n_content, 1.0)

    # What the unit offers as an answer.
    q_words = set(_WORD.findall(q.lower()))
    feats["year"] = np.asarray([1.0 if _YEAR.search(t) else 0.0 for t in texts])
    feats["numbers"] = np.log1p(np.asarray([len(_NUMBER.findall(t)) for t in texts], dtype=np.float64))
    feats["new_names"] = np.log1p(np.asarray(
        [len([m for m in _NAME.findall(t) if m.lower() not in q_words]) for t in texts], dtype=np.float64))
    in_query = np.isin(ids, q_terms) & content
    feats["novelty"] = 1.0 - np.bincount(seg, weights=in_query.astype(np.float64), minlength=n) / np.maximum(
        n_content, 1.0)

    for name in _RELATIVE:
        feats[f"{name}_z"], feats[f"{name}_gap"] = _relative(feats[name])
    qt = query_type(query)
    for t in QUERY_TYPES:
        feats[f"q_{t}"] = np.full(n, 1.0 if t == qt else 0.0)
    out = np.stack([np.asarray(feats[k], dtype=np.float64) for k in FEATURE_NAMES], axis=1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
