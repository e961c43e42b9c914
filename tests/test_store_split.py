"""The store engine (agent_tokred.store) is LangGraph-free; MergingStore is the integration layer's."""

from __future__ import annotations

import subprocess
import sys

import pytest

ENGINE = ("consolidate", "index", "policy", "stats", "_layout", "_passages", "_pgsql", "_pgvector")


def test_the_engine_imports_no_framework() -> None:
    code = (
        "import sys\n"
        + "".join(f"import agent_tokred.store.{m}\n" for m in ENGINE)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('langgraph', 'langchain_core', 'torch'))\n"
        + "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_old_path_names_the_new_one() -> None:
    import agent_tokred.store as engine

    with pytest.raises(AttributeError, match=r"from agent_tokred\.integration import MergingStore"):
        engine.MergingStore  # noqa: B018
    with pytest.raises(ImportError):
        exec("from agent_tokred.store import MergingStore", {})


def test_the_adapter_is_a_langgraph_store_exported_by_integration() -> None:
    from langgraph.store.base import BaseStore

    from agent_tokred.integration import MergingStore
    from agent_tokred.integration.store import MergePolicy
    from agent_tokred.integration.store import MergingStore as direct
    from agent_tokred.store import MergePolicy as engine_policy

    assert MergingStore is direct and issubclass(MergingStore, BaseStore)
    assert MergePolicy is engine_policy


def test_namespace_errors_are_langgraphs_in_the_adapter_and_the_engines_below() -> None:
    from langgraph.store.base import InvalidNamespaceError

    from agent_tokred.errors import InvalidInputError
    from agent_tokred.integration.store import MergingStore
    from agent_tokred.store import _layout

    with pytest.raises(_layout.NamespaceError) as exc:
        _layout.check_namespace(("a.b",), for_write=True)
    assert isinstance(exc.value, InvalidInputError)
    store = MergingStore(embed=lambda t: [[1.0, 0.0] for _ in t])
    with pytest.raises(InvalidNamespaceError, match="reserved"):  # the engine's own rule, raised as LangGraph's
        store.get((_layout.ROOT, "x"), "k")
