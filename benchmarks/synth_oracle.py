"""Does `vidseq synth` data carry its motion directions? Hand-made rules, no learning, per class family.

For every clip, a rule reads the direction from the decoded frames and is scored against the label:

- movers (move_x, move_y): the centroid of the pixels that differ from the clip's median frame, first
  half against second half;
- scale (Grow/Shrink): the number of such pixels, first half against second half;
- spin: the orientation of those pixels (second image moments), its change summed over the frames;
- pans: phase correlation between consecutive frames, summed.

    python benchmarks/synth_oracle.py DATA          # DATA: a `vidseq synth` folder (with videos/)
    python benchmarks/synth_oracle.py /tmp/vidseq-accuracy/data --groups 1-7

Prints the fraction of clips per class whose direction the rule gets right (1.0: the data carries it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vidseq.datasets.synth import MOTIONS  # noqa: E402
from vidseq.io import read_frames  # noqa: E402

FAMILY = {name: (family, direction) for name, family, direction in MOTIONS}


def _object(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) masks of the pixels that differ from the median frame (the moving object)."""
    diff = np.abs(frames - np.median(frames, axis=0)).sum(-1)
    return diff > 60


def _orientation(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    if len(xs) < 5:
        return float("nan")
    x, y = xs - xs.mean(), ys - ys.mean()
    return 0.5 * np.degrees(np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean()))


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(dy, dx) that best maps b onto a (phase correlation)."""
    cross = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    r = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(r.argmax(), r.shape)
    h, w = a.shape
    return int(dy if dy < h // 2 else dy - h), int(dx if dx < w // 2 else dx - w)


def direction(frames: np.ndarray, family: str) -> int:
    """+1 or -1 as `vidseq.synth` signs the direction of `family` (right, down, grow, clockwise)."""
    t = len(frames)
    first, last = slice(0, t // 2), slice(t - t // 2, t)
    if family.startswith("pan"):
        gray = frames.mean(-1)
        steps = [_shift(b, a) for a, b in zip(gray[:-1], gray[1:])]  # frame to frame: small, never wrapped
        moved = sum(dx if family == "pan_x" else dy for dy, dx in steps)
        return -int(np.sign(moved))  # the view moves with +s, so the content shifts the other way
    mask = _object(frames)
    if family in ("move_x", "move_y"):
        axis = 2 if family == "move_x" else 1
        pos = [np.nonzero(m)[axis - 1].mean() if m.any() else np.nan for m in mask]
        return int(np.sign(np.nanmean(pos[last]) - np.nanmean(pos[first])))
    if family == "scale":
        area = mask.sum((1, 2))
        return int(np.sign(area[last].mean() - area[first].mean()))
    angles = np.array([_orientation(m) for m in mask])
    turn = (np.diff(angles) + 90) % 180 - 90  # orientation repeats every 180 degrees
    return int(np.sign(np.nansum(turn)))  # image y points down: a growing angle turns clockwise on screen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--groups", default=None, help="only these groups, e.g. 1-7 (the test groups)")
    args = ap.parse_args(argv)
    lo, hi = (int(g) for g in args.groups.split("-")) if args.groups else (1, 10**6)
    print("| class | family | clips | direction read right |\n|---|---|---:|---:|")
    for cls_dir in sorted(p for p in (args.data / "videos").iterdir() if p.name in FAMILY):
        family, sign = FAMILY[cls_dir.name]
        right = []
        for f in sorted(cls_dir.glob("*.avi")):
            if lo <= int(f.name.split("_g")[1][:2]) <= hi:
                right.append(direction(read_frames(f).astype(np.float32), family) == sign)
        print(f"| {cls_dir.name} | {family} | {len(right)} | {np.mean(right):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
