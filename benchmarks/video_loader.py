"""Reading training clips straight from videos: vidseq's readers against decoding from the start (vidseq
before seeking), torchcodec (when installed) and JPEG frame folders, on four kinds of video.

Clips are TSN training clips as `vidseq train` makes them: 8 frames, one random frame per segment (the
`random-key` rows draw it near a keyframe), one random resized crop to 128x128 (`--size`), through `ClipTfm`
and a frame source: vidseq before seeking (decoding from the start, resized while decoding), vidseq's file
source now (seeking; frames no smaller than the crop size, as cheaply as the codec gives them), torchcodec's
CPU decoder in its place, and the file source on JPEG folders. Each row makes the same 100 clips (same seed),
median of `--repeat` runs; "per core" rows run in this one process (pin it with taskset), "all cores" rows
split the clips over a process per core.

    taskset -c 0 .venv/bin/python benchmarks/video_loader.py [--videos 12] [--clips 100] [--repeat 3]
    .venv/bin/python benchmarks/video_loader.py --cores all

Sets (generated with `vidseq synth`'s textured movers, re-encoded with PyAV):
  avi40      40-frame MPEG-4 part 2 AVI, 320x240, keyframe every 12 (UCF101-like length)
  avi180k12  180-frame MPEG-4 AVI, 320x240, keyframe every 12
  avi180k250 180-frame MPEG-4 AVI, 320x240, keyframe every 250 (one keyframe, plus the encoder's scene cuts)
  h264_300   300-frame H.264 MP4, 340x256, x264's defaults (keyint 250, B-frames): Kinetics-like

Prints clips/s per core, frames decoded per clip, the ratio to decoding from the start and to JPEG folders,
and each form's disk size. Speed goals are met here, never in tests.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from vidseq.clips import FILES, ClipTfm
from vidseq.clips.sources import FileSource
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.extract import extract_dataset, find_videos, transcode_dataset
from vidseq.io import FrameReader, VideoWriter, frames_decoded, read_frames, video_index
from vidseq.progress import available_cpus
from vidseq.sampling import random_key_segments, random_segments

SIZE, FRAMES = 128, 8
SETS = {  # name: (frames, width, height, codec, encoder options, extension)
    "avi40": (40, 320, 240, "mpeg4", {"g": "12"}, ".avi"),
    "avi180k12": (180, 320, 240, "mpeg4", {"g": "12"}, ".avi"),
    "avi180k250": (180, 320, 240, "mpeg4", {"g": "250"}, ".avi"),
    "h264_300": (300, 340, 256, "libx264", {"preset": "medium"}, ".mp4"),
}


def make_set(root: Path, name: str, videos: int) -> Path:
    """`videos` synthetic videos of the set `name` under root/name/videos (made once, then reused)."""
    n, w, h, codec, options, ext = SETS[name]
    out = root / name / "videos"
    if out.is_dir() and len(find_videos(out)) >= videos:
        return out
    shutil.rmtree(root / name, ignore_errors=True)
    synth = root / name / "synth"
    classes = 4
    make_synth(synth, SynthConfig(classes=classes, groups=max(8, -(-videos // classes) + 7), clips=1, frames=n,
                                  width=w, height=h))
    sources = [p for p, _ in find_videos(synth / "videos")][:videos]
    for src in sources:
        dest = out / src.parent.name / (src.stem + ext)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with FrameReader(src) as reader, VideoWriter(dest, fps=25, codec=codec, options=options,
                                                     quality=3 if codec == "mpeg4" else None) as writer:
            for frame in reader.rgb():
                writer.write(frame)
    shutil.rmtree(synth)
    return out


def disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def plan_clips(paths: list[Path], n: int, key: bool, seed: int = 0) -> list[tuple[Path, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        path = paths[i % len(paths)]
        index = video_index(path) if path.is_file() else None
        count = index.n_frames if index is not None else FILES.n_frames(path)
        keys = index.keyframes if key and index is not None and index.seekable else None
        idx = (random_key_segments(count, FRAMES, rng, keyframes=keys) if key else
               random_segments(count, FRAMES, rng))
        out.append((path, idx))
    return out


class StartSource(FileSource):
    """vidseq's video reads before seeking: every frame decoded from the start, resized while decoding."""

    def read(self, path, indices, *, min_side=None):
        return read_frames(path, indices, size=min_side, seek=False)


