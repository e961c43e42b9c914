"""Training examples for the learned criterion: units of one input, a query, and which units to keep.

Three sources, all offline:

* **NQ** (``nq_oracle_dev.jsonl.gz`` format: ``question``, ``answers``, ``ctxs``): each question gets its
  gold passage plus hard distractor passages of *other training questions* (most similar by embedding), laid
  out like the engine bench ("Document [k] (Title: ...) ..." blocks); a sentence is positive when it holds a
  gold answer (NQ-Open normalisation), negative otherwise.
* **User logs** (JSONL ``{"query": ..., "text": ..., "keep": [substrings that must be kept]}``): the text is
  cut into units as :func:`agent_tokred.compress` would cut it (JSON fields, log lines or sentences); a unit
  is positive when it holds one of the ``keep`` strings.
* **Synthetic key/value JSON** (generated here, seeded): the field whose key the query names is positive.

Example:
    >>> ex = examples_from_user_records([{"query": "which port", "text": "Boot ok. Listening on port 8080. Bye.",
    ...                                   "keep": ["8080"]}])
    >>> [u.text.strip() for u, y in zip(ex[0].units, ex[0].labels) if y > 0]
    ['Listening on port 8080.']
"""

from __future__ import annotations

import gzip
import json
import random
import re
import string
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..units import Unit, segment

#: The engine bench's evaluation sample: ``random.Random(0).sample(range(1000), n)`` for these n.
BENCH_SAMPLES: tuple[int, ...] = (20, 200)
BENCH_SEED = 0
N_DISTRACTORS = 19

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


@dataclass(frozen=True)
class Example:
    """One training input: units, the query, binary keep labels and what must survive.

    Attributes:
        query: the question or task.
        text: the full input text (units tile it for text inputs).
        units: the scored units.
        labels: 1.0 for a unit that must be kept, 0.0 otherwise (one per unit).
        keep: the strings whose survival is the downstream reward (answers, ``keep`` substrings).
        source: ``"nq"``, ``"nq-crop"`` / ``"nq-bag"`` (short NQ inputs), ``"kv"``, or a user record's
            ``"family"`` (``"user"`` when it names none).
    """

    query: str
    text: str
    units: tuple[Unit, ...]
    labels: np.ndarray
    keep: tuple[str, ...]
    source: str


