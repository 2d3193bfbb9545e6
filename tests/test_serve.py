"""vidseq serve against a real uvicorn on 127.0.0.1: good, non-video, truncated and oversized uploads, concurrent
requests batched onto the model, the queue and time limits, the token, the CLI's refusals, and SIGTERM draining a
request in flight."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
uvicorn = pytest.importorskip("uvicorn")

from conftest import train_tiny_run  # noqa: E402
from vidseq.cli import main  # noqa: E402
from vidseq.predict import predict_files  # noqa: E402
from vidseq.runs import Run, load_run  # noqa: E402
from vidseq.serve import create_app, post_video  # noqa: E402
from vidseq.serve.client import multipart, request, wait_until_up  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run (frame_avg, 3 frames of 32 px) trained one epoch on tiny synth data; its videos beside it."""
    return train_tiny_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def run(trained) -> Run:
    return load_run(trained)


@pytest.fixture(scope="module")
def videos(trained) -> list[Path]:
    return sorted((trained.parent / "data" / "videos").rglob("*.avi"))


class Slow(torch.nn.Module):
    """A run's model that takes `delay` seconds a forward: requests stay in flight long enough to be seen."""

    def __init__(self, model, delay: float):
        super().__init__()
        self.model, self.delay = model, delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.model(x)


@contextmanager
def serving(run: Run, **options):
    """`create_app(run, **options)` on a real uvicorn on 127.0.0.1 (a free port), in a thread: yields (url, app)."""
    app = create_app(run, **options)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    uploads = tmp_path_factory.mktemp("uploads")
    with serving(run, max_bytes=60_000, timeout=30, queue=16, tmp_dir=uploads) as (url, app):
        yield url, app, uploads


def leftovers(uploads: Path) -> list[Path]:
    return [p for p in uploads.rglob("*") if p.is_file()]


def test_a_video_gets_its_top_classes_and_the_frames_the_model_saw(server, run, videos):
    url, _, uploads = server
    status, body = post_video(url, videos[0], top=5, clips=2)
    assert status == 200, body
    assert body["path"] == videos[0].name
    probs = [t["probability"] for t in body["top"]]
    assert probs == sorted(probs, reverse=True) and {t["label"] for t in body["top"]} == set(run.classes)
    assert sum(t["probability"] for t in body["top"]) == pytest.approx(1, abs=1e-5)  # 2 classes: all of them
    ours = predict_files(run, [videos[0]], clips=2, device="cpu")[0]
    assert [(t["label"], pytest.approx(t["probability"], abs=1e-5)) for t in body["top"]] == ours.top
    assert len(body["frames"]) == 2 * run.config.clip.frames  # clips x frames a clip
    fps, n = body["video"]["fps"], body["video"]["frames"]
    assert fps == 25 and n == 8
    from PIL import Image

    for f in body["frames"]:
        assert 0 <= f["index"] < n and f["time"] == pytest.approx(f["index"] / fps, abs=1e-3)
        head, data = f["thumbnail"].split(",", 1)
        assert head == "data:image/jpeg;base64"
        assert Image.open(io.BytesIO(base64.b64decode(data))).format == "JPEG"
    assert not leftovers(uploads)


def test_model_health_and_openapi(server, run):
    url = server[0]
    status, doc, _ = request(f"{url}/v1/model")
    assert status == 200 and doc["classes"] == run.classes and doc["clip"]["frames"] == 3
    assert doc["limits"]["max_upload_bytes"] == 60_000 and doc["backend"] == "pytorch"
    assert request(f"{url}/health")[1]["status"] == "ok"
    spec = request(f"{url}/openapi.json")[1]
    form = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["properties"]) == {"file", "top", "clips", "timeline"}


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="PNG")
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello " * 100)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["text", "image", "archive", "empty"])
def test_what_is_not_a_video_is_415_whatever_its_name(server, kind):
    url, _, uploads = server
    data = {"text": b"just some words\n" * 50, "image": _png(), "archive": _zip(), "empty": b""}[kind]
    status, body = post_video(url, data, name="holiday.mp4")  # the name says video; the content decides
    assert status == 415, body
    assert "upload a video file" in body["error"] and "\n" not in body["error"]
    assert not leftovers(uploads)


