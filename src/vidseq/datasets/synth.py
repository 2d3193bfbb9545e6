"""Built-in sample data: a small dataset shaped exactly like UCF101, made without a download.

Classes are defined by motion, so the order of frames matters. They come in pairs that differ only in
direction (left/right, up/down, grow/shrink, clockwise/anticlockwise, pan left/right, pan up/down):
every position, size and angle is as likely in one class of a pair as in the other, so a model that
looks at frames one by one cannot tell the two apart. The pairs differ in appearance (object shape),
as UCF101's classes differ in scene, so such a model still gets the family right.

Clips of one group share background, object and colours and differ in details (path, speed, size),
as UCF101's clips of one group are cut from one long video: a random split leaks near-duplicates
across train and validation, a group split does not. Group g of both classes of a pair looks the same,
so not even a memorised look tells a training clip's direction: only the motion does.

Layout, as UCF101's::

    DEST/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi      MPEG-4 part 2 in AVI
    DEST/ucfTrainTestlist/classInd.txt                 "1 ClassName"
    DEST/ucfTrainTestlist/trainlist01.txt              "Class/v_Class_g08_c01.avi 1"  (1-based label)
    DEST/ucfTrainTestlist/testlist01.txt               "Class/v_Class_g01_c01.avi"    (groups 1-7)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vidseq.datasets.synth_dest import MARK, synth_folder, write_mark
from vidseq.errors import note_space
from vidseq.files import atomic_write_text, output_folder
from vidseq.io import write_video
from vidseq.progress import Progress

#: (class name, family, direction). Pairs of one family differ only in the sign of the motion.
MOTIONS: tuple[tuple[str, str, int], ...] = (
    ("MoveLeft", "move_x", -1), ("MoveRight", "move_x", 1),
    ("SpinClockwise", "spin", 1), ("SpinAnticlockwise", "spin", -1),
    ("Grow", "scale", 1), ("Shrink", "scale", -1),
    ("MoveUp", "move_y", -1), ("MoveDown", "move_y", 1),
    ("PanLeft", "pan_x", -1), ("PanRight", "pan_x", 1),
    ("PanUp", "pan_y", -1), ("PanDown", "pan_y", 1),
)
MAX_CLASSES = len(MOTIONS)
TEST_GROUPS = 7  # UCF101's split 1 puts groups 1-7 in the test list


@dataclass(frozen=True)
class SynthConfig:
    """Size of a synthetic dataset. `PRESETS` holds the documented sizes."""

    classes: int = 4
    groups: int = 12
    clips: int = 2
    frames: int = 24
    width: int = 96
    height: int = 72
    fps: float = 25.0
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.classes <= MAX_CLASSES:
            raise ValueError(f"classes must be between 2 and {MAX_CLASSES}, got {self.classes}")
        if self.groups <= TEST_GROUPS:
            raise ValueError(f"groups must be more than {TEST_GROUPS} (groups 1-{TEST_GROUPS} form the test list), "
                             f"got {self.groups}")
        if self.clips < 1 or self.frames < 1:
            raise ValueError("clips and frames must be at least 1")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"size must be even and at least 16x16, got {self.width}x{self.height}")
        if self.seed < 0:
            raise ValueError(f"seed must be 0 or more, got {self.seed}")

    @property
    def class_names(self) -> list[str]:
        return [m[0] for m in MOTIONS[: self.classes]]


#: Documented sizes. "default" builds in seconds; "demo" is big enough that a temporal model trained
#: on CPU in a few minutes clearly beats frame averaging; "bench" is UCF101-shaped (320x240).
PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(classes=2, groups=8, clips=1, frames=8, width=32, height=32),
    "default": SynthConfig(),
    "demo": SynthConfig(classes=8, groups=40, clips=3, frames=24, width=96, height=72),
    "bench": SynthConfig(classes=12, groups=9, clips=2, frames=40, width=320, height=240),
}


@dataclass(frozen=True)
class SynthResult:
    root: Path
    videos: int
    frames: int
    classes: list[str]
    train: int
    test: int


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """A smooth random field in [0, 1] of shape (h, w): coarse noise upsampled bilinearly."""
    coarse = rng.random((max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def _texture(rng: np.random.Generator, h: int, w: int, colours: np.ndarray, cell: int) -> np.ndarray:
    """A colourful texture (h, w, 3) uint8 blending three colours by two smooth fields."""
    a = _smooth_noise(rng, h, w, cell)[..., None]
    b = _smooth_noise(rng, h, w, max(2, cell // 2))[..., None]
    img = colours[0] * (1 - a) + colours[1] * a
    img = img * (1 - 0.5 * b) + colours[2] * 0.5 * b
    return np.clip(img, 0, 255).astype(np.uint8)


def _sprite(rng: np.random.Generator, family: str, size: int, colours: np.ndarray) -> Image.Image:
    """The moving object: its shape tells the family, its texture and colours the group."""
    tex = _texture(rng, size, size, colours, cell=max(3, size // 4))
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    if family in ("move_x", "move_y"):  # a disc
        mask[(yy - c) ** 2 + (xx - c) ** 2 <= c**2] = 255
    elif family == "spin":  # a bar with a knob at one end: no symmetry that would hide the turn
        mask[np.abs(yy - c) <= size * 0.16] = 255
        mask[(yy - c) ** 2 + (xx - size * 0.78) ** 2 <= (size * 0.22) ** 2] = 255
    else:  # a square for scale
        m = int(size * 0.1)
        mask[m:-m, m:-m] = 255
    # a dark stripe across the object so its own texture shows motion too, and a dark outline
    tex[(np.abs(xx - c) < max(1, size // 12))] //= 3
    inside = mask > 0
    eroded = inside.copy()
    eroded[1:] &= inside[:-1]
    eroded[:-1] &= inside[1:]
    eroded[:, 1:] &= inside[:, :-1]
    eroded[:, :-1] &= inside[:, 1:]
    tex[inside & ~eroded] //= 4
    rgba = np.dstack([tex, mask])
    return Image.fromarray(rgba, "RGBA")


def _render_clip(cfg: SynthConfig, family: str, direction: int, group_rng: np.random.Generator,
                 clip_rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Frames of one clip: group_rng draws what the group shares, clip_rng the clip's own details."""
    W, H, T = cfg.width, cfg.height, cfg.frames
    base = min(W, H)
    palette = group_rng.integers(0, 256, size=(6, 3)).astype(np.float32)
    pan = family.startswith("pan")
    margin = base // 2 if pan else 0
    background = _texture(group_rng, H + 2 * margin, W + 2 * margin, palette[:3], cell=max(4, base // 6))
    obj_size = int(base * group_rng.uniform(0.3, 0.42))
    sprite = _sprite(group_rng, family, obj_size, palette[3:])
    # the clip's own details: where the path lies, how fast, how big
    speed = clip_rng.uniform(0.6, 1.0)  # fraction of the travel range covered during the clip
    jitter = clip_rng.normal(0, 2.0, size=3)
    span = (W - obj_size) if family == "move_x" else (H - obj_size)
    travel = speed * span * 0.8
    scale0 = clip_rng.uniform(0.85, 1.15)
    angle0 = clip_rng.uniform(0, 360)
    cx0 = clip_rng.uniform(0.3, 0.7) * (W - obj_size)
    cy0 = clip_rng.uniform(0.3, 0.7) * (H - obj_size)
    for t in range(T):
        s = (t / max(1, T - 1) - 0.5) * direction  # -0.5 .. 0.5, symmetric for both directions
        if pan:
            off = s * margin * 1.8 * speed
            ox = margin + (off if family == "pan_x" else 0) + jitter[0] * 0.5
            oy = margin + (off if family == "pan_y" else 0) + jitter[1] * 0.5
            ox = int(round(np.clip(ox, 0, 2 * margin)))
            oy = int(round(np.clip(oy, 0, 2 * margin)))
            frame = background[oy: oy + H, ox: ox + W].copy()
            yield frame
            continue
        img = Image.fromarray(background[:H, :W].copy())
        spr, x, y = sprite, cx0, cy0
        if family == "move_x":
            x = (W - obj_size) / 2 + s * travel + jitter[0]
        elif family == "move_y":
            y = (H - obj_size) / 2 + s * travel + jitter[1]
        elif family == "spin":
            angle = angle0 - s * 200 * speed  # PIL turns anticlockwise for positive angles
            spr = sprite.rotate(angle, resample=Image.BILINEAR, expand=True)
            x, y = (W - spr.width) / 2 + jitter[0], (H - spr.height) / 2 + jitter[1]
        elif family == "scale":
            k = scale0 * float(np.exp(s * 1.2 * speed))
            n = max(4, int(obj_size * k))
            spr = sprite.resize((n, n), Image.BILINEAR)
            x, y = (W - n) / 2 + jitter[0], (H - n) / 2 + jitter[1]
        img.paste(spr, (int(round(x)), int(round(y))), spr)
        yield np.asarray(img)


def _clip_name(cls: str, group: int, clip: int) -> str:
    return f"v_{cls}_g{group:02d}_c{clip:02d}.avi"


def make_synth(dest: str | Path, config: SynthConfig | None = None, *, progress: bool = False,
               overwrite: bool = False) -> SynthResult:
    """Write a UCF101-shaped dataset of motion classes under `dest` (see the module's docstring).

    Deterministic for a given config (seed included). `dest` must be new, empty, or hold this same dataset (a
    finished or interrupted run of the same config, whose files are written again); another dataset or other files
    there are refused in one line (a DatasetError) unless `overwrite`, which removes the old dataset first (see
    `vidseq.datasets.synth_dest`). Each video is written under a hidden temporary name and renamed when complete,
    and the split lists and ``synth.json`` are written last, so an interrupted run leaves no half-written video and
    no lists that name missing ones. Progress goes to stderr.
    """
    cfg = config or SynthConfig()
    names = cfg.class_names
    train, test, n_frames, done_bytes = [], [], 0, 0
    jobs = [(ci, g, c) for ci in range(cfg.classes) for g in range(1, cfg.groups + 1)
            for c in range(1, cfg.clips + 1)]
    settings = {"kind": "trimmed", **asdict(cfg)}
    lists = [f"ucfTrainTestlist/{n}" for n in ("classInd.txt", "trainlist01.txt", "testlist01.txt")]
    root = synth_folder(dest, settings, [*(f"videos/{MOTIONS[ci][0]}/{_clip_name(MOTIONS[ci][0], g, c)}"
                                           for ci, g, c in jobs), *lists, MARK], overwrite=overwrite)
    with Progress("synth", len(jobs), unit="videos", enabled=progress) as bar:  # the line ends also on Ctrl-C
        for ci, g, c in jobs:
            name, family, direction = MOTIONS[ci]
            # the group's look depends on (seed, pair, group) only: both classes of a pair share it, so the look
            # of a training group never tells its direction (a shortcut that held-out groups would punish);
            # the clip's details depend on the class and clip too
            group_rng = np.random.default_rng([cfg.seed, ci // 2, g])
            clip_rng = np.random.default_rng([cfg.seed, ci, g, c])
            rel = f"{name}/{_clip_name(name, g, c)}"
            out = root / "videos" / rel
            output_folder(out.parent, what="class folder")
            tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.avi")  # hidden: dataset scans skip it
            try:
                write_video(tmp, _render_clip(cfg, family, direction, group_rng, clip_rng), fps=cfg.fps,
                            codec="mpeg4", quality=3)
                tmp.replace(out)
            except OSError as e:  # a full disk: about what the videos left take, at the size of those written
                if done_bytes:
                    left = len(jobs) - len(train) - len(test)
                    note_space(e, needed=done_bytes / (len(jobs) - left) * left, what=f"the {left} videos left")
                raise
            finally:
                tmp.unlink(missing_ok=True)
            n_frames += cfg.frames
            done_bytes += out.stat().st_size
            (test if g <= TEST_GROUPS else train).append((rel, ci + 1))
            bar.update(1)
    lists = output_folder(root / "ucfTrainTestlist", what="split lists folder")
    atomic_write_text(lists / "classInd.txt", "".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    atomic_write_text(lists / "trainlist01.txt", "".join(f"{rel} {label}\n" for rel, label in train))
    atomic_write_text(lists / "testlist01.txt", "".join(f"{rel}\n" for rel, _ in test))
    write_mark(root, settings)
    return SynthResult(root, len(jobs), n_frames, names, len(train), len(test))
