"""CSV manifests: ``path,label[,split]`` rows (several labels joined by ";" make a multi-label dataset, as does a
header of ``path[,split]`` and one 0/1 column per class), and the ``manifest.csv`` that `vidseq extract` writes."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.datasets.items import LABEL_SEP, Item, Missing, group_of
from vidseq.errors import DatasetError
from vidseq.io import is_frame_folder, is_video_file


@dataclass
class Manifest:
    """The items of a CSV manifest, their kind ("video" or "frames"), the split column (True for the
    validation side; None when the CSV has none) and the listed paths that do not exist."""

    items: list[Item]
    kind: str
    is_valid: list[bool] | None
    missing: list[str]
    notes: list[str] = field(default_factory=list)  # what the reader noticed and worked around (shown as warnings)


SPLIT_SIDES = {"train": False, "training": False, "valid": True, "validation": True, "val": True, "test": True}


#: First-row cells that name columns rather than hold a path or a label: a header vidseq does not know.
_HEADER_WORDS = {"file", "filename", "filepath", "file_path", "video", "video_path", "clip", "name", "class",
                 "category", "action", "target", "y", "class_name", "classname"}


def open_csv(path: Path):
    """`path` opened for the csv module (UTF-8, a byte-order mark skipped); one line naming it if it cannot be."""
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise DatasetError(path=path, reason=f"cannot read ({e.strerror or e})") from None


def read_manifest_csv(path: Path) -> Manifest:
    """Items of a CSV manifest ``path,label[,split]``; paths relative to the CSV's folder or absolute.

    Also reads the ``manifest.csv`` that ``vidseq extract`` writes (columns video, label, ..., status, folder):
    its frame folders, without the failed rows.
    """
    rows = CsvRows(path)
    items: list[Item] = []
    sides: list[bool | None] = []
    for item, side in rows:
        items.append(item)
        sides.append(side)
    kind = rows.finish()
    return Manifest(items, kind, [bool(s) for s in sides] if rows.sided else None, rows.missing.entries)


class CsvRows:
    """The rows of a CSV manifest, read one at a time as ``(Item, side)`` (side: True for validation, False for
    training, None without a split column), so a count over them holds none. Rows naming no file are counted
    in `missing` (the first `keep` named; None: all); `finish` checks the whole and
    returns the kind of the items ("video" or "frames")."""

    def __init__(self, path: Path, *, keep: int | None = None):
        self.path = path
        self.count = self.sided = self.failed = 0
        self.missing = Missing(keep)
        self.kinds: set[str] = set()

    def __iter__(self) -> Iterator[tuple[Item, bool | None]]:
        try:
            yield from self._rows()
        except UnicodeDecodeError as e:
            raise DatasetError(path=self.path, reason=f"not UTF-8 text (byte {e.start}); save the manifest as "
                               "UTF-8") from None

    def finish(self) -> str:
        path = self.path
        if not self.count and self.failed:
            raise DatasetError(path=path, reason=f"every video in this vidseq extract manifest failed "
                               f"({self.failed}); see {path.parent / 'failures.jsonl'}")
        if not self.count:
            raise DatasetError(path=path, reason=f"no usable rows (expected path,label[,split]; "
                               f"{self.missing.count} path(s) do not exist)")
        if len(self.kinds) > 1:
            raise DatasetError(path=path, reason="lists both videos and frame folders; use one kind per manifest")
        if self.sided and self.sided != self.count:
            raise DatasetError(path=path,
                               reason="the split column is filled on some rows only; fill it on every row or none")
        return next(iter(self.kinds))

    def _rows(self) -> Iterator[tuple[Item, bool | None]]:
        path = self.path
        base = path.parent
        cols = {"path": 0, "label": 1, "split": 2}
        class_cols: dict[int, str] = {}  # column -> class, for a manifest of one 0/1 column per class
        header = False
        with open_csv(path) as f:
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
                        cols = {k: low.index(k) for k in ("path", "label", "split") if k in low}
                        if "label" not in low:  # one 0/1 column per class: a multi-label manifest
                            class_cols = {i: cells[i] for i, c in enumerate(low) if c not in ("path", "split")}
                            if not class_cols:
                                raise DatasetError(f"{path}:{n}: the header needs 'path' and 'label' columns (or "
                                                   "one column per class)")
                        header = True
                        continue
                    if {"folder", "label", "status"} <= set(low):  # vidseq extract's manifest.csv
                        cols = {"path": low.index("folder"), "label": low.index("label"),
                                "status": low.index("status")}
                        header = True
                        continue
                    if low[0] in _HEADER_WORDS or (len(low) > 1 and low[1] in _HEADER_WORDS):
                        raise DatasetError(f"{path}:{n}: a header without 'path' and 'label' columns (found "
                                           f"{','.join(cells)}); name the columns path,label[,split]")
                if "status" in cols:
                    if (len(cells) <= max(cols.values()) or cells[cols["status"]] == "failed"
                            or not cells[cols["path"]]):
                        self.failed += 1
                        continue  # a failed video of vidseq extract's manifest: no frames to use
                if class_cols:
                    if len(cells) <= max(class_cols):
                        raise DatasetError(f"{path}:{n}: expected {max(class_cols) + 1} fields, got {len(cells)}")
                    flags = {cells[i].lower() for i in class_cols}
                    if not flags <= {"0", "1", "true", "false", "yes", "no", ""}:
                        raise DatasetError(f"{path}:{n}: class columns hold 0 or 1, got {', '.join(sorted(flags))}")
                    cells = [*cells, LABEL_SEP.join(c for i, c in class_cols.items()
                                                    if cells[i].lower() in ("1", "true", "yes"))]
                    cols["label"] = len(cells) - 1
                if (not header and len(cells) not in (2, 3)) or len(cells) <= max(cols["path"], cols["label"]):
                    sep = next((c for c in ";\t|" if len(cells) == 1 and c in cells[0]), None)
                    hint = f" (separated by {sep!r}? a manifest's fields are separated by commas)" if sep else ""
                    raise DatasetError(f"{path}:{n}: expected path,label[,split], got {len(cells)} field(s){hint}")
                rel, label = cells[cols["path"]], cells[cols["label"]]
                if not rel or not label:
                    raise DatasetError(f"{path}:{n}: empty path or label")
                side_cell = cells[cols["split"]] if "split" in cols and cols["split"] < len(cells) else ""
                if side_cell and side_cell.lower() not in SPLIT_SIDES:
                    raise DatasetError(f"{path}:{n}: split must be train, valid or test, got {side_cell!r}")
                p = Path(rel).expanduser()
                p = p if p.is_absolute() else base / p
                if not p.exists():
                    self.missing.add(rel)
                    continue
                if p.is_dir():
                    if not is_frame_folder(p):
                        raise DatasetError(f"{path}:{n}: {p} is a folder without numbered images (0.jpg, 1.jpg, ...)")
                    self.kinds.add("frames")
                elif is_video_file(p):
                    self.kinds.add("video")
                else:
                    raise DatasetError(f"{path}:{n}: {p} is neither a video file nor a frame folder")
                self.count += 1
                self.sided += bool(side_cell)
                yield Item(p, label, group_of(p)), SPLIT_SIDES[side_cell.lower()] if side_cell else None
