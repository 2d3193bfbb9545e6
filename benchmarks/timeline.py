"""Timelines of untrimmed videos: segments found against the true ones, and memory over long files (CPU).

Part 1, accuracy: a model trained on the trimmed synth classes (`vidseq synth --preset demo`: 8 classes, 24
frames per action; tsm from scratch at its defaults, 32 px, 8 frames, 8 epochs, official split 1: groups 1-7
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
from vidseq.timeline import Segment, best_iou, merge_segments, predict_timeline
from vidseq.timeline.score import DEFAULT_SMOOTH, DEFAULT_STRIDE, DEFAULT_THRESHOLD
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
    run = root / "run-tsm8"
    if not (run / "model.safetensors").is_file():
        if not (root / "synth" / "videos").is_dir():
            make_synth(root / "synth", base)
        train(TrainConfig(data=str(root / "synth" / "videos"), model="tsm", backbone="resnet18", pretrained=False,
                          frames=8, size=32, bs=32, epochs=8, split="official:1", out=str(run), overwrite=True,
                          verbose=False))
    return run


def _score(tls: dict, truth: dict, classes: list[str], *, threshold: float, smooth: int, min_length: float):
    """(fraction of true segments found at IoU >= 0.5, mean IoU, segments given, of them matching no true one)."""
    ious, given, unmatched = [], 0, 0
    for rel, segs in truth.items():
        tl = tls[rel]
        found = merge_segments(tl.probs, tl.centres, tl.duration, classes, threshold=threshold, smooth=smooth,
                               min_length=min_length)
        ious += [best_iou(s, found) for s in segs]
        given += len(found)
        unmatched += sum(max(best_iou(f, [t]) for t in segs) < 0.5 for f in found)
    return float(np.mean(np.array(ious) >= 0.5)), float(np.mean(ious)), given, unmatched


def accuracy(run: Path, root: Path, base: SynthConfig, videos: int, window: float) -> None:
    """Settings chosen on `videos` long videos (dev), reported on `videos` others (test)."""
    data = make_long_synth(root / "long", LongConfig(base=base, videos=2 * videos, segments=6))
    loaded = load_run(run, device="cpu")
    truth: dict[str, list[Segment]] = {}
    for rel, s in data.segments:
        truth.setdefault(rel, []).append(Segment(s.label, s.start, s.end, 1.0))
    names = sorted(truth)
    dev = {k: truth[k] for k in names[:videos]}
    test = {k: truth[k] for k in names[videos:]}
    start = time.perf_counter()
    windows = (round(window * 2 / 3, 2), window)
    tls = {(w, s): {rel: predict_timeline(loaded, data.root / rel, window=w, stride=w * s, device="cpu")
                    for rel in names} for w in windows for s in (0.5, 0.25)}
    took = time.perf_counter() - start
    grid = [(w, s, k, t) for w in windows for s in (0.5, 0.25) for k in (1, 3, 5) for t in (0.3, 0.5)]
    scored = {g: _score(tls[g[:2]], dev, loaded.classes, threshold=g[3], smooth=g[2], min_length=window)
              for g in grid}
    best = max(grid, key=lambda g: scored[g][:2])
    n_dev, n_test = sum(map(len, dev.values())), sum(map(len, test.values()))
    print(f"\n{2 * videos} long videos ({base.width}x{base.height}, {base.classes} classes, 6 segments each; one "
          f"action = {window:g} s): settings chosen on videos 1-{videos} ({n_dev} true segments), reported on videos "
          f"{videos + 1}-{2 * videos} ({n_test}); min length {window:g} s; scoring the {len(tls)} window/stride "
          f"pairs over all {2 * videos} videos took {took:.0f} s\n")
    print("| window | stride | smooth (windows) | threshold | dev: found | test: found (IoU >= 0.5) | test: mean IoU | "
          "test: segments given | of them unmatched |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    shown = [best] + [(w, DEFAULT_STRIDE, DEFAULT_SMOOTH, DEFAULT_THRESHOLD) for w in windows] + \
        [(w, 0.5, 1, 0.5) for w in windows]
    for g in sorted(set(shown), key=grid.index):
        t = _score(tls[g[:2]], test, loaded.classes, threshold=g[3], smooth=g[2], min_length=window)
        what = " (chosen on dev)" if g == best else ""
        what += " (defaults)" if g[1:] == (DEFAULT_STRIDE, DEFAULT_SMOOTH, DEFAULT_THRESHOLD) else ""
        print(f"| {g[0]:g} s{what} | {g[1]:g} window | {g[2]} | {g[3]:g} | {scored[g][0]:.1%} | **{t[0]:.1%}** | "
              f"{t[1]:.2f} | {t[2]} | {t[3]} |")
    baseline = 0
    for rel, segs in test.items():  # the tutorial's way: one label for the whole file
        label = predict_files(loaded, [data.root / rel])[0].top[0][0]
        dur = tls[(window, 0.5)][rel].duration
        baseline += sum(s.label == label and (s.end - s.start) / dur >= 0.5 for s in segs)
    print(f"\none label per file (the tutorial's predict) on the test videos: {baseline} of {n_test} true segments "
          f"({baseline / n_test:.1%})")


def memory(run: Path, root: Path, minutes: list[float], window: float) -> None:
    base = SynthConfig(classes=PRESETS["demo"].classes, groups=PRESETS["demo"].groups, clips=1, frames=24,
                       width=320, height=240)
    print("\n| video | frames | windows | peak RSS | wall | CPU | video frames / CPU second | x real time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in minutes:
        folder = root / f"long-{m:g}min"
        video = folder / "long" / "long_01.avi"
        if not video.is_file():
            make_long_synth(folder, LongConfig(base=base, videos=1, segments=max(1, round(m * 60 / 3.6))))
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(run), str(video), str(window)],
                             capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['duration'] / 60:.1f} min 320x240 | {r['frames']} | {r['windows']} | {r['peak_rss_mb']:.0f} MB | "
              f"{r['seconds']:.0f} s | {r['cpu']:.0f} s | {r['frames'] / r['cpu']:.0f} | "
              f"{r['duration'] / r['cpu']:.1f} |")
    print("\n(peak RSS of the whole process: Python, torch and the model included)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-timeline-bench"))
    ap.add_argument("--run", type=Path, default=None, help="a run trained on the demo synth classes (default: "
                    "train one: tsm, 8 frames, 32 px, about 2 minutes on 2 cores)")
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
