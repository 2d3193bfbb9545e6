"""Items: labelled videos or frame folders, their UCF-style groups, and a tree scan that finds them.

Clips of one UCF-style group (``v_MoveLeft_g08_c01``) are cut from one long video, so a split must keep a
group on one side.
"""

from __future__ import annotations

import os
import re
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

    def summary(self) -> dict:
        """Everything ``vidseq info`` reports, as plain JSON-able data."""
        per_class = {c: {"train": 0, "valid": 0} for c in self.classes}
        for it, v in zip(self.items, self.is_valid):
            for label in label_set(it.label) if self.multi_label else [it.label]:
                per_class.setdefault(label, {"train": 0, "valid": 0})["valid" if v else "train"] += 1
        n_valid = sum(self.is_valid)
        return {
            "root": str(self.root), "kind": self.kind, "split": self.split,
            "lists": str(self.lists) if self.lists else None,
            "classes": list(self.classes), "multi_label": self.multi_label,
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


def scan_tree(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Videos and frame folders under `root`, each inside a class folder (sorted; hidden names skipped).

    A video counts when it lies in a folder below `root`; a frame folder when it lies in a folder below
    `root` (so its parent names the class). Frame folders are not searched further. Symbolic links that lead
    outside `root` are left out, with one warning.
    """
    root = Path(root)
    videos: list[Path] = []
    frames: list[Path] = []
    seen: set[str] = set()
    stack = [root]
    outside = OutsideLinks(root)
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
                    if e.name.startswith(".") or (e.is_symlink() and outside.leads_out(e.path)):
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
    outside.warn()
    return sorted(videos), sorted(frames)


def format_summary(s: dict, *, max_missing: int = 5) -> str:
    """The text that ``vidseq info`` prints for :meth:`ItemSet.summary`."""
    c = s["counts"]
    lines = [f"{s['root']}: {c['total']} {'videos' if s['kind'] == 'video' else 'frame folders'}, "
             f"{len(s['classes'])} classes" + (" (multi-label: counts are items with each label)"
                                               if s.get("multi_label") else ""),
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
