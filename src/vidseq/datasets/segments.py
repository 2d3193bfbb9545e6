"""Segments of long videos as items: annotations that give a time range (seconds) for each row.

- vidseq's CSV with ``start`` and ``end`` columns: ``path,label,start,end[,split]`` (a header is needed; an empty
  range is the whole file);
- Kinetics' CSVs as they come: ``label,youtube_id,time_start,time_end,split[,is_cc]``. A row's video is the
  trimmed clip ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` (how the usual downloaders name them) anywhere under the
  CSV's folder, else the whole video ``<youtube_id>.<ext>`` with the row's range as a segment of it;
- a list file of ``path start end label`` lines (whitespace-separated; the label is a class name and may hold
  spaces).

Each row is a segment item (``long.mp4#t=12,22``, see `vidseq.io.segment`): its clips are sampled inside the range
only and the file is not cut. Several rows of one long file are several items of one group, so a split keeps them
on one side. Rows whose file is missing or whose range starts past the file's end are reported (in `missing`, with
the reason), not fatal; a range that runs past the end is clipped to the file and counted in a note.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from vidseq.datasets.annotations import first_fields, read_lines
from vidseq.datasets.items import Item, group_of
from vidseq.datasets.manifest import SPLIT_SIDES, Manifest, open_csv
from vidseq.errors import DatasetError, VideoError
from vidseq.io import VIDEO_EXTENSIONS, is_video_file
from vidseq.io.segment import duration, segment_path

KINETICS_COLUMNS = {"label", "youtube_id", "time_start", "time_end"}
_SIDES = {**SPLIT_SIDES, "validate": True}  # vidseq's CSV words, and Kinetics' own


class SegmentRows:
    """Collects the items of segment rows: checks each range against its file once per file."""

    def __init__(self, source: Path):
        self.source = source
        self.items: list[Item] = []
        self.sides: list[bool | None] = []
        self.missing: list[str] = []
        self.clipped = 0
        self._lengths: dict[Path, float | str] = {}

    def _length(self, file: Path) -> float | str:
        if file not in self._lengths:
            try:
                self._lengths[file] = duration(file)
            except VideoError as e:
                self._lengths[file] = e.reason or "not a readable video"
        return self._lengths[file]

    def add(self, file: Path, label: str, start: float | None, end: float | None, side: bool | None,
            where: str) -> None:
        """One row: the whole `file` when `start` and `end` are None, else its range."""
        if not file.exists():
            self.missing.append(f"{where}: {file}")
            return
        if not file.is_file() or not is_video_file(file):
            self.missing.append(f"{where}: {file}: not a video file")
            return
        if start is None or end is None:
            self.items.append(Item(file, label, group_of(file)))
            self.sides.append(side)
            return
        if not 0 <= start < end:
            raise DatasetError(f"{where}: start {start} and end {end} do not make a range (0 <= start < end)")
        length = self._length(file)
        if isinstance(length, str):
            self.missing.append(f"{where}: {file.name}: {length}")
            return
        if start >= length:
            self.missing.append(f"{where}: {file.name}: starts at {start:g} s, past the end ({length:.2f} s)")
            return
        if end > length + 0.5:
            self.clipped += 1
        self.items.append(Item(segment_path(file, start, end), label, group_of(file) or file.stem))
        self.sides.append(side)

    def manifest(self) -> Manifest:
        if not self.items:
            raise DatasetError(path=self.source, reason=f"no usable rows ({len(self.missing)} with a missing file or "
                               "a range past its end)")
        given = [s for s in self.sides if s is not None]
        if given and len(given) != len(self.sides):
            raise DatasetError(path=self.source, reason="the split is given on some rows only; give it on every "
                               "row or none")
        notes = [f"{self.clipped} segment(s) run past the end of their video and are clipped to it"] \
            if self.clipped else []
        return Manifest(self.items, "video", [bool(s) for s in self.sides] if given else None, self.missing,
                        notes=notes)


def _seconds(value: str, where: str, what: str) -> float | None:
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"{where}: {what} must be a number of seconds, got {value!r}") from None


def _side(row: dict[str, str], where: str, words: str) -> bool | None:
    """A row's split column: True for the validation side, False for training, None when empty."""
    split = row.get("split", "").strip().lower()
    if split and split not in _SIDES:
        raise DatasetError(f"{where}: split must be {words}, got {split!r}")
    return _SIDES[split] if split else None


