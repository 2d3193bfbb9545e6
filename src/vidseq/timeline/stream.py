"""A run's model on a live source: a rolling window, a decision every stride, reconnection with backoff.

>>> for event in follow("runs/cnn_lstm", "rtsp://camera.local/stream"):      # doctest: +SKIP
...     if isinstance(event, Decision) and event.changed:
...         print(event.time, event.label, event.latency)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidseq.evaluate.inference import clip_tfm_for
from vidseq.io.stream import StreamLost, StreamReader
from vidseq.runs import Run, load_run
from vidseq.timeline.score import DEFAULT_THRESHOLD, DEFAULT_WINDOW, WindowScorer, clip_offsets, frame_tfm
from vidseq.timeline.windows import Assembler, endless_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """The model's answer for the window that ends at `time` seconds of the stream (from when it was opened)."""

    time: float
    label: str | None  # the top class, or None (background) below the threshold
    probability: float
    top: list[tuple[str, float]]
    latency: float  # seconds from the arrival of the window's last frame to this decision
    changed: bool  # whether `label` differs from the previous decision's

    def to_dict(self) -> dict:
        return {"time": round(self.time, 3), "label": self.label, "probability": round(self.probability, 4),
                "latency_ms": round(self.latency * 1000, 1),
                "top": [{"label": c, "probability": round(p, 4)} for c, p in self.top]}


@dataclass(frozen=True)
class Status:
    """What happened to the source: "connected", "lost" (with the reason and the wait before the next try),
    "gave up" (after `retries` tries) or "ended" (a file played to its end)."""

    event: str
    message: str
    wait: float = 0.0


@dataclass(frozen=True)
class Backoff:
    """How to reconnect: `retries` tries after a loss, waiting `first` seconds, doubling up to `longest`."""

    retries: int = 5
    first: float = 0.5
    longest: float = 8.0

    def wait(self, attempt: int) -> float:
        return min(self.longest, self.first * 2 ** attempt)


def follow(run: str | Path | Run, source: str, *, window: float = DEFAULT_WINDOW, stride: float | None = None,
           threshold: float = DEFAULT_THRESHOLD, timeout: float = 5.0, backoff: Backoff = Backoff(), top: int = 3,
           device: str | torch.device | None = None,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[Decision | Status]:
    """Decisions on `source` (see `vidseq.io.stream`), one per `stride` seconds once a `window` of frames has come,
    with `Status` events when the source connects, is lost and is tried again. Each window is scored as soon as
    its last frame arrives (no batching: the latency is one forward). A source lost `backoff.retries` times in a
    row ends the iteration after a "gave up" status; a file played to its end after "ended". Stops on Ctrl-C
    (KeyboardInterrupt goes up to the caller)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run = run if isinstance(run, Run) else load_run(run, device=device)
    stride = window / 2 if stride is None else stride
    tfm = clip_tfm_for(run.config)
    prepare = frame_tfm(tfm)
    scorer = WindowScorer(run, device, bs=1)
    failures, last_label, opened = 0, "", time.monotonic()
    while True:
        lost: StreamLost | None = None
        try:
            reader = StreamReader(source, timeout=timeout, min_side=tfm.image_size)
        except StreamLost as e:
            lost = e
        if lost is None:
            fps = reader.fps or 25.0
            size, step = max(1, round(window * fps)), max(1, round(stride * fps))
            asm = Assembler(endless_windows(size, step, clip_offsets(tfm)(size)))
            yield Status("connected", f"{source}: {fps:g} fps, a decision every {step} frames")
            try:
                with reader:
                    for i, rgb in reader.rgb_where(asm.needs):
                        failures = 0
                        frame = None if rgb is None else (prepare(rgb), time.monotonic())
                        for _, frames in asm.push(i, frame):
                            p = scorer.add(torch.cat([f for f, _ in frames]))[0]
                            order = np.argsort(-p)[:min(top, len(p))]
                            best = run.classes[order[0]] if p[order[0]] >= threshold else None
                            yield Decision(time=frames[-1][1] - opened, label=best, probability=float(p[order[0]]),
                                           top=[(run.classes[c], float(p[c])) for c in order],
                                           latency=time.monotonic() - frames[-1][1], changed=best != last_label)
                            last_label = best
            except StreamLost as e:
                if not reader.live:
                    raise
                lost = e
            if lost is None:  # a file played to its end
                yield Status("ended", f"{source}: played to its end")
                return
        failures += 1
        if failures > backoff.retries:
            yield Status("gave up", f"{lost}; gave up after {backoff.retries} tries")
            return
        wait = backoff.wait(failures - 1)
        yield Status("lost", str(lost), wait)
        sleep(wait)
