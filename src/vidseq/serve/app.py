"""The HTTP server's application (FastAPI): ``POST /v1/predict``, ``GET /v1/model``, ``GET /health``, the page at
``/`` and the OpenAPI docs, with the limits a public server needs: upload size (413), content checked by FFmpeg
(415), a time limit per request (504), a bounded number of requests in progress (503), and a bearer token checked
on every API call when one is set. Uploads go to a private temporary folder and are removed after each request."""

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from vidseq.errors import VidseqError
from vidseq.predict import Prediction
from vidseq.runs import Run
from vidseq.serve.batcher import Batcher, QueueFull
from vidseq.serve.clips import prepare
from vidseq.serve.upload import UploadError, receive_upload

log = logging.getLogger(__name__)
INSTALL = "vidseq serve needs FastAPI: pip install 'vidseq[serve]'"
MAX_CLIPS = 16
#: the page may load nothing from elsewhere: it works offline, and an injected tag could not call out
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
               "media-src blob:; connect-src 'self'")


def need_fastapi():
    """FastAPI, or one line saying how to install what serving needs (FastAPI, uvicorn, python-multipart)."""
    try:
        import fastapi
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise VidseqError(INSTALL) from None
    return fastapi


def top_k(run: Run, probs: np.ndarray, name: str, top: int) -> dict:
    """The response's prediction: the `top` classes with probabilities (and a multi-label run's labels)."""
    order = np.argsort(-probs)
    labels = None
    if run.config.multi_label:
        threshold = run.config.threshold if run.config.threshold is not None else 0.5
        labels = [run.classes[c] for c in order if probs[c] > threshold]
    top = [(run.classes[c], float(probs[c])) for c in order[:min(top, len(run.classes))]]
    return Prediction(name, top=top, labels=labels).to_dict()


def _timeline(run: Run, path: Path, device) -> dict:
    """The timeline of a long video (`vidseq.timeline.predict_timeline`, its default windows)."""
    from vidseq.timeline import predict_timeline

    try:
        return predict_timeline(run, path, device=device).to_dict()
    except VidseqError as e:
        raise UploadError(422, f"no timeline for this video ({e.reason})") from None


def _int(fields: dict, name: str, default: int, lo: int, hi: int) -> int:
    value = fields.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise UploadError(422, f"{name} must be a whole number from {lo} to {hi}, got {value[:20]!r}")
    return int(value)


def _flag(fields: dict, name: str) -> bool:
    value = fields.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "on", "off", "yes", "no"):
        raise UploadError(422, f"{name} must be true or false, got {value[:20]!r}")
    return value in ("1", "true", "on", "yes")


