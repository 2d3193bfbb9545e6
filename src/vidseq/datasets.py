"""Datasets: get UCF101 and HMDB51, read their official split lists, and turn any folder-per-class tree
(of videos or of frame folders) or CSV manifest into labelled items with a split that does not leak.

Items are matched to split-list entries by (class folder, file stem), case-insensitively, so one split
serves a tree of videos and the tree of frame folders that ``vidseq extract`` makes from it, and
UCF101's ``v_HandStandPushups_*`` files meet their ``HandstandPushups`` class.

>>> items = load_items("ucf101")                        # doctest: +SKIP  (official split 1)
>>> items = load_items("frames/", split="group", valid_pct=0.2, seed=0)   # doctest: +SKIP
>>> items.split, len(items.train_items()), len(items.valid_items())      # doctest: +SKIP
('group', 9537, 3783)
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vidseq.errors import DatasetError
from vidseq.video import VIDEO_EXTENSIONS, is_video_file

#: Image files that make a folder a frame folder when named by frame number ("0.jpg", "frame_00012.png").
#: Image files that count as frames of a frame folder, when named like 12.jpg, frame_0012.jpg, img12.png.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_FRAME_STEM = re.compile(r"^[A-Za-z_\-]*\d+$")
_GROUP = re.compile(r"^(?:v_)?(?P<name>.+?)_g(?P<g>\d+)_")
SPLIT_MODES = ("auto", "official", "official:N", "group", "random", "csv")


# ---------------------------------------------------------------- known datasets


@dataclass(frozen=True)
class Remote:
    """One archive of a dataset: where it comes from and where under the dataset folder it unpacks."""

    url: str
    into: str = ""  # sub-folder of the dataset folder ("" = the dataset folder itself)
    recursive: bool = False  # unpack archives found inside (HMDB51 is a RAR of per-class RARs)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # under fastai's data folder
    remotes: tuple[Remote, ...]


DATASETS: dict[str, DatasetSpec] = {
    "ucf101": DatasetSpec("UCF101", "UCF101", (
        Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"),  # -> UCF101/UCF-101/<Class>/v_*.avi
        Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip"),  # ucfTrainTestlist/
    )),
    "hmdb51": DatasetSpec("HMDB51", "HMDB51", (
        Remote("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
               into="hmdb51_org", recursive=True),  # -> HMDB51/hmdb51_org/<class>/*.avi
        Remote("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar"),
    )),
}


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None


def fastai_dirs() -> tuple[Path, Path]:
    """fastai's archive and data folders from its own config (``~/.fastai/archive``, ``~/.fastai/data``)."""
    from fastai.data.external import fastai_cfg

    cfg = fastai_cfg()
    return Path(cfg.path("archive")), Path(cfg.path("data"))


def dataset_dir(name: str, *, dest: str | Path | None = None) -> Path:
    """Folder that holds dataset `name` once downloaded: ``<fastai data>/UCF101`` or ``<dest>/UCF101``."""
    spec = _spec(name)
    base = Path(dest).expanduser() if dest is not None else fastai_dirs()[1]
    return base / spec.folder


