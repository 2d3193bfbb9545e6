"""`load_items`: any dataset (a name, a folder-per-class tree, a CSV manifest) as labelled items with a split
that does not leak.

>>> items = load_items("ucf101")                        # doctest: +SKIP  (official split 1)
>>> items = load_items("frames/", split="group", valid_pct=0.2, seed=0)   # doctest: +SKIP
>>> items.split, len(items.train_items()), len(items.valid_items())      # doctest: +SKIP
('group', 9537, 3783)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.datasets.annotations import is_mmaction_list, is_ssv2, read_mmaction_list, read_ssv2
from vidseq.datasets.fetch import DATASETS, dataset_dir
from vidseq.datasets.items import LABEL_SEP, Item, ItemSet, Tally, group_of, label_set, parent_label, scan_tree
from vidseq.datasets.manifest import Manifest, read_manifest_csv
from vidseq.datasets.official import TEST, item_key, match_official
from vidseq.datasets.segments import (
    is_kinetics_csv,
    is_segment_csv,
    is_segment_list,
    read_kinetics_csv,
    read_segment_csv,
    read_segment_list,
)
from vidseq.datasets.splitlists import SplitLists, find_split_lists
from vidseq.datasets.splitters import GroupSplitter, StratifiedSplitter
from vidseq.errors import DatasetError

SPLIT_MODES = ("auto", "official", "official:N", "group", "random", "csv", "none")


def resolve_data(data: str | Path) -> Path:
    """A path as given, or the folder of a known dataset name ("ucf101", "hmdb51") under fastai's data."""
    p = Path(data).expanduser()
    if p.exists():
        return p
    name = str(data)
    if name.lower() in DATASETS and "/" not in name and "\\" not in name:
        root = dataset_dir(name)
        if not root.is_dir():
            raise DatasetError(f"{DATASETS[name.lower()].name} is not downloaded ({root} does not exist); "
                               f"run 'vidseq download {name.lower()}' or pass the folder that holds it")
        return root
    raise DatasetError(path=data, reason=f"no such file or folder (give a folder of class folders, a CSV manifest, "
                       f"or one of {', '.join(DATASETS)})")


def read_annotations(path: Path) -> Manifest:
    """The items of an annotation file (or Something-Something v2's folder), whatever its format: an MMAction2
    list, a ``path start end label`` list, a Kinetics CSV, vidseq's CSV with or without time ranges."""
    return annotation_reader(path)(path)


def annotation_reader(path: Path) -> Callable[[Path], Manifest]:
    """The reader of `read_annotations` for `path`'s format."""
    for is_format, reader in ((is_ssv2, read_ssv2), (is_mmaction_list, read_mmaction_list),
                              (is_segment_list, read_segment_list), (is_kinetics_csv, read_kinetics_csv),
                              (is_segment_csv, read_segment_csv)):
        if is_format(path):
            return reader
    if path.suffix.lower() == ".csv":
        return read_manifest_csv
    raise DatasetError(path=path, reason="not a folder, a .csv manifest (path,label[,split]), an MMAction2 list "
                       "(path label), a list of path start end label, or Something-Something v2's annotations")


def parse_split(split: str, valid_pct: float) -> tuple[str, int]:
    """The split's mode and number ("official:2" -> ("official", 2)); one line for a mode or share that is not one."""
    if not 0 < valid_pct < 1:
        raise DatasetError(f"valid_pct must be between 0 and 1 (exclusive), got {valid_pct}")
    s = split.strip().lower()
    if s in ("auto", "group", "random", "csv", "none"):
        return s, 1
    if s == "official":
        return s, 1
    if m := re.fullmatch(r"official:(\d+)", s):
        return "official", int(m[1])
    raise DatasetError(f"unknown split {split!r}; use auto, official, official:N (N = 1, 2 or 3), group, "
                       "random, csv or none")


