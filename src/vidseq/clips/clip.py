"""The clip type, `ImageTuple` (the tutorial's name), and how fastai shows clips: `show_batch`, `show_results`
and `plot_top_losses` draw each clip as its first, middle and last frame side by side."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from fastai.imports import dispatch
from fastai.torch_core import TensorImage, show_image
from fastai.vision.data import get_grid
from PIL import Image


class Stats(NamedTuple):
    """Per-channel (R, G, B) mean and standard deviation that a model's input is normalised with."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


#: ImageNet's statistics: the normalisation of every model trained from or like ImageNet weights.
IMAGENET = Stats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class ImageTuple(TensorImage):
    """A clip: a ``(T, C, H, W)`` tensor of frames (``(B, T, C, H, W)`` once batched). The tutorial's name.

    `show` draws the first, middle and last frame side by side, as the tutorial's `ImageTuple.show`.
    Being a `TensorImage`, it goes through fastai's `IntToFloatTensor` and `Normalize` unchanged.
    """

    @classmethod
    def create(cls, frames: Sequence) -> ImageTuple:
        """A clip from image files, PIL images or (H, W, 3) uint8 arrays of one size."""
        arrays = [np.asarray(Image.open(f).convert("RGB")) if isinstance(f, (str, Path)) else
                  np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f) for f in frames]
        if not arrays:
            raise ValueError("a clip needs at least one frame")
        return cls(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous())

    def strip(self, n: int = 3, sep: int = 2) -> torch.Tensor:
        """`n` frames (first, middle, last for n=3) side by side with thin white separators, as (C, H, W)."""
        clip = self.data if self.ndim == 4 else self.data[None]
        t = clip.shape[0]
        picks = sorted({round(i * (t - 1) / max(1, n - 1)) for i in range(n)}) if n > 1 else [0]
        frames = [clip[i] for i in picks]
        line = frames[0].new_zeros(frames[0].shape[0], frames[0].shape[1], sep)
        if frames[0].is_floating_point():
            line = line + 1.0 if frames[0].max() <= 1 else line + 255
        else:
            line = line + 255
        parts = []
        for i, f in enumerate(frames):
            parts += [f] if i == 0 else [line, f]
        strip = torch.cat(parts, dim=2)
        if strip.is_floating_point() and strip.max() > 1.0:
            strip = strip.clamp(0, 255).byte()
        return strip

    def show(self, ctx=None, n: int = 3, sep: int = 2, **kwargs):
        """Show `n` frames (first, middle, last for n=3) side by side, with a thin separator."""
        if self.ndim not in (3, 4):
            return ctx
        return show_image(self.strip(n, sep), ctx=ctx, **kwargs)


@dispatch
def show_batch(x: ImageTuple, y, samples, ctxs=None, max_n: int = 6, nrows=None, ncols: int = 2, figsize=None,
               **kwargs):
    """`dls.show_batch()` for clips: frame strips in two columns, titled with their labels."""
    n = min(len(samples), max_n)
    if ctxs is None:
        ctxs = get_grid(n, nrows=nrows, ncols=min(ncols, n), figsize=figsize or (6 * min(ncols, n), 2.2 * math.ceil(
            n / min(ncols, n))))
    for s, ctx, _ in zip(samples, ctxs, range(n)):
        s[0].show(ctx=ctx, **kwargs)
        ctx.set_title(str(s[1]))
    return ctxs


@dispatch
def show_results(x: ImageTuple, y, samples, outs, ctxs=None, max_n: int = 6, nrows=None, ncols: int = 2,
                 figsize=None, **kwargs):
    """`learn.show_results()` for clips: each strip titled 'true / predicted', green when right."""
    n = min(len(samples), max_n)
    if ctxs is None:
        ctxs = get_grid(n, nrows=nrows, ncols=min(ncols, n), figsize=figsize or (6 * min(ncols, n), 2.2 * math.ceil(
            n / min(ncols, n))))
    for s, o, ctx, _ in zip(samples, outs, ctxs, range(n)):
        s[0].show(ctx=ctx, **kwargs)
        truth, pred = str(s[1]), str(o[0])
        ctx.set_title(f"{truth} / {pred}", color="green" if truth == pred else "red")
    return ctxs


@dispatch
def plot_top_losses(x: ImageTuple, y, samples, outs, raws, losses, nrows=None, ncols: int = 2, figsize=None,
                    **kwargs):
    """`interp.plot_top_losses()` for clips: predicted / actual / loss / probability over each strip."""
    n = len(samples)
    axs = get_grid(n, nrows=nrows, ncols=min(ncols, n), figsize=figsize or (6 * min(ncols, n), 2.4 * math.ceil(
        n / min(ncols, n))), title="Prediction/Actual/Loss/Probability")
    for ax, s, o, r, loss in zip(axs, samples, outs, raws, losses):
        s[0].show(ctx=ax, **kwargs)
        ax.set_title(f"{o[0]}/{s[1]} / {loss.item():.2f} / {r.max().item():.2f}")