def create_app(run: Run, *, max_bytes: int = 100_000_000, timeout: float = 60.0, queue: int = 16,
               token: str | None = None, device: str | torch.device = "cpu", backend: str = "pytorch",
               max_batch: int = 16, decoders: int | None = None, tmp_dir: str | Path | None = None):
    """The FastAPI app serving `run` (loaded once, by the caller). At most `queue` requests are in progress (more
    get 503), each within `timeout` seconds (504), uploads up to `max_bytes` (413); with `token`, every /v1 call
    needs ``Authorization: Bearer <token>`` (401). Clips are read by `decoders` threads and batched onto the model
    by one worker (`max_batch` clips a forward)."""
    need_fastapi()
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    state = {"pending": 0, "served": 0}
    batcher = Batcher(run, device=device, queue_size=queue, max_batch=max_batch)
    pool = ThreadPoolExecutor(max_workers=decoders or min(4, os.cpu_count() or 1), thread_name_prefix="vidseq-decode")
    uploads = {"dir": None}

    @asynccontextmanager
    async def lifespan(app):
        uploads["dir"] = Path(tempfile.mkdtemp(prefix="vidseq-serve-", dir=tmp_dir))  # 0700: this user's only
        batcher.start()
        try:
            yield
        finally:  # uvicorn has drained the requests in flight by now
            batcher.stop()
            pool.shutdown(wait=True)
            shutil.rmtree(uploads["dir"], ignore_errors=True)

    app = FastAPI(title="vidseq", version="1", lifespan=lifespan,
                  description=f"Action recognition with run {run.path.name}: POST a video to /v1/predict.")

    @app.exception_handler(UploadError)
    async def refused(request, e: UploadError):
        headers = {"Retry-After": "1"} if e.status == 503 else {}
        if e.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse({"error": e.message}, status_code=e.status, headers=headers)

    @app.exception_handler(Exception)
    async def failed(request, e: Exception):  # a bug or the model failing: one line of JSON, the traceback logged
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(e).__name__, e, exc_info=e)
        return JSONResponse({"error": f"the server failed on this request ({type(e).__name__}); see its log"},
                            status_code=500)

    def authorized(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise UploadError(401, "a missing or wrong token: send 'Authorization: Bearer <token>'")

    api = [Depends(authorized)]

    @app.get("/health", summary="Liveness: the model is loaded and the server answers")
    async def health():
        return {"status": "ok", "in_progress": state["pending"], "served": state["served"],
                "forwards": batcher.batches, "clips": batcher.clips}

    @app.get("/v1/model", dependencies=api, summary="The run's classes and settings, and the server's limits")
    async def model():
        c = run.config
        return {"run": run.path.name, "model": c.model.get("name"), "backend": backend, "classes": list(run.classes),
                "multi_label": c.multi_label, "threshold": c.threshold,
                "clip": {"frames": c.clip.frames, "size": c.clip.size, "sampler": c.clip.sampler,
                         "crop_pct": c.clip.crop_pct},
                "limits": {"max_upload_bytes": max_bytes, "timeout_s": timeout, "queue": queue,
                           "max_clips": MAX_CLIPS}}

    form = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": "a video file"},
            "top": {"type": "integer", "default": 5, "description": "how many classes"},
            "clips": {"type": "integer", "default": 1, "maximum": MAX_CLIPS,
                      "description": "clips spread over the video, probabilities averaged"},
            "timeline": {"type": "boolean", "default": False,
                         "description": "also classify windows along the video"}}}}}}}

    @app.post("/v1/predict", dependencies=api, openapi_extra=form,
              summary="Classify an uploaded video: top classes, the sampled frames, optionally a timeline",
              responses={413: {"description": "upload too large"}, 415: {"description": "not a video"},
                         422: {"description": "undecodable video or bad option"}, 503: {"description": "queue full"},
                         504: {"description": "over the time limit"}})
    async def predict(request: Request):
        if state["pending"] >= queue:
            raise UploadError(503, f"the server is busy ({queue} requests in progress); try again shortly")
        state["pending"] += 1
        fd, name = tempfile.mkstemp(prefix="upload-", dir=uploads["dir"])  # 0600, no name from the client
        path, upload = Path(name), os.fdopen(fd, "wb")
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()

        async def handle() -> dict:
            with upload as f:
                fields, filename, size = await receive_upload(request, f, max_bytes=max_bytes)
            top = _int(fields, "top", 5, 1, 1000)
            clips = _int(fields, "clips", 1, 1, MAX_CLIPS)
            want_timeline = _flag(fields, "timeline")
            t1 = time.perf_counter()
            ready = await loop.run_in_executor(pool, lambda: prepare(run, path, clips=clips))
            t2 = time.perf_counter()
            try:
                probs = await asyncio.wrap_future(batcher.submit(ready.views))
            except QueueFull:
                raise UploadError(503, "the model's queue is full; try again shortly") from None
            t3 = time.perf_counter()
            out = top_k(run, probs.mean(0), filename, top)
            out["frames"] = ready.frames
            info = ready.info
            out["video"] = {"duration": info.duration, "fps": info.fps, "frames": info.frames, "width": info.width,
                            "height": info.height, "container": info.container, "codec": info.codec, "bytes": size}
            if want_timeline:
                out["timeline"] = await loop.run_in_executor(pool, lambda: _timeline(run, path, device))
                out["timeline"]["path"] = filename
            out["timing_ms"] = {"upload": round((t1 - t0) * 1e3, 1), "decode": round((t2 - t1) * 1e3, 1),
                                "model": round((t3 - t2) * 1e3, 1),
                                "total": round((time.perf_counter() - t0) * 1e3, 1)}
            state["served"] += 1
            return out

        try:
            return await asyncio.wait_for(handle(), timeout)  # the upload, decoding, the queue and the model
        except asyncio.TimeoutError:
            raise UploadError(504, f"the request took longer than the server's limit of {timeout:g} s") from None
        finally:
            upload.close()
            path.unlink(missing_ok=True)
            state["pending"] -= 1

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        html = resources.files("vidseq.serve").joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_POLICY})

    app.state.batcher = batcher
    return app
