"""Accuracy of each model trained with `vidseq train` on synthetic motion data (group-disjoint split).

The synth classes come in direction pairs (MoveLeft/MoveRight, Grow/Shrink, ...) that look the same
frame by frame: a model that ignores frame order (frame_avg) can name the pair but not the direction.
Besides top-1 and mean class accuracy this reports *direction accuracy*: among clips whose prediction
falls in the right pair, the fraction with the right direction (0.5 is chance).

    .venv/bin/python benchmarks/accuracy.py --models frame_avg cnn_lstm timesformer tsm r2plus1d_18 \\
        [--preset demo] [--size 48] [--epochs N] [--extra "--backbone resnet18"]

Each model is trained through the command line (`vidseq train DATA --model NAME --no-pretrained` plus
`--extra`), then evaluated with `vidseq.evaluate.evaluate_run`. Pretrained weights cannot be downloaded on
machines without internet, so this runs from scratch.
"""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidseq.cli import main as cli
from vidseq.datasets.synth import MOTIONS, PRESETS, make_synth
from vidseq.evaluate import evaluate_run
from vidseq.extract import extract_dataset

#: `--cpu-sized` options per model (the demo's): small bodies so that CPU training takes minutes.
CPU_SIZED: dict[str, list[str]] = {
    "frame_avg": ["--backbone", "resnet18"],
    "cnn_lstm": ["--backbone", "resnet18"],
    "tsm": ["--backbone", "resnet18"],
    "timesformer": ["-o", "dim=96", "-o", "depth=4", "-o", "heads=4", "-o", "dim_head=24", "-o", "patch_size=8",
                    "--lr", "1e-3"],
}


def direction_accuracy(ev) -> float:
    family = {name: fam for name, fam, _ in MOTIONS}
    fam_true = np.array([family[ev.classes[t]] for t in ev.targets])
    fam_pred = np.array([family[ev.classes[p]] for p in ev.preds])
    same = fam_true == fam_pred
    return float((ev.preds[same] == ev.targets[same]).mean()) if same.any() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["frame_avg", "cnn_lstm", "timesformer", "tsm", "r2plus1d_18"])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--groups", type=int, default=None, help="groups per class instead of the preset's (1-7: test)")
    ap.add_argument("--classes", type=int, default=None, help="classes instead of the preset's (2-12)")
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-accuracy"))
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--extra", default="", help="more `vidseq train` options, e.g. '--bs 16'")
    ap.add_argument("--cpu-sized", action="store_true",
                    help="the demo's CPU-sized models: ResNet-18 bodies, a 4-block TimeSformer with 8 px patches")
    args = ap.parse_args()
    data = args.root / "data"
    changes = {k: v for k, v in (("groups", args.groups), ("classes", args.classes)) if v is not None}
    cfg = replace(PRESETS[args.preset], **changes)
    if not (data / "ucfTrainTestlist").is_dir():
        make_synth(data, cfg)
        extract_dataset(data / "videos", args.root / "frames")
    rows = []
    for name in args.models:
        run = args.root / "runs" / name
        cmd = ["train", str(args.root / "frames"), "--model", name, "--no-pretrained", "--size", str(args.size),
               "--frames", str(args.frames), "--out", str(run), "--overwrite"] + shlex.split(args.extra)
        if args.cpu_sized:
            cmd += CPU_SIZED.get(name, [])
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        t0 = time.perf_counter()
        rc = cli(cmd)
        seconds = time.perf_counter() - t0
        if rc != 0:
            rows.append((name, None, None, None, seconds))
            continue
        ev = evaluate_run(run)
        rows.append((name, ev.top1, ev.mean_class_accuracy, direction_accuracy(ev), seconds))
    print(f"\nsynth preset {args.preset}: {cfg.classes} classes x {cfg.groups} groups x {cfg.clips} clips, "
          f"groups 1-7 held out; {args.frames} frames x "
          f"{args.size} px; `vidseq train` defaults + --no-pretrained {args.extra}\n")
    print("| model | top-1 | mean class acc | direction acc | train time |\n|---|---:|---:|---:|---:|")
    for name, top1, mca, dacc, sec in rows:
        if top1 is None:
            print(f"| {name} | failed | | | {sec:.0f}s |")
        else:
            print(f"| {name} | {top1:.1%} | {mca:.1%} | {dacc:.1%} | {sec:.0f}s |")


if __name__ == "__main__":
    main()
