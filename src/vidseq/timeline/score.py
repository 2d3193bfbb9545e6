"""A run's model over the whole of a long video: windows scored in batches, read once, in order, with bounded memory.

>>> tl = predict_timeline("runs/cnn_lstm", "match.mp4", window=2.0)    # doctest: +SKIP
>>> [(s.label, s.start, s.end) for s in tl.segments][:2]
[('JumpRope', 3.5, 12.0), ('PushUps', 14.0, 30.5)]
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidseq.clips import ClipTfm
from vidseq.errors import VidseqError
from vidseq.evaluate.inference import clip_tfm_for, normalize
from vidseq.io import FrameReader
from vidseq.io.segment import frame_step, frame_times
from vidseq.progress import Progress
from vidseq.runs import Run, load_run
from vidseq.timeline.windows import (
    Assembler,
    Segment,
    merge_segments,
    plan_windows,
    smooth_probs,
    window_offsets,
)

DEFAULT_WINDOW = 2.0  #: seconds a window spans unless told
DEFAULT_STRIDE = 0.25  #: the stride unless told, as a fraction of the window
DEFAULT_THRESHOLD = 0.5  #: a single-label run's top probability below which a window is background
DEFAULT_SMOOTH = 3  #: windows whose probabilities are averaged before a window's label is read


@dataclass
class Timeline:
    """Every window's class probabilities over one video, and the segments they make."""

    path: str
    classes: list[str]
    duration: float
    fps: float
    window: float
    stride: float
    threshold: float
    min_length: float
    smooth: int
    starts: np.ndarray  # (K,) seconds
    ends: np.ndarray  # (K,)
    probs: np.ndarray  # (K, C)
    segments: list[Segment] = field(default_factory=list)
    incomplete: str | None = None  # why the video ended before its frames did (a damaged file), if it did

    @property
    def centres(self) -> np.ndarray:
        return (self.starts + self.ends) / 2

    def windows(self, top: int = 5) -> list[dict]:
        """Each window's time range and its `top` classes with their probabilities."""
        k = min(top, len(self.classes))
        return [{"start": round(float(s), 3), "end": round(float(e), 3),
                 "top": [{"label": self.classes[c], "probability": round(float(p[c]), 4)} for c in np.argsort(-p)[:k]]}
                for s, e, p in zip(self.starts, self.ends, self.probs)]

    def notes(self) -> list[str]:
        """Why the timeline says little, where it can tell: a window as long as the video, or no segment (every
        window under the threshold, or its stretches over it shorter than the shortest segment)."""
        out = []
        if len(self.probs) == 1 and self.window >= self.duration > 0:
            out.append(f"the window ({self.window:g} s) spans the whole video ({self.duration:.1f} s): one window "
                       "scores it all; give a shorter --window for a timeline")
        if len(self.probs) and not self.segments:
            best = float(smooth_probs(self.probs, self.smooth).max())
            if best < self.threshold:
                out.append(f"no window reaches the threshold {self.threshold:g} (the highest probability is "
                           f"{best:.2f}); a --threshold below it shows the model's best guesses")
            else:
                out.append(f"the stretches over the threshold are shorter than --min-length {self.min_length:g} s")
        return out

    def to_dict(self, top: int = 5) -> dict:
        out = {"path": self.path, "duration": round(self.duration, 3), "fps": round(self.fps, 3),
               "window": self.window, "stride": self.stride, "threshold": self.threshold,
               "min_length": self.min_length, "smooth": self.smooth, "classes": list(self.classes),
               "segments": [s.to_dict() for s in self.segments], "windows": self.windows(top)}
        return out if self.incomplete is None else {**out, "incomplete": self.incomplete}


class WindowScorer:
    """Batches windows' clips through a run's model: `add` a clip (T, 3, S, S) uint8, get probabilities back
    from `flush` once a batch is full."""

    def __init__(self, run: Run, device: str | torch.device, bs: int):
        self.run, self.device, self.bs = run, torch.device(device), bs
        self.model = run.model.to(self.device).eval()
        self._clips: list[torch.Tensor] = []

    def add(self, clip: torch.Tensor) -> np.ndarray | None:
        """Queue one window's clip; the probabilities (bs, C) of a full batch when this one fills it."""
        self._clips.append(clip)
        return self.flush() if len(self._clips) >= self.bs else None

    @torch.no_grad()
    def flush(self) -> np.ndarray | None:
        if not self._clips:
            return None
        x = normalize(torch.stack(self._clips).to(self.device), self.run.config)
        self._clips = []
        logits = self.model(x).float()
        return (logits.sigmoid() if self.run.config.multi_label else logits.softmax(-1)).cpu().numpy()


