"""BFCL v4 cases: the long-context tool outputs of the replayed ``multi_turn_long_context`` trajectories.

How a case is made (:mod:`bench.bfcl` replays the ground-truth calls against BFCL's own backends;
:mod:`bench.bfcl_probes` finds the arguments the model must copy from earlier outputs):

* **Text**: one tool output as the backend returns it (JSON for data, plain text otherwise); outputs of
  fewer than :data:`MIN_CHARS` characters are left out (nothing to compress).
* **Query**: the user's turn text of the turn that made the call.
* **Evidence**: the identifier probes (:func:`bench.bfcl_probes.argument_probes`, copied values of 3+
  characters, not in any user message or in the tool's schema; copied passages over 200 characters left
  out) made by a LATER call of the trajectory whose value occurs in this output as a whole token.
"""

from __future__ import annotations

import json

from ._tools_base import ToolCase, dedupe, keep_present

MIN_CHARS = 200


def build() -> list[ToolCase]:
    """Every BFCL case (all splits)."""
    from .bfcl import load_trajectories, steps
    from .bfcl_probes import argument_probes, contains

    cases: list[ToolCase] = []
    for traj in load_trajectories():
        call_of_step = {s.index: s.call_index for s in steps(traj) if s.call is not None}
        probes = [(call_of_step[p.step], p.value) for p in argument_probes(traj) if not p.passage]
        n = 0
        for turn in traj.turns:
            for call in turn.calls:
                text = call.output_text
                if len(text) >= MIN_CHARS:
                    values = [v for i, v in probes if i > n and contains(text, v)]
                    evidence = keep_present(text, values)
                    if evidence:
                        cases.append(ToolCase("bfcl", traj.id, turn.user_text, text, evidence, _fmt(text)))
                n += 1
    return dedupe(cases)


def _fmt(text: str) -> str:
    try:
        json.loads(text)
    except ValueError:
        return "text"
    return "json"
