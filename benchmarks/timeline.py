"""Timelines of untrimmed videos: segments found against the true ones, and memory over long files (CPU).

Part 1, accuracy: a model trained on the trimmed synth classes (`vidseq synth --preset demo`: 8 classes, 24
frames per action; tsm from scratch at its defaults, 32 px, 5 frames, 8 epochs, official split 1: groups 1-7
held out), then `vidseq synth --long` videos of the same classes in the held-out groups' looks, and
`predict_timeline` over each. A true segment counts as found when a found segment of its label overlaps it with
temporal IoU >= 0.5 (the goal: at least 90 % of them). The tutorial's way, one label per file, is the baseline:
there every file gets one label, so a true segment is "found" when the file's label is its own and it covers
half the file.

Part 2, memory and rate: one 320x240 long video of 5 minutes and one of 30 minutes (the same plan, so the
first is the start of the second), each through `predict_timeline` in a fresh process on one core (torch and
FFmpeg one thread); peak RSS and the rate in video frames per second of CPU.

    .venv/bin/python benchmarks/timeline.py [--videos 20] [--minutes 5 30] [--run RUN] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vidseq.datasets.synth import PRESETS, SynthConfig, make_synth
from vidseq.datasets.synth_long import LongConfig, make_long_synth
from vidseq.predict import predict_files
from vidseq.runs import load_run
from vidseq.timeline import Segment, best_iou, predict_timeline
from vidseq.train import TrainConfig, train

_MEASURE = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from vidseq.timeline import predict_timeline
start, cpu = time.perf_counter(), time.process_time()
tl = predict_timeline(sys.argv[1], sys.argv[2], window=float(sys.argv[3]), device="cpu")
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "frames": round(tl.duration * tl.fps), "duration": tl.duration, "windows": len(tl.probs),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _train(root: Path, base: SynthConfig) -> Path:
    run = root / "run-tsm"
    if not (run / "model.safetensors").is_file():
        if not (root / "synth" / "videos").is_dir():
            make_synth(root / "synth", base)
        train(TrainConfig(data=str(root / "synth" / "videos"), model="tsm", backbone="resnet18", pretrained=False,
                          frames=5, size=32, bs=32, epochs=8, split="official:1", out=str(run), verbose=False))
    return run


def accuracy(run: Path, root: Path, base: SynthConfig, videos: int, window: float) -> None:
    data = make_long_synth(root / "long", LongConfig(base=base, videos=videos, segments=6))
    loaded = load_run(run, device="cpu")
    truth: dict[str, list[Segment]] = {}
    for rel, s in data.segments:
        truth.setdefault(rel, []).append(Segment(s.label, s.start, s.end, 1.0))
    rows, ious, found_total, false_total, baseline, start = [], [], 0, 0, 0, time.perf_counter()
    for rel, segs in truth.items():
        path = data.root / rel
        tl = predict_timeline(loaded, path, window=window, device="cpu")
        got = [best_iou(s, tl.segments) for s in segs]
        ious += got
        matched = sum(i >= 0.5 for i in got)
        false = sum(max((best_iou(f, [t]) for t in segs), default=0) < 0.5 for f in tl.segments)
        found_total += matched
        false_total += false
        label = predict_files(loaded, [path])[0].top[0][0]  # the tutorial's way: one label for the whole file
        baseline += sum(s.label == label and (s.end - s.start) >= tl.duration / 2 for s in segs)
        rows.append((rel, len(segs), matched, len(tl.segments), false, np.mean(got)))
    took = time.perf_counter() - start
    print(f"\n{videos} long videos ({base.width}x{base.height}, {base.classes} classes), window {window:g} s, "
          f"stride {window / 2:g} s, threshold 0.5, min length one window; {took:.0f} s\n")
    print("| video | true segments | found (IoU >= 0.5) | segments given | of them unmatched | mean IoU |")
    print("|---|---:|---:|---:|---:|---:|")
    for rel, n, m, g, f, iou in rows:
        print(f"| {Path(rel).name} | {n} | {m} | {g} | {f} | {iou:.2f} |")
    n = len(ious)
    print(f"| **all** | **{n}** | **{found_total} ({found_total / n:.1%})** | "
          f"{sum(r[3] for r in rows)} | {false_total} | {np.mean(ious):.2f} |")
    print(f"\none label per file (the tutorial's predict): {baseline} of {n} true segments "
          f"({baseline / n:.1%}); timeline / one label per file: {found_total / max(1, baseline):.1f}x")


def memory(run: Path, root: Path, minutes: list[float], window: float) -> None:
    base = SynthConfig(classes=PRESETS["demo"].classes, groups=PRESETS["demo"].groups, clips=1, frames=24,
                       width=320, height=240)
    print("\n| video | frames | windows | peak RSS | wall | CPU | video frames / CPU second | x real time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    first = None
    for m in minutes:
        folder = root / f"long-{m:g}min"
        video = folder / "long" / "long_01.avi"
        if not video.is_file():
            make_long_synth(folder, LongConfig(base=base, videos=1, segments=max(1, round(m * 60 / 3.6))))
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(run), str(video), str(window)],
                             capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        first = first or r
        print(f"| {r['duration'] / 60:.1f} min 320x240 | {r['frames']} | {r['windows']} | {r['peak_rss_mb']:.0f} MB | "
              f"{r['seconds']:.0f} s | {r['cpu']:.0f} s | {r['frames'] / r['cpu']:.0f} | "
              f"{r['duration'] / r['cpu']:.1f} |")
    print("\n(peak RSS of the whole process: Python, torch and the model included)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-timeline-bench"))
    ap.add_argument("--run", type=Path, default=None, help="a run trained on the demo synth classes (default: "
                    "train one, about 2 minutes on 2 cores)")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--minutes", type=float, nargs="*", default=[5, 30])
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    base = PRESETS["demo"]
    window = base.frames / base.fps  # one action of the trimmed clips
    run = args.run or _train(args.root, base)
    accuracy(run, args.root, base, args.videos, window)
    if not args.skip_memory:
        memory(run, args.root, args.minutes, window)


if __name__ == "__main__":
    main()
