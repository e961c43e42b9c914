"""The learned scorer: cheap features, a small head, one safetensors file; numpy only at inference.

A weights file holds the head (feature standardisation, a one-hidden-layer GELU network plus a linear
path) and, normally, the static vocabulary (see :mod:`agent_tokred.learned.static`), so one file is
the whole model. Metadata (feature version, training data, seed, metrics) sits in the file's header
and in a JSON file next to it.

Example:
    >>> scorer = load_scorer()  # doctest: +SKIP
    >>> scorer.score(segment("Paris is in France. Cats sleep.", "sentence"), "where is Paris")  # doctest: +SKIP
    array([ 2.1, -1.3])
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelNotAvailableError
from ..units import Unit
from .features import FEATURE_NAMES, FEATURE_VERSION, unit_features
from .static import StaticVocabulary, vocabulary_from_tensors, vocabulary_tensors

HEAD_KEYS = ("mean", "std", "w1", "b1", "w2", "w_lin", "bias")


def default_weights_path() -> Path:
    """The shipped weights: ``agent_tokred/data/learned_criterion.safetensors``."""
    return Path(__file__).resolve().parent.parent / "data" / "learned_criterion.safetensors"


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (the same as ``torch.nn.GELU(approximate="tanh")``)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@dataclass(frozen=True)
class Head:
    """Standardise features, then ``gelu(x @ w1 + b1) @ w2 + x @ w_lin + bias``."""

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    w_lin: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        f = len(FEATURE_NAMES)
        h = self.w1.shape[1] if self.w1.ndim == 2 else -1
        shapes = {"mean": (f,), "std": (f,), "w1": (f, h), "b1": (h,), "w2": (h,), "w_lin": (f,), "bias": (1,)}
        for key, want in shapes.items():
            if getattr(self, key).shape != want:
                raise InvalidInputError(
                    f"learned head tensor {key!r} has shape {getattr(self, key).shape}, expected {want} "
                    f"(feature version {FEATURE_VERSION}, {f} features)"
                )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        return gelu(z @ self.w1 + self.b1) @ self.w2 + z @ self.w_lin + float(self.bias[0])

    def tensors(self) -> dict[str, np.ndarray]:
        return {f"head.{k}": np.ascontiguousarray(getattr(self, k), dtype=np.float32) for k in HEAD_KEYS}


@dataclass(frozen=True)
class LearnedScorer:
    """Features + head over a static vocabulary; ``score`` gives one float per unit (higher = keep)."""

    vocab: StaticVocabulary
    head: Head
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def features(self, units: Sequence[Unit], query: str | None) -> np.ndarray:
        return unit_features(units, query, self.vocab)

    def score(self, units: Sequence[Unit], query: str | None) -> np.ndarray:
        if not units:
            return np.zeros(0)
        return np.asarray(self.head(self.features(units, query)), dtype=np.float64)


def save_scorer(path: str | Path, head: Head, vocab_tensors: Mapping[str, np.ndarray],
                metadata: Mapping[str, Any]) -> Path:
    """Write head + vocabulary tensors to ``path`` (safetensors) and ``metadata`` next to it (``.json``)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"feature_version": FEATURE_VERSION, "features": list(FEATURE_NAMES), **metadata}
    save_file({**head.tensors(), **vocab_tensors}, str(path), metadata={"agent_tokred": json.dumps(meta)})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_tensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors and metadata of a weights file.

    Raises:
        ModelNotAvailableError: the file or the ``safetensors`` package is missing.
        InvalidInputError: the file is not a learned-criterion weights file of this feature version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotAvailableError(f"learned criterion weights not found at {path}; train them with "
                                     "`agent-tokred train` or reinstall agent-tokred")
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise ModelNotAvailableError("the learned criterion needs safetensors: pip install safetensors") from exc
    try:
        with safe_open(str(path), framework="numpy") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable safetensors file: {exc}") from exc
    meta = json.loads(header.get("agent_tokred", "{}"))
    if meta.get("feature_version") != FEATURE_VERSION:
        raise InvalidInputError(
            f"{path} was trained for feature version {meta.get('feature_version')!r}; this agent-tokred computes "
            f"version {FEATURE_VERSION!r}: retrain with `agent-tokred train`"
        )
    return tensors, meta


def head_from_tensors(tensors: Mapping[str, np.ndarray]) -> Head:
    missing = [k for k in HEAD_KEYS if f"head.{k}" not in tensors]
    if missing:
        raise InvalidInputError(f"weights lack head tensors {missing}")
    return Head(**{k: np.asarray(tensors[f"head.{k}"], dtype=np.float32) for k in HEAD_KEYS})


@lru_cache(maxsize=4)
def _load(path: str) -> LearnedScorer:
    tensors, meta = read_tensors(path)
    return LearnedScorer(vocabulary_from_tensors(tensors), head_from_tensors(tensors), meta)


def load_scorer(path: str | Path | None = None) -> LearnedScorer:
    """The scorer stored at ``path`` (default: the shipped weights), loaded once per process."""
    return _load(str(Path(path).resolve()) if path is not None else str(default_weights_path()))


def shipped_vocabulary_tensors(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The vocabulary tensors of a weights file (to reuse the shipped static vectors when retraining)."""
    tensors, _ = read_tensors(path or default_weights_path())
    keep = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    vocabulary_from_tensors(keep)  # validates
    return keep


__all__ = [
    "Head",
    "LearnedScorer",
    "default_weights_path",
    "gelu",
    "head_from_tensors",
    "load_scorer",
    "read_tensors",
    "save_scorer",
    "shipped_vocabulary_tensors",
    "vocabulary_tensors",
]
