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


def test_app_commands_run_the_app_in_a_child_process_from_the_repo_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agent-tokred demo/bench`` run ``python -m <app>`` in the repository root (nothing imported here)."""
    from agent_tokred import _cli_apps

    app = tmp_path / "fakeapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "__main__.py").write_text(
        "import os, sys\nopen('ran.txt', 'w').write(os.getcwd() + '|' + ' '.join(sys.argv[1:]))\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_cli_apps, "find_repo_root", lambda package, start=None: tmp_path)
    assert _cli_apps.run_app("fakeapp", ["--quick", "--only", "x"], "fakes") == 3
    cwd, argv = (tmp_path / "ran.txt").read_text().split("|")
    assert Path(cwd) == tmp_path and argv == "--quick --only x"
    assert "fakeapp" not in sys.modules


def test_app_commands_outside_a_repo_exit_2_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent_tokred import _cli_apps

    monkeypatch.setattr(_cli_apps, "find_repo_root", lambda package, start=None: None)
    assert main(["demo", "--quick"]) == 2
    assert "run this command from a clone" in capsys.readouterr().err.lower()
