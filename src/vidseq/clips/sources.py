"""Frame sources: where a clip's frames come from. A source answers two questions about an item path, how many
frames it has and what frames `indices` look like, so clip transforms work the same over frame folders,
video files and the clip cache (`vidseq.clips.cache.ClipCache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vidseq.io import list_frames, probe, read_folder_frames, read_frames, video_index


@runtime_checkable
class FrameSource(Protocol):
    """What clip transforms read frames through."""

    def n_frames(self, path: Path) -> int:
        """Frames of item `path` (as declared, where the file declares them)."""

    def exact_frames(self, path: Path) -> int:
        """Frames of item `path` that really decode (after the declared count turned out too high)."""

    def read(self, path: Path, indices: Sequence[int], *, min_side: int | None = None) -> np.ndarray:
        """Frames `indices` of `path` as (T, H, W, 3) uint8, short side no smaller than `min_side` where
        the source can shrink cheaply (the caller resizes to the exact size)."""


@runtime_checkable
class KeyframeSource(FrameSource, Protocol):
    """A frame source where some frames are cheaper to start a read from than others (a video's keyframes).
    Optional: a source without `keyframes` has every frame equally cheap."""

    def keyframes(self, path: Path) -> np.ndarray | None:
        """The frames of `path` a read can start from cheaply (a video's keyframes), or None when every frame
        costs the same (frame folders, the cache). The ``random-key`` sampler draws near them."""


def keyframes_of(source: FrameSource, path: Path) -> np.ndarray | None:
    """`source`'s keyframes of `path`, or None where the source has none (every frame equally cheap)."""
    return source.keyframes(path) if isinstance(source, KeyframeSource) else None


class FileSource:
    """Frames straight from the files: a frame folder's images or a video file's frames (read by seeking to
    keyframes where that decodes fewer frames, see `vidseq.io.read`)."""

    def n_frames(self, path: Path) -> int:
        """Frames in a frame folder (numbered images) or a video file (its index's frames, which also builds the
        index once for every later read; as its container declares them where the index cannot be trusted)."""
        path = Path(path)
        if path.is_dir():
            return len(list_frames(path))
        index = video_index(path)
        return index.n_frames if index.seekable else probe(path).frames

    def exact_frames(self, path: Path) -> int:
        path = Path(path)
        return self.n_frames(path) if path.is_dir() else probe(path, exact=True).frames

    def read(self, path: Path, indices: Sequence[int], *, min_side: int | None = None) -> np.ndarray:
        path = Path(path)
        if path.is_dir():
            return read_folder_frames(path, indices, min_side=min_side)
        return read_frames(path, indices, min_side=min_side)

    def keyframes(self, path: Path) -> np.ndarray | None:
        path = Path(path)
        if path.is_dir():
            return None
        index = video_index(path)
        return index.keyframes if index.seekable else None


#: The default source of every clip transform.
FILES = FileSource()
