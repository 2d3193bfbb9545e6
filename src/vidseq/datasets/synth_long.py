"""Built-in untrimmed sample data: long videos of several motions one after another, with known boundaries.

Each video is a run of segments. A segment is one of the trimmed synth classes (`vidseq.datasets.synth`) done
2-4 times in a row (each time a new clip of that class at the trimmed clips' speed, as a repeated action), in the
look of one of the held-out groups 1-7, so a model trained on the trimmed dataset's official split has never seen
it. Between some segments the scene holds still (a background with nothing moving): time that belongs to no class.
The ground truth is written beside the videos as a segments CSV that vidseq reads as a dataset of segments.

Layout::

    DEST/long/long_<NN>.avi         MPEG-4 part 2 in AVI
    DEST/segments.csv               path,label,start,end (seconds), one row per segment, in time order
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidseq.datasets.synth import MOTIONS, TEST_GROUPS, SynthConfig, _render_clip
from vidseq.datasets.synth_dest import MARK, synth_folder, write_mark
from vidseq.files import atomic_write_text, output_folder
from vidseq.io import write_video
from vidseq.progress import Progress


@dataclass(frozen=True)
class LongConfig:
    """Long videos made of the classes of `base` (a trimmed synth config: classes, size, frames per action, fps,
    seed): `videos` videos of `segments` segments each, each segment 2-4 actions long, a still gap of 1-2 s before a
    segment with probability `gap`."""

    base: SynthConfig = field(default_factory=SynthConfig)
    videos: int = 4
    segments: int = 6
    gap: float = 0.5
    repeats: tuple[int, int] = (2, 4)

    def __post_init__(self):
        if self.videos < 1 or self.segments < 1:
            raise ValueError(f"videos and segments must be at least 1, got {self.videos} and {self.segments}")
        if not 0 <= self.gap <= 1:
            raise ValueError(f"gap must be between 0 and 1, got {self.gap}")
        if not 1 <= self.repeats[0] <= self.repeats[1]:
            raise ValueError(f"repeats must be 1 <= low <= high, got {self.repeats}")


@dataclass(frozen=True)
class TrueSegment:
    label: str
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class LongResult:
    root: Path
    videos: int
    frames: int
    segments: list[tuple[str, TrueSegment]]  # (path relative to root, segment)
    csv: Path


def plan_video(cfg: LongConfig, video: int) -> list[tuple[str, int, int, int]]:
    """What video `video` shows, in order: (kind, class, group, frames) with kind "action" or "still"."""
    base = cfg.base
    rng = np.random.default_rng([base.seed, 77, video])
    plan, previous = [], -1
    for _ in range(cfg.segments):
        group = int(rng.integers(1, TEST_GROUPS + 1))
        if rng.random() < cfg.gap:
            plan.append(("still", -1, group, int(round(base.fps * rng.uniform(1.0, 2.0)))))
        cls = int(rng.integers(base.classes))
        while cls == previous:  # consecutive segments of one class would be one segment
            cls = int(rng.integers(base.classes))
        previous = cls
        repeats = int(rng.integers(cfg.repeats[0], cfg.repeats[1] + 1))
        plan.append(("action", cls, group, repeats * base.frames))
    return plan


def _frames(cfg: LongConfig, video: int, plan: list[tuple[str, int, int, int]]) -> Iterator[np.ndarray]:
    base = cfg.base
    for k, (kind, cls, group, n) in enumerate(plan):
        if kind == "still":  # the group's background, nothing moving
            still = SynthConfig(classes=2, groups=base.groups, clips=1, frames=n, width=base.width,
                                height=base.height, fps=base.fps, seed=base.seed)
            yield from _render_clip(still, "pan_x", 0, np.random.default_rng([base.seed, 0, group]),
                                    np.random.default_rng([base.seed, 78, video, k]))
            continue
        _, family, direction = MOTIONS[cls]
        for r in range(n // base.frames):  # the action again and again, each time a new clip of the class
            group_rng = np.random.default_rng([base.seed, cls // 2, group])  # the look of group `group`
            clip_rng = np.random.default_rng([base.seed, 79, video, k, r])
            yield from _render_clip(base, family, direction, group_rng, clip_rng)


def make_long_synth(dest: str | Path, config: LongConfig | None = None, *, progress: bool = False,
                    overwrite: bool = False) -> LongResult:
    """Write `config.videos` long videos and their segments CSV under `dest` (see the module's docstring).
    Deterministic for a given config; each video is written under a temporary name, the CSV and ``synth.json``
    last. `dest` must be new, empty or hold this same dataset, unless `overwrite` (as `make_synth`)."""
    cfg = config or LongConfig()
    base = cfg.base
    settings = {"kind": "long", **asdict(cfg)}
    root = synth_folder(dest, settings, [*(f"long/long_{v:02d}.avi" for v in range(1, cfg.videos + 1)),
                                         "segments.csv", MARK], overwrite=overwrite)
    folder = output_folder(root / "long", what="videos folder")
    truth: list[tuple[str, TrueSegment]] = []
    total = 0
    with Progress("synth", cfg.videos, unit="videos", enabled=progress) as bar:
        for v in range(1, cfg.videos + 1):
            plan = plan_video(cfg, v)
            name = f"long_{v:02d}.avi"
            tmp = folder / f".{name}.tmp-{os.getpid()}.avi"
            try:
                write_video(tmp, _frames(cfg, v, plan), fps=base.fps, codec="mpeg4", quality=3)
                tmp.replace(folder / name)
            finally:
                tmp.unlink(missing_ok=True)
            at = 0
            for kind, cls, _, n in plan:
                if kind == "action":
                    truth.append((f"long/{name}", TrueSegment(MOTIONS[cls][0], at / base.fps, (at + n) / base.fps)))
                at += n
            total += at
            bar.update(1)
    csv_path = root / "segments.csv"
    atomic_write_text(csv_path, "path,label,start,end\n" + "".join(
        f"{p},{s.label},{s.start:.3f},{s.end:.3f}\n" for p, s in truth))
    write_mark(root, settings)
    return LongResult(root, cfg.videos, total, truth, csv_path)
