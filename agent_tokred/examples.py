"""In-context example selection under a token budget.

Few-shot examples are tokens too. This engine picks, for one query, the set of examples that is most
useful *per token*: the unit is an example, the criterion is its relevance to the query (cosine of
embeddings, sharpened into a quality ``q = exp((s - s_best) / temperature)``) discounted by its
redundancy with the examples already chosen (MMR-style, ``q * (1 - diversity * max_sim)``), and the
strategy is lazy greedy by marginal gain per token (CELF: the better of the cost-benefit and the
plain greedy run), under a budget counted exactly in the caller's tokenizer on the examples *as they
will be rendered*.

Which examples are worth their tokens at all is an adaptive relevance cut, not a fixed margin: the
best matches are grown into the query's cluster, which ends where its links drop for good
(:mod:`agent_tokred._example_cluster`). Its tight core is packed per token; its looser rest is used
only once the core is used up; examples outside it never fill the budget.

:class:`ExamplePool` holds the examples, their rendered token counts and their embeddings (computed
once, grown with :meth:`ExamplePool.add`, optionally cached on disk by content hash);
:func:`select_examples` is the one-call function; :func:`greedy_select` is the pure algorithm.

Example:
    >>> import numpy as np
    >>> fake = lambda texts: np.array([[t.count("cat"), t.count("dog"), 1.0] for t in texts])
    >>> pool = ExamplePool([{"q": "cat food", "a": "yes"}, {"q": "dog walk", "a": "no"}],
    ...                    input_keys=["q"], embed=fake, tokenizer="approx")
    >>> [e["q"] for e in pool.select("my cat", budget=20).examples]
    ['cat food']
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._example_select import (
    ExampleCompression,
    ExampleSelection,
    SelectedExample,
    SelectionPolicy,
    as_compression,
    greedy_select,
    run_selection,
)
from .errors import BudgetError, InvalidInputError
from .tokens import TokenCounter, resolve_counter

__all__ = [
    "ExampleCompression",
    "ExamplePool",
    "ExampleSelection",
    "SelectedExample",
    "SelectionPolicy",
    "format_key_values",
    "greedy_select",
    "select_examples",
]

Formatter = Callable[[Mapping[str, Any]], str]
EmbedFn = Callable[[list[str]], Any]


def format_key_values(example: Mapping[str, Any]) -> str:
    """Default rendering: one ``key: value`` line per key, in the example's order."""
    return "\n".join(f"{k}: {v}" for k, v in example.items())


