"""The clip transform: an item path -> an `ImageTuple` of `seq_len` frames at `image_size`, sampled, cropped
and resized alike for every frame, read through a frame source."""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import torch
from fasttransform import Transform
from torchvision.transforms.v2 import functional as TF

from vidseq.clips.clip import ImageTuple
from vidseq.clips.sources import FILES, FrameSource, keyframes_of
from vidseq.errors import TruncatedVideoError, VideoError, VidseqError, warn_data
from vidseq.sampling import DEFAULT_SAMPLER, Pad, get_sampler, sample


def _crop_box(h: int, w: int, *, train: bool, scale: tuple[float, float], ratio: tuple[float, float],
              rng: random.Random, crop_pct: float = 1.0) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the region to resize: random resized crop when training, else the
    centred square of `crop_pct` x the short side (1: the largest, the tutorial's `Resize`)."""
    if train:
        area = h * w
        for _ in range(10):
            target = area * rng.uniform(*scale)
            r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            cw, ch = round(math.sqrt(target * r)), round(math.sqrt(target / r))
            if 0 < cw <= w and 0 < ch <= h:
                return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    s = max(1, round(min(h, w) * crop_pct))
    return (h - s) // 2, (w - s) // 2, s, s


def _channels_first(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) frames as read (a NumPy array, or a tensor on the device that decoded them) -> (T, 3, H, W)."""
    return (frames if isinstance(frames, torch.Tensor) else torch.from_numpy(frames)).permute(0, 3, 1, 2)


class ClipTfm(Transform):
    """Item transform: a frame folder or video path -> an `ImageTuple` of `seq_len` frames at `image_size`.

    Frames are picked by `sampler` (its random form on the training set, its deterministic form on the
    validation set). On the training set with `augment`, one random resized crop (and, with `flip`, one
    horizontal flip; off by default, since it swaps left and right motion) is drawn per clip and applied
    to every frame; otherwise the centre square is taken (`crop_pct` of the short side: a checkpoint's
    evaluation crop, e.g. 0.875 for a 112 px crop of frames resized to 128).

    Given `stand_ins` (item path -> its group, e.g. its label and split), an item that turns out unreadable
    while loading (a damaged video, an oversized JPEG) is reported once on stderr and left out from then
    on: a clip of another item of its group stands in for it, so that one bad file does not stop a
    training run. `load` itself raises.

    Frames are read through `source` (a `vidseq.clips.sources.FrameSource`): the files themselves by default,
    or a clip cache.
    """

    def __init__(self, seq_len: int = 5, image_size: int = 64, *, sampler: str = DEFAULT_SAMPLER, pad: Pad = "repeat",
                 step: int = 2, augment: bool = False, flip: bool = False, scale: tuple[float, float] = (0.45, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), frame_counts: dict[str, int] | None = None,
                 stand_ins: dict[str, Hashable] | None = None, source: FrameSource = FILES, crop_pct: float = 1.0):
        super().__init__()
        self.source = source
        get_sampler(sampler)  # fail early on a bad name
        self.seq_len, self.image_size, self.sampler, self.pad, self.step = seq_len, image_size, sampler, pad, step
        if not 0 < crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.augment, self.flip, self.scale, self.ratio, self.crop_pct = augment, flip, scale, ratio, crop_pct
        self.frame_counts = dict(frame_counts or {})
        self.stand_ins = dict(stand_ins or {})
        self._bad: set[str] = set()
        self._train = False

    def __call__(self, o, split_idx=None, **kwargs):
        self._train = split_idx == 0
        return super().__call__(o, split_idx=split_idx, **kwargs)

    def n_frames(self, path: Path) -> int:
        key = str(path)
        if key not in self.frame_counts:
            self.frame_counts[key] = self.source.n_frames(path)
        return self.frame_counts[key]

    def indices(self, path: Path, *, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
        keyframes = keyframes_of(self.source, path) if train and self.sampler == "random-key" else None
        return sample(self.sampler, self.n_frames(path), self.seq_len, train=train, rng=rng, pad=self.pad,
                      step=self.step, keyframes=keyframes)

    def encodes(self, o: Path) -> ImageTuple:
        return self._load_or_stand_in(o)

    def encodes(self, o: str) -> ImageTuple:  # noqa: F811 - fastai dispatches on the annotation
        return self._load_or_stand_in(Path(o))

    def _load_or_stand_in(self, path: Path) -> ImageTuple:
        key = str(path)
        if key not in self._bad:
            try:
                return self.load(path, train=self._train)
            except (VidseqError, OSError) as e:
                if key not in self.stand_ins:
                    raise
                self._leave_out(key, e)
        group = self.stand_ins[key]
        others = [p for p, g in self.stand_ins.items() if g == group and p not in self._bad]
        random.shuffle(others)
        for p in others:
            try:
                return self.load(Path(p), train=self._train)
            except (VidseqError, OSError) as e:
                self._leave_out(p, e)
        raise VideoError(path=path, reason="unreadable, and no readable item of its class and split to stand in for it")

    def _leave_out(self, key: str, error: Exception) -> None:
        self._bad.add(key)
        warn_data(f"leaving out an unreadable item ({error}); other items of its class and split stand in for it")

    def load(self, path: Path, *, train: bool = False, indices: Sequence[int] | None = None) -> ImageTuple:
        """The clip of `path` (frames `indices`, or as the sampler picks them) cropped and resized."""
        r = random.Random(random.getrandbits(64))
        return ImageTuple(self.resize(self.frames(path, train=train, indices=indices, rng=r), train=train, rng=r))

    def load_views(self, path: Path, indices: Sequence[int], *, crops: int = 1) -> torch.Tensor:
        """The test views of one clip of `path` (frames `indices`): (crops, T, C, S, S) uint8, see `views`."""
        return self.views(self.frames(path, indices=indices), crops=crops)

    def frames(self, path: Path, *, train: bool = False, indices: Sequence[int] | None = None,
               rng: random.Random | None = None) -> np.ndarray | torch.Tensor:
        """The frames of a clip of `path` as read, (T, H, W, 3): `indices`, or as the sampler picks them."""
        r = rng or random.Random(random.getrandbits(64))
        if indices is None:
            indices = self.indices(path, train=train, rng=np.random.default_rng(r.getrandbits(64)))
        try:
            frames = self.read(path, indices)
        except TruncatedVideoError:
            # the container promised more frames than decode: count them for real and sample again
            self.frame_counts[str(path)] = self.source.exact_frames(path)
            if not self.frame_counts[str(path)]:
                raise
            indices = self.indices(path, train=train, rng=np.random.default_rng(r.getrandbits(64)))
            frames = self.read(path, indices)
        return frames

    def read(self, path: Path, indices: Sequence[int]) -> np.ndarray:
        """Frames `indices` of `path` as (T, H, W, 3) uint8, decoded no smaller than the target size."""
        return self.source.read(path, indices, min_side=self.image_size)

    def views(self, frames: np.ndarray | torch.Tensor, *, crops: int = 1) -> torch.Tensor:
        """Test views of one clip's frames (T, H, W, 3): (crops, T, C, S, S) uint8. One crop: the validation
        crop (centre, `crop_pct`); three: squares of the full short side at the start, centre and end of the long
        side (left/centre/right, or top/centre/bottom for portrait video), as SlowFast's three-crop test."""
        if crops == 1:
            return self.resize(frames, train=False, rng=random.Random(0))[None]
        if crops != 3:
            raise ValueError(f"crops must be 1 or 3, got {crops}")
        clip = _channels_first(frames)
        h, w = clip.shape[-2:]
        s = min(h, w)
        starts = (0, (max(h, w) - s) // 2, max(h, w) - s)
        boxes = [(0, x, s, s) if w >= h else (x, 0, s, s) for x in starts]
        size = [self.image_size, self.image_size]
        return torch.stack([TF.resized_crop(clip, *box, size=size, antialias=True) for box in boxes]).contiguous()

    def resize(self, frames: np.ndarray | torch.Tensor, *, train: bool, rng: random.Random) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, 3, S, S) uint8, one crop for every frame (on the frames' device)."""
        clip = _channels_first(frames)
        h, w = clip.shape[-2:]
        top, left, ch, cw = _crop_box(h, w, train=train and self.augment, scale=self.scale, ratio=self.ratio,
                                      rng=rng, crop_pct=self.crop_pct)
        if (ch, cw) == (self.image_size, self.image_size):  # already the size: a crop, no resampling
            clip = clip[..., top: top + ch, left: left + cw]
        else:
            size = [self.image_size, self.image_size]
            clip = TF.resized_crop(clip, top, left, ch, cw, size=size, antialias=True)
        if train and self.augment and self.flip and rng.random() < 0.5:
            clip = clip.flip(-1)
        return clip.contiguous()
