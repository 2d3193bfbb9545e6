"""`vidseq train` from videos against training from frame folders, end to end, on the demo data (CPU).

The demo's dataset (`vidseq synth --preset demo`: 960 MPEG-4 AVIs, 24 frames, 96x72, keyframe every 12) and
the demo's cnn_lstm settings (ResNet-18 from scratch, 5 frames, 32 px, bs 16, 6 epochs, official split 1),
trained from: the frame folders `vidseq extract` writes (the demo's way), the videos themselves with the
`random` and the `random-key` samplers, and the videos transcoded by `vidseq transcode --size 32 --gop 4`.
The same seeds for every input, so `random` against `random-key` is the same model and seed schedule.

    .venv/bin/python benchmarks/train_from_videos.py [--seeds 0 1] [--epochs 6] [--workers N] [--inputs 1 2]

Prints the mean epoch time (after the first, which also builds the index and warms the workers), its ratio
to the frame folders', and the validation accuracy of the last epoch. Speed goals are met here, never in tests.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from vidseq.datasets.synth import PRESETS, make_synth
from vidseq.extract import extract_dataset, transcode_dataset
from vidseq.runs import read_metrics
from vidseq.train import TrainConfig, train


def _minutes(text: str) -> float:
    m, s = text.split(":")
    return int(m) * 60 + int(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-train-bench"))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--inputs", nargs="*", default=None,
                    help="which inputs to train from (numbers 0-3 in the table's order; default: all)")
    args = ap.parse_args()

    root = args.root
    if not (root / "synth" / "videos").is_dir():
        make_synth(root / "synth", PRESETS["demo"])
    videos = root / "synth" / "videos"
    extract_dataset(videos, root / "frames")
    transcode_dataset(videos, root / "transcoded", size=32, gop=4)
    inputs = [("frame folders (extract)", root / "frames", "random"),
              ("videos, random", videos, "random"),
              ("videos, random-key", videos, "random-key"),
              ("transcoded --size 32 --gop 4, random-key", root / "transcoded", "random-key")]
    if args.inputs is not None:
        inputs = [inputs[int(i)] for i in args.inputs]
    results = {}
    for seed in args.seeds:
        for label, data, sampler in inputs:
            out = root / "runs" / f"{label.split(',')[0].split(' ')[0]}-{sampler}-{seed}"
            cfg = TrainConfig(data=str(data), model="cnn_lstm", backbone="resnet18", pretrained=False, frames=5,
                              size=32, bs=16, epochs=args.epochs, lr=2e-3, sampler=sampler, split="official:1",
                              seed=seed, out=str(out), overwrite=True, workers=args.workers, verbose=False)
            train(cfg)
            rows = read_metrics(out)
            times = [_minutes(r["time"]) for r in rows[1:]] or [_minutes(rows[0]["time"])]
            results.setdefault(label, []).append((statistics.mean(times), float(rows[-1]["accuracy"])))
    base = statistics.mean(t for t, _ in results[inputs[0][0]])  # the first input given is the reference
    print(f"cnn_lstm, {args.epochs} epochs, seeds {args.seeds}")
    print("| input | epoch s | vs frame folders | accuracy (each seed) |")
    print("|---|---:|---:|---|")
    for label, runs in results.items():
        t = statistics.mean(x for x, _ in runs)
        print(f"| {label} | {t:.1f} | {t / base:.2f}x | {', '.join(f'{a:.1%}' for _, a in runs)} |")


if __name__ == "__main__":
    main()
