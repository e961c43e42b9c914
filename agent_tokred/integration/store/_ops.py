"""Validation and normalisation of the operations a merging store receives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.store.base import GetOp, InvalidNamespaceError, Item, ListNamespacesOp, Op, PutOp, SearchOp

from ...errors import InvalidInputError
from ...store import _layout
from ...store._layout import MERGED_PREFIX, Namespace, check_key, check_value, from_iso
from ._support import check_filter


def check_namespace(ns: object, *, for_write: bool) -> None:
    """The engine's label rules, raised as LangGraph's ``InvalidNamespaceError`` (what its stores raise)."""
    try:
        _layout.check_namespace(ns, for_write=for_write)
    except _layout.NamespaceError as exc:
        raise InvalidNamespaceError(str(exc)) from None


def archived_item(ns: Namespace, key: str, record: Mapping[str, Any]) -> Item:
    """The exact original item an archive record holds."""
    return Item(
        value=dict(record["value"]),
        key=key,
        namespace=ns,
        created_at=from_iso(record["created_at"]),
        updated_at=from_iso(record["updated_at"]),
    )


def as_tuples(op: Op) -> Op:
    # LangGraph accepts namespaces given as lists (its own tests pass some); store them as tuples.
    if isinstance(op, (GetOp, PutOp)) and isinstance(op.namespace, list):
        return op._replace(namespace=tuple(op.namespace))
    if isinstance(op, SearchOp) and isinstance(op.namespace_prefix, list):
        return op._replace(namespace_prefix=tuple(op.namespace_prefix))
    return op


def validate_op(op: Op, max_value_bytes: int) -> None:
    """Reject a malformed operation before anything of its batch is applied.

    Raises:
        InvalidNamespaceError: a malformed or reserved namespace.
        InvalidInputError: a malformed key, value, query, filter or index list.
        NotImplementedError: a TTL (not supported).
    """
    if isinstance(op, GetOp):
        check_namespace(op.namespace, for_write=False)
        check_key(op.key)
    elif isinstance(op, SearchOp):
        check_namespace(op.namespace_prefix, for_write=False)
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidInputError(f"query must be a string or None, got {type(op.query).__name__}")
        check_filter(op.filter)
    elif isinstance(op, ListNamespacesOp):
        for cond in op.match_conditions or ():
            check_namespace(tuple(cond.path), for_write=False)
    elif isinstance(op, PutOp):
        check_namespace(op.namespace, for_write=True)
        check_key(op.key)
        if op.ttl is not None:
            raise NotImplementedError("TTL is not supported by MergingStore; put with ttl=None")
        if op.value is not None:
            if op.key.startswith(MERGED_PREFIX):
                raise InvalidInputError(
                    f"keys starting with {MERGED_PREFIX!r} are merged memories: delete them, do not write"
                )
            check_value(op.namespace, op.key, op.value, max_value_bytes)
        if op.index not in (None, False) and (
            not isinstance(op.index, list) or not all(isinstance(p, str) for p in op.index)
        ):
            raise InvalidInputError(f"index must be False, None or a list of paths, got {op.index!r}")
    else:
        raise InvalidInputError(
            f"unknown operation {type(op).__name__}; valid: GetOp, SearchOp, PutOp, ListNamespacesOp"
        )
