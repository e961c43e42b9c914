"""Where a merging store keeps its bookkeeping inside the wrapped store, and how it encodes it.

For a user namespace ``ns`` the wrapped store holds:

* ``ns`` itself: the *live view*: verbatim items, compressed memories and merged memories.
* ``(ROOT, "v", depth, *ns)``: one index record per live item (vectors, tier state, provenance).
* ``(ROOT, "a", depth, *ns)``: the archive: the exact original of every compressed or merged source.
* ``(ROOT, "j", depth, *ns)``: the journal of consolidations in flight (empty when none is).

``ROOT`` is reserved: user operations on it are rejected, listings and searches hide it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidInputError


class StoredItem(Protocol):
    """What the engine reads of a stored item (LangGraph's ``Item`` has these attributes)."""

    @property
    def value(self) -> dict[str, Any]: ...
    @property
    def key(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


ROOT = "__tokred__"
VEC = "v"
ARCHIVE = "a"
JOURNAL = "j"
MARK = "_tokred"  # reserved top-level field of live values written by the store
MERGED_PREFIX = "tokred:m:"
STATE_PLAIN = "plain"
STATE_VERBATIM = "verbatim"
STATE_COMPRESSED = "compressed"
STATE_MERGED = "merged"
# Index paths of the vectors besides an item's own: a memory's passages, a merged memory's sources'
# vectors ("src.NNNN") and its sources' passages ("src.pNNNN").
PASSAGE_PATH = "psg."
SOURCE_PATH = "src."
SOURCE_PASSAGE_PATH = "src.p"

Namespace = tuple[str, ...]


def shadow_ns(part: str, ns: Namespace) -> Namespace:
    # The depth label makes a prefix search of a shadow namespace exact: ("a",) is stored under
    # (ROOT, part, "1", "a") and ("a", "b") under (ROOT, part, "2", "a", "b"), not below it.
    return (ROOT, part, str(len(ns)), *ns)


def vec_ns(ns: Namespace) -> Namespace:
    return shadow_ns(VEC, ns)


def archive_ns(ns: Namespace) -> Namespace:
    return shadow_ns(ARCHIVE, ns)


def journal_ns(ns: Namespace) -> Namespace:
    return shadow_ns(JOURNAL, ns)


def shadow_pattern(part: str, prefix: Namespace) -> Namespace:
    """A list_namespaces prefix matching the shadows of every namespace under ``prefix``."""
    return (ROOT, part, "*", *prefix)


def is_reserved(ns: Namespace) -> bool:
    return bool(ns) and ns[0] == ROOT


def user_ns_of(shadow: Namespace) -> Namespace:
    """The user namespace a shadow namespace belongs to."""
    return tuple(shadow[3:])


def merged_key(ns: Namespace, sources: list[str]) -> str:
    """A deterministic key for a merged memory (same sources, same key), so replays are idempotent."""
    digest = hashlib.sha256("\x00".join([*ns, "", *sorted(sources)]).encode("utf-8", "surrogatepass"))
    return MERGED_PREFIX + digest.hexdigest()[:24]


def encode_vector(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(data: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data), dtype="<f4").astype(np.float32)


def passage_path(i: int) -> str:
    """Index path of a memory's ``i``-th passage vector (sorts after its text's path)."""
    return f"{PASSAGE_PATH}{i:04d}"


def path_rank(path: str) -> int:
    """Row order of an item's vectors: its own (text or fields) first, its passages, then sources'."""
    if path.startswith(SOURCE_PATH):
        return 2
    return 1 if path.startswith(PASSAGE_PATH) else 0


def merged_vectors(
    primary_path: str,
    mean: np.ndarray,
    sources: list[np.ndarray],
    passages: Sequence[np.ndarray] = (),
    *,
    max_passages: int = 64,
    dedupe: float = 0.97,
) -> dict[str, str]:
    """Index vectors of a merged memory: the size-weighted mean, its sources' vectors and passages.

    Search max-pools over all of them (LangGraph's rule for multi-vector items), so merging never
    hides a source from the query that would have found it; near-identical vectors share one. Of
    the sources' passage vectors at most ``max_passages`` are kept, farthest first: each next one is
    the passage least like everything kept so far (a detail no other vector covers, such as a fact
    deep in one tool output among many alike, goes before the twentieth record of one shape).
    """
    kept: list[np.ndarray] = []
    for vec in sources:
        unit = vec / (np.linalg.norm(vec) or 1.0)
        if all(float(unit @ k) < dedupe for k in kept):
            kept.append(unit)
    out = {primary_path: encode_vector(mean)}
    out.update({f"{SOURCE_PATH}{i:04d}": encode_vector(v) for i, v in enumerate(kept)})
    if not passages or max_passages <= 0:
        return out
    cand = np.stack([v / (np.linalg.norm(v) or 1.0) for v in passages]).astype(np.float32)
    # nearest[i]: similarity of passage i to the closest vector kept so far
    nearest = (cand @ np.stack(kept).T).max(axis=1) if kept else np.full(len(cand), -np.inf, np.float32)
    for n in range(min(max_passages, len(cand))):
        i = int(np.argmin(nearest))
        if nearest[i] >= dedupe:
            break
        out[f"{SOURCE_PASSAGE_PATH}{n:04d}"] = encode_vector(cand[i])
        nearest = np.maximum(nearest, cand @ cand[i])
        nearest[i] = np.inf
    return out


def iso(dt: datetime) -> str:
    return dt.isoformat()


def from_iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class NamespaceError(InvalidInputError):
    """A namespace breaks the label rules (the LangGraph adapter raises it as LangGraph's ``InvalidNamespaceError``)."""


def check_namespace(ns: object, *, for_write: bool) -> None:
    """LangGraph's label rules, plus: the reserved root is off limits, writes need a namespace.

    Raises:
        NamespaceError: the rule broken, named.
    """
    if not isinstance(ns, tuple):
        raise NamespaceError(f"Namespace must be a tuple of strings, got {type(ns).__name__}: {ns!r}")
    for label in ns:
        if not isinstance(label, str):
            raise NamespaceError(f"Invalid namespace label {label!r} found in {ns}. Namespace labels must be strings.")
        if not label:
            raise NamespaceError(f"Namespace labels cannot be empty strings. Got {ns}")
        if "." in label:
            raise NamespaceError(f"Invalid namespace label {label!r} in {ns}: no periods allowed.")
        if "\x00" in label:
            raise NamespaceError(f"Invalid namespace label {label!r} in {ns}: no NUL bytes allowed.")
    if is_reserved(ns):
        raise NamespaceError(f"Root label {ROOT!r} is reserved for the store's bookkeeping: {ns}")
    if for_write and not ns:
        raise NamespaceError("Namespace cannot be empty.")


def check_value(ns: Namespace, key: str, value: object, max_bytes: int) -> None:
    """Reject values that are not JSON objects, carry the reserved field, or are too large.

    Raises:
        InvalidInputError: names the key, what is wrong and what is allowed.
    """
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"value of {ns}/{key!r} must be a mapping (JSON object), got {type(value).__name__}")
    if MARK in value:
        raise InvalidInputError(f"value of {ns}/{key!r} uses the reserved field {MARK!r}")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, default=_plain_mapping)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"value of {ns}/{key!r} is not JSON-serialisable ({exc}); use str, int, float (finite), "
            "bool, None, lists and dicts with string keys"
        ) from None
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidInputError(
            f"value of {ns}/{key!r} is {size} bytes encoded; the limit is max_value_bytes={max_bytes}"
        )


def _plain_mapping(obj: object) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def to_plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-plain deep copy of a validated value (mappings become dicts)."""
    out: dict[str, Any] = json.loads(json.dumps(value, default=_plain_mapping))
    return out


def check_key(key: object) -> None:
    if not isinstance(key, str):
        raise InvalidInputError(f"keys must be strings, got {type(key).__name__}: {key!r}")


def finite_tokens(n: float) -> int:
    return int(n) if math.isfinite(n) else 0
