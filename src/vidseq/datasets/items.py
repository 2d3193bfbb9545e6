"""Items: labelled videos or frame folders, their UCF-style groups, and a tree scan that finds them.

Clips of one UCF-style group (``v_MoveLeft_g08_c01``) are cut from one long video, so a split must keep a
group on one side.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.files import OutsideLinks
from vidseq.io import VIDEO_EXTENSIONS, is_frame_name, is_video_file

_GROUP = re.compile(r"^(?:v_)?(?P<name>.+?)_g(?P<g>\d+)_")


@dataclass(frozen=True)
class Item:
    """One labelled sample: a video file or a frame folder."""

    path: Path
    label: str
    group: str | None  # "MoveLeft_g08" for UCF-style names, else None


#: What joins the labels of a multi-label item ("Jump;Wave"), in CSV manifests and `Item.label`.
LABEL_SEP = ";"


def label_set(label: str) -> list[str]:
    """The labels of an item's `label` (one, or several joined by ";")."""
    return [part.strip() for part in label.split(LABEL_SEP) if part.strip()]


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
    multi_label: bool = False  # items carry several labels each ("a;b"), `classes` is their union

    def train_items(self) -> list[Item]:
        return [it for it, v in zip(self.items, self.is_valid) if not v]

    def valid_items(self) -> list[Item]:
        return [it for it, v in zip(self.items, self.is_valid) if v]

    def train_idxs(self) -> list[int]:
        return [i for i, v in enumerate(self.is_valid) if not v]

    def valid_idxs(self) -> list[int]:
        return [i for i, v in enumerate(self.is_valid) if v]

    def summary(self, *, keep: int = 100) -> dict:
        """Everything ``vidseq info`` reports, as plain JSON-able data (naming the first `keep` missing entries)."""
        tally = Tally(keep)
        for it, v in zip(self.items, self.is_valid):
            tally.add(it.label, it.group, v)
        for entry in self.missing:
            tally.missing.add(entry)
        return tally.summary(root=self.root, kind=self.kind, split=self.split, classes=self.classes,
                             multi_label=self.multi_label, lists=self.lists, unlisted=self.unlisted,
                             warnings=self.warnings)


class Missing:
    """Entries (CSV rows, split-list lines) that name no file: all counted, the first `keep` named (None: all)."""

    def __init__(self, keep: int | None = None):
        self.count, self.keep = 0, keep
        self.entries: list[str] = []

    def add(self, entry: str) -> None:
        self.count += 1
        if self.keep is None or len(self.entries) < self.keep:
            self.entries.append(entry)


class Tally:
    """What a dataset's summary counts, kept while its items are read: items per class and side, the sides each
    group is on, and the entries with no file (all counted, the first `keep` named). Its size grows with the
    classes and groups, not with the items."""

    def __init__(self, keep: int = 100):
        self.per_class: dict[str, list[int]] = {}
        self.group_sides: dict[str, int] = {}  # bit 1: on the training side, bit 2: on the validation side
        self.sides = [0, 0]
        self.missing = Missing(keep)

    def add(self, label: str, group: str | None, valid: bool) -> None:
        for c in label_set(label) if LABEL_SEP in label else [label]:
            self.per_class.setdefault(c, [0, 0])[valid] += 1
        if group:
            self.group_sides[group] = self.group_sides.get(group, 0) | (2 if valid else 1)
        self.sides[valid] += 1

    def class_warnings(self, split: str) -> list[str]:
        """What the counts suggest is wrong with the labels: names that differ only in case or punctuation (a
        typo makes a class of its own), classes with no item on one side of split `split`."""
        out = []
        spellings: dict[str, list[str]] = {}
        for c in self.per_class:
            spellings.setdefault(re.sub(r"[\W_]+", "", c.lower()), []).append(c)
        alike = [names for names in spellings.values() if len(names) > 1]
        if alike:
            sizes = {n: sum(self.per_class[n]) for n in alike[0]}
            counts = " and ".join(f"{n!r} ({k} item{'s' * (k != 1)})" for n, k in sizes.items())
            out.append(f"{len(alike)} set(s) of class names differ only in case or punctuation, e.g. {counts}: a "
                       "typo in the labels makes a class of its own")
        if split != "none":
            for side, what in ((1, "validation items: their accuracy is not measured"),
                               (0, "training items: the model cannot learn them")):
                empty = [c for c, n in self.per_class.items() if not n[side]]
                if empty:
                    out.append(f"{len(empty)} class(es) have no {what} ({', '.join(empty[:5])}"
                               f"{', ...' if len(empty) > 5 else ''})")
        return out

    @property
    def leaked_groups(self) -> int:
        return sum(s == 3 for s in self.group_sides.values())

    def summary(self, *, root: Path, kind: str, split: str, classes: Sequence[str], multi_label: bool,
                lists: Path | None = None, unlisted: int = 0, warnings: Sequence[str] = ()) -> dict:
        per_class = {c: {"train": 0, "valid": 0} for c in classes}
        for c, (train, valid) in self.per_class.items():
            per_class[c] = {"train": train, "valid": valid}
        return {
            "root": str(root), "kind": kind, "split": split, "lists": str(lists) if lists else None,
            "classes": list(classes), "multi_label": multi_label,
            "counts": {"train": self.sides[0], "valid": self.sides[1], "total": sum(self.sides)},
            "per_class": per_class,
            "groups": len(self.group_sides), "leaked_groups": self.leaked_groups,
            "missing": self.missing.count, "missing_entries": list(self.missing.entries),
            "unlisted": unlisted, "warnings": list(warnings),
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


def scan_tree(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Videos and frame folders under `root`, each inside a class folder (sorted; hidden names skipped).

    A video counts when it lies in a folder below `root`; a frame folder when it lies in a folder below
    `root` (so its parent names the class). Frame folders are not searched further. Symbolic links that lead
    outside `root` are left out, with one warning.
    """
    videos: list[Path] = []
    frames: list[Path] = []
    for path, is_frames in walk_tree(root):
        (frames if is_frames else videos).append(path)
    return sorted(videos), sorted(frames)


def walk_tree(root: str | Path) -> Iterator[tuple[Path, bool]]:
    """What `scan_tree` finds, one ``(path, is_frame_folder)`` at a time and unsorted, for a count that need not
    hold them all (a folder's videos are not gathered first: a folder two levels down is first looked at for
    frames, then read again for its videos)."""
    root = Path(root)
    seen: set[str] = set()
    stack = [str(root)]
    outside = OutsideLinks(root)
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        deep = d != str(root) and os.path.dirname(d) != str(root)
        if deep and _has_frames(d):
            yield Path(d), True  # a frame folder: not searched further
            continue
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith(".") or (e.is_symlink() and outside.leads_out(e.path)):
                        continue
                    try:
                        if e.is_dir():
                            stack.append(e.path)
                        elif d != str(root) and is_video_file(e.name) and e.is_file():
                            yield Path(e.path), False
                    except OSError:
                        continue
        except OSError:
            continue
    outside.warn()


def _has_frames(folder: str) -> bool:
    """Whether `folder` holds a numbered image (looked for until the first)."""
    try:
        with os.scandir(folder) as it:
            return any(not e.name.startswith(".") and is_frame_name(e.name) for e in it)
    except OSError:
        return False
