"""Write the tool-output bench's dev cases as training records for ``agent-tokred train``.

Run: ``python -m bench.export_tool_training --out tool_dev.jsonl [--split dev]``, then train the prose
scorer on a mixture: ``agent-tokred train --data ../shared/data/nq_oracle_dev.jsonl.gz --data tool_dev.jsonl
--out my.safetensors``. Each line is ``{"query", "text", "keep", "family"}``: the user's task, the real tool
output, the evidence strings a later step needs, and the bench family it comes from (the weights' metadata
counts inputs per family). Only the dev split may be exported: the test split's tasks stay out of training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._tool_cases import load_cases


def export(out: Path, split: str = "dev") -> dict[str, int]:
    """Write ``split``'s cases to ``out``; return the record count per family."""
    if split != "dev":
        raise ValueError("only the dev split is exported for training (the test split is what we report on)")
    counts: dict[str, int] = {}
    with out.open("w", encoding="utf-8") as fh:
        for case in load_cases(split):
            keep = [e for e in case.evidence if e in case.text]
            if not keep:
                continue
            fh.write(json.dumps({"query": case.query, "text": case.text, "keep": keep, "family": case.family}) + "\n")
            counts[case.family] = counts.get(case.family, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", default="dev", choices=("dev",))
    args = p.parse_args(argv)
    counts = export(args.out, args.split)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
