"""The adaptive relevance cut behind :mod:`agent_tokred.examples`: the query's cluster among its best matches.

A fixed similarity margin cannot tell "another example of the same kind" from "the nearest example of
another kind": both sit at some cosine below the best match, and where depends on the embedding model
and on how tight the kind is. Examples of one kind are, however, more similar to *each other* than to
examples of other kinds. So the best matches are grown into a cluster from the query: the next member
is the candidate with the highest *link*, half its relevance to the query and half its mean similarity
to the members so far (the query keeps half the weight, so the cluster cannot drift away from it). The
cluster ends where that link drops for good:

1. the *core* is the most persistent prefix of the growth order: the cut ``k`` with the largest
   ``min(links[1:k]) - links[k]``, i.e. the prefix that stays a cluster of its own over the widest range
   of link levels (single-linkage persistence, as in a dendrogram);
2. a core can be a tight sub-group of a larger kind (near-identical variants of one template): while
   the candidate after the cut links to the cluster closer to the cluster's cohesion (its weakest link)
   than to the background (how a typical candidate outside links to it: the median), the cut moves on
   to the next drop in the links;
3. the best match stands alone when the runner-up is closer to the least relevant candidate than to
   the best match, both by its relevance and by its link (a conservative test: a lone match is rare).

:func:`relevant_set` applies this to a pool's arrays and :func:`extend_selection` adds the extension to
a selection from the core; the selection itself is in :mod:`._example_select`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["cluster_cut", "extend_selection", "grow_order", "persistence", "relevant_set"]

_EPS = 1e-9  # a drop in the links smaller than rounding is no drop
_MIDPOINT = 0.5  # "closer to the cluster than to the background": the one threshold, not a tuned constant


def grow_order(relevance: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grow a cluster from the query: the order candidates join and the link each joined with.

    The first member is the best match (its link is its relevance); every later one is the candidate
    with the highest ``(relevance + mean similarity to the members so far) / 2``.

    Args:
        relevance: similarity of each candidate to the query.
        sims: pairwise similarities of the candidates (``n x n``).

    Returns:
        (positions in joining order, the link of each at joining).

    Example:
        >>> rel = np.array([0.9, 0.5, 0.8])
        >>> sims = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.2], [0.9, 0.2, 1.0]])
        >>> order, links = grow_order(rel, sims)
        >>> order.tolist(), np.round(links, 2).tolist()
        ([0, 2, 1], [0.9, 0.85, 0.32])
    """
    rel = np.asarray(relevance, dtype=np.float64).reshape(-1)
    n = rel.size
    total = np.zeros(n, dtype=np.float64)  # sum of similarities to the members so far
    taken = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    links = np.empty(n, dtype=np.float64)
    for step in range(n):
        link = rel if step == 0 else 0.5 * rel + (0.5 / step) * total
        j = int(np.argmax(np.where(taken, -np.inf, link)))
        order[step], links[step], taken[j] = j, link[j], True
        total += sims[j]
    return order, links


def persistence(links: np.ndarray) -> np.ndarray:
    """How long each prefix of the growth order stays a cluster of its own: ``min(links[1:k]) - links[k]``.

    Entry ``k`` is for the prefix of the first ``k`` candidates (``k >= 2``; the first link is to the
    query, a different scale); entries that are not a cut are ``-inf``.

    Example:
        >>> persistence(np.array([0.9, 0.85, 0.8, 0.3, 0.5])).round(2).tolist()
        [-inf, -inf, 0.05, 0.5, -0.2]
    """
    w = np.asarray(links, dtype=np.float64).reshape(-1)
    life = np.full(w.size, -np.inf)
    if w.size >= 3:
        life[2:] = np.minimum.accumulate(w[1:])[:-1] - w[2:]
    return life


