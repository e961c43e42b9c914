"""A static, self-contained HTML report of agent runs: what was kept, what was dropped, tokens per step.

One page, no server, no network: inline CSS, inline SVG charts, PNGs (when given) embedded as base64
``data:`` URIs, and a Content-Security-Policy that forbids loading anything from elsewhere. Every piece
of content is HTML-escaped. Each reduced item shows its original with the dropped text greyed out and
struck through and the kept text in full; long dropped stretches are shortened in the view (the page
says by how much) so a 20k-token tool output does not make the page unreadable.

The only script is a two-line self-check: the page sets ``data-render-ok="yes"`` on ``<html>`` when
no script error fired while it loaded (tests open the page in headless Chromium and look for it).

Example:
    >>> from agent_tokred.report.records import ComponentTokens, ItemRecord, RunRecord, StepRecord
    >>> step = StepRecord(0, (ComponentTokens("tool outputs", 900, 300),))
    >>> item = ItemRecord("tool output", (("kept ", True), ("dropped", False)), 900, 300)
    >>> page = render_report([RunRecord("d", "Demo", (step,), (item,))], title="Run")
    >>> '<s class="drop">dropped</s>' in page
    True
"""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._svg import line_chart
from .records import ItemRecord, RunRecord, summary_rows

WITHOUT_COLOUR = "#b03a2e"
WITH_COLOUR = "#1f618d"
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1c2833;background:#fbfcfc}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:21px;margin:40px 0 6px;border-bottom:2px solid #d5dbdb}
h3{font-size:16px;margin:22px 0 6px}.sub{color:#566573;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #d5dbdb;padding:4px 9px;text-align:right}th{background:#eaeded}
td:first-child,th:first-child{text-align:left}
.mode{display:inline-block;padding:1px 8px;border-radius:10px;background:#fdebd0;color:#7e5109;font-size:13px}
.chart{max-width:100%;height:auto;background:#fff;border:1px solid #e5e8e8}
.chart .grid{stroke:#eaeded}.chart .mark{stroke:#aab7b8;stroke-dasharray:4 3}.chart .tick,.chart .legend{font-size:11px;fill:#566573}
.chart .axis{font-size:12px;fill:#273746}.chart .ctitle{font-size:13px;font-weight:600;fill:#1c2833}
details{border:1px solid #d5dbdb;border-radius:6px;margin:8px 0;background:#fff}
summary{cursor:pointer;padding:6px 10px;font-weight:600}summary .meta{font-weight:400;color:#566573}
.item{white-space:pre-wrap;word-break:break-word;font:12.5px/1.5 ui-monospace,Menlo,Consolas,monospace;
margin:0;padding:8px 12px;border-top:1px solid #eaeded;max-height:560px;overflow:auto}
.keep{color:#17202a;background:#e8f6f3}.drop{color:#aab7b8;text-decoration-color:#d5dbdb}
.elided{color:#7f8c8d;font-style:italic;background:#f4f6f6}
.legendbar span{margin-right:14px}.note{color:#7e5109}img.plot{max-width:100%;border:1px solid #e5e8e8}
"""

_SELF_CHECK_HEAD = ("<script>window.__tokredErrors=0;"
                    "window.addEventListener('error',function(){window.__tokredErrors+=1;});</script>")
_SELF_CHECK_TAIL = ("<script>document.documentElement.setAttribute('data-render-ok',"
                    "window.__tokredErrors===0?'yes':'no');</script>")


def _num(v: object) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return escape(str(v))


def _table(rows: Sequence[Mapping[str, object]]) -> str:
    if not rows:
        return ""
    headers: list[str] = []
    for r in rows:
        headers += [k for k in r if k not in headers]
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_num(r.get(h, ''))}</td>" for h in headers) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _segment_html(text: str, kept: bool, max_dropped_chars: int) -> str:
    if kept:
        return f'<span class="keep">{escape(text)}</span>'
    if max_dropped_chars and len(text) > max_dropped_chars:
        head = max_dropped_chars * 3 // 4
        tail = max_dropped_chars - head
        hidden = len(text) - head - tail
        return (f'<s class="drop">{escape(text[:head])}</s>'
                f'<span class="elided"> [… {hidden:,} more dropped characters not shown here …] </span>'
                f'<s class="drop">{escape(text[len(text) - tail:])}</s>')
    return f'<s class="drop">{escape(text)}</s>'


def render_item(item: ItemRecord, *, max_dropped_chars: int = 3000, open_: bool = False) -> str:
    """One reduced item as a ``<details>`` block: dropped text greyed out, kept text in full."""
    kept_share = item.kept_chars / max(1, item.kept_chars + item.dropped_chars)
    meta = (f"{item.tokens_before:,} → {item.tokens_after:,} tokens · {kept_share:.0%} of characters kept"
            + (f" · step {item.step}" if item.step is not None else "")
            + (f" · {escape(item.kind)}" if item.kind else ""))
    extra = ""
    if item.handle:
        extra += f'<div class="sub" style="padding:0 12px">original archived as <code>{escape(item.handle)}</code></div>'
    if item.note:
        extra += f'<div class="note" style="padding:0 12px">{escape(item.note)}</div>'
    body = "".join(_segment_html(t, k, max_dropped_chars) for t, k in item.segments)
    return (f"<details{' open' if open_ else ''}><summary>{escape(item.title)} <span class=\"meta\">{meta}</span>"
            f"</summary>{extra}<pre class=\"item\">{body}</pre></details>")


def _png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def render_run(run: RunRecord, *, max_items: int = 60, max_dropped_chars: int = 3000) -> str:
    """The section of the page for one run."""
    out = [f'<section id="run-{escape(run.name)}"><h2>{escape(run.title)}</h2>',
           f'<p class="sub"><span class="mode">{escape(run.mode)}</span> {escape(run.description)}</p>']
    totals = [{"steps": len(run.steps), "context tokens without": run.tokens_without,
               "context tokens with": run.tokens_with, "saved": f"{run.saved_share:.1%}",
               **{k: v for k, v in run.metrics}, "seconds": round(run.seconds, 1)}]
    out.append(_table(totals))
    if run.steps:
        out.append(line_chart(
            [("without agent-tokred", WITHOUT_COLOUR, [s.tokens_before for s in run.steps]),
             ("with agent-tokred", WITH_COLOUR, [s.tokens_after for s in run.steps])],
            title=f"{run.title}: context tokens per step", marks=run.group_starts()))
        comp_rows = [{"component": name, "tokens without": b, "tokens with": a, "saved": b - a,
                      "saved %": f"{(1 - a / b):.1%}" if b else "-"}
                     for name, (b, a) in run.component_totals().items()]
        out.append("<h3>Tokens per component (all steps)</h3>" + _table(comp_rows))
    if run.items:
        shown = run.items[:max_items]
        out.append(f"<h3>Reduced items ({len(shown)} of {len(run.items)})</h3>")
        out.append('<p class="legendbar"><span class="keep">kept text</span>'
                   '<s class="drop">dropped text</s></p>')
        out += [render_item(it, max_dropped_chars=max_dropped_chars, open_=(i == 0)) for i, it in enumerate(shown)]
    out.append("</section>")
    return "".join(out)


def render_report(
    runs: Sequence[RunRecord],
    *,
    title: str = "agent-tokred report",
    subtitle: str = "",
    images: Sequence[tuple[str, Path]] = (),
    generated: _dt.datetime | None = None,
    max_items: int = 60,
    max_dropped_chars: int = 3000,
) -> str:
    """The whole page as a string.

    Args:
        runs: one section per run, in order.
        title: the page title.
        subtitle: one line under the title (e.g. how the agents were driven).
        images: ``(caption, png_path)`` pairs embedded as base64 (e.g. the matplotlib plots).
        generated: the time shown on the page (now by default).
        max_items: at most this many items per run are shown.
        max_dropped_chars: a dropped stretch longer than this is shortened in the view (0: never).
    """
    if not runs:
        raise InvalidInputError("render_report needs at least one RunRecord")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"run names must be unique, got {names}")
    when = (generated or _dt.datetime.now()).strftime("%Y-%m-%d %H:%M")
    nav = " · ".join(f'<a href="#run-{escape(r.name)}">{escape(r.title)}</a>' for r in runs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style>{_SELF_CHECK_HEAD}</head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(subtitle)} Generated {escape(when)}.</p>' if subtitle
        else f'<p class="sub">Generated {escape(when)}.</p>',
        f"<p>{nav}</p>",
        "<h2>Summary</h2>",
        _table(summary_rows(runs)),
    ]
    for caption, path in images:
        parts.append(f"<h3>{escape(caption)}</h3>{_png_tag(Path(path), caption)}")
    parts += [render_run(r, max_items=max_items, max_dropped_chars=max_dropped_chars) for r in runs]
    parts.append(f"</main>{_SELF_CHECK_TAIL}</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, runs: Sequence[RunRecord], **options: Any) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path.

    ``options`` are :func:`render_report`'s keywords (``title``, ``subtitle``, ``images``, ...).

    Example:
        >>> import tempfile, pathlib
        >>> from agent_tokred.report.records import RunRecord
        >>> p = write_report(pathlib.Path(tempfile.mkdtemp()) / "r.html", [RunRecord("a", "A")])
        >>> p.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        True
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(runs, **options)
    out.write_text(page, encoding="utf-8")
    return out