def normalize_answer(text: str) -> str:
    """NQ-Open normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``.jsonl`` or ``.jsonl.gz`` file (one JSON object per line)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training data {path} not found")
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[dict[str, Any]] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{n} is not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InvalidInputError(f"{path}:{n} must be a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def detect_format(rows: Sequence[dict[str, Any]]) -> str:
    """``"nq"`` (question/answers/ctxs) or ``"user"`` (query/text/keep); raises on anything else."""
    if rows and all({"question", "answers", "ctxs"} <= r.keys() for r in rows):
        return "nq"
    if rows and all({"query", "text", "keep"} <= r.keys() for r in rows):
        return "user"
    raise InvalidInputError(
        "training records must all be NQ ({'question', 'answers', 'ctxs'}) or user records "
        "({'query', 'text', 'keep'}); the first record has keys " + repr(sorted(rows[0]) if rows else [])
    )


def bench_question_ids(n_rows: int, samples: Iterable[int] = BENCH_SAMPLES, seed: int = BENCH_SEED) -> set[int]:
    """Indices the engine bench evaluates on (``bench.bench_engine.build_nq``'s sampling), to exclude."""
    out: set[int] = set()
    for n in samples:
        if n <= n_rows:
            out.update(random.Random(seed).sample(range(n_rows), n))
    return out


def _label_units(units: Sequence[Unit], needles: Sequence[str], normalise: bool) -> np.ndarray:
    if normalise:
        keys = [normalize_answer(a) for a in needles]
        keys = [k for k in keys if k]
        texts = [normalize_answer(u.text) for u in units]
    else:
        keys = [k for k in needles if k]
        texts = [u.text for u in units]
    return np.asarray([1.0 if any(k in t for k in keys) else 0.0 for t in texts], dtype=np.float32)


def _passage(row: dict[str, Any]) -> tuple[str, str]:
    ctx = row["ctxs"][0]
    return str(ctx.get("title", "")), str(ctx["text"])


def _layout(docs: Sequence[int], passages: Sequence[tuple[str, str]], plain: bool) -> str:
    if plain:
        return "\n\n".join(passages[j][1] for j in docs)
    return "\n\n".join(f"Document [{k + 1}] (Title: {passages[j][0]}) {passages[j][1]}" for k, j in enumerate(docs))


def _sentence_bag(units: Sequence[Unit], answers: Sequence[str], rng: random.Random) -> str:
    """One answer sentence among 1-5 other sentences, shuffled into one paragraph (position carries no hint)."""
    labels = _label_units(units, answers, normalise=True)
    pos = [u.text.strip() for u, y in zip(units, labels) if y > 0]
    neg = [u.text.strip() for u, y in zip(units, labels) if y == 0 and u.text.strip()]
    if not pos or not neg:
        return ""
    picks = [rng.choice(pos), *rng.sample(neg, min(len(neg), rng.randint(1, 5)))]
    rng.shuffle(picks)
    return " ".join(picks)


def examples_from_nq(
    rows: Sequence[dict[str, Any]],
    *,
    similarity: Callable[[list[str], list[str]], np.ndarray],
    seed: int = 0,
    n_distractors: int = N_DISTRACTORS,
    crops: bool = True,
) -> list[Example]:
    """NQ questions as bench-like inputs: gold passage + the most similar other passages, sentence units.

    Args:
        rows: NQ records; distractors come from these rows only (pass training rows only).
        similarity: ``similarity(queries, passages) -> (len(queries), len(passages))`` scores.
        seed: shuffles document order and picks the crops.
        n_distractors: distractor passages per question (fewer when ``rows`` is small).
        crops: also add two short inputs per question: the gold passage with 0-2 distractors (half of them
            as plain text without document headers), and a shuffled bag of one answer sentence and 1-5
            others, so the scorer also learns small inputs where position says nothing.

    Returns:
        Examples whose answer occurs in the input (others carry no signal), up to three per question.
    """
    rng = random.Random(seed)
    passages = [_passage(r) for r in rows]
    sims = similarity([str(r["question"]) for r in rows], [f"{t}\n{x}" for t, x in passages])
    out: list[Example] = []
    for i, row in enumerate(rows):
        order = [int(j) for j in np.argsort(-sims[i], kind="stable") if j != i][:n_distractors]
        docs = [i, *order]
        rng.shuffle(docs)
        answers = tuple(str(a) for a in row["answers"])
        texts = [_layout(docs, passages, plain=False)]
        if crops:
            small = [i, *order[: rng.randint(0, 2)]]
            rng.shuffle(small)
            texts.append(_layout(small, passages, plain=rng.random() < 0.5))
            texts.append(_sentence_bag(segment(_layout(docs, passages, plain=True), "sentence"), answers, rng))
        for text, source in zip(texts, ("nq", "nq-crop", "nq-bag")):
            units = tuple(segment(text, "sentence"))
            labels = _label_units(units, answers, normalise=True)
            if labels.any() and not labels.all():
                out.append(Example(str(row["question"]), text, units, labels, answers, source))
    return out


def units_like_compress(text: str) -> list[Unit]:
    """Cut ``text`` the way :func:`agent_tokred.compress` does: JSON fields, log lines, or sentences.

    JSON is cut as compress cuts it for a budget of about 10 % (its largest unit is as many characters
    as the budget has tokens).
    """
    from .._jsonlike import parse_json_like
    from ..compressor import detect_form
    from ..strategies.structured import JsonUnits

    parsed = parse_json_like(text)
    if parsed is not None:
        return list(JsonUnits.build(parsed[0], max_unit_chars=max(16, min(400, len(text) // 40))).units)
    return segment(text, "line" if detect_form(text) == "lines" else "sentence")


def examples_from_user_records(rows: Sequence[dict[str, Any]]) -> list[Example]:
    """Examples from ``{"query", "text", "keep"}`` records (agent logs with what the answer needed).

    An optional ``"family"`` string (e.g. ``"tau2-retail"``) names where a record comes from; it becomes the
    example's ``source``, so the weights' metadata counts training inputs per family (default ``"user"``).

    Raises:
        InvalidInputError: a record has the wrong types.
    """
    out: list[Example] = []
    for n, row in enumerate(rows, 1):
        query, text, keep = row.get("query"), row.get("text"), row.get("keep")
        if not isinstance(query, str) or not isinstance(text, str) or not isinstance(keep, list) or not all(
            isinstance(k, str) for k in keep
        ):
            raise InvalidInputError(f"record {n}: 'query' and 'text' must be strings and 'keep' a list of strings")
        units = tuple(units_like_compress(text))
        labels = _label_units(units, keep, normalise=False)
        if units and labels.any() and not labels.all():
            family = row.get("family", "user")
            if not isinstance(family, str) or not family:
                raise InvalidInputError(f"record {n}: 'family' must be a non-empty string")
            out.append(Example(query, text, units, labels, tuple(keep), family))
    return out


def synthetic_kv_examples(n: int, seed: int = 0, pairs: tuple[int, int] = (20, 80)) -> list[Example]:
    """Generated JSON key/value lookups (UUID keys and values, like the KV bench but not its data)."""
    from ..strategies.structured import JsonUnits

    rng = random.Random(seed)
    out: list[Example] = []
    for _ in range(n):
        size = rng.randint(*pairs)
        record = {str(uuid.UUID(int=rng.getrandbits(128))): str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(size)}
        key = rng.choice(list(record))
        text = json.dumps(record, indent=1)
        units = tuple(JsonUnits.build(record, max_unit_chars=240).units)
        labels = _label_units(units, [key], normalise=False)
        phrasing = rng.choice(["{k}", "value of {k}", "What is the value of key {k}?", "lookup {k}"])
        out.append(Example(phrasing.format(k=key), text, units, labels, (record[key],), "kv"))
    return out
