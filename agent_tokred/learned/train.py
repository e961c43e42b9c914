"""The training recipe of the learned criterion: seeded, offline, a few minutes on a laptop CPU.

1. Examples (:mod:`agent_tokred.learned.data`): NQ questions laid out like the engine bench (gold
   passage + hard distractors of other *training* questions; the engine bench's evaluation questions are
   held out by default) plus short crops and shuffled sentence bags of them, user JSONL records of agent
   logs, and generated key/value JSON lookups.
2. Labels: a unit that holds an answer (a ``keep`` string) is positive. The target of one input is a
   distribution over its units: positives share the mass in inverse proportion to their token cost (the
   founding paper's reward: keep what the answer needs and prefer the shortest unit that carries it), and a
   teacher criterion's rank-normalised scores (``teacher="relevance"``, ``"attention"``, ...) can be blended in.
3. The head (:class:`~agent_tokred.learned.model.Head`) is trained with a listwise softmax loss (AdamW,
   torch, imported here only). After each epoch the downstream reward is measured on held-out inputs: would
   the answer survive pruning to 50 / 25 / 10 % of the tokens (smaller budgets weigh more); the best epoch
   is kept.
4. The weights (+ static vocabulary) go to one safetensors file, metadata to a JSON file next to it.

Example:
    >>> result = train(TrainConfig(data=(Path("nq.jsonl.gz"),), out=Path("w.safetensors")))  # doctest: +SKIP
    >>> result.metrics["val_retention"]["0.1"]  # doctest: +SKIP
    0.94
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..criteria.base import rank_normalize
from ..errors import InvalidInputError, ModelNotAvailableError, UnknownNameError
from .data import (
    Example,
    bench_question_ids,
    detect_format,
    examples_from_nq,
    examples_from_user_records,
    read_jsonl,
    synthetic_kv_examples,
)
from .features import FEATURE_NAMES, unit_features
from .model import Head, save_scorer, shipped_vocabulary_tensors
from .static import StaticVocabulary, vocabulary_from_tensors, vocabulary_tensors

Vectors = Literal["shipped", "minilm", "minilm-input"]
Distractors = Literal["minilm", "static"]
REWARD_RATES: tuple[float, ...] = (0.5, 0.25, 0.1)


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how; validated at construction.

    Attributes:
        data: NQ-format (``.jsonl.gz`` / ``.jsonl``) or user-format JSONL files.
        out: where to write the weights (``.safetensors``; metadata goes to ``.json`` next to it).
        seed: seeds data order, splits, initialisation and synthetic data.
        epochs, hidden, lr, weight_decay, batch_size: the optimiser and head size.
        val_fraction: share of inputs held out for the per-epoch reward (and best-epoch choice).
        teacher: a criterion name whose scores are blended into the targets, or ``None``.
        teacher_weight: the teacher's share of the target distribution, in ``[0, 1)``.
        synthetic_kv: generated key/value JSON lookups added to the training inputs.
        vectors: ``"shipped"`` (reuse the shipped static vectors), ``"minilm"`` (distil them again) or
            ``"minilm-input"`` (MiniLM's input embeddings).
        distractors: how NQ distractor passages are picked: ``"minilm"`` embeddings or ``"static"`` vectors.
        holdout_bench: drop the NQ rows the engine bench evaluates on (``random.Random(0).sample`` of 20 and 200).
        limit: at most this many records per data file (tiny slices, tests).
        progress: show tqdm progress bars.
    """

    data: tuple[Path, ...]
    out: Path
    seed: int = 0
    epochs: int = 30
    hidden: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-3
    batch_size: int = 32
    val_fraction: float = 0.2
    teacher: str | None = None
    teacher_weight: float = 0.3
    synthetic_kv: int = 100
    vectors: Vectors = "shipped"
    distractors: Distractors = "minilm"
    holdout_bench: bool = True
    limit: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.data and self.synthetic_kv <= 0:
            raise InvalidInputError("training needs at least one --data file or synthetic_kv > 0")
        if self.vectors not in ("shipped", "minilm", "minilm-input"):
            raise UnknownNameError("vector source", self.vectors, ("shipped", "minilm", "minilm-input"))
        if self.distractors not in ("minilm", "static"):
            raise UnknownNameError("distractor picker", self.distractors, ("minilm", "static"))
        for name, low in (("epochs", 1), ("hidden", 1), ("batch_size", 1)):
            if int(getattr(self, name)) < low:
                raise InvalidInputError(f"{name} must be >= {low}, got {getattr(self, name)!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InvalidInputError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not 0.0 <= self.teacher_weight < 1.0:
            raise InvalidInputError(f"teacher_weight must be in [0, 1), got {self.teacher_weight!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise InvalidInputError(f"lr must be > 0 and weight_decay >= 0, got {self.lr!r}, {self.weight_decay!r}")
        if self.limit is not None and self.limit < 2:
            raise InvalidInputError(f"limit must be >= 2 records, got {self.limit!r}")


@dataclass(frozen=True)
class TrainResult:
    """What training produced: the weights path, per-epoch losses (index 0: before training), metrics."""

    path: Path
    train_losses: tuple[float, ...]
    metrics: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _similarity(config: TrainConfig, vocab: StaticVocabulary) -> Any:
    def static(queries: list[str], passages: list[str]) -> np.ndarray:
        def vecs(texts: list[str]) -> np.ndarray:
            ids, starts = vocab.encode(texts)
            w = vocab.content[ids].astype(np.float32)
            out = np.zeros((len(texts), vocab.dim), dtype=np.float32)
            seg = np.repeat(np.arange(len(texts)), np.diff(starts))
            np.add.at(out, seg, vocab.vectors[ids] * w[:, None])
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

        return vecs(queries) @ vecs(passages).T

    def minilm(queries: list[str], passages: list[str]) -> np.ndarray:
        from ..models import cache_dir, embed

        def cached(texts: list[str]) -> np.ndarray:
            key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:24]
            file = cache_dir() / "learned_embed" / f"{key}.npy"
            if file.exists():
                return np.load(file)
            vecs = embed(texts)
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, vecs)
            return vecs

        try:
            return cached(queries) @ cached(passages).T
        except ModelNotAvailableError:
            return static(queries, passages)

    return minilm if config.distractors == "minilm" else static


