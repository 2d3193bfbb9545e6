"""Benchmark: videos -> JPEG frame folders, vidseq against the tutorial's method, in one run.

The tutorial decodes each video with PyAV and saves every frame with ``frame.to_image().save(...)``
(PIL, default JPEG quality 75), videos in parallel on a process pool (fastai's ``parallel``). vidseq
encodes JPEG straight from the decoded YUV planes (``vidseq.extract.extract_dataset``). Both run on
the same videos with the same number of worker processes; the ratio of their frames/s is the result.
Quality: mean PSNR of the JPEGs against the RGB frames that PyAV decodes, on a sample of videos.

    python benchmarks/extract.py                      # builds `vidseq synth --preset bench` videos first
    python benchmarks/extract.py --videos DIR --workers 8 --repeat 3
"""

from __future__ import annotations

import argparse
import os
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


def run_tutorial(videos: list[tuple[Path, str]], dest: Path, workers: int, quality: int | None) -> tuple[int, float]:
    jobs = [(str(p), str(dest / Path(rel).with_suffix("")), quality) for p, rel in videos]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        frames = sum(pool.map(tutorial_extract, jobs, chunksize=1))
    return frames, time.perf_counter() - start


def run_vidseq(src: Path, dest: Path, workers: int, quality: int) -> tuple[int, float]:
    from vidseq.extract import extract_dataset

    start = time.perf_counter()
    summary = extract_dataset(src, dest, quality=quality, workers=workers, overwrite=True)
    seconds = time.perf_counter() - start
    if summary.failed:
        sys.exit(f"vidseq failed on {summary.failed} videos; see {summary.failures}")
    return summary.frames, seconds


def mean_psnr(videos: list[tuple[Path, str]], dest: Path) -> float:
    """Mean PSNR (dB) of the JPEGs in `dest` against PyAV's RGB frames of the same videos."""
    import simplejpeg

    from vidseq.video import read_frames

    values = []
    for path, rel in videos:
        ref = read_frames(path).astype(np.float64)
        folder = dest / Path(rel).with_suffix("")
        for i, a in enumerate(ref):
            b = simplejpeg.decode_jpeg((folder / f"{i}.jpg").read_bytes()).astype(np.float64)
            mse = np.mean((a - b) ** 2)
            values.append(10 * np.log10(255**2 / max(mse, 1e-12)))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    from vidseq.extract import find_videos

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, help="folder of videos (default: build the synth 'bench' preset)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="worker processes (both)")
    ap.add_argument("--quality", type=int, default=90, help="vidseq's JPEG quality")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each method; the fastest counts")
    ap.add_argument("--psnr-every", type=int, default=9, help="check PSNR on every k-th video")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="vidseq-bench-", dir=args.work))
    try:
        src = args.videos
        if src is None:
            from vidseq.synth import PRESETS, make_synth

            make_synth(work / "synth", PRESETS["bench"])
            src = work / "synth" / "videos"
        videos = find_videos(src)
        print(f"{len(videos)} videos in {src}; {args.workers} worker processes; best of {args.repeat} runs; "
              f"{os.cpu_count()} CPUs", file=sys.stderr)

        methods = [
            ("tutorial: to_image() + PIL save", "75 (PIL default)", lambda d: run_tutorial(videos, d, args.workers,
                                                                                             None)),
            ("tutorial, quality raised", str(args.quality), lambda d: run_tutorial(videos, d, args.workers,
                                                                                     args.quality)),
            ("vidseq extract", str(args.quality), lambda d: run_vidseq(src, d, args.workers, args.quality)),
        ]
        best = [float("inf")] * len(methods)
        frames = [0] * len(methods)
        for r in range(args.repeat):  # runs interleaved, so that both methods meet the same machine load
            for k, (name, _, fn) in enumerate(methods):
                dest = work / f"out-{k}"
                shutil.rmtree(dest, ignore_errors=True)
                frames[k], seconds = fn(dest)
                best[k] = min(best[k], seconds)
                print(f"  {name}, run {r + 1}: {frames[k]} frames in {seconds:.2f} s", file=sys.stderr)
        rows = [(name, quality, frames[k], best[k], mean_psnr(videos[:: args.psnr_every], work / f"out-{k}"))
                for k, (name, quality, _) in enumerate(methods)]

        counts = {r[2] for r in rows}
        if len(counts) != 1:
            sys.exit(f"frame counts differ between methods: {[r[2] for r in rows]}")
        base = rows[0][2] / rows[0][3]
        print("| method | JPEG quality | frames | seconds | frames/s | frames/s per worker | PSNR dB | vs tutorial |")
        print("|---|---|---|---|---|---|---|---|")
        for name, quality, frames, seconds, psnr in rows:
            fps = frames / seconds
            print(f"| {name} | {quality} | {frames} | {seconds:.2f} | {fps:,.0f} | {fps / args.workers:,.0f} | "
                  f"{psnr:.1f} | {fps / base:.1f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
