"""Structure-preserving compaction of JSON: the output is valid JSON and says what it dropped.

The tree is cut into units: the smallest containers that are cheap enough to keep or drop whole
(a record, a key/value pair) and, inside containers that are too large, their children; long
strings split into sentences. A criterion scores units (query-matching fields and items win); the
prune strategy keeps the best that fit; the renderer rebuilds the tree from kept units, keeping
their ancestors, and marks every cut: an array ends with ``"… N more items"``, an object gets a
``"…": "N more fields"`` entry, a shortened string joins its kept sentences with `` … ``.

Example:
    >>> plan = JsonUnits.build({"a": [1, 2, 3], "b": "x"}, max_unit_chars=4)
    >>> [u.path for u in plan.units]
    ['$.a[0]', '$.a[1]', '$.a[2]', '$.b']
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._jsonlike import RawNumber
from ..units import Unit, segment

OMITTED_KEY = "…"
#: Weight of the array-head prior added to min-max normalised criterion scores.
ARRAY_HEAD_PRIOR = 0.5
_INDEX = re.compile(r"\[(\d+)\]$")


# a RawNumber is serialised as a string carrying this per-process nonce, then unquoted
_RAW_MARK = f"\x00{secrets.token_hex(8)}\x00"
_RAW_PLACEHOLDER = re.compile(r'"\\u0000' + _RAW_MARK[1:-1] + r'\\u0000([^"\\]*)"')


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (fewer tokens, readable CJK); numbers kept as written."""
    raw = False

    def _raw_number(obj: Any) -> str:
        nonlocal raw
        if isinstance(obj, RawNumber):
            raw = True
            return _RAW_MARK + obj.text
        text = getattr(obj, "unit_text", None)  # YAML scalars, table rows: measured and scored by their text
        if isinstance(text, str):
            return text
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    out = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_raw_number)
    return _RAW_PLACEHOLDER.sub(r"\1", out) if raw else out


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


@dataclass(frozen=True)
class _Leaf:
    steps: tuple[str | int, ...]  # keys / indices from the root
    value: Any
    piece: int = -1  # >= 0: sentence index inside a split string


@dataclass(frozen=True)
class JsonUnits:
    """A JSON value (or any tree of dicts, lists and leaves) cut into units, with what is needed to
    rebuild a pruned copy and to render it (``dump``: compact JSON by default; YAML, JSON lines and
    tables pass their own)."""

    root: Any
    units: tuple[Unit, ...]
    leaves: tuple[_Leaf, ...]
    dump: Callable[[Any], str] = dumps

    @classmethod
    def build(cls, root: Any, max_unit_chars: int = 240, dump: Callable[[Any], str] = dumps) -> JsonUnits:
        """Cut ``root`` into units no larger than ``max_unit_chars`` of compact JSON where possible."""
        units: list[Unit] = []
        leaves: list[_Leaf] = []
        group = 0

        def add(text: str, path: str, steps: tuple[str | int, ...], value: Any, piece: int = -1) -> None:
            units.append(Unit(text=text, kind="field", index=len(units), group=group, path=path))
            leaves.append(_Leaf(steps, value, piece))

        def walk(value: Any, path: str, steps: tuple[str | int, ...], label: str) -> None:
            nonlocal group
            is_container = isinstance(value, (dict, list)) and len(value) > 0
            text = _splittable_text(value)
            splittable = is_container or text is not None
            # a large container is cut without dumping it whole first (only units are dumped)
            dumped = "" if splittable and _longer_than(value, max_unit_chars) else dumps(value)
            if dumped and (len(dumped) <= max_unit_chars or not splittable):
                shown = value.unit_text if hasattr(value, "unit_text") else dumped
                add(f"{label}: {shown}" if label else shown, path, steps, value)
                return
            if text is not None:
                sentences = segment(text, "sentence")
                if len(sentences) <= 1:
                    sentences = segment(text, "word")
                for k, s in enumerate(sentences):
                    add(f"{label}: {s.text}" if label else s.text, path, steps, s.text, piece=k)
                return
            group += 1
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                name = key if isinstance(key, str) else label
                walk(child, _child_path(path, key), (*steps, key), str(name))

        walk(root, "$", (), "")
        return cls(root=root, units=tuple(units), leaves=tuple(leaves), dump=dump)

    def records(self) -> list[tuple[tuple[str | int, ...], ...]]:
        """For each unit, the records it lies in, outermost first.

        A record is an element of a collection: an array, or an object whose values are at least
        three objects with mostly the same keys (``{"9612497925": {...}, "8124970213": {...}}``).
        """
        memo: dict[tuple[str | int, ...], bool] = {}

        def is_collection(value: Any, at: tuple[str | int, ...]) -> bool:
            if at not in memo:
                memo[at] = isinstance(value, list) or _record_dict(value)
            return memo[at]

        out: list[tuple[tuple[str | int, ...], ...]] = []
        for leaf in self.leaves:
            value, found = self.root, []
            for depth, step in enumerate(leaf.steps):
                if not isinstance(value, (dict, list)):
                    break
                if is_collection(value, leaf.steps[:depth]):
                    found.append(leaf.steps[: depth + 1])
                value = value[step]  # type: ignore[index]  # steps came from walking this tree
            out.append(tuple(found))
        return out

    def render(self, keep: Sequence[int]) -> str:
        """The tree restricted to the kept units, with omission markers, in the input's format."""
        return self.dump(self.rebuild(keep))

    def rebuild(self, keep: Sequence[int]) -> Any:
        """The pruned value (not serialised)."""
        kept_leaves = [self.leaves[i] for i in keep]
        whole = {lf.steps for lf in kept_leaves if lf.piece < 0}
        pieces: dict[tuple[str | int, ...], list[int]] = {}
        for lf in kept_leaves:
            if lf.piece >= 0:
                pieces.setdefault(lf.steps, []).append(lf.piece)
        all_pieces: dict[tuple[str | int, ...], list[str]] = {}
        for lf in self.leaves:
            if lf.piece >= 0:
                all_pieces.setdefault(lf.steps, []).append(lf.value)
        prefixes = {s[:k] for s in [*whole, *pieces] for k in range(len(s) + 1)}

        def build(value: Any, steps: tuple[str | int, ...]) -> Any:
            if steps in whole:
                return value
            if steps in pieces:
                return _join_pieces(all_pieces[steps], sorted(pieces[steps]))
            if isinstance(value, dict):
                out: dict[str, Any] = {}
                for key, child in value.items():
                    if (*steps, key) in prefixes:
                        out[key] = build(child, (*steps, key))
                dropped = len(value) - len(out)
                if dropped:
                    out[OMITTED_KEY if OMITTED_KEY not in value else OMITTED_KEY * 2] = (
                        f"{dropped} more field{'s' if dropped != 1 else ''}"
                    )
                return _like(value, out)
            if isinstance(value, list):
                kept = [build(child, (*steps, i)) for i, child in enumerate(value) if (*steps, i) in prefixes]
                dropped = len(value) - len(kept)
                if dropped:
                    kept.append(f"… {dropped} more {_noun(steps, dropped, self.dump is dumps)}")
                return _like(value, kept)
            return value

        if not prefixes:
            return _empty_like(self.root)
        return build(self.root, ())


