"""A video's index: every frame's presentation timestamp and which frames are keyframes, read once per file from
its packets (a demux, no decoding: about a millisecond for a short clip).

Frame ``i`` of a video is the one with the ``i``-th smallest timestamp, which is also the ``i``-th frame a decoder
gives from the start. The index says where a decoder must start to reach frame ``i`` (the keyframe before it),
which is what seeking reads (`vidseq.io.read_frames`) and the keyframe-aware sampler (``random-key``) need.
An index marked not `seekable` (packets without timestamps, repeated timestamps, no keyframe, a damaged file,
or a seek that came out elsewhere than the index said) sends reads of that file back to decoding in order.

>>> index = video_index("v_Jump_g01_c01.avi")       # doctest: +SKIP
>>> index.n_frames, index.keyframes[:3], index.times()[:2]
(180, array([ 0, 12, 24]), array([0.  , 0.04]))
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import av
import numpy as np

from vidseq.errors import VideoError
from vidseq.io.video import MAX_PIXELS, _open, _reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoIndex:
    """Timestamps and keyframes of a video's frames, in presentation order."""

    pts: np.ndarray  #: (N,) int64, each frame's presentation timestamp in `time_base` units, increasing
    keyframes: np.ndarray  #: (K,) int64, indices of the frames a decoder can start from, increasing, 0 first
    time_base: float  #: seconds per timestamp unit
    seekable: bool = True  #: whether a read may seek to a keyframe (else it decodes from the start)
    reason: str = ""  #: why not, when it may not

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    def times(self) -> np.ndarray:
        """Each frame's presentation time in seconds from the first frame."""
        return (self.pts - self.pts[0]) * self.time_base if len(self.pts) else np.zeros(0)

    def keyframe_before(self, i: np.ndarray | int) -> np.ndarray | int:
        """The last keyframe at or before frame `i` (frame 0 where none is)."""
        at = np.searchsorted(self.keyframes, i, side="right") - 1
        return self.keyframes[np.maximum(at, 0)] if len(self.keyframes) else np.zeros_like(i)

    def decode_cost(self, i: np.ndarray | int) -> np.ndarray | int:
        """Frames decoded to reach frame `i` from its keyframe (1 for a keyframe itself)."""
        return np.asarray(i) - self.keyframe_before(i) + 1 if self.seekable else np.asarray(i) + 1


def build_index(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> VideoIndex:
    """Read the packets of `path`'s video stream (no decoding) into a `VideoIndex`; VideoError if the file is not
    a readable video. An index that cannot be trusted for seeking comes back with ``seekable=False``."""
    container, stream = _open(path, max_pixels)
    pts, keys = [], []
    missing, damage = 0, ""
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue  # a flush packet
            if packet.pts is None:
                missing += 1
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    except (av.FFmpegError, ValueError, MemoryError) as e:
        damage = _reason(e)
    finally:
        tb = float(stream.time_base) if stream.time_base else 0.0
        container.close()
    order = np.array(sorted(pts), dtype=np.int64)
    keyframes = np.searchsorted(order, np.array(sorted(set(keys)), dtype=np.int64)) if keys else np.zeros(0, np.int64)
    why = ("the file is damaged after its first frames (" + damage + ")" if damage else
           f"{missing} packet(s) have no timestamp" if missing else
           "no frames" if not len(order) else
           "repeated timestamps" if len(np.unique(order)) < len(order) else
           "no timestamp base" if not tb else
           "no keyframe" if not len(keyframes) else
           "the first frame is not a keyframe" if keyframes[0] != 0 else "")
    return VideoIndex(order, keyframes.astype(np.int64), tb, seekable=not why, reason=why)


class _Indexes:
    """The indexes built in this process, keyed by file and its size and modification time, most recent last."""

    def __init__(self, size: int = 1 << 16):
        self.size, self._lru, self._lock = size, OrderedDict(), Lock()

    @staticmethod
    def key(path: str | Path) -> tuple:
        st = os.stat(path)
        return os.path.abspath(path), st.st_size, st.st_mtime_ns

    def get(self, path: str | Path, max_pixels: int) -> VideoIndex:
        try:
            key = self.key(path)
        except OSError:
            raise VideoError(path=path, reason="no such file") from None
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
                return self._lru[key]
        index = build_index(path, max_pixels=max_pixels)
        if not index.seekable:
            log.debug("%s: reads decode in order, not by seeking: %s", path, index.reason)
        with self._lock:
            self._lru[key] = index
            while len(self._lru) > self.size:
                self._lru.popitem(last=False)
        return index

    def distrust(self, path: str | Path, reason: str) -> None:
        try:
            key = self.key(path)
        except OSError:
            return
        with self._lock:
            if key in self._lru and self._lru[key].seekable:
                self._lru[key] = dataclasses.replace(self._lru[key], seekable=False, reason=reason)
                log.debug("%s: reads decode in order from now on, not by seeking: %s", path, reason)


_INDEXES = _Indexes()


def video_index(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> VideoIndex:
    """The index of `path`, built on first use and kept for the life of the process (DataLoader workers inherit
    what the main process built before they started)."""
    return _INDEXES.get(path, max_pixels)


def distrust_index(path: str | Path, reason: str) -> None:
    """Mark `path`'s index as not to be trusted for seeking (a seek came out elsewhere than it said)."""
    _INDEXES.distrust(path, reason)
