"""Passages of a long memory: the extra vectors that let search see inside it.

An embedding model reads only a text's first few hundred word pieces (MiniLM: 256) and squeezes
what it reads into one vector, so a detail inside a long tool output or log is invisible to a
whole-text vector. A long memory therefore also gets the vectors of a few *passages* of about
``passage_tokens`` tokens each, cut at line, sentence, comma or space boundaries (search max-pools
over all of an item's vectors). Criterion, strategy, budget over passages:

* criterion: lexical novelty within the memory: each word (3+ letters) counts ``1 / df``, ``df`` the
  number of the memory's passages holding it, so a line of prose amid a numeric table scores high
  and the fifth record of one shape scores low;
* strategy: the head passage (what the memory is: the tool call, a note atop it), then the most novel
  passages (ties: spread evenly over the text);
* budget: ``max_passages`` per memory, since every passage costs one model call's worth of tokens.

Example:
    >>> text = "\\n".join(["header line"] + [f"row {i}: 1, 2, 3" for i in range(40)] + ["the key is 42"])
    >>> passages = memory_passages(text, tokens=400, passage_tokens=32, max_passages=2)
    >>> passages[0].startswith("header line"), "the key is 42" in passages[1]
    (True, True)
"""

from __future__ import annotations

import re
from collections import Counter

# Boundaries to cut an over-long line at, best first: sentence ends, then the ends of JSON-ish
# items, then any white space; a window with none of them is cut hard.
_BREAKS = (re.compile(r"(?<=[.!?;])\s+"), re.compile(r"(?<=[,\]}])\s*"), re.compile(r"\s+"))
_WORD = re.compile(r"[^\W\d_]{3,}")


def split_passages(text: str, size_chars: int) -> list[str]:
    """Cut ``text`` into passages of at most ``size_chars`` characters, in order.

    Lines are packed together while they fit; a longer line is cut at its last boundary in the
    window (past a third of it). Blank lines are dropped. Linear in the length of ``text``.

    Example:
        >>> split_passages("a b c\\nd e f\\ng", 8)
        ['a b c', 'd e f\\ng']
    """
    size = max(1, size_chars)
    units: list[str] = []
    for line in text.splitlines():
        if line.strip():
            units.extend(_cut_line(line, size))
    out: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 1 + len(unit) > size:
            out.append(current)
            current = unit
        else:
            current = f"{current}\n{unit}" if current else unit
    if current:
        out.append(current)
    return out


def _cut_line(line: str, size: int) -> list[str]:
    out: list[str] = []
    pos, n = 0, len(line)
    while n - pos > size:
        end = pos + size
        cut = 0
        for pattern in _BREAKS:
            for m in pattern.finditer(line, pos + size // 3, end + 1):
                if pos < m.end() <= end:
                    cut = m.end()
            if cut:
                break
        cut = cut or end
        out.append(line[pos:cut])
        pos = cut
    if pos < n and line[pos:].strip():
        out.append(line[pos:])
    return out


def select_passages(passages: list[str], cap: int) -> list[str]:
    """At most ``cap`` passages in priority order: the head, then the most novel ones.

    Example:
        >>> select_passages(["head", "1 2 3", "zebra crossing", "4 5 6"], 2)
        ['head', 'zebra crossing']
    """
    if cap <= 0 or not passages:
        return []
    novelty = novelty_scores(passages)
    spread = _spread_ranks(len(passages))
    rest = sorted(range(1, len(passages)), key=lambda i: (-round(novelty[i], 9), spread[i]))
    return [passages[i] for i in [0, *rest][:cap]]


def novelty_scores(units: list[str]) -> list[float]:
    """Lexical novelty of each unit among ``units``: its distinct words (3+ letters), each counting
    ``1 / df`` (``df``: how many units hold it).

    Example:
        >>> novelty_scores(["row 1", "row 2", "a zebra here"])
        [0.5, 0.5, 2.0]
    """
    words = [{w.lower() for w in _WORD.findall(u)} for u in units]
    df = Counter(w for ws in words for w in ws)
    return [sum(1.0 / df[w] for w in ws) for ws in words]


def _spread_ranks(n: int) -> list[int]:
    """Rank of each position in an evenly spreading visit order (middle, quarters, eighths...)."""
    rank = [n] * n
    order = 0
    parts = 1
    while order < n - 1 and parts <= 2 * n:
        for j in range(parts):
            i = 1 + int((2 * j + 1) * (n - 1) / (2 * parts))
            if i < n and rank[i] == n:
                rank[i] = order
                order += 1
        parts *= 2
    return rank


def memory_passages(text: str, tokens: int, passage_tokens: int, max_passages: int) -> list[str]:
    """The passages to embed for a memory of ``tokens`` tokens (none when it is short or the cap is 0).

    A memory gets passages once it is over twice ``passage_tokens``: shorter ones are read whole by
    the model. Passage sizes are set in characters from the memory's own characters per token, so
    splitting costs no tokenizer call.
    """
    if max_passages <= 0 or tokens <= 2 * passage_tokens or not text:
        return []
    size = max(16, round(passage_tokens * len(text) / tokens))
    return select_passages(split_passages(text, size), max_passages)
