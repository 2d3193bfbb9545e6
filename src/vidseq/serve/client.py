"""A small client of ``vidseq serve`` on the standard library (urllib), for scripts, tests and the benchmark.

>>> status, body = post_video("http://127.0.0.1:8000", "clip.mp4", top=3)   # doctest: +SKIP
>>> body["top"][0]
{'label': 'JumpRope', 'probability': 0.93}
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path


def multipart(fields: dict, name: str, data: bytes, *, field: str = "file") -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data form with text `fields` and file `data` as part `field`."""
    boundary = "vidseq" + secrets.token_hex(12)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in
             fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url: str, *, data: bytes | None = None, headers: dict | None = None, token: str | None = None,
            timeout: float = 60) -> tuple[int, dict, Message]:
    """(HTTP status, JSON body, response headers) of a GET (or a POST of `data`); HTTP errors are returned too."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        with e:
            body = e.read()
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {"error": body.decode("utf-8", "replace")}
        return e.code, doc, e.headers


def post_video(url: str, video: str | Path | bytes, *, name: str | None = None, token: str | None = None,
               timeout: float = 60, **fields) -> tuple[int, dict]:
    """POST `video` (a path, or the file's bytes) to ``{url}/v1/predict`` with form `fields` (top, clips,
    timeline); (HTTP status, JSON body)."""
    if isinstance(video, bytes):
        data, name = video, name or "upload"
    else:
        data, name = Path(video).read_bytes(), name or Path(video).name
    body, kind = multipart({k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}, name, data)
    status, doc, _ = request(f"{url.rstrip('/')}/v1/predict", data=body, headers={"Content-Type": kind},
                             token=token, timeout=timeout)
    return status, doc


def wait_until_up(url: str, *, timeout: float = 60, alive=lambda: True) -> bool:
    """Whether ``{url}/health`` answers 200 within `timeout` seconds, polling while `alive()` (e.g. the server's
    process has not exited)."""
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        try:
            if request(f"{url.rstrip('/')}/health", timeout=2)[0] == 200:
                return True
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    return False