class ExamplePool:
    """Examples with cached rendered token counts and embeddings; grows with :meth:`add`.

    Args:
        examples: initial examples (dicts of strings).
        input_keys: keys whose values are embedded and matched against the query (default: all).
        formatter: renders one example as the model will see it; a callable or an object with
            ``format(**example)`` such as a LangChain ``PromptTemplate`` (default ``key: value`` lines).
        tokenizer: what the budget is counted in (see :func:`agent_tokred.tokens.resolve_counter`).
        embed: ``Callable[[list[str]], array]``, a LangChain ``Embeddings`` object, or ``None`` (MiniLM).
        embeddings: precomputed embeddings of ``examples`` (one row each), skipping ``embed``.
        separator: what joins rendered examples (FewShotPromptTemplate's ``example_separator``).
        required_keys: keys every example must have (default: the first example's keys).
        compressible_key: the key (e.g. the chain of thought) that compression may shorten.
        cache: ``True`` or a file path to cache embeddings on disk by content hash.
        embed_name: identifies a custom ``embed`` in the disk cache (required with ``cache``).

    Example:
        >>> import numpy as np
        >>> pool = ExamplePool(embed=lambda t: np.ones((len(t), 2)), tokenizer="approx")
        >>> pool.add([{"q": "a", "a": "b"}, {"q": "a", "a": "b"}])  # the duplicate maps to id 0
        [0, 0]
    """

    def __init__(
        self,
        examples: Iterable[Mapping[str, Any]] = (),
        *,
        input_keys: Sequence[str] | None = None,
        formatter: Formatter | Any | None = None,
        tokenizer: Any = None,
        embed: EmbedFn | Any | None = None,
        embeddings: Any = None,
        separator: str = "\n\n",
        required_keys: Sequence[str] | None = None,
        compressible_key: str | None = None,
        cache: bool | str | Path = False,
        embed_name: str | None = None,
    ) -> None:
        self.input_keys = list(input_keys) if input_keys is not None else None
        self.counter: TokenCounter = resolve_counter(tokenizer)
        self.separator = separator
        self.compressible_key = compressible_key
        self._render = _resolve_formatter(formatter)
        self._embed, self._embed_query, default_name = _resolve_embedder(embed)
        self._cache_path = _cache_path(cache, embed_name or default_name)
        self._embed_name = embed_name or default_name or "custom"
        self._required = list(required_keys) if required_keys is not None else None
        self.examples: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self._costs: list[int] = []
        self._reason_tokens: list[int] = []
        self._cost_array: np.ndarray | None = None
        self._reason_array: np.ndarray | None = None
        self._chunks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._ids: dict[str, int] = {}
        self._lock = threading.RLock()
        self.duplicates = 0
        self.sep_tokens = self.counter.count(separator) if separator else 0
        examples = list(examples)
        if examples or embeddings is not None:
            self.add(examples, embeddings=embeddings)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def vectors(self) -> np.ndarray:
        """All embeddings, one unit-normalised row per example."""
        with self._lock:
            if self._matrix is None:
                self._matrix = np.concatenate(self._chunks) if self._chunks else np.zeros((0, 1), np.float32)
                self._chunks = [self._matrix] if self._chunks else []
            return self._matrix

    @property
    def costs(self) -> np.ndarray:
        """Exact token count of each rendered example (read-only view, cached)."""
        self._cost_array = _readonly_counts(self._costs, self._cost_array)
        return self._cost_array

    def snapshot(self) -> tuple[int, np.ndarray, np.ndarray]:
        """A consistent ``(size, vectors, costs)`` view, safe against a concurrent :meth:`add`."""
        with self._lock:
            return len(self.examples), self.vectors, self.costs

    def cost_of(self, index: int) -> int:
        """Exact token count of one rendered example."""
        return self._costs[index]

    def add(self, examples: Iterable[Mapping[str, Any]], *, embeddings: Any = None) -> list[int]:
        """Validate, render, count and embed ``examples``; return their pool ids.

        All examples are checked before any is added. An exact duplicate (same rendered text) is
        not stored twice: its id is the existing one and :attr:`duplicates` counts it.

        Raises:
            InvalidInputError: not a mapping, a missing key (named), or embeddings of the wrong shape.
        """
        examples = list(examples)
        required = self._required
        if required is None and examples and isinstance(examples[0], Mapping):
            required = list(examples[0])  # the first example sets the schema
        batch = [self._check(ex, i, required or []) for i, ex in enumerate(examples)]
        texts = [self._render(ex) for ex in batch]
        if embeddings is not None:
            vecs = _normalise(np.asarray(embeddings, dtype=np.float32), len(batch), "embeddings")
        else:
            vecs = self._embed_texts([self.input_text(ex) for ex in batch])
        if self._chunks and len(batch) and vecs.shape[1] != self.vectors.shape[1]:
            raise InvalidInputError(f"embedding width {vecs.shape[1]} differs from the pool's {self.vectors.shape[1]}")
        key = self.compressible_key
        counts = [self.counter.count(t) for t in texts]
        reason = [self.counter.count(str(ex[key])) if key else 0 for ex in batch]
        ids: list[int] = []
        keep: list[int] = []
        with self._lock:
            for j, (ex, text) in enumerate(zip(batch, texts)):
                digest = hashlib.sha256(text.encode()).hexdigest()
                if digest in self._ids:
                    self.duplicates += 1
                    ids.append(self._ids[digest])
                    continue
                self._ids[digest] = len(self.examples)
                ids.append(len(self.examples))
                keep.append(j)
                self.examples.append(ex)
                self.texts.append(text)
                self._costs.append(counts[j])
                self._reason_tokens.append(reason[j])
            if keep:
                self._chunks.append(vecs[keep])
                self._matrix = None
        self._required = required
        return ids

    @property
    def reason_tokens(self) -> np.ndarray:
        """Token count of each example's ``compressible_key`` value (zeros without one)."""
        self._reason_array = _readonly_counts(self._reason_tokens, self._reason_array)
        return self._reason_array

    def render(self, example: Mapping[str, Any]) -> str:
        """``example`` as the model will see it (what the budget counts)."""
        return self._render(example)

    def input_text(self, example: Mapping[str, Any]) -> str:
        """The text of ``example`` that is embedded (its ``input_keys`` values, one per line)."""
        keys = self.input_keys if self.input_keys is not None else list(example)
        return "\n".join(str(example[k]) for k in keys)

    def embed_query(self, query: str) -> np.ndarray:
        """The unit-normalised embedding of a query text."""
        return _normalise(np.asarray(self._embed_query(query), dtype=np.float32).reshape(1, -1), 1, "query")[0]

    def select(
        self,
        query: str | None = None,
        budget: int = 0,
        *,
        query_vector: Any = None,
        policy: SelectionPolicy | None = None,
        compress: bool | ExampleCompression = False,
    ) -> ExampleSelection:
        """Choose examples for ``query`` whose rendered text fits ``budget`` tokens.

        Args:
            query: the query text (embedded with the pool's embedder), or give ``query_vector``.
            budget: tokens allowed for the examples block (separators included); must be > 0.
            query_vector: a precomputed query embedding.
            policy: relevance / diversity / length trade-off (default :class:`SelectionPolicy`).
            compress: shorten each chosen example's ``compressible_key`` so more examples fit; every
                other field (the answer) stays intact. ``True`` keeps about half of that field with
                :func:`agent_tokred.compress`; an :class:`ExampleCompression` sets the rate and compressor.

        Raises:
            BudgetError: ``budget`` is not a positive int.
            InvalidInputError: neither ``query`` nor ``query_vector`` given, or compression
                asked without a ``compressible_key``.
        """
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise BudgetError(f"budget must be a positive int of tokens; got {budget!r}")
        if query_vector is None and query is None:
            raise InvalidInputError("give a query text or a query_vector")
        compression = as_compression(compress)
        if compression is not None and not self.compressible_key:
            raise InvalidInputError("compress needs the pool's compressible_key (the reasoning field)")
        return run_selection(self, query, budget, query_vector, policy or SelectionPolicy(), compression)

    def _check(self, example: Any, i: int, required: list[str]) -> dict[str, Any]:
        if not isinstance(example, Mapping):
            raise InvalidInputError(f"example {i} must be a mapping of keys to values; got {type(example).__name__}")
        needed = [
            *required,
            *(self.input_keys or []),
            *([self.compressible_key] if self.compressible_key else []),
        ]
        for key in needed:
            if key not in example:
                raise InvalidInputError(f"example {i} is missing key {key!r}; it has {sorted(example)}")
        return dict(example)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            width = self.vectors.shape[1] if self._chunks else 1
            return np.zeros((0, width), dtype=np.float32)
        store = _load_cache(self._cache_path) if self._cache_path else {}
        keys = [hashlib.sha256(f"{self._embed_name}\0{t}".encode()).hexdigest() for t in texts]
        missing = sorted({t for t, k in zip(texts, keys) if k not in store})
        if missing:
            fresh = _normalise(np.asarray(self._embed(missing), dtype=np.float32), len(missing), "embed output")
            for t, v in zip(missing, fresh):
                store[hashlib.sha256(f"{self._embed_name}\0{t}".encode()).hexdigest()] = v
            if self._cache_path:
                _save_cache(self._cache_path, store)
        return np.stack([store[k] for k in keys]).astype(np.float32)