class TorchcodecSource(FileSource):
    """torchcodec's CPU decoder (exact seek mode, one thread), frames as decoded (the transform resizes)."""

    def read(self, path, indices, *, min_side=None):
        from torchcodec.decoders import VideoDecoder

        frames = VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=1).get_frames_at(list(indices)).data
        return frames.permute(0, 2, 3, 1).numpy()


SOURCES = {"start": StartSource(), "vidseq": FileSource(), "torchcodec": TorchcodecSource()}


def _run(args) -> int:
    source, size, clips = args
    tfm = ClipTfm(FRAMES, size, augment=True, source=SOURCES[source])  # a random resized crop per clip
    for path, idx in clips:
        tfm.load(path, train=True, indices=idx)
    return len(clips)


def timed(source: str, size: int, clips, cores: int, repeat: int) -> float:
    """Median clips/s of making `clips` through `source` in `cores` processes (1: this process)."""
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        if cores == 1:
            _run((source, size, clips))
        else:
            chunks = [clips[i::cores] for i in range(cores)]
            with mp.get_context("fork").Pool(cores) as pool:
                pool.map(_run, [(source, size, c) for c in chunks])
        rates.append(len(clips) / (time.perf_counter() - t))
    return statistics.median(rates)


def decoded(clips, seek: bool) -> float:
    return float(np.mean([frames_decoded(video_index(p), i, seek=seek) for p, i in clips]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-video-bench"))
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--size", type=int, default=SIZE, help="the clips' size (square crops), 128 as the issue")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cores", default="1", help="1 (this process) or 'all' (a process per available CPU)")
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # resizing in torchcodec's rows: one core, as every other reader
    cores = available_cpus() if args.cores == "all" else int(args.cores)
    try:
        import torchcodec  # noqa: F401

        have_torchcodec = True
    except (ImportError, RuntimeError, OSError):
        have_torchcodec = False

    print(f"{args.clips} clips of {FRAMES} frames at {args.size} px, {args.videos} videos a set, {cores} core(s), "
          f"median of {args.repeat}")
    print("| set | reader | clips/s per core | frames decoded per clip | vs from the start | vs JPEG folders | disk |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.sets:
        videos = make_set(args.root, name, args.videos)
        base = args.root / name
        frames = base / "frames"
        if not (frames / "manifest.csv").is_file():
            extract_dataset(videos, frames, workers=available_cpus())
        tc = base / "transcoded"
        if not (tc / "manifest.csv").is_file():
            transcode_dataset(videos, tc, size=SIZE, gop=8, workers=available_cpus())  # always 128 px
        paths = [p for p, _ in find_videos(videos)]
        folders = [frames / Path(p.relative_to(videos)).with_suffix("") for p in paths]
        tpaths = [tc / Path(p.relative_to(videos)).with_suffix(".mp4") for p in paths]
        for p in paths + tpaths:
            video_index(p)  # built once, as the loaders do before their workers start

        random_clips, key_clips = plan_clips(paths, args.clips, False), plan_clips(paths, args.clips, True)
        folder_clips = [(f, i) for f, (_, i) in zip(folders * (args.clips // len(folders) + 1), random_clips)]
        t_random, t_key = plan_clips(tpaths, args.clips, False), plan_clips(tpaths, args.clips, True)
        rows = [
            ("vidseq before seeking: decode from the start", "start", random_clips,
             decoded(random_clips, False), disk(videos)),
            ("seeking reads (random)", "vidseq", random_clips, decoded(random_clips, True), disk(videos)),
            ("seeking reads, random-key sampler", "vidseq", key_clips, decoded(key_clips, True), disk(videos)),
            ("transcoded (--size 128 --gop 8), random", "vidseq", t_random, decoded(t_random, True), disk(tc)),
            ("transcoded, random-key", "vidseq", t_key, decoded(t_key, True), disk(tc)),
            ("JPEG folders (full size, reduced-size decode)", "vidseq", folder_clips, FRAMES, disk(frames)),
        ]
        if have_torchcodec:
            rows.insert(3, ("torchcodec 0.17 CPU, exact seek (random)", "torchcodec", random_clips,
                            float("nan"), disk(videos)))
        rates = {label: timed(source, args.size, clips, cores, args.repeat) / cores
                 for label, source, clips, _, _ in rows}
        start, jpeg = rates[rows[0][0]], rates[rows[-1][0]]
        for label, _, _, n_decoded, size in rows:
            r = rates[label]
            dec = "" if n_decoded != n_decoded else f"{n_decoded:.1f}"
            print(f"| {name} | {label} | {r:,.0f} | {dec} | {r / start:.2f}x | {r / jpeg:.0%} | "
                  f"{size / 2**20:.1f} MB |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
