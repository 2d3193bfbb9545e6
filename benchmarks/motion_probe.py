"""Can a small 3D CNN learn a motion family's direction from frames, and from their normal flow?

    python benchmarks/motion_probe.py                        # spin: 300 groups x 3 clips per class, 20 epochs
    python benchmarks/motion_probe.py --family move_x --groups 100 --epochs 10
    python benchmarks/motion_probe.py --family pan_x

Renders clips of one direction pair of `vidseq synth` (both classes of a pair share each group's look; groups
1-40 held out), 5 frames spread over each clip at 32 px, and trains the same three-layer 3D CNN (from scratch,
AdamW, random shifts) twice: on the normalised frames, and on `vidseq.models.layers.normal_flow` of them.
Prints held-out accuracy every 5 epochs and a table. Why: a rotation or a pan changes no linear function of
the frames on average, so from frames a network has no first-order signal for the direction; in the flow it
has one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from vidseq.datasets.synth import MOTIONS, SynthConfig, _render_clip  # noqa: E402
from vidseq.models.layers import normal_flow  # noqa: E402

HELD_OUT = 40  # groups 1-40 are the test set


def render(family: str, groups: int, size: int, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clips (N, T, 3, size, size) normalised, labels (N,), groups (N,)) for the direction pair `family`."""
    cfg = SynthConfig(classes=len(MOTIONS), groups=groups, clips=3)
    pair = [m for m in MOTIONS if m[1] == family]
    if len(pair) != 2:
        raise SystemExit(f"no direction pair {family!r}: one of {sorted({m[1] for m in MOTIONS})}")
    xs, ys, gs = [], [], []
    for label, (_, fam, direction) in enumerate(pair):
        for g in range(1, groups + 1):
            for c in range(1, 4):
                clip = list(_render_clip(cfg, fam, direction, np.random.default_rng([0, 99, g]),
                                         np.random.default_rng([0, label, g, c, 7])))
                picked = []
                for i in np.linspace(0, len(clip) - 1, frames).round().astype(int):
                    im = Image.fromarray(clip[i])
                    im = im.resize((round(im.width * size / im.height), size), Image.BILINEAR)
                    left = (im.width - size) // 2
                    picked.append(np.asarray(im.crop((left, 0, left + size, size))))
                xs.append(np.stack(picked))
                ys.append(label)
                gs.append(g)
    x = torch.tensor(np.stack(xs)).permute(0, 1, 4, 2, 3).float() / 255
    return (x - 0.45) / 0.25, torch.tensor(ys), torch.tensor(gs)


def net(in_channels: int) -> nn.Module:
    layers, c = [], in_channels
    for i, out in enumerate((32, 64, 128)):
        layers += [nn.Conv3d(c, out, 3, padding=1), nn.BatchNorm3d(out), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool3d((1, 2, 2)))
        c = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(c, 2))


def train(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, epochs: int, label: str) -> float:
    """Held-out accuracy after `epochs` of training on x[~test] (x: (N, C, T, H, W))."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = net(x.shape[1])
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=0.05)
    xtr, ytr, xte, yte = x[~test], y[~test], x[test], y[test]
    t0, acc = time.perf_counter(), 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(len(ytr)).split(32):
            dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
            loss = F.cross_entropy(model(torch.roll(xtr[idx], (dy, dx), (3, 4))), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 0 or epoch == epochs:
            model.eval()
            with torch.no_grad():
                acc = (model(xte).argmax(1) == yte).float().mean().item()
            print(f"  {label}: epoch {epoch}, held-out accuracy {acc:.2f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="spin", help="spin, move_x, move_y, scale, pan_x, pan_y")
    ap.add_argument("--groups", type=int, default=300, help=f"groups per class (1-{HELD_OUT} held out)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--frames", type=int, default=5)
    args = ap.parse_args(argv)
    if args.groups <= HELD_OUT:
        raise SystemExit(f"--groups must be more than {HELD_OUT}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    clips, y, groups = render(args.family, args.groups, args.size, args.frames)
    test = groups <= HELD_OUT
    print(f"{args.family}: {int((~test).sum())} training clips, {int(test.sum())} held out; {args.frames} frames, "
          f"{args.size} px")
    rows = [("frames", train(clips.transpose(1, 2), y, test, args.epochs, "frames")),
            ("normal flow", train(normal_flow(clips).transpose(1, 2), y, test, args.epochs, "normal flow"))]
    print(f"\n| input | held-out accuracy after {args.epochs} epochs |\n|---|---:|")
    for name, acc in rows:
        print(f"| {name} | {acc:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