def select_examples(
    examples: Iterable[Mapping[str, Any]],
    query: str,
    budget: int,
    *,
    policy: SelectionPolicy | None = None,
    **pool_options: Any,
) -> ExampleSelection:
    """One call for non-LangChain users: the most useful examples for ``query`` within ``budget``.

    Builds a throw-away :class:`ExamplePool` with ``pool_options`` (``input_keys``, ``formatter``,
    ``tokenizer``, ``embed``, ``separator`` ...: :class:`ExamplePool`'s keyword options); keep a pool
    yourself to embed a large pool only once.

    Example:
        >>> import numpy as np
        >>> fake = lambda ts: np.array([[t.count("sum"), t.count("word"), 0.1] for t in ts])
        >>> pool = [{"input": "sum 2 and 3", "output": "5"}, {"input": "spell word", "output": "w-o-r-d"}]
        >>> sel = select_examples(pool, "sum 4 and 4", 12, input_keys=["input"], embed=fake,
        ...                       tokenizer="approx")
        >>> sel.indices
        [0]
    """
    return ExamplePool(examples, **pool_options).select(query, budget, policy=policy)


def _readonly_counts(counts: list[int], cached: np.ndarray | None) -> np.ndarray:
    """``counts`` as a read-only int64 array: ``cached`` while the list has not grown (it only grows)."""
    if cached is not None and len(cached) == len(counts):
        return cached
    array = np.asarray(counts, dtype=np.int64)
    array.flags.writeable = False
    return array


def _resolve_formatter(formatter: Any) -> Formatter:
    if formatter is None:
        return format_key_values
    if hasattr(formatter, "format") and not isinstance(formatter, str):
        return lambda ex: str(formatter.format(**ex))
    if callable(formatter):
        return lambda ex: str(formatter(ex))
    raise InvalidInputError(f"formatter must be a callable or have .format(**example); got {type(formatter)!r}")


def _resolve_embedder(embed: Any) -> tuple[EmbedFn, Callable[[str], Any], str | None]:
    if embed is None:
        from . import models

        return models.embed, models.embed_query, "minilm"
    if hasattr(embed, "embed_documents") and hasattr(embed, "embed_query"):
        return embed.embed_documents, embed.embed_query, None
    if callable(embed):
        return embed, lambda q: np.asarray(embed([q]))[0], None
    raise InvalidInputError(f"embed must be a callable, a LangChain Embeddings object or None; got {type(embed)!r}")


def _normalise(vecs: np.ndarray, n: int, what: str) -> np.ndarray:
    if vecs.ndim != 2 or vecs.shape[0] != n:
        raise InvalidInputError(f"{what} must have shape ({n}, dim); got {vecs.shape}")
    if not np.all(np.isfinite(vecs)):
        raise InvalidInputError(f"{what} contains NaN or infinite values")
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)


def _cache_path(cache: bool | str | Path, name: str | None) -> Path | None:
    if cache is False:
        return None
    if name is None:
        raise InvalidInputError("caching a custom embed function needs embed_name= to key its vectors")
    if cache is True:
        from .models import cache_dir

        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return cache_dir() / "example-embeddings" / f"{safe}.npz"
    return Path(cache)


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return dict(zip(data["keys"].tolist(), data["vectors"]))


def _save_cache(path: Path, store: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, keys=np.array(list(store), dtype="U64"), vectors=np.stack(list(store.values())))
    os.replace(tmp, path)
