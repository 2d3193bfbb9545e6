"""Clips for fastai: the clip type and its show, frame sources, the clip transform, the cache and DataLoaders.

The tutorial's vocabulary is kept (`ImageTuple`, `get_action_dataloaders`) and made fast:

- a clip is one ``(T, C, H, W)`` uint8 tensor (`ImageTuple`), a batch one ``(B, T, C, H, W)`` uint8 tensor
  until it reaches the device, where fastai's batch transforms convert and normalise it;
- frames come from a frame source: frame folders (JPEGs decoded at reduced size), video files read directly,
  or the clip cache;
- frames are picked by a sampler (`vidseq.sampling`) and every frame of a clip gets the same crop.

>>> dls = get_action_dataloaders(files, bs=8, image_size=64, seq_len=5)     # doctest: +SKIP
>>> x, y = dls.one_batch()          # x: (8, 5, 3, 64, 64) float on the device, y: (8,) class indices
"""

from vidseq.clips.cache import ClipCache, build_cache
from vidseq.clips.clip import IMAGENET, ImageTuple, Stats
from vidseq.clips.loaders import (
    ClipBlock,
    batch_tfms,
    dataloaders_from_items,
    default_workers,
    get_action_dataloaders,
    pins_batches,
)
from vidseq.clips.sources import FILES, FileSource, FrameSource, KeyframeSource
from vidseq.clips.transforms import ClipTfm

__all__ = [
    "FILES",
    "IMAGENET",
    "ClipBlock",
    "ClipCache",
    "ClipTfm",
    "FileSource",
    "FrameSource",
    "ImageTuple",
    "KeyframeSource",
    "Stats",
    "batch_tfms",
    "build_cache",
    "dataloaders_from_items",
    "default_workers",
    "get_action_dataloaders",
    "pins_batches",
]
