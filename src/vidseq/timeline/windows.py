"""Windows over a long video and the segments their scores make: the pure part of a timeline (no decoding, no model).

A window is a stretch of `window` seconds that the model scores as if it were a trimmed item: its frames are
sampled inside it the way validation samples an item (`vidseq.sampling.sample`). Windows start every `stride`
seconds. Each window speaks for the stretch around its centre (from halfway to the previous window's centre to
halfway to the next's), so a label's segment is the union of the stretches of consecutive windows that give it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vidseq.sampling import sample


@dataclass(frozen=True)
class Window:
    """Frames `indices` (sorted, of the whole video) sampled from frames `first` to `last` (inclusive)."""

    first: int
    last: int
    indices: tuple[int, ...]


@dataclass(frozen=True)
class Segment:
    """A stretch of time given to one label, with the mean probability of its windows."""

    label: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict:
        return {"label": self.label, "start": round(self.start, 3), "end": round(self.end, 3),
                "score": round(self.score, 4)}


def window_offsets(frames: int, n: int, *, sampler: str, pad: str = "repeat", step: int = 2) -> np.ndarray:
    """The frames validation samples from an item of `frames` frames: a window's own sampled frames."""
    return np.sort(sample(sampler, frames, n, train=False, pad=pad, step=step))


def plan_windows(n_frames: int, size: int, stride: int, offsets: Callable[[int], np.ndarray]) -> list[Window]:
    """Windows of `size` frames every `stride` frames over a video of `n_frames`, plus one that ends with the
    video where the last regular window stops short of it; one window of all frames for a video shorter than
    `size`. `offsets(frames)` gives a window's sampled frames from its first."""
    if n_frames <= 0:
        return []
    if n_frames <= size:
        return [Window(0, n_frames - 1, tuple(int(i) for i in offsets(n_frames)))]
    starts = list(range(0, n_frames - size + 1, stride))
    if starts[-1] + size < n_frames:
        starts.append(n_frames - size)
    base = offsets(size)
    return [Window(s, s + size - 1, tuple(int(s + o) for o in base)) for s in starts]


def endless_windows(size: int, stride: int, offsets: np.ndarray) -> Iterator[Window]:
    """Windows of `size` frames every `stride` frames for a stream of unknown length."""
    k = 0
    while True:
        s = k * stride
        yield Window(s, s + size - 1, tuple(int(s + o) for o in offsets))
        k += 1


class Assembler:
    """Collects the sampled frames of consecutive windows from frames that come in order, index by index. Only
    frames of windows still open are kept, so memory is bounded by the frames of (size / stride + 1) windows,
    whatever the video's length."""

    def __init__(self, windows: Iterable[Window]):
        self._windows = iter(windows)
        self._next: Window | None = next(self._windows, None)
        self._open: deque[Window] = deque()
        self._kept: dict[int, object] = {}

    def needs(self, i: int) -> bool:
        """Whether frame `i` is one a window samples (the caller converts only these)."""
        self._admit(i)
        return any(i in w.indices for w in self._open)

    def _admit(self, i: int) -> None:
        while self._next is not None and self._next.indices[0] <= i:
            self._open.append(self._next)
            self._next = next(self._windows, None)

    def push(self, i: int, frame) -> Iterator[tuple[Window, list]]:
        """Frame `i` (None when not needed); yields the windows it completes with their frames."""
        self._admit(i)
        if frame is not None and any(i in w.indices for w in self._open):
            self._kept[i] = frame
        while self._open and self._open[0].indices[-1] <= i:
            w = self._open.popleft()
            yield w, [self._kept[j] for j in w.indices]
            low = min([o.indices[0] for o in self._open] + ([self._next.indices[0]] if self._next else []),
                      default=i + 1)
            for j in [j for j in self._kept if j < low]:
                del self._kept[j]

    @property
    def kept(self) -> int:
        """Frames held now (bounded, see the class)."""
        return len(self._kept)


