"""A run's model on items: the clips it was validated with (K spread over each video), batched, probabilities
averaged as in TSN."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidseq.clips import ClipTfm
from vidseq.errors import VidseqError
from vidseq.runs import Run, RunConfig
from vidseq.sampling import multi_clip, sample


def clip_tfm_for(config: RunConfig) -> ClipTfm:
    """The deterministic (validation) clip transform a run was trained with."""
    return ClipTfm(config.clip.frames, config.clip.size, sampler=config.clip.sampler, pad=config.clip.pad)


def clip_indices(tfm: ClipTfm, path: Path, clips: int) -> list[np.ndarray]:
    """Frame indices of `clips` test clips of `path`: the validation sampler for one, spread clips for more."""
    n = tfm.n_frames(path)
    if clips == 1:
        return [sample(tfm.sampler, n, tfm.seq_len, train=False, pad=tfm.pad, step=tfm.step)]
    step = tfm.step if tfm.sampler == "stride" else None
    return multi_clip(n, tfm.seq_len, clips, step=step, pad=tfm.pad)


class _Clips(Dataset):
    """(clip tensor, item index, clip index) for every clip of every item; unreadable items flagged."""

    def __init__(self, paths: Sequence[Path], tfm: ClipTfm, clips: int):
        self.paths, self.tfm, self.clips = list(paths), tfm, clips

    def __len__(self) -> int:
        return len(self.paths) * self.clips

    def __getitem__(self, k: int):
        i, j = divmod(k, self.clips)
        size = self.tfm.image_size
        try:
            idx = clip_indices(self.tfm, self.paths[i], self.clips)[j]
            x = self.tfm.load(self.paths[i], indices=idx).as_subclass(torch.Tensor)
            err = ""
        except (VidseqError, OSError, ValueError) as e:
            x = torch.zeros(self.tfm.seq_len, 3, size, size, dtype=torch.uint8)
            if getattr(e, "path", None) is not None:  # a vidseq error that names its file already
                err = str(e)
            else:  # e.g. the sampler's ValueError "the video has no frames"
                err = f"{self.paths[i]}: {getattr(e, 'reason', None) or e or type(e).__name__}"
        return x, i, err


def normalize(x: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """uint8 (B, T, C, H, W) -> float normalised as in training."""
    stats = config.clip.normalize
    mean = torch.tensor(stats.mean, device=x.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(stats.std, device=x.device).view(1, 1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


@torch.no_grad()
def predict_paths(run: Run, paths: Sequence[str | Path], *, clips: int = 1, bs: int = 16, workers: int = 0,
                  device: str | torch.device = "cpu") -> tuple[np.ndarray, dict[int, str]]:
    """Class probabilities (N, C) of each item, averaged over `clips` clips, and {item: error} for items
    that could not be read (their rows are NaN)."""
    if clips < 1:
        raise VidseqError(f"{{clips}} must be at least 1, got {clips}", params={"clips": clips})
    paths = [Path(p) for p in paths]
    tfm = clip_tfm_for(run.config)
    ds = _Clips(paths, tfm, clips)
    dl = DataLoader(ds, batch_size=bs, num_workers=workers, shuffle=False)
    n_classes = len(run.classes)
    sums = np.zeros((len(paths), n_classes), np.float64)
    errors: dict[int, str] = {}
    model = run.model.to(device).eval()
    for x, items, errs in dl:
        ok = torch.tensor([not e for e in errs])
        for i, e in zip(items.tolist(), errs):
            if e:
                errors[i] = e
        if ok.any():
            probs = model(normalize(x[ok].to(device), run.config)).float().softmax(-1).cpu().numpy()
            np.add.at(sums, items[ok].numpy(), probs)
    probs = sums / clips
    for i in errors:
        probs[i] = np.nan
    return probs, errors
