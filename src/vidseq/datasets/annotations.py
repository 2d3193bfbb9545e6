"""Annotation formats other libraries use, read into the same `Manifest` as a CSV manifest:

- MMAction2's list files: ``path label`` per line for videos, ``folder n_frames label`` for frame folders (several
  labels after them: a multi-label item); labels are class indices, named by a ``label_map*.txt`` beside the list
  (one class name a line) where there is one.
  The list given is one side of the split; its partner (``train`` <-> ``val``/``test`` in the file name) is
  read for the other side when it exists.
- Something-Something v2's JSON: ``something-something-v2-{train,validation}.json`` (``{"id", "template", ...}``
  entries; the class is the template with ``[something]`` filled in, as in ``something-something-v2-labels.json``)
  with the videos as ``<id>.webm`` beside them or in ``20bn-something-something-v2/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from vidseq.datasets.items import LABEL_SEP, Item, group_of
from vidseq.datasets.manifest import Manifest
from vidseq.errors import DatasetError
from vidseq.io import is_frame_folder, is_video_file

SSV2_LABELS = "something-something-v2-labels.json"
SSV2_SIDES = {"something-something-v2-train.json": False, "something-something-v2-validation.json": True}
SSV2_VIDEOS = "20bn-something-something-v2"
_SIDE_WORDS = (("train", False), ("val", True), ("test", True))


def read_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a whitespace-separated text file, skipping blank lines and comments."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(path=path, reason=f"not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DatasetError(path=path, reason=f"cannot read ({e.strerror or e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield n, fields


def _side(name: str) -> tuple[bool, str] | None:
    """(is the validation side, the word) that a list's file name names: train, val or test."""
    low = name.lower()
    for word, valid in _SIDE_WORDS:
        if re.search(rf"(^|[_\-.]){word}", low):
            return valid, word
    return None


def _partner(path: Path) -> Path | None:
    """The list with the other side of the split: ``x_train_y.txt`` <-> ``x_val_y.txt`` (or ``test``)."""
    side = _side(path.name)
    if side is None:
        return None
    valid, word = side
    others = ("val", "test") if not valid else ("train",)
    for other in others:
        candidate = path.with_name(re.sub(rf"(^|[_\-.]){word}", rf"\g<1>{other}", path.name, count=1,
                                          flags=re.IGNORECASE))
        if candidate != path and candidate.is_file():
            return candidate
    return None


def _label_names(folder: Path) -> list[str] | None:
    maps = sorted(folder.glob("label_map*.txt"))
    if len(maps) != 1:
        return None
    return [line.strip() for line in maps[0].read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def first_fields(path: Path) -> list[str]:
    """The fields of the first line of a .txt list file; [] for anything else or a file that cannot be read."""
    if path.suffix.lower() != ".txt" or not path.is_file():
        return []
    try:
        first = next(read_lines(path), None)
    except DatasetError:
        return []
    return first[1] if first else []


def is_mmaction_list(path: Path) -> bool:
    """Whether `path` looks like an MMAction2 list: a .txt whose first line is ``path label`` or
    ``path n_frames label`` with whole numbers after the path."""
    fields = first_fields(path)
    return len(fields) in (2, 3) and all(f.isdigit() for f in fields[1:])


def read_mmaction_list(path: Path) -> Manifest:
    """Items of an MMAction2 list file and of its partner list (the other side of the split), paths relative to
    the list's folder; a malformed line is one error naming the file and line."""
    path = Path(path)
    names = _label_names(path.parent)
    lists = [path] + ([p] if (p := _partner(path)) is not None else [])
    items, sides, missing, kinds = [], [], [], set()
    for lst in lists:
        side = _side(lst.name)
        for n, fields in read_lines(lst):
            if len(fields) < 2 or not all(f.isdigit() for f in fields[1:]):
                raise DatasetError(f"{lst}:{n}: expected 'path label...' (videos) or 'folder n_frames label...' "
                                   f"(frame folders) with whole numbers, got {' '.join(fields)!r}")
            p = Path(fields[0]).expanduser()
            p = p if p.is_absolute() else lst.parent / p
            if not p.exists():
                missing.append(fields[0])
                continue
            kind = "frames" if p.is_dir() and is_frame_folder(p) else "video" if is_video_file(p) else None
            if kind is None:
                raise DatasetError(f"{lst}:{n}: {p} is neither a video nor a frame folder")
            indices = [int(f) for f in fields[2 if kind == "frames" else 1:]]  # several: a multi-label item
            if not indices:
                raise DatasetError(f"{lst}:{n}: a frame folder's line is 'folder n_frames label...', no label here")
            if names is not None and max(indices) >= len(names):
                raise DatasetError(f"{lst}:{n}: label {max(indices)}, but the label map has {len(names)} classes")
            kinds.add(kind)
            labels = [names[i] if names is not None else str(i) for i in indices]
            items.append(Item(p, LABEL_SEP.join(labels), group_of(p)))
            sides.append(side[0] if side else None)
    return _manifest(path, items, sides, missing, kinds)


def _manifest(path: Path, items: list[Item], sides: list[bool | None], missing: list[str], kinds: set[str]) -> Manifest:
    if not items:
        raise DatasetError(path=path, reason=f"no usable entries ({len(missing)} listed file(s) do not exist)")
    if len(kinds) > 1:
        raise DatasetError(path=path, reason="lists both videos and frame folders; use one kind")
    split = None if any(s is None for s in sides) or len(set(sides)) < 2 else [bool(s) for s in sides]
    return Manifest(items, kinds.pop(), split, missing)


def is_ssv2(path: Path) -> bool:
    """Whether `path` is Something-Something v2's annotations: their folder, or one of its train/validation files."""
    return (path.is_dir() and (path / SSV2_LABELS).is_file()) or (path.name in SSV2_SIDES and path.is_file())


def read_ssv2(path: Path) -> Manifest:
    """Items of Something-Something v2 (train and validation): class from the template, videos ``<id>.*``."""
    folder = path if path.is_dir() else path.parent
    labels_file = folder / SSV2_LABELS
    if not labels_file.is_file():
        raise DatasetError(path=folder, reason=f"no {SSV2_LABELS} beside the annotations")
    classes = set(_json(labels_file, dict))
    video_dirs = [d for d in (folder / SSV2_VIDEOS, folder.parent / SSV2_VIDEOS, folder / "videos", folder)
                  if d.is_dir()]
    items, sides, missing = [], [], []
    for name, valid in SSV2_SIDES.items():
        if not (folder / name).is_file():
            continue
        for n, entry in enumerate(_json(folder / name, list), 1):
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise DatasetError(f"{folder / name}: entry {n} has no 'id' and 'template'")
            label = str(entry["template"]).replace("[", "").replace("]", "")
            if label not in classes:
                raise DatasetError(f"{folder / name}: entry {n} ({entry['id']}): class {label!r} is not in "
                                   f"{SSV2_LABELS}")
            video = next((v for d in video_dirs for v in sorted(d.glob(f"{entry['id']}.*")) if is_video_file(v)),
                         None)
            if video is None:
                missing.append(str(entry["id"]))
                continue
            items.append(Item(video, label, None))
            sides.append(valid)
    return _manifest(folder, items, sides, missing, {"video"} if items else set())


def _json(path: Path, kind: type):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(path=path, reason=f"not readable JSON ({e})") from None
    if not isinstance(data, kind):
        raise DatasetError(path=path, reason=f"expected a JSON {'object' if kind is dict else 'list'}")
    return data