def _tree_items(root: Path) -> tuple[list[Item], str]:
    videos, frames = scan_tree(root)
    if videos and frames:
        raise DatasetError(path=root, reason=f"holds both videos ({len(videos)}) and frame folders ({len(frames)}); "
                           f"point at the folder of one kind (e.g. {_top(root, videos[0])} or "
                           f"{_top(root, frames[0])})")
    if not videos and not frames:
        raise DatasetError(path=root, reason=f"no videos or frame folders found; expected {root}/<Class>/<video>.avi "
                           f"or {root}/<Class>/<video>/<n>.jpg")
    paths, kind = (videos, "video") if videos else (frames, "frames")
    return [Item(p, parent_label(p), group_of(p)) for p in paths], kind


def _top(root: Path, p: Path) -> Path:
    rel = p.relative_to(root).parts
    return root / rel[0] if len(rel) > 2 else root


@dataclass
class OfficialSplit:
    """Items matched to an official split: those listed (with the list's class names), their side, the
    classes present in the official order, listed entries with no file, items on disk in no list."""

    items: list[Item]
    is_valid: list[bool]
    classes: list[str]
    missing: list[str] = field(default_factory=list)
    unlisted: int = 0
    warnings: list[str] = field(default_factory=list)


def _apply_official(items: list[Item], lists: SplitLists, number: int) -> OfficialSplit:
    """Match items to split `number` of `lists`."""
    keys = np.fromiter((item_key(it.label, it.path) for it in items), np.int64, len(items))
    match = match_official(keys, lists, number)
    chosen = match.chosen
    out = [Item(items[i].path, match.labels[match.label[i]], items[i].group) for i in chosen]
    return OfficialSplit(out, (match.side[chosen] == TEST).tolist(), match.classes, match.missing.entries,
                         match.unlisted, match.warnings())


