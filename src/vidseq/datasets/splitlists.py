"""Official split lists: UCF101's ``ucfTrainTestlist`` and HMDB51's ``*_test_splitN.txt`` files.

Entries are matched to items by (class folder, file stem), case-insensitively, so one split serves a tree of
videos and the tree of frame folders that ``vidseq extract`` makes from it, and UCF101's
``v_HandStandPushups_*`` files meet their ``HandstandPushups`` class.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vidseq.datasets.items import _stem
from vidseq.errors import DatasetError


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


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-empty lines of `path` with their numbers, read as they are needed."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise DatasetError(path=path, reason=f"cannot read split list ({e.strerror or e})") from None
    with f:
        for i, line in enumerate(f, 1):
            if line := line.strip():
                yield i, line


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
    classes = split_classes(lists, number)
    entries = list(split_entries(lists, number, classes))
    return classes or sorted({e.label for e in entries}), entries


def split_classes(lists: SplitLists, number: int) -> list[str]:
    """The class names of split `number` in their official order: UCF101's ``classInd.txt`` (empty without one:
    then the entries' labels, sorted, are the classes), HMDB51's list file names."""
    if number not in lists.splits:
        raise DatasetError(path=lists.folder, reason=f"has no split {number} (splits found: "
                           f"{', '.join(map(str, lists.splits))})")
    if lists.kind == "ucf101":
        class_file = lists.folder / "classInd.txt"
        return read_class_index(class_file) if class_file.is_file() else []
    return sorted(m["label"] for p in lists.folder.iterdir()
                  if (m := _HMDB_LIST.match(p.name)) and int(m["n"]) == number)


def split_entries(lists: SplitLists, number: int, classes: list[str]) -> Iterator[ListEntry]:
    """The entries of split `number`, read one line at a time (a list of any length is never held whole);
    `classes` from `split_classes`."""
    if lists.kind == "ucf101":
        return _ucf_entries(lists.folder, number, classes)
    return _hmdb_entries(lists.folder, number)


def _find_file(folder: Path, pattern: re.Pattern, number: int, side: str) -> Path:
    for p in sorted(folder.iterdir()):
        m = pattern.match(p.name)
        if m and m[1].lower() == side and int(m[2]) == number:
            return p
    raise DatasetError(path=folder, reason=f"no {side}list0{number}.txt")  # pragma: no cover - _lists_in checked


def _ucf_entries(folder: Path, number: int, classes: list[str]) -> Iterator[ListEntry]:
    canon = {c.lower(): c for c in classes}
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
            yield ListEntry(canon.get(label.lower(), label), name, side)


def _hmdb_entries(folder: Path, number: int) -> Iterator[ListEntry]:
    sides = {"0": "unused", "1": "train", "2": "test"}
    for path in sorted(folder.iterdir()):
        m = _HMDB_LIST.match(path.name)
        if not m or int(m["n"]) != number:
            continue
        for n, line in _read_lines(path):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in sides:
                raise DatasetError(f"{path}:{n}: expected '<video> <0|1|2>', got {line!r}")
            yield ListEntry(m["label"], parts[0], sides[parts[1]])