def test_a_video_named_as_text_is_still_a_video(server, videos):
    status, body = post_video(server[0], videos[0].read_bytes(), name="notes.txt")
    assert status == 200 and body["path"] == "notes.txt"


def test_truncated_videos(server, videos):
    url, _, uploads = server
    data = videos[0].read_bytes()
    movi = data.find(b"movi")
    status, body = post_video(url, data[:movi - 200], name="cut_in_header.avi")
    assert status == 415, body
    status, body = post_video(url, data[:movi + 12], name="no_frames.avi")  # a header, then nothing
    assert status == 422 and "cannot be decoded" in body["error"] and "truncated" in body["error"]
    status, body = post_video(url, data[:movi + 300], name="some_frames.avi")  # what decodes is classified
    assert status == 200, body
    assert body["top"] and all(f["index"] < 8 for f in body["frames"])
    assert not leftovers(uploads)


def test_an_oversized_upload_is_413_also_when_streamed_without_a_length(server):
    url, _, uploads = server
    status, body = post_video(url, os.urandom(100_000), name="big.mp4")
    assert status == 413 and "limit of 0.06 MB" in body["error"]
    body_bytes, kind = multipart({}, "big.mp4", os.urandom(200_000))
    host, port = url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (body_bytes[i:i + 8192] for i in range(0, len(body_bytes), 8192))
    conn.request("POST", "/v1/predict", body=chunks, headers={"Content-Type": kind}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and "limit" in json.loads(r.read())["error"]
    conn.close()
    assert not leftovers(uploads)


@pytest.mark.parametrize(("fields", "status", "words"), [
    ({"clips": "0"}, 422, "clips must be"), ({"top": "many"}, 422, "top must be"),
    ({"timeline": "maybe"}, 422, "timeline must be")])
def test_bad_options_are_one_line(server, videos, fields, status, words):
    got, body = post_video(server[0], videos[0], **fields)
    assert got == status and words in body["error"]


def test_a_form_without_the_file_or_not_a_form(server):
    url = server[0]
    body = b'--b\r\nContent-Disposition: form-data; name="top"\r\n\r\n3\r\n--b--\r\n'
    status, doc, _ = request(f"{url}/v1/predict", data=body,
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 400 and doc["error"] == "no 'file' part: the video goes in form field 'file' (curl -F " \
        "file=@video.mp4)"
    status, doc, _ = request(f"{url}/v1/predict", data=b"{}", headers={"Content-Type": "application/json"})
    assert status == 415 and "multipart/form-data" in doc["error"]
    huge = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.avi"\r\nX-Pad: ' + b"a" * 20_000
            + b"\r\n\r\nabc\r\n--b--\r\n")
    status, doc, _ = request(f"{url}/v1/predict", data=huge,
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 400 and "header" in doc["error"]  # python-multipart's own limit


@pytest.mark.parametrize("filename", ["x.avi", None], ids=["a-file-part", "a-text-part"])
def test_a_video_under_another_form_field_is_told_to_use_file(server, videos, filename):
    """curl -F clip=@x.avi (a file part) or -F clip=<x.avi (its bytes as text) instead of -F file=@x.avi."""
    url, _, uploads = server
    data = videos[0].read_bytes()
    assert len(data) > 1000
    body, kind = multipart({"top": "3"}, filename or "", data, field="clip")
    if filename is None:
        body = body.replace(b'; filename=""', b"")
    status, doc, _ = request(f"{url}/v1/predict", data=body, headers={"Content-Type": kind})
    assert status == 400, doc
    if filename:
        assert doc["error"] == "the video goes in form field 'file', not 'clip' (curl -F file=@video.mp4)"
    else:  # a text field as long as a video: it may be a long option too, so both are said
        assert doc["error"] == "form field 'clip' is longer than 1000 bytes; the video goes in form field 'file' " \
                               "(curl -F file=@video.mp4)"
    status, doc, _ = request(f"{url}/v1/predict", data=body.replace(b'name="clip"', b'name="file"'),
                             headers={"Content-Type": kind})
    assert status == 200 and doc["top"]  # the same form with the field's right name is answered
    assert not leftovers(uploads)


def test_concurrent_requests_share_forwards(run, videos, tmp_path):
    slow = Run(run.path, run.config, Slow(run.model, 0.3))
    with serving(slow, queue=16, tmp_dir=tmp_path) as (url, app):
        alone = {v.name: post_video(url, v)[1]["top"] for v in videos[:2]}
        before = app.state.batcher.batches
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda v: post_video(url, v), videos[:8]))
        assert all(status == 200 for status, _ in results), results
        forwards = app.state.batcher.batches - before
        assert forwards < 8, "no two requests shared a forward"
        for (_, body), v in zip(results, videos[:8]):
            if v.name in alone:  # the same answer as when it came alone
                assert [t["label"] for t in body["top"]] == [t["label"] for t in alone[v.name]]
                np.testing.assert_allclose([t["probability"] for t in body["top"]],
                                           [t["probability"] for t in alone[v.name]], atol=1e-5)
    assert not leftovers(tmp_path)