def cell_bounds(centres: Sequence[float], duration: float) -> np.ndarray:
    """Where each window's stretch begins and ends: halfway between neighbouring centres, the first from 0, the
    last to `duration`. (K + 1,) boundaries for K windows."""
    c = np.asarray(centres, dtype=float)
    if not len(c):
        return np.zeros(1)
    mids = (c[1:] + c[:-1]) / 2
    return np.concatenate([[0.0], mids, [max(duration, float(c[-1]))]])


def _runs(labels: Sequence[int]) -> list[tuple[int, int, int]]:
    """(value, first, stop) of each run of equal values."""
    out, k = [], 0
    while k < len(labels):
        j = k
        while j < len(labels) and labels[j] == labels[k]:
            j += 1
        out.append((labels[k], k, j))
        k = j
    return out


def smooth_labels(labels: Sequence[int], bounds: np.ndarray, min_length: float) -> list[int]:
    """Runs of one label (or of background, -1) shorter than `min_length` seconds are taken by their neighbours
    where both sides share a label (a stray window inside a segment), else become background; runs between agreeing
    neighbours first, shortest first, one at a time until none is left."""
    labels = list(labels)
    while True:
        runs = _runs(labels)
        candidates = []
        for value, first, stop in runs:
            length = bounds[stop] - bounds[first]
            if length >= min_length - 1e-9:
                continue
            before = labels[first - 1] if first > 0 else None
            after = labels[stop] if stop < len(labels) else None
            fill = before if before is not None and before == after else -1
            if fill != value:
                candidates.append((fill == -1, length, first, stop, fill))
        if not candidates:
            return labels
        _, _, first, stop, fill = min(candidates)
        labels[first:stop] = [fill] * (stop - first)


def smooth_probs(probs: np.ndarray, k: int) -> np.ndarray:
    """Each window's probabilities averaged with those of its neighbours, `k` windows in all (a centred moving
    average; the first and last windows repeated at the ends). k = 1 leaves them as they are."""
    probs = np.asarray(probs, dtype=float)
    if k <= 1 or len(probs) < 2:
        return probs
    half = k // 2
    padded = np.pad(probs, ((half, k - 1 - half), (0, 0)), mode="edge")
    sums = np.cumsum(np.pad(padded, ((1, 0), (0, 0))), axis=0)
    return (sums[k:] - sums[:-k]) / k


def merge_segments(probs: np.ndarray, centres: Sequence[float], duration: float, classes: Sequence[str], *,
                   threshold: float, min_length: float, smooth: int = 1, multi_label: bool = False) -> list[Segment]:
    """Segments from window probabilities (K, C), first averaged over `smooth` neighbouring windows
    (`smooth_probs`): single-label, each window's top class where its probability reaches `threshold` (else
    background); multi-label, every class at or over `threshold`, each on its own. Runs shorter than `min_length`
    seconds are smoothed away (`smooth_labels`), then adjacent windows of one label are merged; a segment's score
    is the mean smoothed probability of its windows. Sorted by start."""
    probs = smooth_probs(probs, smooth)
    if not len(probs):
        return []
    bounds = cell_bounds(centres, duration)
    tracks: list[tuple[list[int], int | None]] = []
    if multi_label:
        for c in range(probs.shape[1]):
            tracks.append(([c if p >= threshold else -1 for p in probs[:, c]], c))
    else:
        top = probs.argmax(1)
        tracks.append(([int(t) if probs[k, t] >= threshold else -1 for k, t in enumerate(top)], None))
    out = []
    for labels, _ in tracks:
        for value, first, stop in _runs(smooth_labels(labels, bounds, min_length)):
            if value < 0:
                continue
            score = float(probs[first:stop, value].mean())
            out.append(Segment(classes[value], float(bounds[first]), float(bounds[stop]), score))
    return sorted(out, key=lambda s: (s.start, s.label))


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time ranges."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def best_iou(truth: Segment | tuple[str, float, float], found: Iterable[Segment]) -> float:
    """The highest temporal IoU of a true segment with a found segment of the same label."""
    label, start, end = (truth.label, truth.start, truth.end) if isinstance(truth, Segment) else truth
    return max((temporal_iou((start, end), (s.start, s.end)) for s in found if s.label == label), default=0.0)
