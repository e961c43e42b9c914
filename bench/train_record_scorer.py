"""Fit the structured strategy's record scorer on the dev split of the tool-output bench.

Run: ``python -m bench.train_record_scorer [--out agent_tokred/data/record_scorer.json] [--power 1.0]``.

For every dev case (:func:`bench._tool_cases.load_cases` ``"dev"``: τ²-bench, BFCL and table tasks;
the test split's tasks never enter) and every bench rate, the output is cut into the same units the
compressor uses at that budget; a unit is a positive when it holds one of the case's evidence strings.
Each case weighs the same in total (its units share weight 1). The fit is a small seeded network
(:func:`agent_tokred.criteria.record_model.fit_model`); the JSON written records
the families, case counts and this command.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from agent_tokred._structured_input import parse_structured
from agent_tokred.criteria.lexical import lexical
from agent_tokred.criteria.record_model import (
    FEATURES,
    WEIGHTS_FILE,
    RecordEnsemble,
    fit_model,
    record_features,
)
from agent_tokred.strategies.prune import estimate_costs
from agent_tokred.strategies.structured import JsonUnits, unit_chars_for
from agent_tokred.tokens import resolve_counter

from ._tool_cases import load_cases
from ._tools_base import contains_evidence

RATES = (0.5, 0.3, 0.15)


def build_rows(split: str = "dev") -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Features, labels and weights of every unit of every structured case of ``split``, at every rate."""
    counter = resolve_counter()
    xs, ys, ws = [], [], []
    families: dict[str, int] = {}
    for case in load_cases(split):
        doc = parse_structured(case.text)
        if doc is None:
            continue
        families[case.family] = families.get(case.family, 0) + 1
        tokens = counter.count(case.text)
        for rate in RATES:
            tree = JsonUnits.build(doc.root, max_unit_chars=unit_chars_for(max(1, math.ceil(rate * tokens))),
                                   dump=doc.dump)
            units = list(tree.units)
            if not units:
                continue
            costs = estimate_costs(units, counter)
            x = record_features(units, np.asarray(lexical(units, case.query)), case.query, tree.records(),
                                [leaf.value for leaf in tree.leaves], costs)
            y = np.asarray([any(contains_evidence(u.text, e) for e in case.evidence) for u in units], dtype=float)
            xs.append(x)
            ys.append(y)
            ws.append(np.full(len(units), 1.0 / len(units)))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ws), families


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    ap.add_argument("--power", type=float, default=1.0, help="cost exponent of the ranking")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0, help="seed of the first network")
    ap.add_argument("--seeds", type=int, default=1, help="networks in the ensemble (seeds seed, seed+1, ...)")
    args = ap.parse_args(argv)
    x, y, w, families = build_rows("dev")
    nets = tuple(fit_model(x, y, w, hidden=args.hidden, epochs=args.epochs, seed=args.seed + i, power=args.power)
                 for i in range(max(1, args.seeds)))
    model = RecordEnsemble(nets, args.power)
    meta = {"command": "python -m bench.train_record_scorer " + " ".join(argv if argv is not None else sys.argv[1:]),
            "split": "dev (tasks of the test split held out)", "families": families, "units": len(y),
            "positives": int(y.sum()), "rates": list(RATES)}
    args.out.write_text(model.to_json(meta) + "\n", encoding="utf-8")
    p = model.probability(x)
    print(f"weighted log-loss {float(-(w * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum() / w.sum()):.4f}"
          f" over {len(FEATURES)} features")
    print(f"wrote {args.out} ({len(y)} units, {int(y.sum())} positives, families {families})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
