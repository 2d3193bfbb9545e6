"""Frame sources: where a clip's frames come from. A source answers two questions about an item path, how many
frames it has and what frames `indices` look like, so clip transforms work the same over frame folders,
video files and the clip cache (`vidseq.clips.cache.ClipCache`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from vidseq.errors import TruncatedVideoError, VideoError
from vidseq.io import list_frames, probe, read_folder_frames, read_frames, video_index
from vidseq.io.segment import parse_segment, segment_frames
from vidseq.io.torchcodec import check_decode_device, read_frames_torchcodec

log = logging.getLogger(__name__)


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
    """Frames straight from the files: a frame folder's images, a video file's frames (read by seeking to
    keyframes where that decodes fewer frames, see `vidseq.io.read`), or a segment's (``long.mp4#t=12,22``, see
    `vidseq.io.segment`): the frames of that time range of the file, as if it were a file of its own."""

    def n_frames(self, path: Path) -> int:
        """Frames in a frame folder (numbered images) or a video file (its index's frames, which also builds the
        index once for every later read; as its container declares them where the index cannot be trusted)."""
        path = Path(path)
        if (seg := parse_segment(path)) is not None:
            return segment_frames(seg)[1]
        if path.is_dir():
            return len(list_frames(path))
        index = video_index(path)
        return index.n_frames if index.seekable else probe(path).frames

    def exact_frames(self, path: Path) -> int:
        path = Path(path)
        if (seg := parse_segment(path)) is not None:
            first, n = segment_frames(seg)
            return max(0, min(n, probe(seg.file, exact=True).frames - first))
        return self.n_frames(path) if path.is_dir() else probe(path, exact=True).frames

    def read(self, path: Path, indices: Sequence[int], *, min_side: int | None = None) -> np.ndarray:
        path, indices = in_file(path, indices)
        if path.is_dir():
            return read_folder_frames(path, indices, min_side=min_side)
        return read_frames(path, indices, min_side=min_side)

    def keyframes(self, path: Path) -> np.ndarray | None:
        path = Path(path)
        seg = parse_segment(path)
        file = seg.file if seg is not None else path
        if file.is_dir():
            return None
        index = video_index(file)
        if not index.seekable:
            return None
        if seg is None:
            return index.keyframes
        first, n = segment_frames(seg)
        keys = index.keyframes[(index.keyframes >= first) & (index.keyframes < first + n)] - first
        return keys if len(keys) and keys[0] == 0 else np.concatenate([[0], keys]).astype(np.int64)


def in_file(path: Path, indices: Sequence[int]) -> tuple[Path, Sequence[int]]:
    """(the file, its frame indices) for frames `indices` of item `path`: a segment's frames are frames of its file
    from the segment's first on; other items are their own file."""
    path = Path(path)
    if (seg := parse_segment(path)) is None:
        return path, indices
    first, n = segment_frames(seg)
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise VideoError(path=path, reason=f"asked for frame {int(idx.max())} of a segment of {n} frames")
    return seg.file, (idx + first).tolist()


class TorchcodecSource(FileSource):
    """Video files decoded by torchcodec on `device` (an NVIDIA GPU's decoder with "cuda"); frame folders, frame
    counts and keyframes as `FileSource`. Reads give (T, H, W, 3) uint8 tensors on `device`, so DataLoaders that
    decode on a GPU run in the main process (CUDA does not cross into worker processes)."""

    def __init__(self, device: str | torch.device = "cuda"):
        self.device = check_decode_device(device)

    def read(self, path: Path, indices: Sequence[int], *, min_side: int | None = None) -> np.ndarray | torch.Tensor:
        path, indices = in_file(path, indices)
        if path.is_dir():
            return read_folder_frames(path, indices, min_side=min_side)
        try:
            return read_frames_torchcodec(path, indices, device=self.device)
        except TruncatedVideoError:
            raise
        except VideoError as e:  # a file torchcodec cannot decode (e.g. an open GOP in MKV): vidseq's own reads
            log.debug("%s; reading it with PyAV instead", e)
            return torch.from_numpy(read_frames(path, indices, min_side=min_side)).to(self.device)

    def __getstate__(self):
        return {"device": str(self.device)}

    def __setstate__(self, state):
        self.device = torch.device(state["device"])


def frame_source(decode_device: str | None = None) -> FrameSource:
    """The file source for `decode_device`: vidseq's own reads (PyAV) for None, torchcodec on "cpu" or "cuda"."""
    return FILES if decode_device is None else TorchcodecSource(decode_device)


#: The default source of every clip transform.
FILES = FileSource()
