"""The report page opened in headless Chromium: every section there, every plot loaded,
nothing fetched from the network, every piece of text escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tierwise.errors import ReportError
from tierwise.report import PAGE_NAME, SECTIONS, ReportData, SummaryTable, write_report
from tierwise.report.page import render_page


def _open(browser: Any, page_path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    return page, requested


def test_every_section_and_plot_loads_in_chromium(
    browser: Any, report_data: ReportData, tmp_path: Path
) -> None:
    files = write_report(report_data, tmp_path / "report")
    assert files.page == tmp_path / "report" / PAGE_NAME
    assert sorted(files.plots) == sorted(set(SECTIONS) - {"summary"})
    page, requested = _open(browser, files.page)
    try:
        for key, heading in SECTIONS.items():
            section = page.locator(f"section#{key}")
            assert section.count() == 1, key
            assert section.locator("h2").inner_text() == heading
        images = page.eval_on_selector_all(
            "img",
            "els => els.map(e => ({src: e.getAttribute('src'), plot: e.dataset.plot,"
            " complete: e.complete, width: e.naturalWidth, height: e.naturalHeight}))",
        )
        assert {i["plot"] for i in images} == {"matrix", "cost", "latency", "cascade", "simulation"}
        for image in images:
            assert image["complete"], image
            assert image["width"] > 0, image
            assert image["height"] > 0, image
            assert (tmp_path / "report" / image["src"]).is_file()
        # the title is shown as text, never run; no script, stylesheet or font is fetched
        assert page.title() == report_data.title
        assert page.locator("h1").inner_text() == report_data.title
        assert page.locator("script").count() == 0
        assert page.locator("link").count() == 0
        assert all(url.startswith("file://") for url in requested), requested
        assert len(requested) == 1 + len(images)
        # tables carry the numbers behind the plots
        summary = page.locator("section#summary table").inner_text()
        assert "cascade" in summary
        assert "cloud only" in summary
        cascade = page.locator("section#cascade").inner_text()
        assert "oracle" in cascade
        assert "target (" in cascade
        simulation = page.locator("section#simulation").inner_text()
        assert "scenario bad-day: 172,800 requests in 24 simulated hours" in simulation
        assert "predicted <beside> measured" in simulation  # escaped, shown as text
        assert "no: p99" in simulation  # the level that missed says which figure
        assert "90 / 120" in simulation
        page.locator("section#matrix details summary").click()
        reasons = page.locator("section#matrix details").inner_text()
        assert "latency on device: <why> & how" in reasons
    finally:
        page.close()


def test_a_section_without_data_says_so(
    browser: Any, report_data: ReportData, tmp_path: Path
) -> None:
    data = ReportData(
        "only a summary", summary=SummaryTable("t", ("route", "USD"), (("cloud", "1.00"),))
    )
    earlier = write_report(report_data, tmp_path)
    assert len(earlier.plots) == 5
    files = write_report(data, tmp_path)
    assert files.plots == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [PAGE_NAME]
    page, _ = _open(browser, files.page)
    try:
        for key in SECTIONS:
            assert page.locator(f"section#{key}").count() == 1
        assert page.locator("img").count() == 0
        assert page.locator("p.empty").count() == len(SECTIONS) - 1
        assert "tierwise simulate" in page.locator("section#simulation").inner_text()
    finally:
        page.close()


def test_text_is_escaped_in_the_html(report_data: ReportData) -> None:
    html = render_page(report_data, ["matrix", "cost", "latency", "cascade"])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html
    assert "plans/&lt;digits&gt;.yaml" in html
    assert "http://" not in html
    assert "https://" not in html


def test_unwritable_output_is_a_report_error(report_data: ReportData, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ReportError, match="cannot write the report"):
        write_report(report_data, blocker / "report")
