"""Choosing the attention criterion's layers and heads: raw per-head scores, dumped once, tuned offline.

Dev tool behind the defaults in :mod:`agent_tokred.criteria.attention`. For each NQ item (gold passage +
19 hard distractors, sentence units, as the engine bench) the model runs once; per layer and head it keeps
what the query rows, the answer-prompt row and the context rows give each context token. Aggregations are
then scored without the model by a budget simulation (best units first until the rate's token budget).

Tuning questions are NQ questions *outside* the 200 the benches evaluate on.

Run: ``python -m bench._criteria_tune dump --model minilm --set tune --n 60 --window 256`` then
``python -m bench._criteria_tune search --model minilm --n 60`` (SmolLM2: ``dump --model smollm2 --n 24
--layers 16 --window 512``, ``search --model smollm2 --n 24``). The ``aggregate="terms"`` defaults:
``dump --model minilm --set tune --n 100 --window 256 --layers 4`` then ``search-terms --n 100``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent_tokred.models import cache_dir

DUMPS = cache_dir() / "criteria_dev"


def nq_sets(name: str, n: int) -> list[dict[str, Any]]:
    """``eval``: the benches' 200 questions (``build_nq(200)``); ``tune``: others, none of those."""
    from .bench_engine import build_nq

    if name == "eval":
        return build_nq(200)[:n]
    held = {it["question"] for it in build_nq(200)}
    return [it for it in build_nq(n + 80, seed=1) if it["question"] not in held][:n]


def item_key(model: str, item: dict[str, Any]) -> str:
    return hashlib.sha256(f"{model}\x00{item['question']}\x00{item['text']}".encode()).hexdigest()[:20]


def dump_item(model_name: str, item: dict[str, Any], num_layers: int | None, window: int) -> dict[str, np.ndarray]:
    """Per-head attention scores of every context token of one item (float16 arrays (layer, head, token))."""
    import torch

    from agent_tokred.criteria import attention as A
    from agent_tokred.models import load_encoder_with_attention
    from agent_tokred.units import segment

    units = segment(item["text"], "sentence")
    text, _ = A.unit_texts_with_offsets(units)
    tok, model = load_encoder_with_attention(model_name, num_layers)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids = list(enc["input_ids"])
    q_ids = list(tok(item["question"], add_special_tokens=False, verbose=False)["input_ids"])[:64]
    causal = type(model).__name__.endswith("ForCausalLM")
    limit = 512
    windows = (A._causal_layout if causal else A._encoder_layout)(tok, ids, q_ids, min(window, limit), 32)
    n = len(ids)
    core = getattr(model, "base_model", model)
    acc: dict[str, Any] = {}
    count = np.zeros(n)
    wants_types = "token_type_ids" in getattr(tok, "model_input_names", ())
    for w in windows:
        x = torch.tensor([w.ids])
        kwargs: dict[str, Any] = {"input_ids": x, "attention_mask": torch.ones_like(x), "output_attentions": True}
        if wants_types:
            kwargs["token_type_ids"] = torch.tensor([w.type_ids])
        with torch.inference_mode():
            att = torch.stack(core(**kwargs).attentions, dim=0)[:, 0].float()  # (layer, head, seq, seq)
        parts = A._head_parts(att, w, causal)
        idx = np.arange(w.first, w.first + len(w.cols))
        for k, v in parts.items():
            if k not in acc:  # "t" (query token rows) has one more axis: (layer, head, query token, token)
                acc[k] = np.zeros((*v.shape[:-1], n))
            acc[k][..., idx] += v
        count[idx] += 1
    out = {k: (v / np.maximum(count, 1)).astype(np.float16) for k, v in acc.items()}
    out["offsets"] = np.asarray(enc["offset_mapping"], dtype=np.int32)
    return out


def cmd_dump(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    items = nq_sets(args.set, args.n)
    folder = DUMPS / args.model
    folder.mkdir(parents=True, exist_ok=True)
    for it in tqdm(items, desc=f"dump {args.model} {args.set}"):
        f = folder / f"{item_key(args.model, it)}.npz"
        if f.exists():
            continue
        d = dump_item(args.model, it, args.layers, args.window)
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, **d)
        tmp.rename(f)