def load_examples(config: TrainConfig, vocab: StaticVocabulary) -> tuple[list[Example], dict[str, Any]]:
    """All training inputs of ``config`` and a record of where they came from."""
    examples: list[Example] = []
    sources: list[dict[str, Any]] = []
    for path in config.data:
        rows = read_jsonl(path)
        fmt = detect_format(rows)
        held = bench_question_ids(len(rows)) if fmt == "nq" and config.holdout_bench else set()
        rows = [r for i, r in enumerate(rows) if i not in held][: config.limit]
        made = (examples_from_nq(rows, similarity=_similarity(config, vocab), seed=config.seed) if fmt == "nq"
                else examples_from_user_records(rows))
        sources.append({"file": Path(path).name, "sha256_16": _sha256(Path(path)), "format": fmt,
                        "records_used": len(rows), "held_out_bench_rows": len(held), "examples": len(made)})
        if held:
            sources[-1]["held_out"] = ("the engine bench's questions, random.Random(0).sample(range(n_rows), k) for "
                                       "k in (20, 200), are excluded; distractors come from training rows only")
        examples += made
    if config.synthetic_kv:
        examples += synthetic_kv_examples(config.synthetic_kv, seed=config.seed)
        sources.append({"synthetic_kv": config.synthetic_kv})
    if len(examples) < 2:
        raise InvalidInputError(f"only {len(examples)} usable training inputs (a usable input has at least one "
                                "unit to keep and one to drop); add data")
    return examples, {"sources": sources}


def _teacher_scores(name: str, examples: Sequence[Example], progress: bool) -> list[np.ndarray]:
    from tqdm.auto import tqdm

    from ..criteria import resolve_criterion
    from ..models import cache_dir

    crit = resolve_criterion(name)
    folder = cache_dir() / "learned_teacher" / name
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for e in tqdm(examples, desc=f"teacher {name}", disable=not progress):
        key = hashlib.sha256("\x00".join([e.query, *(u.text for u in e.units)]).encode()).hexdigest()[:24]
        file = folder / f"{key}.npy"
        if file.exists():
            scores = np.load(file)
        else:
            scores = rank_normalize(crit(e.units, e.query))
            np.save(file, scores)
        out.append(np.asarray(scores, dtype=np.float64))
    return out


