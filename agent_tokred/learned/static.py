"""Static word-piece vectors and the fast tokenizer they index: no transformer pass.

A :class:`StaticVocabulary` holds a WordPiece tokenizer (the Rust ``tokenizers`` package) and one vector
per word piece. Two sources:

* the shipped weights (``agent_tokred/data/learned_criterion.safetensors``): the vocabulary as bytes and
  int8 vectors distilled from all-MiniLM-L6-v2 (each word piece alone through the model, mean-pooled,
  PCA-reduced, Model2Vec-style), so inference needs only numpy, ``tokenizers`` and ``safetensors``;
* :func:`minilm_input_vocabulary`: MiniLM's own tokenizer.json and input embedding matrix, read from
  the installed model package (a fallback and a baseline).

Example:
    >>> vocab = load_shipped_vocabulary()  # doctest: +SKIP
    >>> ids, starts = vocab.encode(["Paris is in France.", "Cats sleep."])  # doctest: +SKIP
    >>> len(starts)  # doctest: +SKIP
    3
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..criteria.lexical import STOP_WORDS
from ..errors import ModelNotAvailableError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "–", "—", "…", "«", "»"}
# What BertNormalizer + BertPreTokenizer make of ASCII text once lower-cased: runs of letters and digits,
# and each punctuation character alone (white space separates; control characters take the slow path).
_ASCII_PIECE = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PIECE_CACHE = 1 << 19  # distinct pre-tokens remembered per vocabulary


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise ModelNotAvailableError("the learned criterion needs the tokenizers package: pip install tokenizers") from exc
    return tokenizers


def wordpiece_tokenizer(vocab: Sequence[str]) -> Any:
    """A BERT-uncased WordPiece tokenizer (as in MiniLM's tokenizer.json) over ``vocab``."""
    tk = _tokenizers()
    model = tk.models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",  # noqa: S106
                                 max_input_chars_per_word=100)
    tok = tk.Tokenizer(model)
    tok.normalizer = tk.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    return tok


@dataclass(frozen=True)
class StaticVocabulary:
    """A tokenizer with one static vector per token and per-token flags.

    Attributes:
        tokenizer: a ``tokenizers.Tokenizer`` (no special tokens added when encoding).
        tokens: the vocabulary, index = token id.
        vectors: ``(vocab, dim)`` float32 vectors.
        content: ``(vocab,)`` bool, False for stop words, punctuation and special tokens.
        digit: ``(vocab,)`` bool, the token holds a digit.
    """

    tokenizer: Any
    tokens: tuple[str, ...]
    vectors: np.ndarray
    content: np.ndarray
    digit: np.ndarray
    _pieces: dict[str, list[int]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, tokens: Sequence[str], vectors: np.ndarray) -> StaticVocabulary:
        """Flags computed from the token strings; ``vectors`` rows follow ``tokens``."""
        if vectors.shape[0] != len(tokens):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(tokens)} tokens")
        bare = [t.removeprefix("##") for t in tokens]
        content = np.asarray(
            [
                not (t in SPECIAL_TOKENS or t.startswith("[unused") or b in STOP_WORDS or all(c in _PUNCT for c in b))
                for t, b in zip(tokens, bare)
            ],
            dtype=bool,
        )
        digit = np.asarray([any(c.isdigit() for c in t) for t in tokens], dtype=bool)
        return cls(wordpiece_tokenizer(tokens), tuple(tokens), np.ascontiguousarray(vectors, dtype=np.float32),
                   content, digit)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of all ``texts`` concatenated, and where each text's ids start (plus the end).

        ASCII inputs (most tool outputs) are split here with one regular expression and each distinct
        pre-token goes through the WordPiece model once (the same ids as the full tokenizer, which a
        test checks); other inputs go through the Rust tokenizer's batch encoder.

        Returns:
            ``(ids, starts)``: ``ids[starts[k]:starts[k + 1]]`` are the ids of ``texts[k]``.
        """
        per_text: list[list[int]] = [[] for _ in texts]
        slow: list[int] = []
        cache, tokenize = self._pieces, self.tokenizer.model.tokenize
        for k, text in enumerate(texts):
            if not text.isascii() or _ASCII_CONTROL.search(text):
                slow.append(k)
                continue
            ids = per_text[k]
            for piece in _ASCII_PIECE.findall(text.lower()):
                got = cache.get(piece)
                if got is None:
                    got = [t.id for t in tokenize(piece)]
                    if len(cache) < _PIECE_CACHE:
                        cache[piece] = got
                ids.extend(got)
        if slow:
            encodings = self.tokenizer.encode_batch([texts[k] for k in slow], add_special_tokens=False)
            for k, e in zip(slow, encodings):
                per_text[k] = e.ids
        starts = np.zeros(len(per_text) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in per_text], out=starts[1:])
        ids_all = np.fromiter((i for x in per_text for i in x), dtype=np.int64, count=int(starts[-1]))
        return ids_all, starts


def vocabulary_from_tensors(tensors: Mapping[str, np.ndarray]) -> StaticVocabulary:
    """Rebuild the vocabulary stored in weights (``vocab_bytes``, ``static_int8``, ``static_scale``)."""
    missing = {"vocab_bytes", "static_int8", "static_scale"} - tensors.keys()
    if missing:
        raise ValueError(f"weights lack the static vocabulary tensors {sorted(missing)}")
    tokens = bytes(np.asarray(tensors["vocab_bytes"], dtype=np.uint8)).decode("utf-8").split("\n")
    vectors = np.asarray(tensors["static_int8"], dtype=np.float32) * np.asarray(tensors["static_scale"], np.float32)[:, None]
    return StaticVocabulary.build(tokens, vectors)


def vocabulary_tensors(tokens: Sequence[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Tensors that store a vocabulary compactly: UTF-8 vocabulary and int8 rows with a scale per row."""
    if any("\n" in t for t in tokens):
        raise ValueError("vocabulary tokens must not contain newlines")
    vectors = np.asarray(vectors, dtype=np.float32)
    scale = np.abs(vectors).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return {
        "vocab_bytes": np.frombuffer("\n".join(tokens).encode("utf-8"), dtype=np.uint8).copy(),
        "static_int8": q,
        "static_scale": scale.astype(np.float32),
    }


def minilm_tokens() -> list[str]:
    """MiniLM's vocabulary (index = id), from its tokenizer.json."""
    from ..models import minilm_path

    tk = _tokenizers()
    tok = tk.Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    vocab: dict[str, int] = tok.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    return tokens


def minilm_input_vocabulary() -> StaticVocabulary:
    """MiniLM's tokenizer with its input embedding matrix (no distillation): a baseline vocabulary."""
    from safetensors.numpy import load_file

    from ..models import minilm_path

    matrix = load_file(str(minilm_path() / "model.safetensors"))["embeddings.word_embeddings.weight"]
    return StaticVocabulary.build(minilm_tokens(), matrix)
