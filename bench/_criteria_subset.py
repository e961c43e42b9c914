"""Retention of several criteria on the NQ questions that one slow criterion has cached scores for.

A criterion limited by ``--limit`` in :mod:`bench.bench_criteria` is measured on a subset of the 200
questions; this puts the other criteria on exactly that subset, for a like-for-like comparison.

Run: ``python -m bench._criteria_subset --of self_information --criteria bm25,lexical,learned,attention``;
writes ``bench/out/criteria_subset.md/.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .common import OUT, markdown_table, write_outputs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--of", default="self_information")
    p.add_argument("--criteria", type=lambda s: s.split(","), default=["bm25", "lexical", "learned", "attention"])
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args(argv)
    from agent_tokred.units import segment

    from .bench_criteria import (
        _wrap,  # the same disk-cached criterion as the bench
        run_nq_rows,
    )
    from .bench_engine import RATES, build_nq

    slow = _wrap(args.of)
    items = [it for it in build_nq(args.n) if slow.has(segment(it["text"], "sentence"), it["question"])]
    names = [args.of, *args.criteria]
    res = run_nq_rows(items, names, {args.of: 0})
    cmd = f"python -m bench._criteria_subset --of {args.of} --criteria {','.join(args.criteria)}"
    rows = [[k, v["n"], *[v["rates"][str(r)]["retention"] for r in RATES]] for k, v in res.items()]
    md = markdown_table(["criterion", "n", *[f"keep {int(r * 100)}%" for r in RATES]], rows,
                        f"The {len(items)} of build_nq({args.n}) that {args.of} has scores for. Command: `{cmd}`")
    write_outputs(OUT, "criteria_subset", f"### Criteria on the questions {args.of} scored\n\n" + md,
                  {"command": cmd, "n": len(items), "nq": res})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
