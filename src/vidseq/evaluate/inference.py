"""A run's model on items: the clips it was validated with (K spread over each video, each through one or three
crops), batched, probabilities averaged over the views as in TSN and SlowFast's multi-view test."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import DataLoader, Dataset

from vidseq.clips import ClipTfm
from vidseq.errors import VidseqError
from vidseq.runs import Run, RunConfig
from vidseq.sampling import multi_clip, sample


def clip_tfm_for(config: RunConfig) -> ClipTfm:
    """The deterministic (validation) clip transform a run was trained with."""
    return ClipTfm(config.clip.frames, config.clip.size, sampler=config.clip.sampler, pad=config.clip.pad,
                   crop_pct=config.clip.crop_pct)


def clip_indices(tfm: ClipTfm, path: Path, clips: int) -> list[np.ndarray]:
    """Frame indices of `clips` test clips of `path`: the validation sampler for one, spread clips for more."""
    n = tfm.n_frames(path)
    if clips == 1:
        return [sample(tfm.sampler, n, tfm.seq_len, train=False, pad=tfm.pad, step=tfm.step)]
    step = tfm.step if tfm.sampler == "stride" else None
    return multi_clip(n, tfm.seq_len, clips, step=step, pad=tfm.pad)


class _Clips(Dataset):
    """(views of one clip, item index, clip index, error) for every clip of every item: a clip's `crops` views
    come together, (crops, T, C, S, S), so a batch of clips is one forward; unreadable items are flagged."""

    def __init__(self, paths: Sequence[Path], tfm: ClipTfm, clips: int, crops: int):
        self.paths, self.tfm, self.clips, self.crops = list(paths), tfm, clips, crops

    def __len__(self) -> int:
        return len(self.paths) * self.clips

    def __getitem__(self, k: int):
        i, j = divmod(k, self.clips)
        size = self.tfm.image_size
        try:
            idx = clip_indices(self.tfm, self.paths[i], self.clips)[j]
            x = self.tfm.load_views(self.paths[i], idx, crops=self.crops).cpu()
            err = ""
        except (VidseqError, OSError, ValueError) as e:
            x = torch.zeros(self.crops, self.tfm.seq_len, 3, size, size, dtype=torch.uint8)
            if getattr(e, "path", None) is not None:  # a vidseq error that names its file already
                err = str(e)
            else:  # e.g. the sampler's ValueError "the video has no frames"
                err = f"{self.paths[i]}: {getattr(e, 'reason', None) or e or type(e).__name__}"
        return x, i, j, err


def normalize(x: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """uint8 (B, T, C, H, W) -> float normalised as in training."""
    stats = config.clip.normalize
    mean = torch.tensor(stats.mean, device=x.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(stats.std, device=x.device).view(1, 1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


@torch.no_grad()
def view_probs(run: Run, paths: Sequence[str | Path], *, clips: int = 1, crops: int = 1, bs: int = 16,
               workers: int = 0, device: str | torch.device = "cpu") -> tuple[np.ndarray, dict[int, str]]:
    """Class probabilities (softmax; sigmoid for a multi-label run) of every test view, (N, clips x crops, C) —
    `clips` clips spread over each item, each
    seen through `crops` crops (1 or 3, see `ClipTfm.views`) — and {item: error} for items that could not be read
    (their rows are NaN). A batch of `bs` clips with all their crops is one forward."""
    if clips < 1:
        raise VidseqError(f"{{clips}} must be at least 1, got {clips}", params={"clips": clips})
    if crops not in (1, 3):
        raise VidseqError(f"{{crops}} must be 1 or 3, got {crops}", params={"crops": crops})
    paths = [Path(p) for p in paths]
    tfm = clip_tfm_for(run.config)
    dl = DataLoader(_Clips(paths, tfm, clips, crops), batch_size=bs, num_workers=workers, shuffle=False)
    out = np.full((len(paths), clips * crops, len(run.classes)), np.nan)
    errors: dict[int, str] = {}
    model = run.model.to(device).eval()
    for x, items, clip, errs in dl:
        ok = torch.tensor([not e for e in errs])
        for i, e in zip(items.tolist(), errs):
            if e:
                errors[i] = e
        if ok.any():
            views = rearrange(x[ok], "b v t c h w -> (b v) t c h w")
            logits = model(normalize(views.to(device), run.config)).float()
            probs = (logits.sigmoid() if run.config.multi_label else logits.softmax(-1)).cpu().numpy()
            probs = rearrange(probs, "(b v) k -> b v k", v=crops)
            for (i, j), p in zip(zip(items[ok].tolist(), clip[ok].tolist()), probs):
                out[i, j * crops:(j + 1) * crops] = p
    for i in errors:
        out[i] = np.nan
    return out, errors


def predict_paths(run: Run, paths: Sequence[str | Path], *, clips: int = 1, crops: int = 1, bs: int = 16,
                  workers: int = 0, device: str | torch.device = "cpu") -> tuple[np.ndarray, dict[int, str]]:
    """Class probabilities (N, C) of each item, averaged over its `clips` x `crops` views (see `view_probs`), and
    {item: error} for items that could not be read (their rows are NaN)."""
    probs, errors = view_probs(run, paths, clips=clips, crops=crops, bs=bs, workers=workers, device=device)
    return probs.mean(1), errors
