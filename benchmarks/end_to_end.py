"""End-to-end training speed: fastai training of frame_avg fed by vidseq's DataLoaders, against the same
model and Learner fed random tensors already on the device (the ceiling: training with loading for free),
and against the tutorial's pipeline, in one run.

Data: `vidseq synth --preset bench` (216 videos, 320x240, 40 frames) extracted to JPEG frame folders by
`vidseq extract`; the training list repeats those folders so that one epoch outlasts the timed steps (the
decoding work per clip is the same; the files stay in the page cache either way, as a dataset that fits in
memory does). Each pipeline trains frame_avg (ResNet-34 body from scratch, 5 frames, 64 px, bs 32, bf16
mixed precision on a GPU) through a fastai `Learner` with one-cycle and `vidseq train`'s optimiser (fused AdamW);
the first `--warmup` steps are untimed, then `--steps` steps are timed (device synchronised at both ends).

- random tensors: a fixed uint8 batch of the right shape on the device, through the same batch transforms;
- vidseq: `get_action_dataloaders(..., sampler="random", augment=True)` as `vidseq train` uses it
  (TSN segments, one random resized crop per clip, JPEGs decoded at reduced size), `--workers` processes;
- tutorial: the tutorial's pipeline (PIL images of the first 5 frames, per-item `Resize`, a tuple of
  T tensors per batch), same workers.

    python benchmarks/end_to_end.py                     # GPU: 16 workers (or one per core)
    python benchmarks/end_to_end.py --device cpu --steps 4 --warmup 1 --bs 4 --workers 2   # a smoke run

Target (issue 5): vidseq >= 85 % of the random-tensor rate on a GPU machine with 16 workers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import fastai.callback.fp16  # noqa: F401  (Learner.to_bf16)
import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.data.core import DataLoaders, TfmdDL
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
from loader import prepare, tutorial_dataloaders  # noqa: E402  (this folder's clip-loading benchmark)
from models import model_spec  # noqa: E402  (this folder's model benchmark: name[key=value;...] parsing)
from vidseq.clips import ImageTuple, batch_tfms, get_action_dataloaders  # noqa: E402
from vidseq.models import create_model, splitter  # noqa: E402
from vidseq.train import adamw  # noqa: E402


class Clock(Callback):
    """Times training steps `warmup+1 .. warmup+steps`, then ends the fit."""

    order = 100

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps

    def before_fit(self):
        self.n, self.t0, self.seconds, self.waits = 0, None, None, 0.0
        self.last = None

    def before_batch(self):
        if self.training and self.last is not None and self.t0 is not None:
            self.waits += time.perf_counter() - self.last  # time between steps: fetching the next batch

    def after_batch(self):
        if not self.training:
            return
        self.n += 1
        if self.n == self.warmup:
            _sync(self.dls.device)
            self.t0 = time.perf_counter()
        elif self.n == self.warmup + self.steps:
            _sync(self.dls.device)
            self.seconds = time.perf_counter() - self.t0
            raise CancelFitException()
        self.last = time.perf_counter()


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def train_rate(dls: DataLoaders, n_classes: int, args: argparse.Namespace) -> dict:
    """Clips per second of frame_avg training on `dls`, timed by `Clock`."""
    torch.manual_seed(0)
    model = create_model("frame_avg", n_classes, seq_len=args.frames, image_size=args.size, backbone=args.arch,
                         pretrained=False)
    clock = Clock(args.warmup, args.steps)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), splitter=splitter, cbs=[clock],
                    opt_func=adamw(torch.device(args.device)))  # as `vidseq train` builds it
    if torch.device(args.device).type == "cuda":
        learn.to_bf16()
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    learn.logger = lambda *a, **k: None
    epoch = len(dls.train)
    if epoch < args.warmup + args.steps:
        raise SystemExit(f"an epoch has {epoch} batches, fewer than {args.warmup + args.steps}: raise --repeat")
    learn.fit_one_cycle(1, 1e-3)
    if clock.seconds is None:
        raise SystemExit("the fit ended before the timed steps")
    return {"clips_per_s": args.steps * args.bs / clock.seconds, "step_ms": clock.seconds / args.steps * 1000,
            "wait_ms": clock.waits / (args.steps - 1) * 1000}


def random_dls(n_classes: int, args: argparse.Namespace) -> DataLoaders:
    """DataLoaders that hand out one fixed random uint8 clip batch, already on the device."""
    device = torch.device(args.device)
    x = ImageTuple(torch.randint(0, 256, (args.bs, args.frames, 3, args.size, args.size), dtype=torch.uint8,
                                 device=device))
    y = torch.randint(0, n_classes, (args.bs,), device=device)
    n = (args.warmup + args.steps + 2) * args.bs

    def loader(items: int) -> TfmdDL:
        return TfmdDL(list(range(items)), bs=args.bs, create_batch=lambda _: (x, y), device=device,
                          after_batch=batch_tfms(device=device), num_workers=0)

    return DataLoaders(loader(n), loader(args.bs), device=device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cuda, cpu or auto")
    ap.add_argument("--workers", type=int, default=min(16, len(os.sched_getaffinity(0))))
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--arch", default="resnet34")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=None, help="times the training list is repeated "
                    "(default: enough for one epoch to outlast the timed steps)")
    ap.add_argument("--no-tutorial", action="store_true", help="leave out the tutorial's pipeline")
    ap.add_argument("--variants", nargs="*", default=[], metavar="KEY=VALUE[;KEY=VALUE]",
                    help="more rows: vidseq's loaders with these get_action_dataloaders options (e.g. "
                    "pin_memory=true, workers=12)")
    ap.add_argument("--root", type=Path, default=Path("/tmp/vidseq-bench"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(args.device).type == "cuda":
        torch.backends.cudnn.benchmark = True

    folders, val = prepare(args.root)
    val_set = set(val)
    train = [f for i, f in enumerate(folders) if i not in val_set]
    valid = [folders[i] for i in val[:args.bs]]
    need = (args.warmup + args.steps + 2) * args.bs
    repeat = args.repeat or -(-need // len(train))
    files = train * repeat + valid
    val_idxs = list(range(len(train) * repeat, len(files)))
    n_classes = len({f.parent.name for f in folders})
    common = dict(bs=args.bs, image_size=args.size, seq_len=args.frames, val_idxs=val_idxs, workers=args.workers,
                  persistent_workers=args.workers > 0)

    rows = [("random tensors on the device (no loading)", train_rate(random_dls(n_classes, args), n_classes, args))]
    ours = get_action_dataloaders(files, sampler="random", augment=True, device=args.device, verbose=False, **common)
    rows.append(("vidseq, frame folders, TSN + crops", train_rate(ours, n_classes, args)))
    del ours
    for variant in args.variants:
        options = {**common, **model_spec(f"variant[{variant}]")[1]}
        if "workers" in options:
            options["persistent_workers"] = options["workers"] > 0
        dls = get_action_dataloaders(files, sampler="random", augment=True, device=args.device, verbose=False,
                                     **options)
        rows.append((f"vidseq, frame folders, TSN + crops, {variant}", train_rate(dls, n_classes, args)))
        del dls
    if not args.no_tutorial:
        tut = tutorial_dataloaders(files, device=args.device, **common)
        rows.append(("tutorial's pipeline (PIL, per-item Resize)", train_rate(tut, n_classes, args)))

    from models import machine  # this folder's model benchmark

    print(f"\nMachine: {machine(args.device)}. frame_avg ({args.arch}, from scratch), {args.frames} frames, "
          f"{args.size} px, bs {args.bs}, {'bf16' if args.device.startswith('cuda') else 'fp32'}, "
          f"{args.workers} loader workers; {args.steps} timed steps after {args.warmup}.\n")
    base = rows[0][1]["clips_per_s"]
    print("| input | clips/s | step (ms) | wait for batch (ms) | vs random tensors |\n|---|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['clips_per_s']:,.0f} | {r['step_ms']:.1f} | {r['wait_ms']:.1f} | "
              f"{r['clips_per_s'] / base:.0%} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args.device), "rows": rows, "args": {
            k: str(v) for k, v in vars(args).items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
