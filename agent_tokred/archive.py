"""The archive of originals: nothing a reduction drops is lost.

Every reduction stores its original under a handle. The process-wide default archive is an
in-memory, size-bounded LRU; the integration layer provides a namespaced archive over a LangGraph
``BaseStore`` so originals survive restarts and stay isolated per user or thread.

Example:
    >>> from agent_tokred.archive import InMemoryArchive
    >>> arc = InMemoryArchive()
    >>> h = arc.put("a long original")
    >>> arc.get(h)
    'a long original'
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

from .errors import NotArchivedError

logger = logging.getLogger(__name__)

HANDLE_PREFIX = "tkr-"


def make_handle(original: str, namespace: str = "") -> str:
    """A stable handle for an original (same text and namespace, same handle): ``tkr-`` and 24 decimal
    digits of its SHA-256 (about 80 bits).

    Decimal, because OpenAI's tokenizers cut digit runs into threes: every handle costs the same tokens
    (11 in o200k_base and cl100k_base), so a note that names one costs what its estimate says whatever
    the digest; hex digests cost 12-23 tokens, which made budgets and runs vary with the messages' ids.
    """
    digest = hashlib.sha256(f"{namespace}\x00{original}".encode("utf-8", "surrogatepass")).digest()
    return HANDLE_PREFIX + str(int.from_bytes(digest, "big") % 10**24).zfill(24)


def fingerprint(text: str) -> str:
    """A short digest used to recognise the library's own outputs."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@runtime_checkable
class Archive(Protocol):
    """Where originals are kept. ``put`` returns the handle; ``get`` returns ``None`` if unknown."""

    def put(self, original: str, *, output: str | None = None) -> str: ...

    def get(self, handle: str) -> str | None: ...

    def is_output(self, text: str) -> bool: ...


class InMemoryArchive:
    """A thread-safe in-process archive bounded by total characters (oldest evicted first).

    Eviction only forgets the archive's copy; the :class:`~agent_tokred.reduction.Reduction` record
    still holds its ``original``. Evictions are logged at WARNING so they are never silent.
    """

    def __init__(self, max_chars: int = 256_000_000, namespace: str = "") -> None:
        self.max_chars = max_chars
        self.namespace = namespace
        self._items: OrderedDict[str, str] = OrderedDict()
        self._outputs: OrderedDict[str, None] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def put(self, original: str, *, output: str | None = None) -> str:
        handle = make_handle(original, self.namespace)
        with self._lock:
            if handle not in self._items:
                self._items[handle] = original
                self._chars += len(original)
            self._items.move_to_end(handle)
            if output is not None:
                self._outputs[fingerprint(output)] = None
                while len(self._outputs) > 1_000_000:
                    self._outputs.popitem(last=False)
            while self._chars > self.max_chars and len(self._items) > 1:
                old, text = self._items.popitem(last=False)
                self._chars -= len(text)
                logger.warning("archive full: forgot original %s (%d chars)", old, len(text))
        return handle

    def get(self, handle: str) -> str | None:
        with self._lock:
            return self._items.get(handle)

    def is_output(self, text: str) -> bool:
        with self._lock:
            return fingerprint(text) in self._outputs

    def __len__(self) -> int:
        return len(self._items)


_DEFAULT = InMemoryArchive()


def default_archive() -> InMemoryArchive:
    """The process-wide archive used when a caller names none."""
    return _DEFAULT


def recall(handle: str, archive: Archive | None = None) -> str:
    """Return the original archived under ``handle``.

    Raises:
        NotArchivedError: no original under that handle in this archive (a ``KeyError``).
    """
    text = (archive or _DEFAULT).get(handle)
    if text is None:
        raise NotArchivedError(f"no original archived under handle {handle!r}")
    return text
