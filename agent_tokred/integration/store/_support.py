"""Small pieces the merging store plugs in: embeddings, the engine compressor, filter matching."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import IndexConfig
from langgraph.store.base.embed import ensure_embeddings, tokenize_path

from ...archive import make_handle
from ...budget import make_budget
from ...errors import InvalidInputError
from ...store.query_embedding import QueryEmbedder, default_query_embedder
from ...tokens import TokenCounter

logger = logging.getLogger(__name__)

EmbedFn = Callable[[list[str]], Any]
Fields = list[tuple[str, Any]]


class FunctionEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over a plain ``texts -> vectors`` function (numpy or lists)."""

    def __init__(self, fn: EmbedFn, name: str | None = None) -> None:
        self._fn = fn
        self.name = name or getattr(fn, "__name__", "embed")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out = np.asarray(self._fn(list(texts)), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise InvalidInputError(
                f"embedding function {self.name!r} returned shape {out.shape} for {len(texts)} texts; "
                "expected (len(texts), dim)"
            )
        vectors: list[list[float]] = out.tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _minilm(texts: list[str]) -> np.ndarray:
    from ...models import embed

    return embed(texts)


class MiniLMEmbeddings(FunctionEmbeddings):
    """The shipped MiniLM: batches for documents, the low-latency query path for queries.

    Args:
        query: the query embedder (default: the process-wide int8 one-thread
            :class:`~agent_tokred.store.query_embedding.QueryEmbedder`; ``QueryEmbedder()`` is the fp32
            one, equal to sentence-transformers' vectors).
    """

    def __init__(self, query: QueryEmbedder | None = None) -> None:
        super().__init__(_minilm, "minilm")
        self.query = query

    def embed_query(self, text: str) -> list[float]:
        embedder = self.query if self.query is not None else default_query_embedder()
        vector: list[float] = embedder(text).tolist()
        return vector


def resolve_embeddings(
    index: IndexConfig | Mapping[str, Any] | None, embed: Embeddings | EmbedFn | str | None
) -> tuple[dict[str, Any] | None, Embeddings, Fields | None]:
    """(index config copy, embeddings, tokenized fields or ``None`` for the memory default).

    ``index`` follows LangGraph's ``IndexConfig`` (``dims``, ``embed``, ``fields``; SQLite's and
    Postgres' ``text_fields`` is read too). Without either, the shipped MiniLM is used.
    """
    if index is not None and embed is not None:
        raise InvalidInputError("give either index={...} (LangGraph style) or embed=..., not both")
    config: dict[str, Any] | None = None
    fields: Fields | None = None
    if index is not None:
        if not isinstance(index, Mapping) or "embed" not in index:
            raise InvalidInputError(f"index must be a mapping with an 'embed' entry, got {index!r}")
        config = dict(index)
        spec = config["embed"]
        emb = spec if isinstance(spec, Embeddings) else ensure_embeddings(spec)
        names = config.get("fields") or config.get("text_fields") or ["$"]
        if isinstance(names, str) or not all(isinstance(f, str) for f in names):
            raise InvalidInputError(f"index fields must be a list of paths, got {names!r}")
        fields = [(p, p if p == "$" else tokenize_path(p)) for p in names]
        return config, emb, fields
    if embed is None:
        return None, MiniLMEmbeddings(), None
    if isinstance(embed, Embeddings):
        return None, embed, None
    if isinstance(embed, str):
        return None, ensure_embeddings(embed), None
    if callable(embed):
        return None, FunctionEmbeddings(embed), None
    raise InvalidInputError(f"embed must be Embeddings, a callable or a provider string, got {type(embed).__name__}")


_LONG_RUN = re.compile(r"\S{257,}")


class SafeCounter:
    """Exact counts, except runs of over 256 non-space characters (base64, minified blobs).

    Those are estimated at one token per 4 characters: BPE over one such run is quadratic in the
    pure-Python tokenizer (16k repeated characters take seconds), and a store must not hang on a
    large value. Ordinary text is counted exactly.
    """

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.name = inner.name

    def count(self, text: str) -> int:
        if len(text) <= 256 or not _LONG_RUN.search(text):
            return self.inner.count(text)
        total, pos = 0, 0
        for m in _LONG_RUN.finditer(text):
            total += self.inner.count(text[pos : m.start()]) + math.ceil((m.end() - m.start()) / 4)
            pos = m.end()
        return total + self.inner.count(text[pos:])


class _NoArchive:
    """The store keeps originals itself; the engine's own archive would only duplicate them."""

    def put(self, original: str, *, output: str | None = None) -> str:
        return make_handle(original, "tokred-store")

    def get(self, handle: str) -> str | None:
        return None

    def is_output(self, text: str) -> bool:
        return False


def engine_compressor(counter: TokenCounter) -> Callable[[str, float | None, int | None], str]:
    """``compress(text, rate, target_tokens) -> text`` through the engine (lexical criterion)."""
    state: dict[str, Any] = {}

    def run(text: str, rate: float | None, target_tokens: int | None) -> str:
        if "engine" not in state:
            from ...compressor import Compressor

            state["engine"] = Compressor(criterion="lexical", tokenizer=counter, archive=_NoArchive())
        budget = make_budget(rate=rate, target_tokens=target_tokens)
        reduction = state["engine"].compress(text, budget=budget)
        return str(reduction.text)

    return run


_FILTER_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def check_filter(flt: object) -> None:
    """Filters are ``{field: value}`` with field names of letters, digits, ``_ . -`` (dots nest).

    Raises:
        InvalidInputError: not a mapping, or an invalid filter key (named in the message).
    """
    if flt is None:
        return
    if not isinstance(flt, Mapping):
        raise InvalidInputError(f"filter must be a mapping or None, got {type(flt).__name__}")
    for key in flt:
        if not isinstance(key, str) or not _FILTER_KEY.match(key):
            raise InvalidInputError(
                f"Invalid filter key: {key!r}. Filter keys may contain only letters, digits, '_', '.', '-'."
            )


def can_push_down(flt: Mapping[str, Any]) -> bool:
    """True when every backend (memory, SQLite, Postgres) evaluates ``flt`` the same way."""
    return all(_PLAIN_KEY.match(k) and _plain_value(v) for k, v in flt.items())


def _plain_value(value: Any) -> bool:
    if isinstance(value, Mapping):
        ops = [k for k in value if str(k).startswith("$")]
        return len(ops) == len(value) and all(k in _OPERATORS and _plain_value(v) for k, v in value.items())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**53  # exactly representable everywhere (SQLite REAL, JSON numbers)
    return value is None or isinstance(value, bool)


def matches_filter(value: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    """LangGraph's filter semantics (equality, nested dicts, ``$eq $ne $gt $gte $lt $lte``)."""
    if not flt:
        return True
    return all(_compare(_lookup(value, k), v) for k, v in flt.items())


def _lookup(value: Mapping[str, Any], key: str) -> Any:
    # A literal key wins; otherwise a dotted key walks nested objects (as SQLite and Postgres do).
    if key in value or "." not in key:
        return value.get(key)
    node: Any = value
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _compare(item: Any, want: Any) -> bool:
    if isinstance(want, Mapping):
        if any(str(k).startswith("$") for k in want):
            return all(_operator(item, op, arg) for op, arg in want.items())
        if not isinstance(item, Mapping):
            return False
        return all(_compare(item.get(k), v) for k, v in want.items())
    if isinstance(want, (list, tuple)):
        return (
            isinstance(item, (list, tuple))
            and len(item) == len(want)
            and all(_compare(i, w) for i, w in zip(item, want, strict=True))
        )
    return bool(item == want)


_ORDERING: dict[str, Callable[[float, float], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _operator(item: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(item == arg)
    if op == "$ne":
        return bool(item != arg)
    if op in _ORDERING:
        try:
            return _ORDERING[op](float(item), float(arg))
        except (TypeError, ValueError):
            return False
    raise InvalidInputError(f"unsupported filter operator {op!r}; valid: $eq, $ne, $gt, $gte, $lt, $lte")


def texts_for_index(
    value: Mapping[str, Any], index: Sequence[str] | None, fields: Fields | None, text_field: str
) -> list[tuple[str, str]]:
    """The (path, text) pairs to embed for a value, following LangGraph's path rules.

    ``index`` is the put's own field list; ``fields`` the store's; with neither, a memory is
    embedded by its text and any other value by its JSON (LangGraph's ``"$"``).
    """
    from langgraph.store.base.embed import get_text_at_path

    if index is not None:
        paths: Fields = [(p, p if p == "$" else tokenize_path(p)) for p in index]
    elif fields is not None:
        paths = fields
    elif isinstance(value.get(text_field), str):
        return [(text_field, value[text_field])]
    else:
        paths = [("$", "$")]
    out: list[tuple[str, str]] = []
    for path, tokens in paths:
        texts = get_text_at_path(value, tokens)
        if len(texts) == 1:
            out.append((path, texts[0]))
        else:
            out.extend((f"{path}.{i}", t) for i, t in enumerate(texts))
    return out