class Prepared:
    """One dumped item ready for the budget simulation."""

    def __init__(self, item: dict[str, Any], dump: dict[str, np.ndarray]) -> None:
        from agent_tokred.criteria.base import unit_texts_with_offsets
        from agent_tokred.tokens import resolve_counter
        from agent_tokred.units import segment

        from .common import normalize_answer

        units = segment(item["text"], "sentence")
        text, spans = unit_texts_with_offsets(units)
        self.item, self.text, self.spans = item, text, spans
        counter = resolve_counter("o200k_base")
        self.costs = np.asarray([max(1, counter.count(u.text)) for u in units], dtype=np.float64)
        answers = [normalize_answer(a) for a in item["answers"] if normalize_answer(a)]
        self.labels = np.asarray([any(a in normalize_answer(u.text) for a in answers) for u in units])
        self.groups = np.asarray([u.group for u in units])
        starts = np.asarray([a for a, _ in spans])
        offs = dump["offsets"]
        keep = []
        owner = []
        for t, (a, b) in enumerate(offs):
            while a < b and text[a].isspace():
                a += 1
            if a < b:
                keep.append(t)
                owner.append(max(0, int(np.searchsorted(starts, a, side="right")) - 1))
        self.tokens = np.asarray(keep)
        self.owner = np.asarray(owner)
        self.n = len(units)
        self.parts = {k: dump[k][:, :, self.tokens].astype(np.float32) for k in ("q", "a", "c")}
        # the "terms" rule's inputs, all tokens (matched_terms finds each token's unit itself)
        self.offsets = [tuple(o) for o in offs.tolist()]
        self.raw = {k: dump[k].astype(np.float32) for k in ("t", "c") if k in dump}

    def pool(self, tok_scores: np.ndarray, how: str) -> np.ndarray:
        n = self.n
        if how == "max":
            out = np.full(n, -np.inf)
            np.maximum.at(out, self.owner, tok_scores)
        else:
            tot = np.bincount(self.owner, weights=tok_scores, minlength=n)
            cnt = np.bincount(self.owner, minlength=n)
            out = tot if how == "sum" else tot / np.maximum(cnt, 1)
            if how == "max_mean":
                mx = np.full(n, -np.inf)
                np.maximum.at(mx, self.owner, tok_scores)
                out = 0.5 * (out + mx)
        has = np.bincount(self.owner, minlength=n) > 0
        return np.where(has, out, out[has].min() if has.any() else 0.0)


def kept(scores: np.ndarray, p: Prepared, rate: float) -> bool:
    order = np.lexsort((np.arange(len(scores)), -scores))
    fits = np.cumsum(p.costs[order]) <= rate * p.costs.sum()
    return bool(p.labels[order[fits]].any())


def retention(unit_scores: Sequence[np.ndarray], preps: Sequence[Prepared], rates: Sequence[float] = (0.5, 0.25, 0.1)) -> list[float]:
    return [float(np.mean([kept(s, p, r) for s, p in zip(unit_scores, preps)])) for r in rates]


def load_prepared(model: str, set_name: str, n: int) -> list[Prepared]:
    out = []
    for it in nq_sets(set_name, n):
        f = DUMPS / model / f"{item_key(model, it)}.npz"
        if f.exists():
            with np.load(f) as d:
                out.append(Prepared(it, dict(d)))
    return out


def log_ratio(p: Prepared) -> np.ndarray:
    """The criterion's per-head token score: log of the query and answer rows' attention over the context's."""
    from agent_tokred.criteria.attention import _EPS

    q = 0.5 * (p.parts["q"] + p.parts["a"])
    return np.asarray(np.log(q + _EPS) - np.log(p.parts["c"] + _EPS))


def with_blocks(scores: np.ndarray, p: Prepared, weight: float) -> np.ndarray:
    from agent_tokred.criteria._windows import add_block_score

    return add_block_score(scores, p.groups.tolist(), weight)


