"""Experiment tracking through fastai's own callbacks: TensorBoard (event files in the run folder) or Weights &
Biases (offline unless you are logged in), logging losses, metrics and learning rates while training, and at
the end the confusion matrix and a few validation clips. Both are optional packages; a missing one is one line.

>>> train(TrainConfig(data="demo/frames", log="tensorboard"))      # then: tensorboard --logdir runs  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vidseq.errors import VidseqError

TRACKERS = ("tensorboard", "wandb")
TENSORBOARD_DIR = "tensorboard"


def _missing(package: str, log: str) -> VidseqError:
    return VidseqError(f"{{log}} needs the {package} package: pip install {package}", params={"log": log})


def check_tracker(log: str | None) -> None:
    """One line, before anything starts, when tracker `log` is unknown or its package is not installed."""
    if log is None:
        return
    if log not in TRACKERS:
        raise VidseqError(f"unknown tracker {{log}}: choose {' or '.join(TRACKERS)}", params={"log": log})
    import importlib.util

    if importlib.util.find_spec(log) is None:
        raise _missing(log, log)


def tracking_callbacks(log: str | None, run: Path, *, name: str, config: dict) -> list:
    """fastai callbacks that log training to `log` ("tensorboard", "wandb" or None) for run folder `run`."""
    check_tracker(log)
    if log is None:
        return []
    if log == "tensorboard":
        from fastai.callback.tensorboard import TensorBoardCallback

        class RunTensorBoard(TensorBoardCallback):
            """fastai's TensorBoardCallback with its steps counted on over the frozen and the main phase."""

            order = TensorBoardCallback.order

            def __init__(self, log_dir: Path):
                super().__init__(log_dir=str(log_dir), trace_model=False, log_preds=False)
                self.steps_before = 0

            @property
            def train_iter(self) -> int:
                return self.steps_before + self.learn.train_iter

            def after_batch(self):  # training batches, numeric hyper-parameters (AdamW's may hold None)
                if not self.training:
                    return
                self.writer.add_scalar("train_loss", self.smooth_loss, self.train_iter)
                for i, h in enumerate(self.opt.hypers):
                    for k, v in h.items():
                        if isinstance(v, (int, float)):
                            self.writer.add_scalar(f"{k}_{i}", v, self.train_iter)

            def after_fit(self):
                self.steps_before += self.learn.train_iter
                super().after_fit()

        return [RunTensorBoard(run / TENSORBOARD_DIR)]
    import wandb
    from fastai.callback.wandb import WandbCallback

    if wandb.run is None:
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        wandb.init(project=os.environ.get("WANDB_PROJECT", "vidseq"), name=name, dir=str(run), config=config,
                   mode=mode)
    class RunWandb(WandbCallback):
        """fastai's WandbCallback; the run's config goes to `wandb.init` (fastai's own gathering of the Learner's
        arguments fails on path items)."""

        def before_fit(self):
            self.learn.gather_args = dict
            super().before_fit()

    return [RunWandb(log_preds=False, log_model=False)]


def confusion_figure(targets: np.ndarray, preds: np.ndarray, classes: list[str]):
    """The confusion matrix (rows: true classes) as a matplotlib Figure."""
    from matplotlib.figure import Figure

    n = len(classes)
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (targets, preds), 1)
    fig = Figure(figsize=(2 + 0.35 * n, 2 + 0.35 * n))
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def clip_strips(x: torch.Tensor, n: int = 4) -> np.ndarray:
    """The first `n` clips of a decoded batch (B, T, C, H, W) in [0, 1] as (n, H, T x W, C) float images."""
    x = x[:n].float().clamp(0, 1).cpu()
    return x.permute(0, 3, 1, 4, 2).reshape(x.shape[0], x.shape[3], -1, x.shape[2]).numpy()


def ap_figure(ap: np.ndarray, classes: list[str]):
    """Per-class average precision as a horizontal bar chart (a multi-label run's summary)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 1 + 0.3 * len(classes)))
    ax = fig.subplots()
    ax.barh(range(len(classes)), np.nan_to_num(ap), color="tab:blue")
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"average precision (mAP {np.nanmean(ap):.3f})")
    fig.tight_layout()
    return fig


def log_summary(log: str | None, run: Path, learn, classes: list[str], *, step: int, multi_label: bool = False) -> None:
    """At the end of training: the validation confusion matrix (per-class average precision for a multi-label
    run) and a few validation clips, to `log`."""
    if log is None:
        return
    from vidseq.scores import per_class_ap

    probs, targets = learn.get_preds(ds_idx=1)
    if multi_label:
        fig = ap_figure(per_class_ap(probs.numpy(), targets.numpy()), classes)
    else:
        fig = confusion_figure(targets.numpy(), probs.argmax(1).numpy(), classes)
    batch = learn.dls.valid.one_batch()
    clips = learn.dls.valid.after_batch.decode((batch[0],))[0]
    images = clip_strips(clips.as_subclass(torch.Tensor) / (255 if clips.dtype == torch.uint8 else 1))
    if log == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(run / TENSORBOARD_DIR)) as writer:
            writer.add_figure("per-class AP" if multi_label else "confusion", fig, step)
            writer.add_images("validation clips (frames left to right)", images, step, dataformats="NHWC")
    else:
        import wandb

        wandb.log({"per-class AP" if multi_label else "confusion": wandb.Image(fig),
                   "validation clips": [wandb.Image(im) for im in images]})
        wandb.finish()