def load_items(data: str | Path, *, split: str = "auto", valid_pct: float = 0.2, seed: int = 0) -> ItemSet:
    """Labelled items of a dataset and their train/validation split.

    data: "ucf101" or "hmdb51" (in fastai's data folder), a folder-per-class tree of videos or of frame
    folders, a CSV manifest ``path,label[,split]``, an MMAction2 list file (with its partner list as the other
    side) or Something-Something v2's annotations (`vidseq.datasets.annotations`); annotations with time ranges
    (vidseq's CSV with start and end columns, Kinetics' CSVs, ``path start end label`` lists) make an item of each
    segment of a long video (`vidseq.datasets.segments`).
    split: "auto" (the CSV's split column or the annotation files' own split,
    else official split 1 when split lists exist, else "group"
    when names are UCF-style ``_gNN_``, else "random"), "official" / "official:N" (N in 1..3), "group",
    "random" (stratified by class; warns when groups exist, as near-duplicates then leak), "csv", or "none"
    (no validation items: every item for training, e.g. to cache or extract them all).
    Raises DatasetError (one line) for a missing path, no items, a single class, or an impossible split.
    """
    mode, number = parse_split(split, valid_pct)
    root = resolve_data(data)
    csv_valid = None
    missing: list[str] = []
    warnings: list[str] = []
    if root.is_file() or is_ssv2(root):
        manifest = read_annotations(root)
        items, kind, csv_valid, missing = manifest.items, manifest.kind, manifest.is_valid, manifest.missing
        warnings += manifest.notes
        search = root.parent if root.is_file() else root
    else:
        items, kind = _tree_items(root)
        search = root
    multi_label = any(LABEL_SEP in it.label for it in items)
    if multi_label:  # one spelling of each label set, so that equal sets stratify together
        items = [Item(it.path, LABEL_SEP.join(sorted(set(label_set(it.label)))), it.group) for it in items]
    _need_two_classes(root, _classes(items, multi_label))
    if mode == "csv" and csv_valid is None:
        raise DatasetError(path=root, reason="split 'csv' needs a CSV manifest with a split column (train/valid/test)")

    lists = None
    unlisted = 0
    classes = sorted(_classes(items, multi_label))
    is_valid: list[bool] = []
    if mode == "auto" and csv_valid is not None:
        mode = "csv"
    if mode in ("auto", "official"):
        lists = find_split_lists(search)
        if lists is None and mode == "official":
            raise DatasetError(f"no official split lists found in or beside {search} (UCF101's ucfTrainTestlist/ "
                               "or HMDB51's *_test_splitN.txt); use split 'group' or 'random'")
        if lists is not None:
            if mode == "auto":
                number = lists.splits[0]
            official = _apply_official(items, lists, number)
            unlisted = official.unlisted
            if official.items:
                items, is_valid, classes = official.items, official.is_valid, official.classes
                mode = f"official:{number}"
                missing += official.missing
                warnings += official.warnings
            elif mode == "official":
                raise DatasetError(f"the split lists in {lists.folder} name none of the {len(items)} items in "
                                   f"{root}; use split 'group' or 'random'")
            else:
                warnings.append(f"the split lists in {lists.folder} name none of the items here; not used")
                lists, unlisted = None, 0
        if mode == "auto":
            mode = "group" if any(it.group for it in items) else "random"
    if mode == "csv":
        is_valid = list(csv_valid)
    elif mode == "group":
        if not any(it.group for it in items):
            raise DatasetError(path=root, reason="no UCF-style group names (v_<Class>_g<NN>_c<NN>); use split 'random'")
        train, valid = GroupSplitter(valid_pct, seed)(items)
        is_valid = _flags(len(items), valid)
    elif mode == "random":
        train, valid = StratifiedSplitter(valid_pct, seed)(items)
        is_valid = _flags(len(items), valid)
    elif mode == "none":
        is_valid = [False] * len(items)

    _need_two_classes(root, _classes(items, multi_label))
    check_sides(root, mode, len(items), sum(is_valid))
    tally = Tally()
    for it, v in zip(items, is_valid):
        tally.add(it.label, it.group, v)
    leaked = tally.leaked_groups
    warnings += leak_warnings(mode, leaked, len(tally.group_sides)) + tally.class_warnings(mode)
    return ItemSet(root=root, items=items, classes=classes, is_valid=is_valid, split=mode, kind=kind,
                   missing=missing, warnings=warnings, lists=lists.folder if lists else None,
                   unlisted=unlisted, leaked_groups=leaked, multi_label=multi_label)


def _classes(items: Sequence[Item], multi_label: bool) -> set[str]:
    return {c for it in items for c in (label_set(it.label) if multi_label else [it.label])}


def _flags(n: int, valid: Iterable[int]) -> list[bool]:
    flags = [False] * n
    for i in valid:
        flags[i] = True
    return flags


def _need_two_classes(root: Path, labels: set[str]) -> None:
    if len(labels) < 2:
        only = f" ({next(iter(labels))})" if labels else ""
        raise DatasetError(path=root, reason=f"found {len(labels)} class{only}; a classifier needs at least 2 classes "
                           "(one folder per class)")


def check_sides(root: Path, mode: str, n: int, n_valid: int) -> None:
    """One line when split `mode` leaves one side empty."""
    if mode != "none" and (n_valid == 0 or n_valid == n):
        side = "validation" if n_valid == 0 else "training"
        raise DatasetError(path=root, reason=f"the {mode} split leaves no {side} items ({n} items); "
                           "add data or choose another split")


def leak_warnings(mode: str, leaked: int, n_groups: int) -> list[str]:
    """What split `mode` is warned of when `leaked` of `n_groups` groups have items on both sides."""
    if mode == "random" and n_groups:
        leak = (f"{leaked} of them have clips on both sides, so near-duplicates make validation accuracy optimistic"
                if leaked else "none is split this time, but nothing keeps a group together")
        return [f"random split ignores the {n_groups} UCF-style groups (clips cut from one long video): {leak}; "
                "use split 'group' or 'official'"]
    if leaked:
        return [f"{leaked} of {n_groups} groups have clips on both sides of the {mode} split (near-duplicates leak "
                "into validation)"]
    return []