def cmd_search(args: argparse.Namespace) -> None:
    """Rank single heads by retention at 25% + 10% on the set, then average the top k (k = 1..--top)."""
    preps = load_prepared(args.model, args.set, args.n)
    ratios = [log_ratio(p) for p in preps]
    layers, heads = ratios[0].shape[:2]
    single = []
    for layer in range(layers):
        for head in range(heads):
            r = retention([p.pool(t[layer, head], "max") for p, t in zip(preps, ratios)], preps)
            single.append((r[1] + r[2], layer, head))
    single.sort(reverse=True)
    print(f"{len(preps)} items; best single heads: {[(lh, hd) for _, lh, hd in single[: args.top]]}")
    for k in range(1, args.top + 1):
        chosen = [(lh, hd) for _, lh, hd in single[:k]]
        base = [p.pool(np.mean([t[lh, hd] for lh, hd in chosen], axis=0), args.pooling) for p, t in zip(preps, ratios)]
        for weight in (0.0, 0.5):
            r = retention([with_blocks(b, p, weight) for b, p in zip(base, preps)], preps)
            print(f"top {k} block_weight {weight}: " + " / ".join(f"{x:.3f}" for x in r))


def terms_scores(p: Prepared, heads: Sequence[tuple[int, int]], threshold: float, block_weight: float) -> np.ndarray:
    """The shipped ``aggregate="terms"`` rule on one dumped item (the criterion's own functions)."""
    from agent_tokred.criteria.attention import _term_ratios, matched_terms

    rows = _term_ratios(p.raw, list(heads))
    return with_blocks(matched_terms(p.text, p.offsets, rows, p.spans, threshold), p, block_weight)


def cmd_search_terms(args: argparse.Namespace) -> None:
    """The ``"terms"`` defaults: single heads ranked by retention at 25% + 10% (threshold 2.0, block weight
    1.5), then the top k heads together at a few thresholds; BM25 on the same items for reference."""
    from agent_tokred.criteria.attention import BLOCK_WEIGHTS
    from agent_tokred.units import segment

    from .bench_engine import bm25_criterion

    weight = BLOCK_WEIGHTS["terms"]
    preps = [p for p in load_prepared(args.model, args.set, args.n) if "t" in p.raw]
    if not preps:
        raise SystemExit("no dumps with query-token rows: run `dump` first (this version of it)")
    fmt = lambda r: " / ".join(f"{x:.3f}" for x in r)  # noqa: E731
    bm = [np.asarray(bm25_criterion(segment(p.item["text"], "sentence"), p.item["question"])) for p in preps]
    print(f"{len(preps)} items; bm25 {fmt(retention(bm, preps))}")
    layers, heads = preps[0].raw["c"].shape[:2]
    single = []
    for layer in range(layers):
        for head in range(heads):
            r = retention([terms_scores(p, [(layer, head)], 2.0, weight) for p in preps], preps)
            single.append((r[1] + r[2], layer, head, r))
    single.sort(reverse=True)
    for _, layer, head, r in single[: args.top]:
        print(f"head ({layer}, {head}): {fmt(r)}")
    top = [(layer, head) for _, layer, head, _ in single[: args.top]]
    for k in range(1, args.top + 1):
        for tau in (1.5, 2.0, 2.5):
            r = retention([terms_scores(p, top[:k], tau, weight) for p in preps], preps)
            print(f"top {k} {top[:k]} threshold {tau}: {fmt(r)}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--model", default="minilm")
    d.add_argument("--set", default="tune", choices=["tune", "eval"])
    d.add_argument("--n", type=int, default=40)
    d.add_argument("--layers", type=int, default=None)
    d.add_argument("--window", type=int, default=512)
    f = sub.add_parser("search")
    f.add_argument("--model", default="minilm")
    f.add_argument("--set", default="tune", choices=["tune", "eval"])
    f.add_argument("--n", type=int, default=60)
    f.add_argument("--top", type=int, default=6)
    f.add_argument("--pooling", default="max", choices=["max", "mean", "max_mean", "sum"])
    t = sub.add_parser("search-terms")
    t.add_argument("--model", default="minilm")
    t.add_argument("--set", default="tune", choices=["tune", "eval"])
    t.add_argument("--n", type=int, default=100)
    t.add_argument("--top", type=int, default=4)
    args = p.parse_args(argv)
    {"dump": cmd_dump, "search": cmd_search, "search-terms": cmd_search_terms}[args.cmd](args)


if __name__ == "__main__":
    main(sys.argv[1:])
