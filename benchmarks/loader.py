"""Clip loading speed: vidseq's DataLoaders against the tutorial's fastai pipeline, same data, same workers.

One epoch of training batches (5 frames, 64 px, bs 32) from full-size 320x240 JPEG frame folders made by
`vidseq extract` from `vidseq synth --preset bench`, for:

- tutorial: fastai `Datasets` with the tutorial's `ImageTupleTfm` (PIL images), per-item `Resize` and
  `ToTensor`, `IntToFloatTensor` and `Normalize` per batch (a tuple of T (B, C, H, W) tensors);
- vidseq: `get_action_dataloaders` on the same folders (reduced-size JPEG decode, one crop per clip);
- vidseq cache: the same from a clip cache made by `vidseq.cache.build_cache`.

    .venv/bin/python benchmarks/loader.py [--workers 2] [--epochs 1] [--root /tmp/vidseq-bench]

Prints clips/s of each and the ratios to the tutorial. Speed goals are met here, never in tests.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from fastai.data.core import Datasets
from fastai.data.transforms import Categorize, IntToFloatTensor, Normalize, ToTensor, parent_label
from fastai.vision.augment import Resize
from fastai.vision.core import PILImage, imagenet_stats
from fastcore.basics import fastuple
from fasttransform import Pipeline, Transform

from vidseq.clips import build_cache, get_action_dataloaders
from vidseq.datasets.synth import PRESETS, make_synth
from vidseq.extract import extract_dataset


# ---------------------------------------------------------------- the tutorial's pipeline, as it is written
class TutorialImageTuple(fastuple):
    @classmethod
    def create(cls, fns):
        return cls(tuple(PILImage.create(f) for f in fns))


def ls_sorted(path: Path) -> list[Path]:
    return sorted(path.iterdir(), key=lambda f: int(f.with_suffix("").name))


class ImageTupleTfm(Transform):
    def __init__(self, seq_len=20):
        super().__init__()
        self.seq_len = seq_len

    def encodes(self, path: Path):
        frames = ls_sorted(path)
        return TutorialImageTuple.create(tuple(frames[: min(self.seq_len, len(frames))]))


def tutorial_dataloaders(files, *, bs, image_size, seq_len, val_idxs, workers, persistent_workers, device=None):
    train_idxs = [i for i in range(len(files)) if i not in set(val_idxs)]
    ds = Datasets(files, tfms=[[ImageTupleTfm(seq_len=seq_len)], [parent_label, Categorize]],
                  splits=[train_idxs, list(val_idxs)])
    return ds.dataloaders(bs=bs, after_item=[Resize(image_size), ToTensor],
                          after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats, cuda=False)],
                          drop_last=True, num_workers=workers, persistent_workers=persistent_workers,
                          device=device)


# -------------------------------------------------------------------------------------------------- timing
def clips_per_second(dl, epochs: int) -> float:
    """Training clips per second delivered by `dl`. Its batch transforms (uint8 -> float, normalise) are
    left out for every pipeline alike: fastai runs them on the GPU, after the loader, in real training."""
    dl.after_batch = Pipeline([])
    n, start = 0, None
    for e in range(epochs + 1):  # one warm-up epoch starts the workers and fills caches
        if e == 1:
            start, n = time.perf_counter(), 0
        for x, _ in dl:
            n += (x[0] if isinstance(x, tuple) else x).shape[0]
    return n / (time.perf_counter() - start)


def prepare(root: Path) -> tuple[list[Path], list[int]]:
    if not (root / "frames" / "manifest.csv").is_file():
        make_synth(root / "data", PRESETS["bench"])
        extract_dataset(root / "data" / "videos", root / "frames", quality=90)
    folders = sorted(p for p in (root / "frames").glob("*/*") if p.is_dir() and not p.name.startswith("."))
    val = [i for i, p in enumerate(folders) if int(p.name.split("_g")[1][:2]) <= 7]
    return folders, val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-bench"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    folders, val = prepare(args.root)
    # the benchmark iterates the training set of all items: the tutorial's random split is not the point here
    kw = dict(bs=args.bs, image_size=64, seq_len=5, val_idxs=val[:32], workers=args.workers,
              persistent_workers=args.workers > 0)
    rows = []
    tut = tutorial_dataloaders(folders, **kw)
    rows.append(("tutorial (PIL, per-item Resize)", clips_per_second(tut.train, args.epochs)))
    ours = get_action_dataloaders(folders, sampler="first", augment=False, device="cpu", verbose=False, **kw)
    rows.append(("vidseq, frame folders", clips_per_second(ours.train, args.epochs)))
    aug = get_action_dataloaders(folders, sampler="random", augment=True, device="cpu", verbose=False, **kw)
    rows.append(("vidseq, frame folders, TSN + crops", clips_per_second(aug.train, args.epochs)))
    # the cache holds frames at the training size, as `vidseq cache --size 64` makes them
    cache = build_cache(folders, args.root / "cache64", size=64, frames=32, workers=max(1, args.workers),
                        progress=False)
    cached = get_action_dataloaders(folders, sampler="first", augment=False, device="cpu", verbose=False,
                                    cache=cache, **kw)
    rows.append(("vidseq, clip cache", clips_per_second(cached.train, args.epochs)))
    base = rows[0][1]
    print(f"\n{len(folders) - 32} training clips of 5 frames, 64 px, bs {args.bs}, {args.workers} worker(s), "
          f"{args.epochs} timed epoch(s); frames 320x240 JPEG q90; batch transforms (on the GPU in training) "
          "left out for all\n")
    print("| pipeline | clips/s | clips/s per worker | vs tutorial |\n|---|---:|---:|---:|")
    for name, v in rows:
        print(f"| {name} | {v:,.0f} | {v / max(1, args.workers):,.0f} | {v / base:.1f}x |")


if __name__ == "__main__":
    main()
