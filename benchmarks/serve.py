"""vidseq serve under load on loopback: N concurrent clients posting good videos for a bounded time, per backend
(PyTorch, then onnxruntime on the run's ONNX export): requests/s, p50/p99 latency, errors (0 expected), the clips
per forward the batcher achieved, and the server's resident memory before and after the timed load (after a warm-up
under the same load), which should not grow.

Trains a tiny run on synthetic videos first (or takes --run), exports it to ONNX, then starts `vidseq serve` as a
subprocess for each backend.

    .venv/bin/python benchmarks/serve.py [--clients 4] [--seconds 20] [--size 64] [--frames 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vidseq.serve.client import post_video, request, wait_until_up


def vidseq(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vidseq", *args], check=True, stdout=subprocess.DEVNULL)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def load(url: str, videos: list[Path], clients: int, seconds: float) -> tuple[list[float], int]:
    """`clients` threads posting `videos` round-robin for `seconds`: (latencies in s of the 200s, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    payloads = [(v.name, v.read_bytes()) for v in videos]

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            name, data = payloads[i % len(payloads)]
            t = time.perf_counter()
            try:
                status, _ = post_video(url, data, name=name, timeout=60)
            except OSError:
                status = -1
            dt = time.perf_counter() - t
            with lock:
                if status == 200:
                    latencies.append(dt)
                else:
                    errors[0] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def bench(run: Path, videos: list[Path], *, backend: str, onnx: Path | None, clients: int, seconds: float,
          warmup: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "vidseq", "serve", str(run), "--port", str(port), "--queue", "64",
           "--device", "cpu"] + (["--onnx", str(onnx)] if onnx else [])
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(url, timeout=120, alive=lambda: proc.poll() is None):
            raise RuntimeError(f"vidseq serve ({backend}) did not start")
        load(url, videos, clients, warmup)
        before = rss_mb(proc.pid)
        h0 = request(f"{url}/health")[1]
        t = time.perf_counter()
        latencies, errors = load(url, videos, clients, seconds)
        wall = time.perf_counter() - t
        after = rss_mb(proc.pid)
        h1 = request(f"{url}/health")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    ms = np.array(latencies) * 1e3
    forwards = h1["forwards"] - h0["forwards"]
    return {"backend": backend, "clients": clients, "requests": len(latencies), "req/s": len(latencies) / wall,
            "p50 ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99 ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"), "errors": errors,
            "clips/forward": (h1["clips"] - h0["clips"]) / forwards if forwards else float("nan"),
            "RSS before MB": before, "RSS after MB": after, "RSS ratio": after / before, "exit": code}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a run folder to serve (default: train a tiny one)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--size", type=int, default=64, help="the tiny run's frame size")
    ap.add_argument("--frames", type=int, default=8, help="the tiny run's frames a clip")
    ap.add_argument("--backends", nargs="*", default=["pytorch", "onnxruntime"])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidseq-bench-serve-"))
    from vidseq.datasets.synth import SynthConfig, make_synth

    make_synth(work / "data", SynthConfig(classes=4, groups=8, clips=1, frames=48, width=160, height=120))
    videos = sorted((work / "data" / "videos").rglob("*.avi"))
    run = args.run
    if run is None:
        run = work / "run"
        vidseq("train", str(work / "data" / "videos"), "--model", "frame_avg", "--backbone", "resnet18",
               "--no-pretrained", "--size", str(args.size), "--frames", str(args.frames), "--bs", "8", "--workers", "0",
               "--epochs", "1", "--out", str(run))
    onnx = None
    if "onnxruntime" in args.backends:
        onnx = work / "model.onnx"
        vidseq("export", str(run), str(onnx), "--format", "onnx")
    print(f"{len(videos)} videos of 48 frames at 160x120 (MPEG-4 AVI, {videos[0].stat().st_size // 1024} KB "
          f"each), run {run} ({args.frames} frames of {args.size} px), {args.clients} clients, {args.seconds:g} s "
          f"after {args.warmup:g} s of warm-up, {os.cpu_count()} CPUs", flush=True)
    try:
        rows = [bench(run, videos, backend=b, onnx=onnx if b == "onnxruntime" else None, clients=args.clients,
                      seconds=args.seconds, warmup=args.warmup) for b in args.backends]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if k == "RSS ratio" else f"{v:.1f}" if isinstance(v, float) else str(v)
                                for k, v in r.items()) + " |")


if __name__ == "__main__":
    main()