def unit_chars_for(budget_tokens: int) -> int:
    """How large (in compact characters) a tree node may be and still be one unit, for a budget."""
    return max(16, min(400, budget_tokens))


def _longer_than(value: Any, limit: int) -> bool:
    """Whether compact JSON of ``value`` is surely over ``limit`` characters: a lower bound on its length
    (strings with their quotes, one character per other leaf, brackets and separators), stopping early."""
    stack, size = [value], 0
    while stack and size <= limit:
        v = stack.pop()
        if isinstance(v, str):
            size += len(v) + 2
        elif isinstance(v, dict):
            size += 1 + 2 * len(v) + sum(len(k) + 2 if isinstance(k, str) else 1 for k in v)
            stack.extend(v.values())
        elif isinstance(v, list):
            size += 1 + len(v)
            stack.extend(v)
        else:
            size += 1
    return size > limit


def _record_dict(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) < 3:
        return False
    children = list(value.values())
    if not all(isinstance(c, dict) and c for c in children):
        return False
    first = set(children[0])
    return sum(1 for c in children if len(first & set(c)) * 2 >= max(len(first), len(c))) >= 0.8 * len(children)


def _splittable_text(value: Any) -> str | None:
    """The text of a string leaf that may be cut into sentences (a str, or a YAML string scalar)."""
    if isinstance(value, str):
        return value
    if getattr(value, "tag", None) == "tag:yaml.org,2002:str":
        return str(value)
    return None


def _like(original: Any, built: Any) -> Any:
    """Rebuild a container as the same type as its original (YAML containers carry their style)."""
    kind = type(original)
    if kind in (dict, list):
        return built
    out = kind(built)
    out.__dict__.update(original.__dict__)
    return out


def _noun(steps: tuple[str | int, ...], count: int, json_out: bool) -> str:
    """What dropped array entries are called: ``items``, or the array's own plural key (``events``)."""
    key = steps[-1] if steps else None
    if not json_out and isinstance(key, str) and len(key) > 3 and key.isalpha() and key.endswith("s"):
        word = key.lower()
        return word if count != 1 else word[:-1]
    return "items" if count != 1 else "item"


def _join_pieces(all_pieces: list[str], keep: list[int]) -> str:
    out: list[str] = []
    prev = -1
    for k in keep:
        if k != prev + 1:
            out.append("… ")
        out.append(all_pieces[k])
        prev = k
    if prev != len(all_pieces) - 1:
        out.append(" …")
    return "".join(out).strip()


def _empty_like(root: Any) -> Any:
    if isinstance(root, dict):
        return {OMITTED_KEY: f"{len(root)} field{'s' if len(root) != 1 else ''} omitted"} if root else {}
    if isinstance(root, list):
        return [f"… {len(root)} item{'s' if len(root) != 1 else ''} omitted"] if root else []
    return root


def array_head_prior(units: Sequence[Unit]) -> np.ndarray:
    """``1 / (1 + i)`` for a unit that is item ``i`` of an array, else 0.

    Lists in API responses are ordered and agents ask for "the first one" next: measured on BFCL
    trajectories, this prior lifts argument survival from 98.6% to 100% at equal tokens.
    """
    prior = np.zeros(len(units))
    for k, unit in enumerate(units):
        m = _INDEX.search(unit.path)
        if m:
            prior[k] = 1.0 / (1.0 + int(m.group(1)))
    return prior


def dropped_paths(units: Sequence[Unit], keep: Sequence[int]) -> tuple[str, ...]:
    """Paths of units not kept (a split string appears once)."""
    kept = set(keep)
    seen: dict[str, None] = {}
    for i, u in enumerate(units):
        if i not in kept:
            seen.setdefault(u.path, None)
    return tuple(seen)
