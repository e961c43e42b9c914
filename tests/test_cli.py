from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent_tokred.cli import main


def test_compress_file_json_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "out.json"
    src.write_text(json.dumps({"rows": [{"id": f"r{i}", "v": i} for i in range(200)]}))
    assert main(["compress", str(src), "--query", "r150", "--target-tokens", "40", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tokens_after"] <= 40 and "original" not in record
    assert "r150" in record["text"] and isinstance(json.loads(record["text"]), dict)


def test_compress_stdin_prints_text_and_summary() -> None:
    text = " ".join(f"Sentence {i} is filler." for i in range(100)) + " The key is 4411."
    res = subprocess.run([sys.executable, "-m", "agent_tokred", "compress", "-", "--rate", "0.2", "--query", "key",
                          "--criterion", "lexical"], input=text, capture_output=True, text=True, check=True)
    assert "4411" in res.stdout and "[agent-tokred]" in res.stderr


@pytest.mark.parametrize(
    "argv",
    [["compress", "-", "--rate", "1.5"], ["compress", "-", "--rate", "0.5", "--criterion", "nope"],
     ["compress", "/no/such/file", "--rate", "0.5"]],
)
def test_errors_exit_2_with_a_message(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"some text here")))
    assert main(argv) == 2
    assert "agent-tokred: error:" in capsys.readouterr().err


def test_binary_input_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe\x00\x01binary")))
    assert main(["compress", "-", "--rate", "0.5"]) == 2
    assert "UTF-8" in capsys.readouterr().err
