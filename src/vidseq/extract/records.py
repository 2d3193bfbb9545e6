"""What extraction records: a row per video in ``manifest.csv`` (journalled as videos finish, so a killed run
leaves every finished video on record), failures in ``failures.jsonl``, one pair per shard."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.files import atomic_write_text, named_errors

#: Statuses of a manifest row. A ``partial`` video is truncated: its folder holds the frames that
#: decoded before the damage. A ``failed`` one has no folder.
DONE, PARTIAL, FAILED = "done", "partial", "failed"
MANIFEST_FIELDS = ("video", "label", "frames", "fps", "width", "height", "status", "folder", "reason")


@dataclass
class VideoRecord:
    """What happened to one video: a row of the manifest."""

    video: str  #: path relative to SRC (POSIX separators)
    label: str  #: name of the folder holding the video (the class, in UCF101's layout)
    frames: int = 0  #: JPEG files written: 0.jpg .. frames-1.jpg
    fps: float = 0.0
    width: int = 0  #: size of the JPEGs
    height: int = 0
    status: str = FAILED  #: done, partial or failed
    folder: str = ""  #: frame folder relative to DEST ("" when failed)
    reason: str = ""  #: why partial or failed

    def row(self) -> dict:
        return {"video": self.video, "label": self.label, "frames": self.frames, "fps": f"{self.fps:.6g}",
                "width": self.width, "height": self.height, "status": self.status, "folder": self.folder,
                "reason": self.reason}

    @classmethod
    def from_row(cls, row: dict) -> VideoRecord | None:
        """Parse a manifest row; None for a damaged one (a run killed while writing it)."""
        try:
            rec = cls(video=row["video"], label=row["label"], frames=int(row["frames"]), fps=float(row["fps"]),
                      width=int(row["width"]), height=int(row["height"]), status=row["status"],
                      folder=row.get("folder") or "", reason=row.get("reason") or "")
        except (KeyError, TypeError, ValueError):
            return None
        return rec if rec.video and rec.status in (DONE, PARTIAL, FAILED) else None


@dataclass
class ExtractSummary:
    """The outcome of :func:`extract_dataset`. Counts are of this run's videos (this shard's)."""

    dest: Path
    videos: int
    done: int  #: extracted completely by this run
    partial: int  #: extracted by this run from truncated files
    skipped: int  #: complete from an earlier run
    failed: int
    frames: int  #: JPEGs written by this run
    seconds: float
    manifest: Path
    failures: Path
    split_lists: list[Path] = field(default_factory=list)  #: official split folders copied into DEST
    records: list[VideoRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  #: annotation rows left out (no file, a range past its end)

    @property
    def ok(self) -> bool:
        """True when there are frames to use (extracted now or by an earlier run), or nothing failed."""
        return self.done + self.partial + self.skipped > 0 or self.failed == 0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def output_names(dest: str | Path, shard: tuple[int, int] | None = None) -> tuple[Path, Path]:
    """(manifest, failures) file paths that a run with `shard` writes in `dest`."""
    dest = Path(dest)
    if shard is None:
        return dest / "manifest.csv", dest / "failures.jsonl"
    i, n = shard
    return dest / f"manifest-shard-{i}-of-{n}.csv", dest / f"failures-shard-{i}-of-{n}.jsonl"


def read_manifest(dest: str | Path) -> list[VideoRecord]:
    """Records of an extracted dataset: ``manifest.csv`` and every ``manifest-shard-*.csv`` merged
    (for a video in several, the newest file wins), sorted by video. Damaged rows are skipped."""
    dest = Path(dest)
    files = [p for p in dest.glob("manifest*.csv") if p.name == "manifest.csv" or p.name.startswith("manifest-shard-")]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name))
    records: dict[str, VideoRecord] = {}
    for path in files:
        for rec in _read_manifest_file(path):
            records[rec.video] = rec
    return [records[k] for k in sorted(records)]


def _read_manifest_file(path: Path) -> Iterator[VideoRecord]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # a row cut short by a killed run
    for row in csv.DictReader(io.StringIO("".join(lines))):
        rec = VideoRecord.from_row(row)
        if rec is not None:
            yield rec


class Journal:
    """The manifest, rewritten atomically at start and end and appended to as each video finishes,
    so a killed run leaves every finished video on record."""

    def __init__(self, path: Path, records: list[VideoRecord]):
        self.path = path
        atomic_write_text(path, _csv_text(records))
        self._file = open(path, "a", newline="", encoding="utf-8", errors="surrogateescape")
        self._writer = csv.DictWriter(self._file, fieldnames=MANIFEST_FIELDS)

    def append(self, rec: VideoRecord) -> None:
        with named_errors(self.path):
            self._writer.writerow(rec.row())
            self._file.flush()

    def close(self, records: list[VideoRecord] | None) -> None:
        """Rewrite the manifest as `records`; None: only close it (its folder was removed under it)."""
        self._file.close()
        if records is not None:
            atomic_write_text(self.path, _csv_text(records))


def _csv_text(records: list[VideoRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS)
    writer.writeheader()
    for rec in records:
        writer.writerow(rec.row())
    return buf.getvalue()


def write_failures(path: Path, records: list[VideoRecord]) -> None:
    lines = [json.dumps({"video": r.video, "status": r.status, "reason": r.reason}, ensure_ascii=False) + "\n"
             for r in records if r.status != DONE]
    atomic_write_text(path, "".join(lines))
