"""Originals archived in a LangGraph ``BaseStore``, isolated per thread or user.

:class:`StoreArchive` implements :class:`agent_tokred.archive.Archive` over any LangGraph store
(``InMemoryStore``, ``SqliteStore``, ``PostgresStore``, the store ``langgraph dev`` provides). Each
archive lives in one namespace, ``("agent_tokred", "originals", <scope>...)``; handles are derived
from the namespace too, so a handle minted in one namespace is never readable through another.

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> store = InMemoryStore()
    >>> a, b = StoreArchive(store, ("thread", "a")), StoreArchive(store, ("thread", "b"))
    >>> h = a.put("the full tool output")
    >>> a.get(h), b.get(h)
    ('the full tool output', None)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from ..archive import HANDLE_PREFIX, fingerprint, make_handle
from ..errors import InvalidInputError, UnknownNameError

ROOT = "agent_tokred"
_HANDLE = re.compile(rf"^{re.escape(HANDLE_PREFIX)}[0-9a-f]{{24}}$")
SCOPES: tuple[str, ...] = ("thread", "user", "global")


def namespace_label(value: object) -> str:
    """A store namespace label: non-empty, no dots or NUL bytes (LangGraph forbids them); reversible escaping."""
    text = str(value)
    return text.replace("%", "%25").replace(".", "%2E").replace("\x00", "%u0000") or "%00"


def is_handle(value: object) -> bool:
    """True when ``value`` looks like an agent-tokred handle (``tkr-`` + 24 digits: decimal, or
    hex in archives written by earlier versions)."""
    return isinstance(value, str) and _HANDLE.match(value) is not None


class StoreArchive:
    """An :class:`~agent_tokred.archive.Archive` over a LangGraph ``BaseStore``, in one namespace.

    Args:
        store: any LangGraph ``BaseStore``.
        scope: labels that isolate this archive (e.g. ``("thread", thread_id)``); a string is one label.

    Sync methods may be called from worker threads (async stores answer them through their loop);
    ``aput`` / ``aget`` / ``ais_output`` are the async twins.
    """

    def __init__(self, store: BaseStore, scope: str | Sequence[str] = ("global",)) -> None:
        if not isinstance(store, BaseStore):
            raise InvalidInputError(f"store must be a langgraph BaseStore, got {type(store).__name__}")
        labels = (scope,) if isinstance(scope, str) else tuple(scope)
        if not labels:
            raise InvalidInputError("an archive scope needs at least one label")
        self.store = store
        self.scope: tuple[str, ...] = tuple(namespace_label(s) for s in labels)
        self.namespace: tuple[str, ...] = (ROOT, "originals", *self.scope)
        self._outputs_ns: tuple[str, ...] = (ROOT, "outputs", *self.scope)
        self._key = "\x1f".join(self.scope)

    def __repr__(self) -> str:
        return f"StoreArchive(namespace={self.namespace!r})"

    # -- sync -------------------------------------------------------------------------------------
    def put(self, original: str, *, output: str | None = None) -> str:
        """Archive ``original`` (and remember ``output`` as one of the library's outputs)."""
        handle = make_handle(original, self._key)
        self.store.put(self.namespace, handle, {"text": original, "chars": len(original)}, index=False)
        if output is not None:
            self.store.put(self._outputs_ns, fingerprint(output), {"handle": handle}, index=False)
        return handle

    def get(self, handle: str) -> str | None:
        """The original under ``handle`` in this namespace, or ``None``."""
        if not is_handle(handle):
            return None
        item = self.store.get(self.namespace, handle)
        return _text(item.value if item is not None else None)

    def is_output(self, text: str) -> bool:
        """True when ``text`` is an output this archive recorded (so it is never reduced again)."""
        return self.store.get(self._outputs_ns, fingerprint(text)) is not None

    # -- async ------------------------------------------------------------------------------------
    async def aput(self, original: str, *, output: str | None = None) -> str:
        handle = make_handle(original, self._key)
        await self.store.aput(self.namespace, handle, {"text": original, "chars": len(original)}, index=False)
        if output is not None:
            await self.store.aput(self._outputs_ns, fingerprint(output), {"handle": handle}, index=False)
        return handle

    async def aget(self, handle: str) -> str | None:
        if not is_handle(handle):
            return None
        item = await self.store.aget(self.namespace, handle)
        return _text(item.value if item is not None else None)

    async def ais_output(self, text: str) -> bool:
        return await self.store.aget(self._outputs_ns, fingerprint(text)) is not None


def _text(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    text = value.get("text")
    return text if isinstance(text, str) else None


def scope_labels(
    scope: str, *, config: Mapping[str, Any] | None = None, context: Any = None
) -> tuple[str, ...]:
    """The namespace labels for ``scope`` in the current run.

    ``"thread"`` uses ``config["configurable"]["thread_id"]``; ``"user"`` uses a ``user_id`` from the
    runtime context (mapping or attribute) or from ``configurable`` (``user_id`` or the server's
    ``langgraph_auth_user_id``); ``"global"`` is one shared namespace. A missing id falls back to
    ``"default"`` (one namespace for all runs without an id).

    Raises:
        UnknownNameError: ``scope`` is not one of ``thread``, ``user``, ``global``.
    """
    if scope not in SCOPES:
        raise UnknownNameError("archive scope", scope, SCOPES)
    if scope == "global":
        return ("global",)
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    if scope == "thread":
        ident = configurable.get("thread_id")
    else:
        ident = _context_value(context, "user_id") or configurable.get("user_id") or configurable.get(
            "langgraph_auth_user_id"
        )
    return (scope, str(ident) if ident not in (None, "") else "default")


def _context_value(context: Any, key: str) -> Any:
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get(key)
    return getattr(context, key, None)


_DEFAULT_STORE: InMemoryStore | None = None


def default_store() -> InMemoryStore:
    """The process-local store used when a run has none (originals live as long as the process)."""
    global _DEFAULT_STORE
    if _DEFAULT_STORE is None:
        _DEFAULT_STORE = InMemoryStore()
    return _DEFAULT_STORE


def current_config() -> dict[str, Any]:
    """The ``RunnableConfig`` of the running graph step (``{}`` outside one)."""
    try:
        from langgraph.config import get_config

        return dict(get_config())
    except RuntimeError:
        return {}


def current_store() -> BaseStore | None:
    """The store of the running graph (``None`` outside a graph or when it has none)."""
    try:
        from langgraph.config import get_store

        return get_store()
    except (RuntimeError, KeyError):  # outside a graph, or a runnable context without a graph runtime
        return None


def archive_for_runtime(
    runtime: Any = None,
    scope: str = "thread",
    store: BaseStore | None = None,
    config: Mapping[str, Any] | None = None,
) -> StoreArchive:
    """The archive of the current run.

    The store is ``store`` when given, else the runtime's (``create_agent(store=...)``, the
    server's), else the running graph's, else the process-local default; the namespace comes from
    ``scope`` and the run's config (``thread_id``) or context (``user_id``).
    """
    run_store = next((s for s in (store, getattr(runtime, "store", None), current_store()) if s is not None),
                     None) or default_store()
    if config is None:
        config = getattr(runtime, "config", None)
    if config is None:
        config = current_config()
    labels = scope_labels(scope, config=config, context=getattr(runtime, "context", None))
    return StoreArchive(run_store, labels)
