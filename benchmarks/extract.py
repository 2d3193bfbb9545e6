"""Benchmark: videos -> JPEG frame folders, vidseq against the tutorial's method, in one run.

The tutorial decodes each video with PyAV and saves every frame with ``frame.to_image().save(...)``
(PIL, default JPEG quality 75), videos in parallel on a process pool (fastai's ``parallel``). vidseq
encodes JPEG straight from the decoded YUV planes (``vidseq.extract.extract_dataset``). Both run on
the same videos with the same number of worker processes; the ratio of their frames/s is the result.
Quality: mean PSNR of the JPEGs against the RGB frames that PyAV decodes, on a sample of videos.

Two rates per method: frames per wall-clock second (all workers together), and frames per CPU-second
(user + system time of the parent and all worker processes), which is frames/s per core and holds
steady on a machine that other jobs share.

    python benchmarks/extract.py                      # builds `vidseq synth --preset bench` videos first
    python benchmarks/extract.py --videos DIR --workers 8 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def tutorial_extract(job: tuple[str, str, int | None]) -> int:
    """The tutorial's per-video function: PyAV decode, ``to_image()``, PIL ``save``."""
    import av

    video, dest_folder, quality = job
    dest = Path(dest_folder)
    dest.mkdir(parents=True, exist_ok=True)
    kw = {} if quality is None else {"quality": quality}
    n = 0
    with av.open(video) as container:
        for i, frame in enumerate(container.decode(video=0)):
            frame.to_image().save(dest / f"{i}.jpg", **kw)
            n = i + 1
    return n


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished (joined) child processes."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[int, float, float]:
    """(frames, wall seconds, CPU seconds) of fn(), which must join its worker processes."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    frames = fn()
    return frames, time.perf_counter() - wall, cpu_seconds() - cpu


def run_tutorial(videos: list[tuple[Path, str]], dest: Path, workers: int, quality: int | None):
    jobs = [(str(p), str(dest / Path(rel).with_suffix("")), quality) for p, rel in videos]

    def go() -> int:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(tutorial_extract, jobs, chunksize=1))

    return timed(go)


def run_vidseq(src: Path, dest: Path, workers: int, quality: int):
    from vidseq.extract import extract_dataset

    def go() -> int:
        summary = extract_dataset(src, dest, quality=quality, workers=workers, overwrite=True)
        if summary.failed:
            sys.exit(f"vidseq failed on {summary.failed} videos; see {summary.failures}")
        return summary.frames

    return timed(go)


def mean_psnr(videos: list[tuple[Path, str]], dest: Path) -> float:
    """Mean PSNR (dB) of the JPEGs in `dest` against PyAV's RGB frames of the same videos."""
    import simplejpeg

    from vidseq.io import read_frames

    values = []
    for path, rel in videos:
        ref = read_frames(path).astype(np.float64)
        folder = dest / Path(rel).with_suffix("")
        for i, a in enumerate(ref):
            b = simplejpeg.decode_jpeg((folder / f"{i}.jpg").read_bytes()).astype(np.float64)
            mse = np.mean((a - b) ** 2)
            values.append(10 * np.log10(255**2 / max(mse, 1e-12)))
    return float(np.mean(values))