def test_a_full_queue_is_503_and_a_slow_request_504(run, videos, tmp_path):
    slow = Run(run.path, run.config, Slow(run.model, 1.5))
    with serving(slow, queue=1, timeout=20, tmp_dir=tmp_path) as (url, _):
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post_video, url, videos[0])
            deadline = time.monotonic() + 10
            while request(f"{url}/health")[1]["in_progress"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            status, body = post_video(url, videos[1])
            assert status == 503 and "busy" in body["error"]
            assert first.result()[0] == 200
    with serving(slow, timeout=0.5, tmp_dir=tmp_path) as (url, _):
        status, body = post_video(url, videos[0])
        assert status == 504 and "0.5 s" in body["error"]
    assert not leftovers(tmp_path)


class Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("out of memory")


def test_a_failing_model_is_500_in_one_line_and_the_server_goes_on(run, videos, tmp_path):
    with serving(Run(run.path, run.config, Broken()), tmp_dir=tmp_path) as (url, _):
        for _ in range(2):
            status, body = post_video(url, videos[0])
            assert status == 500 and body == {"error": "the server failed on this request (RuntimeError); see its log"}
        assert request(f"{url}/health")[1]["in_progress"] == 0
    assert not leftovers(tmp_path)


def test_the_token_is_checked_on_every_api_call(run, videos, tmp_path):
    with serving(run, token="s3cret", tmp_dir=tmp_path) as (url, _):
        for token in (None, "wrong", "s3cre"):
            status, doc, headers = request(f"{url}/v1/model", token=token)
            assert status == 401 and "Bearer" in doc["error"] and headers["WWW-Authenticate"] == "Bearer"
            assert post_video(url, videos[0], token=token)[0] == 401
        assert request(f"{url}/v1/model", token="s3cret")[0] == 200
        assert post_video(url, videos[0], token="s3cret")[0] == 200
        assert request(f"{url}/health")[0] == 200  # liveness stays open
        assert request(f"{url}/v1/model", headers={"Authorization": "Basic s3cret"})[0] == 401


def test_the_page_loads_nothing_from_elsewhere(server):
    import re
    import urllib.request

    with urllib.request.urlopen(f"{server[0]}/") as r:
        html, policy = r.read().decode(), r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert 'id="strip"' in html and 'id="top"' in html and 'id="timeline"' in html


def test_a_timeline_comes_with_the_answer_when_asked(server, run, tmp_path):
    from vidseq.datasets.synth import SynthConfig
    from vidseq.datasets.synth_long import LongConfig, make_long_synth
    from vidseq.timeline import predict_timeline

    base = SynthConfig(classes=2, groups=8, clips=1, frames=8, width=32, height=32)
    data = make_long_synth(tmp_path / "long", LongConfig(base=base, videos=1, segments=3))
    video = data.root / "long" / "long_01.avi"
    status, body = post_video(server[0], video, timeline=True)
    assert status == 200, body
    expected = predict_timeline(run, video, device="cpu").to_dict()
    got = body["timeline"]
    assert got["duration"] == expected["duration"] and got["segments"] == expected["segments"]
    assert [(w["start"], w["end"]) for w in got["windows"]] == [(w["start"], w["end"]) for w in expected["windows"]]
    assert [w["top"][0]["label"] for w in got["windows"]] == [w["top"][0]["label"] for w in expected["windows"]]
    assert leftovers(server[2]) == []


def test_onnx_backend_gives_pytorchs_answer(run, trained, videos, tmp_path, server):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from vidseq.export import export_onnx, with_onnx

    onnx_file = export_onnx(run, tmp_path / "m.onnx", check=0).path
    with serving(with_onnx(load_run(trained), onnx_file), backend="onnxruntime", tmp_dir=tmp_path) as (url, _):
        status, body = post_video(url, videos[3], clips=2)
        assert status == 200 and request(f"{url}/v1/model")[1]["backend"] == "onnxruntime"
    expected = post_video(server[0], videos[3], clips=2)[1]
    np.testing.assert_allclose([t["probability"] for t in body["top"]],
                               [t["probability"] for t in expected["top"]], atol=1e-4)


# the command


def test_a_public_address_without_a_token_is_refused_before_anything(trained, capsys, monkeypatch):
    monkeypatch.delenv("VIDSEQ_TOKEN", raising=False)
    assert main(["serve", str(trained), "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--token" in err and "VIDSEQ_TOKEN" in err and "0.0.0.0" in err


def test_a_damaged_run_is_refused_in_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    assert main(["serve", str(bad), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.json" in err and "not valid JSON" in err


def test_a_port_in_use_or_an_address_not_here_is_one_line(trained, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(trained), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"vidseq: error: cannot listen on 127.0.0.1:{port} (Address already in use); choose another " \
                  "--port (--port 0 picks a free one)"
    assert main(["serve", str(trained), "--host", "192.0.2.1", "--port", "8000", "--token", "t"]) == 2  # TEST-NET-1
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidseq: error: cannot listen on 192.0.2.1:8000 (") and \
        err.endswith("); choose another --host (an address of this machine, such as 127.0.0.1)")


def test_port_0_picks_a_free_port_and_says_which(trained, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "vidseq", "serve", str(trained), "--port", "0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        found = re.search(r"at http://127\.0\.0\.1:(\d+) ", line)
        assert found and int(found[1]) != 0, line
        assert wait_until_up(f"http://127.0.0.1:{found[1]}", alive=lambda: proc.poll() is None), "it did not answer"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_fastapi_serve_says_what_to_install(trained, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi raises ImportError
    assert main(["serve", str(trained), "--port", "1"]) == 2
    assert capsys.readouterr().err.strip() == "vidseq: error: vidseq serve needs FastAPI: pip install 'vidseq[serve]'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_finishes_the_request_in_flight_then_exits_0(trained, videos, tmp_path, sig):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "vidseq", "serve", str(trained), "--port", str(port),
                             "--token", "t0k"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until_up(f"http://127.0.0.1:{port}", alive=lambda: proc.poll() is None), "it did not start"
        body, kind = multipart({"top": "2"}, videos[0].name, videos[0].read_bytes())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.putrequest("POST", "/v1/predict")
        for k, v in {"Content-Type": kind, "Content-Length": str(len(body)), "Authorization": "Bearer t0k"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(body[:len(body) // 2])  # the request is in flight, half uploaded
        time.sleep(0.5)
        assert len(list(tmp.rglob("upload-*"))) == 1  # streamed to a file already
        proc.send_signal(sig)
        time.sleep(0.5)
        conn.send(body[len(body) // 2:])
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["top"]
        assert proc.wait(30) == 0
        assert "stopped" in proc.stderr.read()
        assert not list(tmp.iterdir())  # the upload and its folder are gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_upload_onto_a_full_disk_is_507_and_the_server_goes_on(run, videos, tmpfs):
    uploads = tmpfs(64)  # 64 KB for uploads: the video below needs more
    big = videos[0].read_bytes() + os.urandom(200_000)  # a video's start, then more than the disk holds
    with serving(run, max_bytes=1_000_000, timeout=30, queue=4, tmp_dir=uploads) as (url, _):
        status, body = post_video(url, big, name="big.avi")
        assert status == 507 and "no space left" in body["error"]
        assert leftovers(uploads) == []  # the partial upload is removed, and the space with it
        status, body = post_video(url, videos[0])  # a small one fits again
        assert status == 200 and body["top"]
