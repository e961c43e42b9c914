"""Delimited tables (CSV, TSV) and markdown tables as a header plus row records, and back.

A row is one record: it is kept or dropped whole and its text is kept verbatim, so quoting and
spacing survive. For scoring, a row reads as ``column: cell`` pairs, so no cell is ever judged
without its column name. Dropped rows become one row that says how many (``… 37 more rows``),
padded to the table's width so the output still parses as a table of the same shape.

Example:
    >>> t = parse_table("name,city\\nAda,London\\nAlan,Wilmslow\\nGrace,Arlington\\n")
    >>> t.fmt, len(t.rows), t.rows[1].unit_text
    ('csv', 3, 'name: Alan; city: Wilmslow')
    >>> t.render([t.rows[2], "… 2 more rows"])
    'name,city\\nGrace,Arlington\\n… 2 more rows,\\n'
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

TableFormat = Literal["csv", "tsv", "markdown"]
_MD_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MAX_TABLE_CHARS = 20_000_000


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: its verbatim line and its cells named by column."""

    line: str
    unit_text: str

    def __str__(self) -> str:
        return self.unit_text


@dataclass(frozen=True)
class Table:
    """A parsed table: the lines before the rows (title, header, separator), the rows, the width."""

    fmt: TableFormat
    head: str
    rows: tuple[Row, ...]
    width: int
    tail: str = ""
    newline: str = "\n"

    def render(self, kept: Sequence[Row | str]) -> str:
        """The head, the kept rows verbatim, and each omission note as a row of the table's width."""
        out = [self.head]
        for row in kept:
            out.append((row.line if isinstance(row, Row) else self._note_row(row)) + self.newline)
        return "".join(out) + self.tail

    def _note_row(self, note: str) -> str:
        if self.fmt == "markdown":
            return "| " + note + " |" + " |" * (self.width - 1)
        buf = io.StringIO()
        csv.writer(buf, delimiter="," if self.fmt == "csv" else "\t", lineterminator="").writerow(
            [note] + [""] * (self.width - 1))
        return buf.getvalue()


def parse_table(text: str) -> Table | None:
    """A CSV/TSV table (one header row, the same number of cells on every row) or a markdown table.

    Returns ``None`` for anything else: too few rows, ragged rows, a single column, prose with commas.
    """
    if len(text) > _MAX_TABLE_CHARS or "\n" not in text.strip():
        return None
    return _parse_markdown(text) or _parse_delimited(text)


def _split_lines(text: str) -> tuple[list[str], str]:
    newline = "\r\n" if "\r\n" in text else "\n"
    return text.split(newline), newline


def _parse_markdown(text: str) -> Table | None:
    lines, nl = _split_lines(text)
    sep = next((i for i, ln in enumerate(lines[:12]) if _MD_SEP.match(ln) and "|" in ln), -1)
    if sep < 1 or not lines[sep - 1].strip().startswith("|"):
        return None
    header = _md_cells(lines[sep - 1])
    body: list[str] = []
    end = sep + 1
    while end < len(lines) and lines[end].strip().startswith("|"):
        body.append(lines[end])
        end += 1
    if len(body) < 3 or len(header) < 2:
        return None
    rows = tuple(Row(ln, _named(header, _md_cells(ln))) for ln in body)
    head = nl.join(lines[: sep + 1]) + nl
    tail = nl.join(lines[end:])
    return Table("markdown", head, rows, len(header), tail, nl)


def _md_cells(line: str) -> list[str]:
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") else s
    return [c.strip() for c in s.split("|")]


def _parse_delimited(text: str) -> Table | None:
    lines, nl = _split_lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 4:
        return None
    for delim, fmt in (("\t", "tsv"), (",", "csv")):
        if delim not in lines[0]:
            continue
        try:
            parsed = list(csv.reader(lines, delimiter=delim, strict=True))
        except csv.Error:
            continue
        width = len(parsed[0])
        # Rows are lines (no quoted cell spans lines), every row has the header's width.
        if len(parsed) != len(lines) or width < 2 or any(len(r) != width for r in parsed):
            continue
        if not _header_like(parsed[0]):
            continue
        rows = tuple(Row(ln, _named(parsed[0], cells)) for ln, cells in zip(lines[1:], parsed[1:]))
        return Table(fmt, lines[0] + nl, rows, width, "", nl)  # type: ignore[arg-type]
    return None


def _header_like(cells: Sequence[str]) -> bool:
    names = [c.strip() for c in cells]
    return all(names) and len(set(names)) == len(names) and not any(_is_number(c) for c in names)


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def _named(header: Sequence[str], cells: Sequence[str]) -> str:
    return "; ".join(f"{h}: {c}" for h, c in zip(header, cells) if c != "")
