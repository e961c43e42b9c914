"""The static HTML report and the plots: content, escaping, self-containment, and a real browser render."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent_tokred import compress
from agent_tokred.errors import InvalidInputError
from agent_tokred.report import (
    ComponentTokens,
    ItemRecord,
    RunRecord,
    StepRecord,
    render_report,
    segments_from_texts,
    write_report,
)

EVIL = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)


def make_run(name: str = "tools", n_steps: int = 6) -> RunRecord:
    text = "Paris is the capital of France. " * 40 + "The order id is ORD-77131. " + EVIL + " Lyon is big. " * 20
    red = compress(text, query="what is the order id", target_tokens=40, criterion="lexical")
    steps = tuple(
        StepRecord.from_counts(
            i, {"tool outputs": 1000 + 700 * i, "history": 100 * i}, {"tool outputs": 300 + 90 * i, "history": 60 * i},
            label=f"call {i}",
        )
        for i in range(n_steps)
    )
    items = (
        ItemRecord.from_reduction(red, "tool output: get_order", step=2, kind="tool outputs"),
        ItemRecord("document 7 (dropped)", ((EVIL + " dropped whole", False),), 50, 0, note="dropped under the total budget"),
    )
    return RunRecord(name, f"Agent {name}", steps, items, mode="replayed", description="A replayed agent.",
                     metrics=(("argument survival", "100%"),), seconds=1.5)


def test_totals_and_component_sums() -> None:
    run = make_run()
    assert run.tokens_without == sum(1000 + 800 * i for i in range(6))
    assert run.tokens_with == sum(300 + 150 * i for i in range(6))
    totals = run.component_totals()
    assert list(totals) == ["tool outputs", "history"]
    assert sum(b for b, _ in totals.values()) == run.tokens_without


@pytest.mark.parametrize(
    ("original", "reduced"),
    [("a b c d", "a … d"), ("same text", "same text"), ('{"a": 1, "b": [1, 2, 3]}', '{"a": 1}'), ("x", ""), ("", "")],
)
def test_segments_tile_the_original(original: str, reduced: str) -> None:
    segs = segments_from_texts(original, reduced)
    assert "".join(t for t, _ in segs) == original
    kept_words = [w for t, k in segs if k for w in t.split()]
    assert all(w in reduced for w in kept_words)


def test_item_from_reduction_tiles_original() -> None:
    item = make_run().items[0]
    assert "ORD-77131" in item.original
    assert item.kept_chars > 0 and item.dropped_chars > 0


def test_bad_records_raise() -> None:
    with pytest.raises(InvalidInputError):
        ComponentTokens("x", -1, 0)
    with pytest.raises(InvalidInputError):
        RunRecord("bad name!", "t")
    with pytest.raises(InvalidInputError):
        StepRecord.from_counts(0, {"a": 1}, {"b": 1})
    with pytest.raises(InvalidInputError):
        render_report([])


def test_page_is_escaped_and_self_contained() -> None:
    page = render_report([make_run("a"), make_run("b")], title="T <x>")
    assert "<script>document.title" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "T &lt;x&gt;" in page
    # no external resource: no http(s) URL in any src/href attribute, CSP forbids anything but data: images
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert "default-src 'none'" in page
    assert page.count('<s class="drop">') >= 2 and 'class="keep"' in page
    assert page.count("<svg") == 2 and 'id="run-a"' in page and 'id="run-b"' in page


def test_long_dropped_stretch_is_shortened_in_view() -> None:
    item = ItemRecord("big", (("kept", True), ("z" * 10_000, False)), 2000, 1)
    page = render_report([RunRecord("x", "X", items=(item,))], max_dropped_chars=1000)
    assert "more dropped characters not shown" in page and "z" * 2000 not in page
    assert "kept" in page


def test_plots_write_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from agent_tokred.report.plots import plot_component_savings, plot_context_tokens

    runs = [make_run("a"), make_run("b", 3), make_run("c", 9)]
    for fn, name in ((plot_context_tokens, "ctx.png"), (plot_component_savings, "comp.png")):
        path = fn(runs, tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with pytest.raises(InvalidInputError):
        plot_context_tokens([RunRecord("empty", "E")], tmp_path / "none.png")


def run_chromium(page: Path, tmp_path: Path) -> tuple[str, str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom"]
    proc = subprocess.run([CHROMIUM, *flags, page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from agent_tokred.report.plots import plot_context_tokens

    runs = [make_run("a"), make_run("b")]
    png = plot_context_tokens(runs, tmp_path / "ctx.png")
    page = write_report(tmp_path / "report.html", runs, title="Demo report", images=[("context tokens", png)])
    dom, log = run_chromium(page, tmp_path)
    assert 'data-render-ok="yes"' in dom  # the page's self-check: no error event fired
    assert "Uncaught" not in log and "Content Security Policy" not in log
    assert "<title>Demo report</title>" in dom  # the escaped <script> in the content did not run
    assert "pwned" in dom and "<script>document.title" not in dom
    assert "ORD-77131" in dom and "Agent a" in dom and "argument survival" in dom
    assert dom.count("<polyline") == 4 and "data:image/png;base64," in dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_chromium_check_catches_a_script_error(tmp_path: Path) -> None:
    """The self-check is not vacuous: a broken script on the page turns the marker to "no"."""
    page = tmp_path / "broken.html"
    page.write_text(render_report([make_run()]).replace("</main>", "</main><script>missingFn();</script>", 1))
    dom, log = run_chromium(page, tmp_path)
    assert 'data-render-ok="no"' in dom
    assert "missingFn" in log
