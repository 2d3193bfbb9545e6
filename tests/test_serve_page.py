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
from vidseq.serve import post_video  # noqa: E402

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


def test_a_webm_plays_on_the_page(page, run, tmp_path, make_video):
    video = make_video("walk.webm", n=24, codec="libvpx")
    with serving(run, tmp_dir=tmp_path) as (url, _):
        page.goto(url + "/")
        page.set_input_files("#file", str(video))
        sync_api.expect(page.locator("#top .row").first).to_be_visible(timeout=20_000)
        player = page.locator("#player")
        sync_api.expect(player).to_be_visible()
        page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=10_000)
        assert player.evaluate("v => v.videoWidth") == 64
        page.locator("#strip figure").last.click()  # a frame of the strip seeks the video to its time
        last = page.locator("#strip figure").last.inner_text()
        assert player.evaluate("v => v.currentTime") == pytest.approx(float(last.split()[0]), abs=0.05)


def test_the_timeline_is_drawn_from_its_segments_and_windows(page, run, videos, tmp_path):
    """The page's side of the timeline (vidseq.timeline's `Timeline.to_dict()` in the response): bands for the
    segments over a time axis and the top class's probability per window as a line."""
    with serving(run, tmp_dir=tmp_path) as (url, _):
        page.goto(url + "/")
        real = {}

        def with_timeline(route):
            status, body = post_video(url, videos[0])  # Playwright's route.fetch drops a form's file
            assert status == 200
            real.update(body)
            body["timeline"] = {
                "path": body["path"], "duration": 30.0, "window": 2.0, "stride": 1.0,
                "windows": [{"start": float(s), "end": s + 2.0, "top": [{"label": "MoveLeft", "probability": 0.6}]}
                            for s in range(29)],
                "segments": [{"label": "MoveLeft", "start": 0.0, "end": 12.0, "score": 0.8},
                             {"label": "MoveRight", "start": 12.0, "end": 30.0, "score": 0.7}]}
            route.fulfill(json=body)

        page.route("**/v1/predict", with_timeline)
        page.set_input_files("#file", str(videos[0]))
        sync_api.expect(page.locator("#timeline svg")).to_be_visible(timeout=20_000)
        assert page.locator("#timeline rect.segment").count() == 2
        assert len(page.locator("#timeline polyline.confidence").get_attribute("points").split()) == 29
        assert page.locator("#timeline .legend span").all_inner_texts() == ["MoveLeft", "MoveRight"]
        assert real["top"] and "timeline" not in real
