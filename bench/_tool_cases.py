"""Real agent tool outputs with the user's task and the evidence later steps need: the issue-13 bench cases.

Families (each builder's docstring says exactly how its query and evidence are made):

* ``tau2-airline``, ``tau2-retail``, ``tau2-telecom`` (:mod:`bench._tools_tau2`): τ²-bench tool outputs,
  replayed from each task's ground-truth actions; evidence = values later actions or the final
  assertions need. JSON as τ² returns it, plus block and flow YAML renderings of some.
* ``bfcl`` (:mod:`bench._tools_bfcl`): BFCL v4 long-context outputs; evidence = values later calls copy.
* ``tables`` (:mod:`bench._tools_tables`): pages of vega-datasets tables in CSV/TSV/markdown/JSON/JSON
  lines/YAML; query names rows, evidence = the asked cells.
* ``code`` (:mod:`bench._tools_code`): module sources of click and requests; query = what a function does,
  evidence = its ``def`` line.

Everything comes from registry wheels (``pip download --no-deps``, nothing copied into the repository),
built once and cached as ``<cache>/cases-<family>-<source version>-v<format>.jsonl.gz`` under
``~/.cache/agent-tokred/bench_tools/`` (see :func:`bench._tools_fetch.cache_root`). The split is by task:
crc32 of ``family + task_id``, even = dev, odd = test (:func:`split_of`).

Example:
    >>> cases = load_cases("test", families=["tau2-retail"])  # doctest: +SKIP
    >>> cases[0].fmt, cases[0].evidence[:2]  # doctest: +SKIP
    ('json', ('1656367028', '1151293680'))
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from ._tools_base import FORMATS, ToolCase, contains_evidence, split_of
from ._tools_fetch import ToolDataNotAvailableError, cache_root

__all__ = ["FAMILIES", "FORMATS", "ToolCase", "ToolDataNotAvailableError", "load_cases", "split_of"]

_FORMAT = 2
Split = Literal["dev", "test", "all"]


def _tau2(domain: str) -> Callable[[], list[ToolCase]]:
    def build() -> list[ToolCase]:
        from ._tools_tau2 import build as build_domain

        return build_domain(domain)

    return build


def _bfcl() -> list[ToolCase]:
    from ._tools_bfcl import build

    return build()


def _tables() -> list[ToolCase]:
    from ._tools_tables import build

    return build()


def _code() -> list[ToolCase]:
    from ._tools_code import build

    return build()


def _versions() -> dict[str, str]:
    from ._bfcl_replay import BFCL_VERSION
    from ._tools_code import WHEELS
    from ._tools_tables import VEGA_VERSION
    from ._tools_tau2 import TAU2_VERSION

    code = "+".join(f"{p}{v}" for p, (v, _) in WHEELS.items())
    return {"tau2-airline": TAU2_VERSION, "tau2-retail": TAU2_VERSION, "tau2-telecom": TAU2_VERSION,
            "bfcl": BFCL_VERSION, "tables": VEGA_VERSION, "code": code}


FAMILIES: dict[str, Callable[[], list[ToolCase]]] = {
    "tau2-airline": _tau2("airline"),
    "tau2-retail": _tau2("retail"),
    "tau2-telecom": _tau2("telecom"),
    "bfcl": _bfcl,
    "tables": _tables,
    "code": _code,
}


def _cache_path(family: str) -> Path:
    return cache_root() / f"cases-{family}-{_versions()[family]}-v{_FORMAT}.jsonl.gz"


def _family_cases(family: str) -> list[ToolCase]:
    path = _cache_path(family)
    if path.is_file():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return [ToolCase.from_dict(json.loads(line)) for line in fh if line.strip()]
        except (OSError, ValueError, KeyError):
            pass  # a broken cache is rebuilt
    cases = [c for c in FAMILIES[family]() if _valid(c)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in cases)
    tmp.replace(path)
    return cases


def _valid(case: ToolCase) -> bool:
    return (case.fmt in FORMATS and bool(case.evidence)
            and all(len(e) >= 2 and contains_evidence(case.text, e) for e in case.evidence))


def load_cases(split: Split = "test", families: Sequence[str] | None = None) -> list[ToolCase]:
    """The cases of ``split`` for ``families`` (all by default), in family then build order.

    Args:
        split: ``"test"`` (report on it), ``"dev"`` (tune on it) or ``"all"``.
        families: names from :data:`FAMILIES`.

    Raises:
        ValueError: an unknown split or family (the message lists the valid ones).
        ToolDataNotAvailableError: a family's wheel is neither cached nor downloadable.
    """
    if split not in ("dev", "test", "all"):
        raise ValueError(f"unknown split {split!r}; valid: dev, test, all")
    names = list(families) if families else list(FAMILIES)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; valid: {', '.join(FAMILIES)}")
    out: list[ToolCase] = []
    for family in names:
        out.extend(c for c in _family_cases(family) if split == "all" or split_of(c.family, c.task_id) == split)
    return out
