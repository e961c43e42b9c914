"""Table cases: pages of real data tables (the ``vega-datasets`` wheel) as query results in six formats.

How a case is made, per table (airports, cars, stocks, LA riots victims, US employment, Seattle weather):

* **Text**: a page of 40, 80 or 160 consecutive rows starting at a seeded offset (a database query result
  or a paged API response), rendered as CSV, TSV, a markdown table, a JSON array of objects, JSON lines
  or block YAML (the format rotates with the page; numbers are numbers in JSON and YAML).
* **Query**: a task naming 1 to 3 rows of the page by their key columns (an airport's name and city, a
  car's name and model year, a stock symbol and date, ...), asking for other cells of those rows, e.g.
  "What are the IATA code and coordinates of Thigpen in Bay Springs, MS?". Rows are picked seeded.
* **Evidence**: the asked cells of the named rows as the text renders them, kept only when the string
  occurs exactly once in the page (a value repeated in other rows would count as kept without the row).
  Pages without such a cell are dropped.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._tools_base import ToolCase, yaml_block
from ._tools_fetch import fetch_wheel

VEGA_VERSION = "0.9.0"
PAGES_PER_TABLE = 40
PAGE_ROWS = (40, 80, 160)
FORMATS = ("csv", "json", "markdown", "jsonl", "tsv", "yaml")


@dataclass(frozen=True)
class _Table:
    file: str
    keys: tuple[str, ...]
    answers: tuple[str, ...]
    template: str  # formatted with the row's cells


TABLES: dict[str, _Table] = {
    "airports": _Table("airports.csv", ("name", "city", "state"), ("iata", "latitude", "longitude"),
                       "What are the IATA code and coordinates of {name} in {city}, {state}?"),
    "cars": _Table("cars.json", ("Name", "Year"), ("Horsepower", "Weight_in_lbs", "Acceleration"),
                   "What horsepower, weight and acceleration does the {Name} of model year {Year} have?"),
    "stocks": _Table("stocks.csv", ("symbol", "date"), ("price",), "What was the {symbol} share price on {date}?"),
    "la-riots": _Table("la-riots.csv", ("first_name", "last_name"), ("address", "longitude", "latitude"),
                       "Where (address and coordinates) did {first_name} {last_name} die?"),
    "us-employment": _Table("us-employment.csv", ("month",),
                            ("nonfarm", "construction", "manufacturing", "government"),
                            "How many nonfarm, construction, manufacturing and government jobs (thousands) "
                            "were there in the month starting {month}?"),
    "seattle-weather": _Table("seattle-weather.csv", ("date",), ("precipitation", "temp_max", "temp_min", "wind"),
                              "What were the precipitation, highest and lowest temperature and wind in Seattle "
                              "on {date}?"),
}


def fetch_vega() -> Path:
    """The unzipped ``vega-datasets`` wheel's data files."""
    root = fetch_wheel("vega-datasets", VEGA_VERSION, lambda n: n.startswith("vega_datasets/_data/"),
                       "vega_datasets/_data/airports.csv")
    return root / "vega_datasets" / "_data"


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if str(value) == text else text
    return text


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A table's rows, numbers as numbers (strings kept when the number would print differently)."""
    if path.suffix == ".json":
        return [dict(r) for r in json.loads(path.read_text(encoding="utf-8"))]
    with path.open(encoding="utf-8", newline="") as fh:
        return [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def cell(value: Any) -> str:
    """A cell as every rendering writes it (JSON's spelling for numbers)."""
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """``rows`` as a tool would return them in ``fmt``."""
    cols = list(rows[0])
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(cols)
        writer.writerows([[cell(r.get(c)) for c in cols] for r in rows])
        return buf.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(r.get(c)).replace("|", "\\|") for c in cols) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2)
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return yaml_block(rows)


def build() -> list[ToolCase]:
    """Every table case (all splits)."""
    data = fetch_vega()
    cases: list[ToolCase] = []
    for name, table in TABLES.items():
        rows = read_rows(data / table.file)
        for page in range(PAGES_PER_TABLE):
            rng = random.Random(f"{name}:{page}")
            size = min(PAGE_ROWS[page % len(PAGE_ROWS)], len(rows))
            start = rng.randrange(0, len(rows) - size + 1)
            window = rows[start:start + size]
            fmt = FORMATS[page % len(FORMATS)]
            text = render(window, fmt)
            targets = rng.sample(window, k=1 + page % 3)
            query = " Also: ".join(table.template.format(**{k: cell(t[k]) for k in table.keys}) for t in targets)
            evidence = [cell(t[a]) for t in targets for a in table.answers]
            evidence = [e for e in dict.fromkeys(evidence) if len(e) >= 2 and text.count(e) == 1]
            if evidence:
                cases.append(ToolCase("tables", f"{name}-{page}", query, text, tuple(evidence), fmt))
    return cases
