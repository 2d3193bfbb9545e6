"""Read chosen frames of a video: by seeking to the keyframe before each run of wanted frames when that decodes
fewer frames than going on, else in order from the start.

A seeking read checks every frame it decodes against the file's index (`vidseq.io.index`): each must come out
with the timestamp the index gives its position. Where one does not (a container whose seeks land elsewhere,
timestamps a decoder rewrites), the file is read in order from the start, and so is every later read of it
(logged once at debug level). A damaged file is also read in order, so that its error is the one an in-order
read gives. Either way the frames are the same as those of a decode from the start.

>>> clip = read_frames("v_Jump_g01_c01.avi", indices=[0, 8, 16], size=64)  # doctest: +SKIP
>>> clip.shape                                                             # (3, 64, 85, 3) uint8
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.errors import TruncatedVideoError, VideoError
from vidseq.io.index import VideoIndex, distrust_index, video_index
from vidseq.io.video import MAX_PIXELS, FrameReader

#: What a seek costs, in frames decoded: a run of wanted frames starts from a fresh keyframe only when that
#: saves more than this many frames over decoding on from where the decoder is.
SEEK_COST = 2


@dataclass
class Run:
    """One stretch of decoding: from keyframe `start` (a seek to it, or the first frame) on to `targets[-1]`."""

    start: int
    targets: list[int] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.targets[-1] - self.start + 1


def decode_plan(index: VideoIndex, wanted: Sequence[int], *, seek_cost: int = SEEK_COST) -> list[Run]:
    """The runs a seeking read decodes to get the frames `wanted` (sorted and unique here); their `frames` add up
    to the frames decoded. Without seeking the plan is one run from frame 0."""
    targets = sorted({int(i) for i in wanted})
    if not index.seekable:
        return [Run(0, targets)]
    runs: list[Run] = []
    for t in targets:
        key = int(index.keyframe_before(t))
        if not runs or key > runs[-1].targets[-1] + seek_cost:
            runs.append(Run(key, [t]))
        else:
            runs[-1].targets.append(t)
    return runs


def frames_decoded(index: VideoIndex, wanted: Sequence[int], *, seek: bool = True) -> int:
    """How many frames a read of `wanted` decodes: by its plan, or in order from the start (`seek=False`)."""
    if not seek:
        return max(int(i) for i in wanted) + 1
    return sum(run.frames for run in decode_plan(index, wanted))


class _Untrusted(Exception):
    """A seek came out elsewhere than the index said."""


def read_frames(path: str | Path, indices: Sequence[int] | None = None, size: int | tuple[int, int] | None = None,
                *, threads: int = 1, max_pixels: int = MAX_PIXELS, seek: bool = True,
                min_side: int | None = None) -> np.ndarray:
    """Decode frames of a video into a (T, H, W, 3) uint8 RGB array.

    `indices` picks frames (any order, repeats allowed); only the frames asked for are converted and held, and
    with `seek` (the default) the decoder seeks to the keyframe before a wanted frame when that is cheaper than
    decoding on (frame-exact: see the module's notes). `size` resizes so the short side is `size` pixels (an
    int) or to exactly (width, height); `min_side` (without `size`) asks only for frames no smaller than that,
    as cheaply as the codec gives them (`FrameReader`). Grayscale and every other pixel format come out RGB,
    and rotation metadata is applied. A file that ends before a wanted frame raises `TruncatedVideoError`.
    """
    wanted = None if indices is None else [int(i) for i in indices]
    if wanted is not None:
        if not wanted:
            raise ValueError("indices is empty")
        if min(wanted) < 0:
            raise ValueError(f"negative frame index in {wanted}")
    if wanted is None:
        with FrameReader(path, size=size, threads=threads, max_pixels=max_pixels, min_side=min_side) as reader:
            frames = list(reader.rgb())
        if not frames:
            raise VideoError(path=path, reason="no frame could be decoded")
        return np.stack(frames)
    got = None
    if seek:
        index = video_index(path, max_pixels=max_pixels)
        plan = decode_plan(index, wanted)
        if index.seekable and max(wanted) < index.n_frames and (len(plan) > 1 or plan[0].start > 0):
            with FrameReader(path, size=size, threads=threads, max_pixels=max_pixels, min_side=min_side) as reader:
                got = _read_seeking(reader, index, plan)
    if got is None:
        with FrameReader(path, size=size, threads=threads, max_pixels=max_pixels, min_side=min_side) as reader:
            got = _read_in_order(reader, wanted)
    return np.stack([got[i] for i in wanted])


def _read_in_order(reader: FrameReader, wanted: list[int]) -> dict[int, np.ndarray]:
    last, needed = max(wanted), set(wanted)
    got: dict[int, np.ndarray] = {}
    damage = ""
    try:
        for i, frame in enumerate(reader._frames()):
            if i in needed:
                got[i] = reader._to_rgb(frame)
            if i >= last:
                break
    except VideoError as e:  # damage before the last frame asked for: as if the video ended there
        damage = f" ({e.reason})"
    if len(got) < len(needed):
        missing = min(needed - set(got))
        raise TruncatedVideoError(path=reader.path, reason=f"frame {missing} asked for, but only {reader.decoded} "
                                  f"frames decode{damage}", wanted=missing, decoded=reader.decoded)
    return got


def _read_seeking(reader: FrameReader, index: VideoIndex, plan: list[Run]) -> dict[int, np.ndarray] | None:
    """The frames of `plan`, each checked against the index; None where the file must be read in order instead
    (a seek that landed elsewhere: the index is distrusted from then on; or damage)."""
    got: dict[int, np.ndarray] = {}
    try:
        for n, run in enumerate(plan):
            if n or run.start:
                reader.seek(index.pts[run.start])
            _decode_run(reader, index, run, got)
    except _Untrusted as e:
        distrust_index(reader.path, str(e))
        return None
    except VideoError:
        return None  # damage: the in-order read gives the error (or the frames before it) as it always has
    return got


def _decode_run(reader: FrameReader, index: VideoIndex, run: Run, got: dict[int, np.ndarray]) -> None:
    targets, last = set(run.targets), run.targets[-1]
    expect, start_pts = run.start, index.pts[run.start]
    for frame in reader._frames():
        if frame.pts is None:
            raise _Untrusted("a frame came out without a timestamp")
        if expect == run.start and frame.pts < start_pts:
            continue  # frames shown before the keyframe but decoded after it (an open GOP's leading B-frames)
        if frame.pts != index.pts[expect]:
            raise _Untrusted(f"after a seek to frame {run.start}, frame {expect} came out with timestamp "
                             f"{frame.pts} instead of {index.pts[expect]}")
        if expect in targets:
            got[expect] = reader._to_rgb(frame)
        if expect == last:
            return
        expect += 1
    raise _Untrusted(f"after a seek to frame {run.start}, the frames ended before frame {last}")