def is_kinetics_csv(path: Path) -> bool:
    """Whether `path` is a CSV with Kinetics' columns (label, youtube_id, time_start, time_end)."""
    return path.suffix.lower() == ".csv" and KINETICS_COLUMNS <= set(_header(path))


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [c.strip().lower() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError):
        return []


def _videos_under(folder: Path) -> dict[str, Path]:
    """Video files under `folder` by name without extension (the first in sorted order wins); hidden names and
    symbolic links to folders are skipped."""
    found: dict[str, Path] = {}
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                found.setdefault(Path(name).stem, Path(top) / name)
    return found


def read_kinetics_csv(path: Path) -> Manifest:
    """Items of a Kinetics CSV (see the module's docstring); videos are looked for under the CSV's folder."""
    videos = _videos_under(path.parent)
    rows = SegmentRows(path)
    for n, row in _csv_rows(path):
        where = f"{path.name}:{n}"
        yid = row.get("youtube_id", "").strip()
        label = row.get("label", "").strip()
        if not yid or not label:
            raise DatasetError(f"{path}:{n}: empty youtube_id or label")
        start = _seconds(row.get("time_start", ""), where, "time_start")
        end = _seconds(row.get("time_end", ""), where, "time_end")
        side = _side(row, f"{path}:{n}", "train, val or test")
        if start is not None and end is not None and (trimmed := videos.get(f"{yid}_{int(start):06d}_{int(end):06d}")):
            rows.add(trimmed, label, None, None, side, where)
        elif (whole := videos.get(yid)) is not None:
            rows.add(whole, label, start, end, side, where)
        else:
            rows.missing.append(f"{where}: {yid}")
    return rows.manifest()


def is_segment_csv(path: Path) -> bool:
    """Whether `path` is vidseq's CSV with time ranges: a header with path, label, start and end."""
    return path.suffix.lower() == ".csv" and {"path", "label", "start", "end"} <= set(_header(path))


def read_segment_csv(path: Path) -> Manifest:
    """Items of a ``path,label,start,end[,split]`` CSV; paths relative to the CSV's folder or absolute."""
    rows = SegmentRows(path)
    for n, row in _csv_rows(path):
        where = f"{path.name}:{n}"
        rel, label = row.get("path", "").strip(), row.get("label", "").strip()
        if not rel or not label:
            raise DatasetError(f"{path}:{n}: empty path or label")
        side = _side(row, f"{path}:{n}", "train, valid or test")
        start, end = _seconds(row.get("start", ""), where, "start"), _seconds(row.get("end", ""), where, "end")
        if (start is None) != (end is None):
            raise DatasetError(f"{path}:{n}: give both start and end, or neither (the whole file)")
        file = Path(rel).expanduser()
        rows.add(file if file.is_absolute() else path.parent / file, label, start, end, side, where)
    return rows.manifest()


def _csv_rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    with open_csv(path) as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
        try:
            for row in reader:
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    yield reader.line_num, {k: (v or "") for k, v in row.items() if isinstance(k, str)}
        except UnicodeDecodeError as e:
            raise DatasetError(path=path, reason=f"not UTF-8 text (byte {e.start})") from None


def is_segment_list(path: Path) -> bool:
    """Whether `path` is a ``path start end label`` list: a .txt whose first line has two numbers of seconds after
    the path and a class name (not a number) after them."""
    fields = first_fields(path)
    if len(fields) < 4 or all(f.isdigit() for f in fields[3:]):
        return False
    try:
        float(fields[1]), float(fields[2])
    except ValueError:
        return False
    return True


def read_segment_list(path: Path) -> Manifest:
    """Items of a ``path start end label`` list; paths relative to the list's folder."""
    rows = SegmentRows(path)
    for n, fields in read_lines(path):
        where = f"{path.name}:{n}"
        if len(fields) < 4:
            raise DatasetError(f"{path}:{n}: expected 'path start end label', got {' '.join(fields)!r}")
        file = Path(fields[0]).expanduser()
        file = file if file.is_absolute() else path.parent / file
        start = _seconds(fields[1], where, "start")
        end = _seconds(fields[2], where, "end")
        rows.add(file, " ".join(fields[3:]), start, end, None, where)
    return rows.manifest()
