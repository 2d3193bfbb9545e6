"""The page of vidseq serve in a real browser: Playwright for Python driving Debian's chromium (no browser download;
.ci/run installs the package). Skips in one line where Playwright or chromium is absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

import test_serve  # noqa: E402
from vidseq.predict import predict_files  # noqa: E402

serving = test_serve.serving
trained, run, videos = test_serve.trained, test_serve.run, test_serve.videos  # the same fixtures, for this module

CHROMIUM = ("/usr/bin/chromium", "/usr/lib/chromium/chromium", "/usr/bin/chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((p for p in CHROMIUM if Path(p).is_file()), None) or shutil.which("chromium")
    if found is None:
        pytest.skip("no chromium (apt-get install chromium) for the browser test")
    return found


@pytest.fixture
def page(chromium):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_a_video_shows_its_label_and_the_frames_the_model_saw(page, run, videos, tmp_path):
    video = videos[-1]
    expected = predict_files(run, [video], device="cpu")[0].top[0][0]
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with serving(run, tmp_dir=tmp_path) as (url, _):
        page.goto(url + "/")
        sync_api.expect(page.locator("#model")).to_contain_text("2 classes")
        page.set_input_files("#file", str(video))
        first = page.locator("#top .row").first
        sync_api.expect(first).to_be_visible(timeout=20_000)
        assert first.locator(".label").inner_text() == expected
        assert page.locator("#top .row").count() == 2
        strip = page.locator("#strip img")
        assert strip.count() == run.config.clip.frames
        assert all(strip.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(strip.count()))
        assert page.locator("#error").inner_text() == ""
    assert not errors, errors


def test_a_text_file_shows_the_error(page, run, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video at all\n" * 20)
    with serving(run, tmp_dir=tmp_path) as (url, _):
        page.goto(url + "/")
        page.set_input_files("#file", str(text))
        error = page.locator("#error")
        sync_api.expect(error).to_contain_text("notes.txt", timeout=20_000)
        sync_api.expect(error).to_contain_text("upload a video file")
        assert page.locator("#top .row").count() == 0 and page.locator("#strip img").count() == 0


def test_the_page_asks_for_the_token_when_the_server_wants_one(page, run, videos, tmp_path):
    with serving(run, token="pw", tmp_dir=tmp_path) as (url, _):
        page.goto(url + "/")
        sync_api.expect(page.locator("#token")).to_be_visible()
        page.fill("#token", "pw")
        page.set_input_files("#file", str(videos[0]))
        sync_api.expect(page.locator("#top .row").first).to_be_visible(timeout=20_000)