def frame_tfm(tfm: ClipTfm):
    """One frame (H, W, 3) uint8 -> (1, 3, S, S) uint8 as the run's validation clips are cropped and resized: the
    centre crop depends on the frame size only, so frames prepared one by one equal a clip prepared at once."""
    rng = random.Random(0)
    return lambda rgb: tfm.resize(rgb[None], train=False, rng=rng)


def clip_offsets(tfm: ClipTfm):
    """frames -> the frames the run's validation sampler takes from an item of that many (a window's own)."""
    return lambda frames: window_offsets(frames, tfm.seq_len, sampler=tfm.sampler, pad=tfm.pad, step=tfm.step)


def _check(window: float, stride: float, min_length: float, smooth: int) -> None:
    for name, value in (("window", window), ("stride", stride)):
        if not value > 0:
            raise VidseqError(f"{{{name}}} must be a positive number of seconds, got {value}", params={name: value})
    if smooth < 1:
        raise VidseqError(f"{{smooth}} must be at least 1 window, got {smooth}", params={"smooth": smooth})
    if min_length < 0:
        raise VidseqError(f"{{min_length}} must be 0 or more seconds, got {min_length}",
                          params={"min_length": min_length})


def predict_timeline(run: str | Path | Run, path: str | Path, *, window: float = DEFAULT_WINDOW,
                     stride: float | None = None, threshold: float | None = None, min_length: float | None = None,
                     smooth: int = DEFAULT_SMOOTH, bs: int = 16, device: str | torch.device | None = None,
                     progress: bool | None = False) -> Timeline:
    """Score windows of `window` seconds every `stride` seconds (default a quarter window) over all of `path` and
    merge them into segments (`vidseq.timeline.windows.merge_segments`: probabilities averaged over `smooth`
    neighbouring windows; `threshold`, default 0.5 or a multi-label run's own; `min_length`, default one window).
    (The defaults are the ones chosen on held-out long videos in benchmarks/timeline.py.) The video is decoded
    once, in order; only the frames windows sample are converted, and only those of windows still open are held,
    so memory does not grow with the video's length. VideoError when the file is not a readable video."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run = run if isinstance(run, Run) else load_run(run, device=device)
    stride = window * DEFAULT_STRIDE if stride is None else stride
    min_length = window if min_length is None else min_length
    _check(window, stride, min_length, smooth)
    if threshold is None:
        threshold = (run.config.threshold or 0.5) if run.config.multi_label else DEFAULT_THRESHOLD
    path = Path(path)
    times = frame_times(path)
    step = frame_step(times) or 1 / 25
    fps = 1 / step if step > 0 else 25.0
    tfm = clip_tfm_for(run.config)
    windows = plan_windows(len(times), max(1, round(window * fps)), max(1, round(stride * fps)), clip_offsets(tfm))
    scorer = WindowScorer(run, device, bs)
    # the results go into one array made up front: thousands of small arrays kept among the frames' large, short-
    # lived buffers would fragment the heap, and the process would grow with the video's length after all
    probs = np.full((len(windows), len(run.classes)), np.nan, dtype=np.float32)
    scored = done = 0
    prepare = frame_tfm(tfm)
    asm = Assembler(windows)
    with FrameReader(path, min_side=tfm.image_size) as reader, \
            Progress("timeline", len(times), unit="frames", enabled=progress) as bar:
        for i, rgb in reader.rgb_where(asm.needs):
            for _, frames in asm.push(i, None if rgb is None else prepare(rgb)):
                done += 1
                if (p := scorer.add(torch.cat(frames))) is not None:
                    probs[scored:scored + len(p)] = p
                    scored += len(p)
            bar.update(1)
        incomplete = reader.incomplete()
    if (p := scorer.flush()) is not None:
        probs[scored:scored + len(p)] = p
    if not done:
        incomplete = incomplete or "no window's frames could be decoded"
    duration = float(times[-1] + step) if len(times) else 0.0
    starts = np.array([times[w.first] for w in windows[:done]], dtype=float)
    ends = np.array([min(duration, times[w.last] + step) for w in windows[:done]], dtype=float)
    p = probs[:done].astype(float)
    tl = Timeline(str(path), list(run.classes), duration, fps, window, stride, threshold, min_length, smooth, starts,
                  ends, p, incomplete=incomplete)
    tl.segments = merge_segments(p, tl.centres, duration, run.classes, threshold=threshold, min_length=min_length,
                                 smooth=smooth, multi_label=run.config.multi_label)
    return tl


def segments_csv(timelines: Sequence[Timeline]) -> str:
    """path,label,start,end,score rows of every timeline's segments: the CSV vidseq reads as segments."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "start", "end", "score"])
    for tl in timelines:
        writer.writerows([tl.path, s.label, f"{s.start:.3f}", f"{s.end:.3f}", f"{s.score:.4f}"] for s in tl.segments)
    return out.getvalue()
