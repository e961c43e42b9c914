"""Fetch LangGraph's own store tests from the source distributions matching the installed versions.

The tests are not committed here: they are downloaded at test time with ``pip download`` (sdists of
``langgraph-checkpoint`` and ``langgraph-checkpoint-sqlite``) into a cache folder, and only their
``tests/`` files are unpacked.

Usage:
    python tests/langgraph_store/fetch.py [--cache DIR]    # prints the unpacked folders
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

PACKAGES = {"core": "langgraph-checkpoint", "sqlite": "langgraph-checkpoint-sqlite"}
WANTED = ("tests/__init__.py", "tests/test_store.py", "tests/embed_test_utils.py")


def default_cache() -> Path:
    """``$AGENT_TOKRED_CACHE/langgraph-store-tests`` or ``<repo>/.cache/langgraph-store-tests``."""
    root = os.environ.get("AGENT_TOKRED_CACHE")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / ".cache"
    return base / "langgraph-store-tests"


def _unpack(sdist: Path, target: Path) -> None:
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            rel = "/".join(parts[1:])
            if rel in WANTED and member.isfile():
                member.name = rel
                tar.extract(member, target, filter="data")


def fetch(cache: Path | None = None, timeout: float = 600) -> dict[str, Path]:
    """Download (once) and unpack the store tests; returns ``{"core": dir, "sqlite": dir}``.

    Raises:
        RuntimeError: pip could not download a distribution (offline, version gone).
    """
    cache = cache or default_cache()
    out: dict[str, Path] = {}
    for name, pkg in PACKAGES.items():
        ver = version(pkg)
        target = cache / f"{pkg}-{ver}"
        if not (target / "tests" / "test_store.py").exists():
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "--disable-pip-version-check",
                    f"{pkg}=={ver}",
                    "-d",
                    tmp,
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
                sdists = sorted(Path(tmp).glob("*.tar.gz"))
                if proc.returncode != 0 or not sdists:
                    raise RuntimeError(f"pip download {pkg}=={ver} failed: {proc.stderr.strip()[-500:]}")
                target.mkdir(parents=True, exist_ok=True)
                _unpack(sdists[0], target)
            (target / "tests" / "__init__.py").touch()
        out[name] = target
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    for name, path in fetch(args.cache).items():
        print(f"{name}: {path}")
