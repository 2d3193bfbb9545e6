"""Segments: a time range of a longer video as an item of its own, without cutting the file.

A segment is named by its file and range in the W3C Media Fragments syntax, ``long.mp4#t=12.5,22.5`` (seconds),
so that everything that keys items by path (the loaders, the clip cache, evaluation's per-item results) tells
the segments of one file apart. Its frames are the file's frames whose presentation time lies in ``[start, end)``,
counted from the video's first frame; frame ``i`` of the segment is frame ``first + i`` of the file.

>>> seg = parse_segment("long.mp4#t=12.5,22.5")             # doctest: +SKIP  (long.mp4 must exist)
>>> seg.file, seg.start, seg.end
(PosixPath('long.mp4'), 12.5, 22.5)
>>> segment_frames(seg)                                     # doctest: +SKIP  (first frame, frame count)
(312, 250)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseq.errors import VideoError
from vidseq.io.index import video_index
from vidseq.io.video import probe

_FRAGMENT = re.compile(r"^(?P<file>.+)#t=(?P<start>\d+(?:\.\d*)?),(?P<end>\d+(?:\.\d*)?)$")


@dataclass(frozen=True)
class Segment:
    """The frames of `file` shown from `start` to `end` seconds."""

    file: Path
    start: float
    end: float

    @property
    def path(self) -> Path:
        """The segment as an item path, ``file#t=start,end``."""
        return segment_path(self.file, self.start, self.end)


def _seconds(t: float) -> str:
    return f"{t:.3f}".rstrip("0").rstrip(".")


def segment_path(file: str | Path, start: float, end: float) -> Path:
    """The item path of `file`'s frames from `start` to `end` seconds (millisecond precision)."""
    if not 0 <= start < end:
        raise ValueError(f"a segment needs 0 <= start < end, got {start} and {end}")
    return Path(f"{file}#t={_seconds(start)},{_seconds(end)}")


def parse_segment(path: str | Path) -> Segment | None:
    """The segment an item path names (``file#t=start,end``), or None for a plain file or folder (one that
    exists under that very name counts as plain)."""
    s = str(path)
    if "#t=" not in s:
        return None
    m = _FRAGMENT.match(s)
    if m is None or Path(s).exists():
        return None
    start, end = float(m["start"]), float(m["end"])
    return Segment(Path(m["file"]), start, end) if start < end else None


def frame_times(file: str | Path) -> np.ndarray:
    """Each frame's presentation time in seconds from the first, from the file's index; from its frame rate where
    the index cannot be trusted."""
    index = video_index(file)
    if index.seekable:
        return index.times()
    info = probe(file)
    if not info.fps:
        raise VideoError(path=file, reason="neither timestamps nor a frame rate: no time range can be found in it")
    return np.arange(info.frames) / info.fps


def segment_frames(seg: Segment) -> tuple[int, int]:
    """(first frame, frame count) of `seg` in its file. VideoError when no frame of the file lies in the range
    (a range past the end of the file)."""
    times = frame_times(seg.file)
    first = int(np.searchsorted(times, seg.start - 1e-6, side="left"))
    stop = int(np.searchsorted(times, seg.end - 1e-6, side="left"))
    if stop <= first:
        length = times[-1] + frame_step(times) if len(times) else 0.0
        raise VideoError(path=seg.path, reason=f"the range {_seconds(seg.start)}-{_seconds(seg.end)} s holds no "
                         f"frame of {seg.file} ({_seconds(length)} s long)")
    return first, stop - first


def frame_step(times: np.ndarray) -> float:
    """Seconds a frame lasts, the median gap between frame times; 0 for fewer than two frames."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def duration(file: str | Path) -> float:
    """Seconds from the first frame to the end of the last one, from the file's own timestamps."""
    times = frame_times(file)
    return float(times[-1] + frame_step(times)) if len(times) else 0.0