def stage_costs(videos: list[tuple[Path, str]], work: Path, quality: int, rounds: int = 2) -> list[tuple[str, float]]:
    """CPU microseconds per frame of each stage, in this one process (the best of `rounds`)."""
    import io

    import av
    import simplejpeg

    from vidseq.io import FrameReader

    paths = [str(p) for p, _ in videos]
    frames, images, planes, jpegs = [], [], [], []

    def decode():
        frames.clear()
        for p in paths:
            with av.open(p) as c:
                c.streams.video[0].codec_context.thread_count = 1
                frames.extend(c.decode(video=0))

    def to_image():
        images.clear()
        images.extend(f.to_image() for f in frames)

    def pil_save():
        for im in images:
            im.save(io.BytesIO(), format="JPEG")

    def yuv420():
        planes.clear()
        for p in paths:
            with FrameReader(p, threads=1) as r:
                planes.extend(r.yuv420())

    def encode():
        jpegs.clear()
        jpegs.extend(simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality) for y, u, v in planes)

    def write():
        out = work / "stage-files"
        shutil.rmtree(out, ignore_errors=True)
        for i, data in enumerate(jpegs):
            if i % 40 == 0:
                folder = out / str(i)
                folder.mkdir(parents=True)
            (folder / f"{i}.jpg").write_bytes(data)

    stages = [("PyAV decode, 1 thread", decode), ("tutorial: frame.to_image()", to_image),
              ("tutorial: PIL save, quality 75, to memory", pil_save),
              ("vidseq: FrameReader.yuv420() (decode + full-range planes)", yuv420),
              (f"vidseq: simplejpeg from planes, quality {quality}", encode),
              ("both: create and write one JPEG file", write)]
    best = {name: float("inf") for name, _ in stages}
    for _ in range(rounds):
        for name, fn in stages:
            start = time.process_time()
            fn()
            best[name] = min(best[name], (time.process_time() - start) / max(1, len(jpegs) or len(frames)))
    return [(name, best[name] * 1e6) for name, _ in stages]


def main(argv: list[str] | None = None) -> int:
    from vidseq.extract import find_videos

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, help="folder of videos (default: build the synth 'bench' preset)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="worker processes (both)")
    ap.add_argument("--quality", type=int, default=90, help="vidseq's JPEG quality")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each method; the fastest counts")
    ap.add_argument("--psnr-every", type=int, default=9, help="check PSNR on every k-th video")
    ap.add_argument("--stages", action="store_true", help="also time each stage on its own, in one process")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="vidseq-bench-", dir=args.work))
    try:
        src = args.videos
        if src is None:
            from vidseq.datasets.synth import PRESETS, make_synth

            make_synth(work / "synth", PRESETS["bench"])
            src = work / "synth" / "videos"
        videos = find_videos(src)
        print(f"{len(videos)} videos in {src}; {args.workers} worker processes; best of {args.repeat} runs; "
              f"{os.cpu_count()} CPUs", file=sys.stderr)

        methods = [
            ("tutorial: to_image() + PIL save", "75 (PIL's default)", lambda d: run_tutorial(videos, d, args.workers,
                                                                                             None)),
            ("tutorial, quality raised", str(args.quality), lambda d: run_tutorial(videos, d, args.workers,
                                                                                     args.quality)),
            ("vidseq extract", str(args.quality), lambda d: run_vidseq(src, d, args.workers, args.quality)),
        ]
        wall = [float("inf")] * len(methods)
        cpu = [float("inf")] * len(methods)
        frames = [0] * len(methods)
        for r in range(args.repeat):  # runs interleaved, so that all methods meet the same machine load
            for k, (name, _, fn) in enumerate(methods):
                dest = work / f"out-{k}"
                shutil.rmtree(dest, ignore_errors=True)
                frames[k], w, c = fn(dest)
                wall[k], cpu[k] = min(wall[k], w), min(cpu[k], c)
                print(f"  {name}, run {r + 1}: {frames[k]} frames in {w:.2f} s wall, {c:.2f} s CPU",
                      file=sys.stderr)
        if len(set(frames)) != 1:
            sys.exit(f"frame counts differ between methods: {frames}")
        psnr = [mean_psnr(videos[:: args.psnr_every], work / f"out-{k}") for k in range(len(methods))]
        print("| method | JPEG quality | frames | wall s | frames/s | CPU s | frames/s per core | "
              "per core vs tutorial | PSNR dB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k, (name, quality, _) in enumerate(methods):
            print(f"| {name} | {quality} | {frames[k]} | {wall[k]:.2f} | {frames[k] / wall[k]:,.0f} | {cpu[k]:.2f} | "
                  f"{frames[k] / cpu[k]:,.0f} | {cpu[0] / cpu[k]:.1f}x | {psnr[k]:.1f} |")
        if args.stages:
            print()
            print("| stage (one process, every 4th video) | CPU us per frame | frames/s per core |")
            print("|---|---|---|")
            for name, us in stage_costs(videos[::4], work, args.quality):
                print(f"| {name} | {us:,.0f} | {1e6 / us:,.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
