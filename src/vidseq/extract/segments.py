"""Segments of long videos -> one frame folder each: ``vidseq extract --segments ANNOTATIONS DEST``.

Every row of an annotation file with time ranges (see `vidseq.datasets.segments`) becomes
``DEST/<label>/<video>_<start>_<end>/<i>.jpg`` (start and end in whole seconds, ``%06d`` as Kinetics' clips are
named, or in milliseconds with an ``ms`` suffix), decoding only the segment's frames. The manifest, reruns, shards
and locks are `vidseq extract`'s; ``DEST/frames.csv`` lists the frame folders with their labels (and the split,
where the annotations give one), ready for ``vidseq train DEST/frames.csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from vidseq.datasets import read_annotations
from vidseq.errors import DatasetError
from vidseq.extract.records import FAILED, ExtractSummary
from vidseq.extract.run import DEFAULT_TIMEOUT, convert_dataset, frame_folders
from vidseq.files import atomic_write_text
from vidseq.io.segment import parse_segment


def _stamps(start: float, end: float) -> str:
    if float(start).is_integer() and float(end).is_integer():
        return f"{int(start):06d}_{int(end):06d}"
    return f"{round(start * 1000):09d}ms_{round(end * 1000):09d}ms"


def segment_name(path: Path, label: str) -> str:
    """``<label>/<video>_<start>_<end><ext>``: where a segment's frames go (its folder drops the extension)."""
    seg = parse_segment(path)
    safe = label.replace("/", "_").replace("\\", "_").strip() or "_"
    if seg is None:  # a row without a range: the whole file
        return f"{safe}/{path.name}"
    return f"{safe}/{seg.file.stem}_{_stamps(seg.start, seg.end)}{seg.file.suffix}"


def extract_segments(annotations: str | Path, dest: str | Path, *, size: int | None = None, quality: int = 90,
                     workers: int | None = None, shard: tuple[int, int] | None = None, overwrite: bool = False,
                     timeout: float | None = DEFAULT_TIMEOUT, progress: bool = False,
                     worker_hook: Callable[[Path], None] | None = None) -> ExtractSummary:
    """Extract every segment of `annotations` into its own frame folder under `dest` (see the module's docstring).
    Rows whose video is missing or whose range lies past its end are reported by the annotations' reader (as
    `load_items` does) and left out."""
    output = frame_folders(size, quality)  # bad settings refused before anything is read
    annotations = Path(annotations)
    if not annotations.is_file():
        raise DatasetError(path=annotations, reason="no such annotation file")
    manifest = read_annotations(annotations)
    listed, sides = [], {}
    for k, item in enumerate(manifest.items):
        rel = segment_name(item.path, item.label)
        listed.append((item.path, rel, item.label))
        if manifest.is_valid is not None:
            sides[rel] = "valid" if manifest.is_valid[k] else "train"
    summary = convert_dataset(annotations, dest, output, workers=workers, shard=shard, overwrite=overwrite,
                              timeout=timeout, progress=progress, worker_hook=worker_hook, listed=listed)
    rows = [(r.folder, r.label, sides.get(r.video, "")) for r in summary.records if r.status != FAILED and r.folder]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "split"] if sides else ["path", "label"])
    writer.writerows(row if sides else row[:2] for row in rows)
    if rows and shard is None:
        atomic_write_text(Path(dest) / "frames.csv", out.getvalue())
    summary.missing = list(manifest.missing)
    return summary
