"""The served graphs under a real ``langgraph dev`` server on 127.0.0.1, driven through langgraph_sdk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _langgraph_cli() -> str:
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        pytest.skip("langgraph-cli[inmem] is not installed")
    return str(cli)


@pytest.fixture(scope="module")
def served_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite file the served store writes (the test's own, not memory/store.sqlite)."""
    return tmp_path_factory.mktemp("store") / "m.sqlite"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, served_sqlite: Path) -> Iterator[str]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("langgraph") / "dev.log"
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
    }
    env.pop("AGENT_TOKRED_MODEL", None)  # the offline model
    env.pop("AGENT_TOKRED_POSTGRES_URI", None)  # the default: SQLite, in a file of this test's own
    env.pop("DATABASE_URI", None)
    env["AGENT_TOKRED_SQLITE_PATH"] = str(served_sqlite)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                _langgraph_cli(),
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-browser",
                "--no-reload",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer /ok:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # the server's own pid only
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in log_path.read_text(errors="replace")


async def test_served_react_agent_compresses_and_archives(server_url: str) -> None:
    from langgraph_sdk import get_client

    client = get_client(url=server_url)
    thread = await client.threads.create()
    out = await client.runs.wait(
        thread["thread_id"],
        "react_agent",
        input={"messages": [{"role": "user", "content": "Which service logged an ERROR?"}]},
    )
    messages = out["messages"]
    tool = next(m for m in messages if m["type"] == "tool")
    mark = tool["response_metadata"]["agent_tokred"]
    assert mark["tokens_after"] <= 400 < mark["tokens_before"]
    assert "ERROR" in tool["content"] and messages[-1]["type"] == "ai" and "ERROR" in messages[-1]["content"]
    items = await client.store.search_items(("agent_tokred", "originals", "thread", thread["thread_id"]))
    originals = {i["key"]: i["value"]["text"] for i in items["items"]}
    assert len(originals[mark["handle"]]) > len(tool["content"])
    other = await client.store.search_items(("agent_tokred", "originals", "thread", "someone-else"))
    assert other["items"] == []


async def test_served_rag_agent_compresses_documents(server_url: str) -> None:
    from langgraph_sdk import get_client

    client = get_client(url=server_url)
    thread = await client.threads.create()
    question = "How long does standard delivery take in France?"
    out = await client.runs.wait(
        thread["thread_id"], "rag_agent", input={"messages": [{"role": "user", "content": question}]}
    )
    docs = out["documents"]
    assert docs and all("agent_tokred" in d["metadata"] for d in docs)
    assert "3 to 5 working days" in " ".join(d["page_content"] for d in docs)
    assert out["messages"][-1]["type"] == "ai"


async def test_served_store_is_the_merging_store_on_sqlite(server_url: str, served_sqlite: Path) -> None:
    # langgraph.json's "store" key: memory/store.py serves a MergingStore over SQLite (MiniLM search)
    from langgraph_sdk import get_client

    client = get_client(url=server_url)
    ns = ["memory", "user", "server-test"]
    await client.store.put_item(ns, "tea", {"text": "Ana prefers green tea in the afternoon"})
    await client.store.put_item(ns, "car", {"text": "the rental car is parked on level 3, spot 41"})
    found = await client.store.search_items(ns, query="where did I park?", limit=2)
    assert found["items"][0]["key"] == "car"
    assert all(isinstance(i["score"], float) for i in found["items"])  # embedding search, not a plain list
    assert served_sqlite.exists() and served_sqlite.stat().st_size > 0
    elsewhere = await client.store.search_items(["memory", "user", "someone-else"], query="where did I park?")
    assert elsewhere["items"] == []