def fetch_dataset(name: str, *, dest: str | Path | None = None, progress: bool | None = None,
                  stream: TextIO | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Download and unpack UCF101 or HMDB51 with its split lists; return the dataset folder.

    Archives go to fastai's archive folder and unpack into ``<fastai data>/<NAME>``, or both into `dest`.
    Complete downloads and finished unpacks are not done again, so a rerun resumes where it stopped.
    """
    from vidseq.archive import unpack
    from vidseq.download import download, url_filename

    spec = _spec(name)
    archive_dir, data_dir = (Path(dest).expanduser(),) * 2 if dest is not None else fastai_dirs()
    root = data_dir / spec.folder
    say = log or (lambda _msg: None)
    for r in spec.remotes:
        have = archive_dir / url_filename(r.url)
        if have.is_file():
            say(f"already downloaded: {have}")
        else:
            resume = have.with_name(have.name + ".part").exists()
            say(f"{'resuming' if resume else 'fetching'} {r.url} -> {archive_dir}")
        arc = download(r.url, archive_dir, progress=progress, stream=stream)
        target = root / r.into if r.into else root
        stamp = root / f".{arc.name}.unpacked"
        if _stamp_done(stamp, root) or (r.into and target.is_dir() and any(target.iterdir())):
            say(f"already unpacked: {arc.name} -> {target}")
            continue
        say(f"unpacking {arc} -> {target}")
        entries = unpack(arc, target, recursive=r.recursive, progress=progress, stream=stream)
        root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(sorted(str(e.relative_to(root)) for e in entries)) + "\n")
    return root


def _stamp_done(stamp: Path, root: Path) -> bool:
    try:
        names = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return bool(names) and all((root / n).exists() for n in names)


# ---------------------------------------------------------------- items


@dataclass(frozen=True)
class Item:
    """One labelled sample: a video file or a frame folder."""

    path: Path
    label: str
    group: str | None  # "MoveLeft_g08" for UCF-style names, else None


@dataclass
class ItemSet:
    """Items with their classes and split. ``is_valid[i]`` is True for the validation/test side."""

    root: Path
    items: list[Item]
    classes: list[str]
    is_valid: list[bool]
    split: str  # "official:1", "group", "random" or "csv"
    kind: str  # "video" or "frames"
    missing: list[str] = field(default_factory=list)  # split-list or CSV entries with no file
    warnings: list[str] = field(default_factory=list)
    lists: Path | None = None  # folder of the official split lists used
    unlisted: int = 0  # items on disk left out because no split list names them
    leaked_groups: int = 0  # groups with items on both sides

    def train_items(self) -> list[Item]:
        return [it for it, v in zip(self.items, self.is_valid) if not v]

    def valid_items(self) -> list[Item]:
        return [it for it, v in zip(self.items, self.is_valid) if v]

    def train_idxs(self) -> list[int]:
        return [i for i, v in enumerate(self.is_valid) if not v]

    def valid_idxs(self) -> list[int]:
        return [i for i, v in enumerate(self.is_valid) if v]

    def summary(self) -> dict:
        """Everything ``vidseq info`` reports, as plain JSON-able data."""
        per_class = {c: {"train": 0, "valid": 0} for c in self.classes}
        for it, v in zip(self.items, self.is_valid):
            per_class.setdefault(it.label, {"train": 0, "valid": 0})["valid" if v else "train"] += 1
        n_valid = sum(self.is_valid)
        return {
            "root": str(self.root), "kind": self.kind, "split": self.split,
            "lists": str(self.lists) if self.lists else None,
            "classes": list(self.classes),
            "counts": {"train": len(self.items) - n_valid, "valid": n_valid, "total": len(self.items)},
            "per_class": per_class,
            "groups": len({it.group for it in self.items if it.group}),
            "leaked_groups": self.leaked_groups,
            "missing": len(self.missing), "missing_entries": list(self.missing),
            "unlisted": self.unlisted,
            "warnings": list(self.warnings),
        }


def parent_label(path: str | Path) -> str:
    """The class of an item: the name of the folder that holds it (as fastai's ``parent_label``)."""
    return Path(path).parent.name


def _stem(path: str | Path) -> str:
    """Name of a video without its extension, or of a frame folder as it is."""
    p = Path(path)
    return p.stem if p.suffix.lower() in VIDEO_EXTENSIONS else p.name


def group_of(path: str | Path) -> str | None:
    """UCF-style group of an item, ``v_MoveLeft_g08_c01.avi`` -> ``"MoveLeft_g08"``; None for other names.

    Clips of one group are cut from one long video, so they must stay on one side of a split.
    """
    m = _GROUP.match(_stem(path))
    return f"{m['name']}_g{int(m['g']):02d}" if m else None


def is_frame_name(name: str) -> bool:
    """Whether file `name` is a frame: an image named by its number, with an optional letters prefix."""
    stem, ext = os.path.splitext(name)
    return ext.lower() in IMAGE_EXTENSIONS and bool(_FRAME_STEM.match(stem))


def is_frame_folder(path: str | Path) -> bool:
    """True for a folder that holds image files named by frame number (``0.jpg``, ``frame_0001.png``)."""
    try:
        with os.scandir(path) as it:
            return any(e.is_file() and is_frame_name(e.name) for e in it)
    except OSError:
        return False


def scan_tree(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Videos and frame folders under `root`, each inside a class folder (sorted; hidden names skipped).

    A video counts when it lies in a folder below `root`; a frame folder when it lies in a folder below
    `root` (so its parent names the class). Frame folders are not searched further.
    """
    root = Path(root)
    videos: list[Path] = []
    frames: list[Path] = []
    seen: set[str] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        subdirs, vids, has_frames = [], [], False
        deep = d != root and d.parent != root
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    try:
                        if e.is_dir():
                            subdirs.append(Path(e.path))
                        elif is_frame_name(e.name):
                            has_frames = True
                            if deep:
                                break  # a frame folder: no need to list its hundreds of images
                        elif is_video_file(e.name) and e.is_file():
                            vids.append(Path(e.path))
                    except OSError:
                        continue
        except OSError:
            continue
        if deep and has_frames:
            frames.append(d)
            continue
        if d != root:
            videos.extend(vids)
        stack.extend(subdirs)
    return sorted(videos), sorted(frames)


# ---------------------------------------------------------------- official split lists


@dataclass(frozen=True)
class SplitLists:
    """A folder of official split lists: UCF101's ``ucfTrainTestlist`` or HMDB51's per-class files."""

    kind: str  # "ucf101" or "hmdb51"
    folder: Path
    splits: tuple[int, ...]  # split numbers with complete lists


@dataclass(frozen=True)
class ListEntry:
    """One line of a split list: a video of a class, on the train side, the test side, or unused."""

    label: str
    name: str  # file name as listed, "v_ApplyEyeMakeup_g08_c01.avi"
    side: str  # "train", "test" or "unused"

    @property
    def key(self) -> tuple[str, str]:
        return self.label.lower(), _stem(self.name).lower()


_UCF_LIST = re.compile(r"^(train|test)list0?(\d+)\.txt$", re.I)
_HMDB_LIST = re.compile(r"^(?P<label>.+)_test_split(?P<n>\d+)\.txt$", re.I)


def _lists_in(folder: Path) -> SplitLists | None:
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return None
    ucf: dict[int, set[str]] = {}
    hmdb: set[int] = set()
    for n in names:
        if m := _UCF_LIST.match(n):
            ucf.setdefault(int(m[2]), set()).add(m[1].lower())
        elif m := _HMDB_LIST.match(n):
            hmdb.add(int(m["n"]))
    full = tuple(sorted(k for k, v in ucf.items() if v == {"train", "test"}))
    if full:
        return SplitLists("ucf101", folder, full)
    if hmdb:
        return SplitLists("hmdb51", folder, tuple(sorted(hmdb)))
    return None


def find_split_lists(data: str | Path) -> SplitLists | None:
    """Official split lists for the tree `data`: in it, in one of its sub-folders, in its parent or in one of
    the parent's sub-folders (the first found, in that order); None when there are none."""
    data = Path(data)
    for base in (data, data.parent) if data.parent != data else (data,):
        for folder in [base, *sorted(p for p in _subdirs(base))]:
            found = _lists_in(folder)
            if found:
                return found
    return None


def _subdirs(folder: Path) -> Iterable[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read split list ({e.strerror or e})") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_class_index(path: str | Path) -> list[str]:
    """UCF101's ``classInd.txt`` ("1 ApplyEyeMakeup" per line, 1-based) as class names in index order."""
    path = Path(path)
    by_index: dict[int, str] = {}
    for n, line in _read_lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
        by_index[int(parts[0])] = parts[1].strip()
    return [by_index[k] for k in sorted(by_index)]


def read_split(lists: SplitLists, number: int) -> tuple[list[str], list[ListEntry]]:
    """Class names (official order) and entries of split `number` of `lists`."""
    if number not in lists.splits:
        raise DatasetError(f"{lists.folder}: has no split {number} (splits found: "
                           f"{', '.join(map(str, lists.splits))})")
    if lists.kind == "ucf101":
        return _read_ucf(lists.folder, number)
    return _read_hmdb(lists.folder, number)


def _find_file(folder: Path, pattern: re.Pattern, number: int, side: str) -> Path:
    for p in sorted(folder.iterdir()):
        m = pattern.match(p.name)
        if m and m[1].lower() == side and int(m[2]) == number:
            return p
    raise DatasetError(f"{folder}: no {side}list0{number}.txt")  # pragma: no cover - _lists_in checked


def _read_ucf(folder: Path, number: int) -> tuple[list[str], list[ListEntry]]:
    class_file = folder / "classInd.txt"
    classes = read_class_index(class_file) if class_file.is_file() else []
    canon = {c.lower(): c for c in classes}
    entries: list[ListEntry] = []
    for side in ("train", "test"):
        path = _find_file(folder, _UCF_LIST, number, side)
        for n, line in _read_lines(path):
            parts = line.split()
            if len(parts) >= 2 and parts[-1].isdigit():
                rel, idx = " ".join(parts[:-1]), int(parts[-1])
            else:
                rel, idx = line, None
            rel = rel.replace("\\", "/")
            if "/" in rel:
                label, name = rel.rsplit("/", 1)
                label = label.rsplit("/", 1)[-1]
            elif idx is not None and 1 <= idx <= len(classes):
                label, name = classes[idx - 1], rel
            else:
                raise DatasetError(f"{path}:{n}: expected 'Class/video.avi[ label]', got {line!r}")
            entries.append(ListEntry(canon.get(label.lower(), label), name, side))
    if not classes:
        classes = sorted({e.label for e in entries})
    return classes, entries


def _read_hmdb(folder: Path, number: int) -> tuple[list[str], list[ListEntry]]:
    sides = {"0": "unused", "1": "train", "2": "test"}
    entries: list[ListEntry] = []
    labels = []
    for path in sorted(folder.iterdir()):
        m = _HMDB_LIST.match(path.name)
        if not m or int(m["n"]) != number:
            continue
        label = m["label"]
        labels.append(label)
        for n, line in _read_lines(path):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in sides:
                raise DatasetError(f"{path}:{n}: expected '<video> <0|1|2>', got {line!r}")
            entries.append(ListEntry(label, parts[0], sides[parts[1]]))
    return sorted(labels), entries


# ---------------------------------------------------------------- splitters


class GroupSplitter:
    """Split whole groups into validation: a fastai splitter, ``GroupSplitter(0.2, seed=0)(items)``.

    Items are paths (group from :func:`group_of`, class from :func:`parent_label`) or :class:`Item`.
    In each class, ``round(valid_pct * groups)`` of its groups go to validation (at least one and never
    all of them when the class has two or more); items without a group count as a group of their own.
    Deterministic for a given seed. Returns (train_idxs, valid_idxs).
    """

    def __init__(self, valid_pct: float = 0.2, seed: int = 0):
        if not 0 <= valid_pct <= 1:
            raise ValueError(f"valid_pct must be between 0 and 1, got {valid_pct}")
        self.valid_pct, self.seed = valid_pct, seed

    def _group(self, item, i: int) -> str | None:
        return item.group if isinstance(item, Item) else group_of(item)

    def __call__(self, items: Sequence) -> tuple[list[int], list[int]]:
        keys, labels = [], []
        for i, it in enumerate(items):
            g = self._group(it, i)
            keys.append(g if g is not None else f"\0item{i}")
            labels.append(it.label if isinstance(it, Item) else parent_label(it))
        return split_groups(keys, labels, valid_pct=self.valid_pct, seed=self.seed)


class StratifiedSplitter(GroupSplitter):
    """Random split of single items, stratified by class (``valid_pct`` of each class to validation)."""

    def _group(self, item, i: int) -> str | None:
        return None


def split_groups(groups: Sequence[str], labels: Sequence[str], *, valid_pct: float = 0.2,
                 seed: int = 0) -> tuple[list[int], list[int]]:
    """(train_idxs, valid_idxs) that keep each group on one side, stratified by the group's class."""
    group_label: dict[str, str] = {}
    for g, lab in zip(groups, labels):
        group_label.setdefault(g, lab)
    by_label: dict[str, list[str]] = {}
    for g, lab in group_label.items():
        by_label.setdefault(lab, []).append(g)
    rng = random.Random(seed)
    chosen: set[str] = set()
    for lab in sorted(by_label):
        gs = sorted(by_label[lab])
        rng.shuffle(gs)
        k = round(valid_pct * len(gs))
        if valid_pct > 0 and len(gs) >= 2:
            k = max(k, 1)
        if valid_pct < 1:
            k = min(k, len(gs) - 1)
        chosen.update(gs[:k])
    valid = [i for i, g in enumerate(groups) if g in chosen]
    train = [i for i, g in enumerate(groups) if g not in chosen]
    return train, valid


# ---------------------------------------------------------------- load_items


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
    raise DatasetError(f"{data}: no such file or folder (give a folder of class folders, a CSV manifest, "
                       f"or one of {', '.join(DATASETS)})")


def _parse_split(split: str) -> tuple[str, int]:
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
        raise DatasetError(f"{root}: holds both videos ({len(videos)}) and frame folders ({len(frames)}); "
                           f"point at the folder of one kind (e.g. {_top(root, videos[0])} or "
                           f"{_top(root, frames[0])})")
    if not videos and not frames:
        raise DatasetError(f"{root}: no videos or frame folders found; expected {root}/<Class>/<video>.avi "
                           f"or {root}/<Class>/<video>/<n>.jpg")
    paths, kind = (videos, "video") if videos else (frames, "frames")
    return [Item(p, parent_label(p), group_of(p)) for p in paths], kind


def _top(root: Path, p: Path) -> Path:
    rel = p.relative_to(root).parts
    return root / rel[0] if len(rel) > 2 else root


_SIDES = {"train": False, "training": False, "valid": True, "validation": True, "val": True, "test": True}


#: First-row cells that name columns rather than hold a path or a label: a header vidseq does not know.
_HEADER_WORDS = {"file", "filename", "filepath", "file_path", "video", "video_path", "clip", "name", "class",
                 "category", "action", "target", "y", "class_name", "classname"}


def _csv_items(path: Path) -> tuple[list[Item], str, list[bool] | None, list[str]]:
    """Items of a CSV manifest ``path,label[,split]``; paths relative to the CSV's folder or absolute.

    Also reads the ``manifest.csv`` that ``vidseq extract`` writes (columns video, label, ..., status, folder):
    its frame folders, without the failed rows.
    """
    try:
        return _read_csv_items(path)
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start}); save the manifest as UTF-8") from None


def _read_csv_items(path: Path) -> tuple[list[Item], str, list[bool] | None, list[str]]:
    base = path.parent
    items: list[Item] = []
    sides: list[bool | None] = []
    missing: list[str] = []
    kinds: set[str] = set()
    cols = {"path": 0, "label": 1, "split": 2}
    header = False
    failed = 0
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        reader = csv.reader(f)
        first = True
        for row in reader:
            n = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if first:
                first = False
                low = [c.lower() for c in cells]
                if "path" in low:
                    if "label" not in low:
                        raise DatasetError(f"{path}:{n}: the header needs 'path' and 'label' columns")
                    cols = {k: low.index(k) for k in ("path", "label", "split") if k in low}
                    header = True
                    continue
                if {"folder", "label", "status"} <= set(low):  # vidseq extract's manifest.csv
                    cols = {"path": low.index("folder"), "label": low.index("label"), "status": low.index("status")}
                    header = True
                    continue
                if low[0] in _HEADER_WORDS or (len(low) > 1 and low[1] in _HEADER_WORDS):
                    raise DatasetError(f"{path}:{n}: a header without 'path' and 'label' columns (found "
                                       f"{','.join(cells)}); name the columns path,label[,split]")
            if "status" in cols:
                if len(cells) <= max(cols.values()) or cells[cols["status"]] == "failed" or not cells[cols["path"]]:
                    failed += 1
                    continue  # a failed video of vidseq extract's manifest: no frames to use
            if (not header and len(cells) not in (2, 3)) or len(cells) <= max(cols["path"], cols["label"]):
                raise DatasetError(f"{path}:{n}: expected path,label[,split], got {len(cells)} field(s)")
            rel, label = cells[cols["path"]], cells[cols["label"]]
            if not rel or not label:
                raise DatasetError(f"{path}:{n}: empty path or label")
            side_cell = cells[cols["split"]] if "split" in cols and cols["split"] < len(cells) else ""
            if side_cell and side_cell.lower() not in _SIDES:
                raise DatasetError(f"{path}:{n}: split must be train, valid or test, got {side_cell!r}")
            p = Path(rel).expanduser()
            p = p if p.is_absolute() else base / p
            if not p.exists():
                missing.append(rel)
                continue
            if p.is_dir():
                if not is_frame_folder(p):
                    raise DatasetError(f"{path}:{n}: {p} is a folder without numbered images (0.jpg, 1.jpg, ...)")
                kinds.add("frames")
            elif is_video_file(p):
                kinds.add("video")
            else:
                raise DatasetError(f"{path}:{n}: {p} is neither a video file nor a frame folder")
            items.append(Item(p, label, group_of(p)))
            sides.append(_SIDES[side_cell.lower()] if side_cell else None)
    if not items and failed:
        raise DatasetError(f"{path}: every video in this vidseq extract manifest failed ({failed}); see "
                           f"{path.parent / 'failures.jsonl'}")
    if not items:
        raise DatasetError(f"{path}: no usable rows (expected path,label[,split]; "
                           f"{len(missing)} path(s) do not exist)")
    if len(kinds) > 1:
        raise DatasetError(f"{path}: lists both videos and frame folders; use one kind per manifest")
    given = [s for s in sides if s is not None]
    if given and len(given) != len(sides):
        raise DatasetError(f"{path}: the split column is filled on some rows only; fill it on every row or none")
    return items, kinds.pop(), ([bool(s) for s in sides] if given else None), missing


def _apply_official(items: list[Item], lists: SplitLists, number: int):
    """Match items to split `number`: (items, is_valid, classes, missing, unlisted, warnings)."""
    classes, entries = read_split(lists, number)
    index: dict[tuple[str, str], int] = {}
    dups = 0
    for i, it in enumerate(items):
        key = (it.label.lower(), _stem(it.path).lower())
        if key in index:
            dups += 1
        else:
            index[key] = i
    side_of: dict[int, str] = {}
    label_of: dict[int, str] = {}
    missing: list[str] = []
    for e in entries:
        i = index.get(e.key)
        if i is None:
            if e.side != "unused":
                missing.append(f"{e.label}/{e.name}")
            continue
        side_of[i] = e.side
        label_of[i] = e.label
    chosen = sorted(i for i, s in side_of.items() if s != "unused")
    out = [Item(items[i].path, label_of[i], items[i].group) for i in chosen]
    is_valid = [side_of[i] == "test" for i in chosen]
    present = {it.label for it in out}
    absent = [c for c in classes if c not in present]
    warnings = []
    if out and absent:
        warnings.append(f"{len(absent)} class(es) of the split lists have no items here and are left out "
                        f"({', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''})")
    unlisted = len(items) - len(side_of) - dups
    if out and unlisted:
        warnings.append(f"{unlisted} item(s) on disk are in no list of split {number} and are left out")
    if dups:
        warnings.append(f"{dups} item(s) share a class and name with another (e.g. .avi and .mp4); only the "
                        "first is used")
    return out, is_valid, [c for c in classes if c in present], missing, unlisted, warnings


def load_items(data: str | Path, *, split: str = "auto", valid_pct: float = 0.2, seed: int = 0) -> ItemSet:
    """Labelled items of a dataset and their train/validation split.

    data: "ucf101" or "hmdb51" (in fastai's data folder), a folder-per-class tree of videos or of frame
    folders, or a CSV manifest ``path,label[,split]``.
    split: "auto" (the CSV's split column, else official split 1 when split lists exist, else "group"
    when names are UCF-style ``_gNN_``, else "random"), "official" / "official:N" (N in 1..3), "group",
    "random" (stratified by class; warns when groups exist, as near-duplicates then leak), "csv", or "none"
    (no validation items: every item for training, e.g. to cache or extract them all).
    Raises DatasetError (one line) for a missing path, no items, a single class, or an impossible split.
    """
    mode, number = _parse_split(split)
    if not 0 < valid_pct < 1:
        raise DatasetError(f"valid_pct must be between 0 and 1 (exclusive), got {valid_pct}")
    root = resolve_data(data)
    csv_valid = None
    missing: list[str] = []
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(f"{root}: not a folder or a .csv manifest (path,label[,split])")
        items, kind, csv_valid, missing = _csv_items(root)
        search = root.parent
    else:
        items, kind = _tree_items(root)
        search = root
    _need_two_classes(root, {it.label for it in items})
    if mode == "csv" and csv_valid is None:
        raise DatasetError(f"{root}: split 'csv' needs a CSV manifest with a split column (train/valid/test)")

    warnings: list[str] = []
    lists = None
    unlisted = 0
    classes = sorted({it.label for it in items})
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
            got, got_valid, got_classes, list_missing, unlisted, list_warn = _apply_official(items, lists, number)
            if got:
                items, is_valid, classes, mode = got, got_valid, got_classes, f"official:{number}"
                missing += list_missing
                warnings += list_warn
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
            raise DatasetError(f"{root}: no UCF-style group names (v_<Class>_g<NN>_c<NN>); use split 'random'")
        train, valid = GroupSplitter(valid_pct, seed)(items)
        is_valid = _flags(len(items), valid)
    elif mode == "random":
        train, valid = StratifiedSplitter(valid_pct, seed)(items)
        is_valid = _flags(len(items), valid)
    elif mode == "none":
        is_valid = [False] * len(items)

    _need_two_classes(root, {it.label for it in items})
    n_valid = sum(is_valid)
    if mode != "none" and (n_valid == 0 or n_valid == len(items)):
        side = "validation" if n_valid == 0 else "training"
        raise DatasetError(f"{root}: the {mode} split leaves no {side} items ({len(items)} items); "
                           "add data or choose another split")
    leaked, n_groups = _leaks(items, is_valid)
    if mode == "random" and n_groups:
        leak = (f"{leaked} of them have clips on both sides, so near-duplicates make validation accuracy optimistic"
                if leaked else "none is split this time, but nothing keeps a group together")
        warnings.append(f"random split ignores the {n_groups} UCF-style groups (clips cut from one long video): "
                        f"{leak}; use split 'group' or 'official'")
    elif leaked:
        warnings.append(f"{leaked} of {n_groups} groups have clips on both sides of the {mode} split "
                        "(near-duplicates leak into validation)")
    return ItemSet(root=root, items=items, classes=classes, is_valid=is_valid, split=mode, kind=kind,
                   missing=missing, warnings=warnings, lists=lists.folder if lists else None,
                   unlisted=unlisted, leaked_groups=leaked)


def _flags(n: int, valid: Iterable[int]) -> list[bool]:
    flags = [False] * n
    for i in valid:
        flags[i] = True
    return flags


def _need_two_classes(root: Path, labels: set[str]) -> None:
    if len(labels) < 2:
        only = f" ({next(iter(labels))})" if labels else ""
        raise DatasetError(f"{root}: found {len(labels)} class{only}; a classifier needs at least 2 classes "
                           "(one folder per class)")


def _leaks(items: Sequence[Item], is_valid: Sequence[bool]) -> tuple[int, int]:
    """(groups on both sides, groups in all)."""
    sides: dict[str, set[bool]] = {}
    for it, v in zip(items, is_valid):
        if it.group:
            sides.setdefault(it.group, set()).add(v)
    return sum(len(s) == 2 for s in sides.values()), len(sides)


# ---------------------------------------------------------------- report


def format_summary(s: dict, *, max_missing: int = 5) -> str:
    """The text that ``vidseq info`` prints for :meth:`ItemSet.summary`."""
    c = s["counts"]
    lines = [f"{s['root']}: {c['total']} {'videos' if s['kind'] == 'video' else 'frame folders'}, "
             f"{len(s['classes'])} classes",
             f"split: {s['split']}" + (f" (lists in {s['lists']})" if s["lists"] else "")
             + f"; train {c['train']}, valid {c['valid']}"]
    width = max(12, *(len(k) for k in s["per_class"]))
    lines.append(f"  {'class':<{width}}  {'train':>6}  {'valid':>6}")
    for cls, n in s["per_class"].items():
        lines.append(f"  {cls:<{width}}  {n['train']:>6}  {n['valid']:>6}")
    lines.append(f"groups: {s['groups']}" + (f" ({s['leaked_groups']} on both sides)" if s["groups"] else
                                              " (no UCF-style _gNN_ names)"))
    if s["missing"]:
        ex = s["missing_entries"][:max_missing]
        lines.append(f"missing: {s['missing']} listed entr{'y has' if s['missing'] == 1 else 'ies have'} no file, "
                     f"e.g. {', '.join(ex)}")
    if s["unlisted"]:
        lines.append(f"unlisted: {s['unlisted']} item(s) on disk in no split list")
    lines += [f"warning: {w}" for w in s["warnings"]]
    return "\n".join(lines)