def cluster_cut(relevance: np.ndarray, sims: np.ndarray, order: np.ndarray, links: np.ndarray) -> tuple[int, int]:
    """Where the query's cluster ends in the growth order: ``(core, relevant)`` prefix lengths.

    ``core <= relevant``; the first ``core`` candidates are the tight cluster, the ones up to
    ``relevant`` extend it (same kind, less tight). Without any drop in the links all candidates are
    one cluster.

    Args:
        relevance: similarity of each candidate to the query.
        sims: pairwise similarities of the candidates.
        order: joining order, from :func:`grow_order`.
        links: the link of each at joining, from :func:`grow_order`.

    Example:
        >>> rel = np.array([0.9, 0.85, 0.84, 0.3, 0.32, 0.31])
        >>> sims = np.full((6, 6), 0.2) + 0.75 * np.kron(np.eye(2), np.ones((3, 3)))
        >>> order, links = grow_order(rel, sims)
        >>> cluster_cut(rel, sims, order, links)
        (3, 3)
    """
    rel = np.asarray(relevance, dtype=np.float64).reshape(-1)
    n = rel.size
    if n <= 1:
        return n, n
    ranked = rel[order]
    # A lone best match is the exception, so its test is conservative: the runner-up must be closer to
    # the least relevant candidate than to the best match, by its relevance and by its link alike.
    background = float(ranked.min())
    runner_up = max(float(ranked[1]), float(links[1]))
    if ranked[0] > background and runner_up - background < _MIDPOINT * (ranked[0] - background):
        return 1, 1
    life = persistence(links)
    if not life.max() > _EPS:
        return n, n
    core = cut = int(np.argmax(life))
    while cut < n:
        cohesion = float(links[1:cut].min())
        inside, outside = order[:cut], order[cut:]
        # the background: how a typical candidate outside links to the cluster (the same scale as links)
        background = float(np.median(0.5 * rel[outside] + 0.5 * sims[np.ix_(outside, inside)].mean(axis=1)))
        if cohesion <= background or links[cut] - background < _MIDPOINT * (cohesion - background):
            break  # what follows looks like background: the cluster ends here
        drops = np.flatnonzero(life[cut + 1 :] > _EPS)
        if not drops.size:
            return core, n
        cut += 1 + int(drops[0])  # the next drop in the links
    return core, cut


def relevant_set(
    idx: np.ndarray,
    rel: np.ndarray,
    vectors: np.ndarray,
    costs: np.ndarray,
    capacity: int,
    at_least: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The query's cluster among the best matches in ``idx``: (core, extension in linkage order).

    The candidates are the ``at_least`` best matches, or more when those cannot fill ``capacity``
    twice over (so a large budget is never capped by the candidate count).
    """
    take = min(idx.size, 4 * at_least)
    top = idx[np.argpartition(-rel[idx], take - 1)[:take]] if take < idx.size else idx
    ranked = top[np.argsort(-rel[top], kind="stable")]
    if take < idx.size and int(costs[ranked].sum()) < 2 * capacity:
        ranked = idx[np.argsort(-rel[idx], kind="stable")]
    enough = int(np.searchsorted(np.cumsum(costs[ranked]), 2 * capacity)) + 1
    cand = ranked[: max(at_least, enough)]
    rel_c = rel[cand]
    sims = (vectors[cand] @ vectors[cand].T).astype(np.float64)
    order, links = grow_order(rel_c, sims)
    core, end = cluster_cut(rel_c, sims, order, links)
    return cand[order[:core]], cand[order[core:end]]


class Scored(NamedTuple):
    """Per-example arrays of one selection: relevance quality, unit vectors, token costs."""

    quality: np.ndarray
    vectors: np.ndarray
    costs: np.ndarray


def extend_selection(
    best: tuple[list[int], list[float]],
    core: np.ndarray,
    extension: np.ndarray,
    scored: Scored,
    capacity: int,
    diversity: float,
    duplicate_threshold: float,
) -> tuple[list[int], list[float]]:
    """Add the extension to a selection from the core, once the core is used up.

    The extension is less sure to be of the query's kind than the core: it is used only once every core
    example is chosen (or is a duplicate of a chosen one), in linkage order. An example that does not fit
    may be stood in for by a later, shorter one, but never by a clearly less relevant one: one whose
    quality is below ``1/e`` of it (more than one ``temperature`` less similar to the query); the
    extension ends there rather than fill a leftover sliver with a less related example.
    """
    quality, vectors, costs = scored
    chosen, gains = list(best[0]), list(best[1])
    if not chosen:
        return chosen, gains
    threshold = duplicate_threshold - 1e-6
    rest = np.setdiff1d(core, chosen)
    if rest.size and float((vectors[rest] @ vectors[chosen].T).max(axis=1).min()) < threshold:
        return chosen, gains
    left = capacity - int(costs[chosen].sum())
    floor = 0.0
    for i in extension.tolist():
        if quality[i] < floor:
            break
        if costs[i] > left:
            floor = max(floor, float(quality[i]) / np.e)  # a shorter one may stand in, a clearly worse may not
            continue
        sim = float((vectors[chosen] @ vectors[i]).max())
        if sim >= threshold:
            continue
        chosen.append(i)
        gains.append(float(quality[i]) * (1.0 - diversity * max(0.0, sim)))
        left -= int(costs[i])
    return chosen, gains
