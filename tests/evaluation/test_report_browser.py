"""The HTML report as a browser shows it: headless Chromium renders a fake run's report."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.evaluation._browser import (
    console_messages,
    data_uri_images,
    ensure_chromium,
    external_references,
    is_blank_png,
    png_size,
    render_page,
)
from transmri.evaluation.report import build_report


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Chromium's path; installed with apt-get (as root, once, under a lock) or skipped."""
    path, reason = ensure_chromium(timeout=300)
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    return path


def test_report_renders_in_chromium(
    chromium: Path, fake_run: Callable[..., Path], tmp_path: Path
) -> None:
    report = build_report(fake_run())
    shot = tmp_path / "screenshot.png"
    page = render_page(chromium, report, screenshot=shot, window_size=(1200, 1600))

    order = ("summary", "comparison", "metrics", "history", "embeddings", "figures", "data", "run")
    starts = []
    for section in order:
        found = re.search(rf'<section id="{section}"', page.dom)
        assert found, section
        starts.append(found.start())
    assert starts == sorted(starts), "sections out of order"
    assert "Synthetic data." in page.dom
    assert page.dom.index('<section id="summary"') < page.dom.index("<img")
    # run metadata and configuration stay collapsed: no script opens them
    assert len(re.findall(r"<details\b", page.dom)) == 2
    assert not re.search(r"<details[^>]*\bopen\b", page.dom)

    found = data_uri_images(page.dom)
    assert len(found) == 12
    for prefix, png in found:
        assert png is not None, f"<img> without a PNG data URI: {prefix}"
        width, height = png_size(png)
        assert width > 0 and height > 0
    assert external_references(page.dom) == []

    assert console_messages(page.log) == []
    width, height = png_size(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert not is_blank_png(shot)


def test_browser_helpers_detect_problems(chromium: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><img src="https://example.org/x.png">'
        "<script>console.error('boom'); notDefined();</script></body></html>"
    )
    page = render_page(chromium, bad)
    assert data_uri_images(page.dom) == [("https://example.org/x.png", None)]
    assert external_references(page.dom) == ["https://example.org/x.png"]
    messages = console_messages(page.log)
    assert any("boom" in m for m in messages)
    assert any("Uncaught ReferenceError" in m for m in messages)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a....")
