"""Resumable downloads against a local HTTP server started by the test (127.0.0.1 only, no network)."""

from __future__ import annotations

import io
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vidseq.datasets.download import DownloadError, download, url_filename
from vidseq.progress import Progress, human_bytes, human_time

PAYLOAD = os.urandom(300_000)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        rng = None if srv.ignore_range else self.headers.get("Range")
        start = 0
        if rng:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if srv.cut_after is not None:  # send part of the body, then drop the connection
            body, srv.cut_after = body[: srv.cut_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server with Range support; .files maps paths to bytes, .requests records (path, Range)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/data/big.bin": PAYLOAD}
    srv.requests, srv.cut_after, srv.ignore_range = [], None, False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_download_writes_file_and_does_not_fetch_it_again(server, tmp_path):
    out = download(f"{server.url}/data/big.bin", tmp_path / "arch", progress=False)
    assert out == tmp_path / "arch" / "big.bin" and out.read_bytes() == PAYLOAD
    assert not (tmp_path / "arch" / "big.bin.part").exists()
    n = len(server.requests)
    assert download(f"{server.url}/data/big.bin", tmp_path / "arch") == out
    assert len(server.requests) == n  # complete file: no network at all


def test_cut_off_download_resumes_with_range(server, tmp_path):
    server.cut_after = 123_457
    url = f"{server.url}/data/big.bin"
    with pytest.raises(DownloadError, match="stopped at 123457 of 300000 bytes.*run the same command again"):
        download(url, tmp_path, progress=False)
    part = tmp_path / "big.bin.part"
    assert part.read_bytes() == PAYLOAD[:123_457] and not (tmp_path / "big.bin").exists()

    out = download(url, tmp_path, progress=False)
    assert server.requests[-1] == ("/data/big.bin", "bytes=123457-")
    assert out.read_bytes() == PAYLOAD and not part.exists()


def test_server_that_ignores_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "big.bin.part").write_bytes(b"x" * 1000)  # wrong bytes: must not survive
    server.ignore_range = True
    out = download(f"{server.url}/data/big.bin", tmp_path, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_part_already_complete_is_renamed_on_416(server, tmp_path):
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD)
    out = download(f"{server.url}/data/big.bin", tmp_path, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.requests[-1][1] == f"bytes={len(PAYLOAD)}-"


def test_part_larger_than_file_starts_over(server, tmp_path):
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD + b"junk")
    out = download(f"{server.url}/data/big.bin", tmp_path, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_http_error_names_url_and_where_to_put_the_file(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        download(f"{server.url}/nope/x.rar", tmp_path)
    msg = str(e.value)
    assert "HTTP 404" in msg and f"{server.url}/nope/x.rar" in msg and str(tmp_path / "x.rar") in msg
    assert "\n" not in msg


def test_no_network_gives_one_line_with_url_and_manual_path(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/UCF101.rar"
    with pytest.raises(DownloadError) as e:
        download(url, tmp_path / "archive", timeout=5)
    msg = str(e.value)
    assert url in msg and str(tmp_path / "archive" / "UCF101.rar") in msg and "by hand" in msg
    assert "\n" not in msg
    assert list((tmp_path / "archive").iterdir()) == []  # before: an empty UCF101.rar.part


def test_progress_reports_rate_and_size(server, tmp_path):
    buf = io.StringIO()
    download(f"{server.url}/data/big.bin", tmp_path, progress=True, stream=buf)
    text = buf.getvalue()
    assert "big.bin" in text and "100%" in text and "B/s" in text and "293k/293kB" in text


def test_progress_line_has_eta():
    bar = Progress("x", 1000, stream=io.StringIO(), enabled=False)
    bar.update(100)
    bar._t0 -= 1.0  # as if one second had passed
    assert re.fullmatch(r"x   10%  100/0.98kB  \[00:01<00:09, \d+B/s\]", bar.line())


def test_helpers():
    assert url_filename("https://host/a/UCF101TrainTestSplits-RecognitionTask.zip?x=1") == (
        "UCF101TrainTestSplits-RecognitionTask.zip")
    with pytest.raises(DownloadError):
        url_filename("https://host/")
    assert human_bytes(1536) == "1.5 KB" and human_bytes(12) == "12 B"
    assert human_time(42) == "42s" and human_time(185) == "3m05s" and human_time(7620) == "2h07m"


def test_progress_on_a_terminal_is_tqdms_redrawn_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    with Progress("extract", 4, unit="videos", extra="frames", stream=term, interval=0) as bar:
        for _ in range(4):
            bar.update(1, extra=10)
    text = term.getvalue()
    assert text.count("\r") >= 2 and "100%|" in text and text.endswith("\n")
    assert "4/4 videos" in text.rsplit("\r", 1)[-1] and "40 frames" in text.rsplit("\r", 1)[-1]