def unit_costs(examples: Sequence[Example]) -> list[np.ndarray]:
    """Token cost of each unit in o200k_base (the engine's default tokenizer)."""
    from ..tokens import resolve_counter

    counter = resolve_counter("o200k_base")
    return [np.asarray([max(1, counter.count(u.text)) for u in e.units], dtype=np.float64) for e in examples]


def targets(labels: np.ndarray, costs: np.ndarray, teacher: np.ndarray | None, teacher_weight: float) -> np.ndarray:
    """The target distribution of one input: cost-weighted positives, optionally blended with a teacher."""
    pos = labels / costs
    target = pos / pos.sum()
    if teacher is not None and teacher_weight > 0:
        t = np.exp(8.0 * (teacher - teacher.max()))
        target = (1 - teacher_weight) * target + teacher_weight * t / t.sum()
    return target


def simulate_keep(scores: np.ndarray, costs: np.ndarray, rate: float) -> np.ndarray:
    """Units a budget of ``rate`` of the tokens keeps, best first (as the prune strategy does)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    fits = np.cumsum(costs[order]) <= rate * costs.sum()
    keep = np.zeros(len(scores), dtype=bool)
    keep[order[fits]] = True
    return keep


def reward(scores: Sequence[np.ndarray], labels: Sequence[np.ndarray], costs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Downstream outcome on held-out inputs: retention per keep-rate and one reward (small rates weigh more)."""
    ret = {str(r): float(np.mean([(y[simulate_keep(s, c, r)] > 0).any() for s, y, c in zip(scores, labels, costs)]))
           for r in REWARD_RATES}
    weights = {str(r): 1.0 - r for r in REWARD_RATES}
    return {"retention": ret, "reward": sum(weights[k] * v for k, v in ret.items()) / sum(weights.values())}


def _pad(xs: Sequence[np.ndarray], ps: Sequence[np.ndarray]) -> tuple[Any, Any, Any]:
    import torch

    n = max(len(x) for x in xs)
    xb = np.zeros((len(xs), n, len(FEATURE_NAMES)), dtype=np.float32)
    pb = np.zeros((len(xs), n), dtype=np.float32)
    mb = np.zeros((len(xs), n), dtype=bool)
    for k, (x, p) in enumerate(zip(xs, ps)):
        xb[k, : len(x)], pb[k, : len(x)], mb[k, : len(x)] = x, p, True
    return torch.from_numpy(xb), torch.from_numpy(pb), torch.from_numpy(mb)


