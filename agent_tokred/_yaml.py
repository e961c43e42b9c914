"""YAML tool output as a value tree whose scalars keep their exact text, and back to YAML.

PyYAML (a well-kept library, with its C speed-ups when present) composes the document into nodes;
scalars become :class:`YamlScalar` leaves that remember their text, tag and quoting style, so a
zip code ``02134`` or a ``yes`` stays exactly as written when the pruned tree is serialised again
(a load/dump round trip would turn them into ``1116`` and ``true``). Block and flow collections keep
their style. Comments are not part of YAML's data model and are not reproduced; the archive keeps
the original.

Example:
    >>> doc = parse_yaml("events:\\n- id: 1\\n  zip: 02134\\n- id: 2\\n  zip: 10001\\n")
    >>> dump_yaml({"events": [doc["events"][1], "… 1 more events"]})
    'events:\\n- id: 2\\n  zip: 10001\\n- … 1 more events\\n'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# A YAML line: "key: ...", "key:", "- ...", or a continuation/indented line. Keys look like keys
# (words, dots, dashes, slashes, at most 48 characters, or quoted): prose that merely holds a colon,
# such as "Document [1] (Title: ...", is no key line.
_KEY_LINE = re.compile(r"""^\s*(?:-\s+)?(?:[\w$@][\w .\-/@$]{0,47}|"[^"\n]{1,60}"|'[^'\n]{1,60}'):(?:\s|$)""")
_ITEM_LINE = re.compile(r"^\s*-(?:\s|$)")
_MAX_YAML_CHARS = 5_000_000


@dataclass(frozen=True, slots=True)
class YamlScalar:
    """A YAML scalar as written: its text, resolved tag and quoting style."""

    value: str
    tag: str = _STR
    style: str | None = None

    def __str__(self) -> str:
        return self.value

    @property
    def unit_text(self) -> str:
        """The scalar as a reader sees it (what criteria score and budgets estimate)."""
        return self.value


def looks_like_yaml(text: str) -> bool:
    """Cheap pre-check: most non-blank lines are ``key: value`` or ``- item`` lines (or a flow document)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return False
    first, last = lines[0].strip(), lines[-1].strip()
    if first[:1] in "{[" and last[-1:] in "}]":  # a flow collection, on one line or several
        return True
    structural = sum(1 for ln in lines if _KEY_LINE.match(ln) or _ITEM_LINE.match(ln))
    return len(lines) >= 3 and structural >= 0.6 * len(lines)


def parse_yaml(text: str) -> Any:
    """Compose one YAML document into dicts, lists and :class:`YamlScalar` leaves.

    Returns ``None`` when the text is not a single YAML document with a mapping or sequence at its
    root, uses mapping keys that are not plain scalars, repeats a key, or uses tags other than the
    standard ones (those need a schema to be rendered faithfully).
    """
    if len(text) > _MAX_YAML_CHARS or not looks_like_yaml(text):
        return None
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    if len(nodes) != 1 or not isinstance(nodes[0], (yaml.MappingNode, yaml.SequenceNode)):
        return None
    try:
        return _from_node(nodes[0], 0)
    except _NotPlainYaml:
        return None


class _NotPlainYaml(Exception):
    pass


def _from_node(node: yaml.Node, depth: int) -> Any:
    if depth > 200:
        raise _NotPlainYaml
    if isinstance(node, yaml.ScalarNode):
        if not node.tag.startswith("tag:yaml.org,2002:"):
            raise _NotPlainYaml
        return YamlScalar(node.value, node.tag, node.style)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _NotPlainYaml
        return _Seq(_from_node(child, depth + 1) for child in node.value).styled(node.flow_style)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _NotPlainYaml
        out = _Map()
        out.flow = bool(node.flow_style)
        for key, child in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge" or key.value in out:
                raise _NotPlainYaml
            out[key.value] = _from_node(child, depth + 1)
            if key.tag != _STR or key.style is not None:
                out.key_tags[key.value] = (key.tag, key.style)
        return out
    raise _NotPlainYaml  # pragma: no cover - PyYAML has no other node kinds


class _Map(dict[str, Any]):
    """A mapping that remembers its flow style (``{a: 1}``) and the tags and quoting of its keys."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.flow = False
        self.key_tags: dict[str, tuple[str, str | None]] = {}


class _Seq(list[Any]):
    """A sequence that remembers whether it was written in flow style (``[1, 2]``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.flow = False

    def styled(self, flow: bool | None) -> _Seq:
        self.flow = bool(flow)
        return self


def dump_yaml(value: Any) -> str:
    """Serialise a (pruned) tree from :func:`parse_yaml`; plain strings (omission markers) become str scalars."""
    return yaml.serialize(
        _to_node(value), Dumper=_Dumper, allow_unicode=True, width=1_000_000, explicit_start=False
    )


def _to_node(value: Any) -> yaml.Node:
    if isinstance(value, YamlScalar):
        return yaml.ScalarNode(value.tag, value.value, style=value.style)
    if isinstance(value, dict):
        tags = getattr(value, "key_tags", {})
        pairs = [(_key_node(str(k), tags),
                  _to_node(v)) for k, v in value.items()]
        return yaml.MappingNode(_MAP, pairs, flow_style=getattr(value, "flow", False))
    if isinstance(value, list):
        return yaml.SequenceNode(_SEQ, [_to_node(v) for v in value], flow_style=getattr(value, "flow", False))
    return yaml.ScalarNode(_STR, str(value))


def _key_node(key: str, tags: dict[str, tuple[str, str | None]]) -> yaml.ScalarNode:
    tag, style = tags.get(key, (_STR, None))
    return yaml.ScalarNode(tag, key, style=style)