class _Net:
    """The torch twin of :class:`Head` (same function, trainable)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int) -> None:
        import torch

        f = len(FEATURE_NAMES)
        self.mean, self.std = torch.from_numpy(mean), torch.from_numpy(std)
        self.hidden = torch.nn.Linear(f, hidden)
        self.out = torch.nn.Linear(hidden, 1, bias=False)
        self.lin = torch.nn.Linear(f, 1)
        self.act = torch.nn.GELU(approximate="tanh")
        self.params = [*self.hidden.parameters(), *self.out.parameters(), *self.lin.parameters()]

    def __call__(self, x: Any) -> Any:
        z = (x - self.mean) / self.std
        return (self.out(self.act(self.hidden(z))) + self.lin(z)).squeeze(-1)

    def head(self) -> Head:
        def np_(t: Any) -> np.ndarray:
            return np.asarray(t.detach().cpu().numpy(), dtype=np.float32)

        return Head(mean=np_(self.mean), std=np_(self.std), w1=np_(self.hidden.weight).T.copy(),
                    b1=np_(self.hidden.bias), w2=np_(self.out.weight)[0], w_lin=np_(self.lin.weight)[0],
                    bias=np_(self.lin.bias))


def _listwise_loss(net: _Net, xb: Any, pb: Any, mb: Any) -> Any:
    import torch

    s = net(xb).masked_fill(~mb, -1e9)
    return -(torch.log_softmax(s, dim=1) * pb).sum(dim=1).mean()


def train(config: TrainConfig) -> TrainResult:
    """Train the learned criterion as ``config`` says and write its weights; see the module doc."""
    try:
        import torch
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ModelNotAvailableError("training needs torch: pip install 'agent-tokred[models]'") from exc
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.vectors == "shipped":
        vtensors = shipped_vocabulary_tensors()
    else:
        from .distill import distill_static_vectors

        vtensors = vocabulary_tensors(*distill_static_vectors(config.vectors, progress=config.progress))
    vocab = vocabulary_from_tensors(vtensors)  # the int8 vectors inference will see
    examples, provenance = load_examples(config, vocab)
    order = np.random.default_rng(config.seed).permutation(len(examples))
    n_val = round(config.val_fraction * len(examples)) if len(examples) >= 10 else 0
    val_idx, tr_idx = order[:n_val], order[n_val:]
    feats = [unit_features(e.units, e.query, vocab)
             for e in tqdm(examples, desc="features", disable=not config.progress)]
    costs = unit_costs(examples)
    teach = _teacher_scores(config.teacher, examples, config.progress) if config.teacher else None
    probs = [targets(e.labels.astype(np.float64), c, teach[i] if teach else None, config.teacher_weight)
             for i, (e, c) in enumerate(zip(examples, costs))]

    stacked = np.concatenate([feats[i] for i in tr_idx])
    mean = stacked.mean(axis=0).astype(np.float32)
    std = stacked.std(axis=0).astype(np.float32)
    std[std < 1e-6] = 1.0
    net = _Net(mean, std, config.hidden)
    opt = torch.optim.AdamW(net.params, lr=config.lr, weight_decay=config.weight_decay)
    xb, pb, mb = _pad([feats[i] for i in tr_idx], [probs[i] for i in tr_idx])
    gen = torch.Generator().manual_seed(config.seed)

    def evaluate() -> tuple[float, dict[str, Any]]:
        with torch.no_grad():
            loss = float(_listwise_loss(net, xb, pb, mb))
            idx = val_idx if n_val else tr_idx
            scores = [net(torch.from_numpy(feats[i])).numpy() for i in idx]
        return loss, reward(scores, [examples[i].labels for i in idx], [costs[i] for i in idx])

    loss0, best_eval = evaluate()
    losses, best_head, best_epoch = [loss0], net.head(), 0
    bar = tqdm(range(1, config.epochs + 1), desc="training", disable=not config.progress)
    with torch.enable_grad():  # model loading elsewhere may have turned gradients off process-wide
        for epoch in bar:
            perm = torch.randperm(len(tr_idx), generator=gen)
            for b in range(0, len(perm), config.batch_size):
                i = perm[b : b + config.batch_size]
                loss = _listwise_loss(net, xb[i], pb[i], mb[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
            epoch_loss, ev = evaluate()
            losses.append(epoch_loss)
            if ev["reward"] > best_eval["reward"] or best_epoch == 0:
                best_eval, best_head, best_epoch = ev, net.head(), epoch
            bar.set_postfix(loss=f"{epoch_loss:.3f}", reward=f"{ev['reward']:.3f}", best=best_epoch)

    by_source: dict[str, int] = {}
    for e in examples:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    held = val_idx if n_val else tr_idx
    per_source = {}
    for src in sorted({examples[i].source for i in held}):
        idx = [i for i in held if examples[i].source == src]
        per_source[src] = reward([best_head(feats[i]) for i in idx], [examples[i].labels for i in idx],
                                 [costs[i] for i in idx])["retention"]
    metrics = {"best_epoch": best_epoch, "train_loss_first": losses[0], "train_loss_last": losses[-1],
               "val_inputs": int(n_val), "train_inputs": len(tr_idx), "val_reward": best_eval["reward"],
               "val_retention": best_eval["retention"], "val_retention_by_source": per_source,
               "inputs_by_source": by_source}
    config_record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    config_record["data"] = [Path(p).name for p in config.data]
    config_record.pop("out")
    meta = {"created_by": "agent-tokred train", "seed": config.seed, "config": config_record, "metrics": metrics,
            **provenance, "vectors": config.vectors if config.vectors != "shipped" else "shipped (minilm distilled)"}
    path = save_scorer(config.out, best_head, vtensors, meta)
    return TrainResult(path=path, train_losses=tuple(losses), metrics=metrics)
