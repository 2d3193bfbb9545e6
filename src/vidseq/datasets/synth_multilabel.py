"""Built-in multi-label sample data: every clip shows two panels side by side, each a motion of one of the classes
or an empty, still background, so a clip has one or two labels, known by construction (as a Charades video has
several actions). The classes are one motion per family (MoveLeft, SpinClockwise, Grow, MoveUp, PanLeft, PanUp),
told apart by shape and motion. Square frames suit it: a square crop of them keeps both panels.

Layout::

    DEST/videos/v_Multi_g<GG>_c<CC>.avi     MPEG-4 part 2 in AVI, the two panels side by side
    DEST/labels.csv                        path,label,split with labels joined by ";" (groups 1-7: valid)
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vidseq.datasets.items import LABEL_SEP
from vidseq.datasets.synth import MOTIONS, TEST_GROUPS, SynthConfig, SynthResult, _render_clip
from vidseq.datasets.synth_dest import MARK, synth_folder, write_mark
from vidseq.files import atomic_write_text, output_folder
from vidseq.io import write_video
from vidseq.progress import Progress

#: one motion of each family: the multi-label classes, in this order
MULTI_MOTIONS = MOTIONS[::2]


def make_multilabel_synth(dest: str | Path, config: SynthConfig | None = None, *,
                          progress: bool = False, overwrite: bool = False) -> SynthResult:
    """Write a multi-label dataset of `config.classes` (2-6) motion classes under `dest` (see the module's
    docstring): `config.groups` x `config.clips` clips per class, each clip two panels of `width / 2` x `height`.
    Deterministic for a given config; each video is written under a temporary name, the labels and ``synth.json``
    last. `dest` must be new, empty or hold this same dataset, unless `overwrite` (as `make_synth`)."""
    cfg = config or SynthConfig()
    if cfg.classes > len(MULTI_MOTIONS):
        raise ValueError(f"a multi-label dataset has at most {len(MULTI_MOTIONS)} classes, got {cfg.classes}")
    if cfg.width % 4:
        raise ValueError(f"the width of a multi-label dataset must be a multiple of 4 (two even panels), got "
                         f"{cfg.width}")
    jobs = [(g, c) for g in range(1, cfg.groups + 1) for c in range(1, cfg.clips * cfg.classes + 1)]
    settings = {"kind": "multi-label", **asdict(cfg)}
    root = synth_folder(dest, settings, [*(f"videos/v_Multi_g{g:02d}_c{c:02d}.avi" for g, c in jobs), "labels.csv",
                                         MARK], overwrite=overwrite)
    videos = output_folder(root / "videos", what="videos folder")
    motions = MULTI_MOTIONS[: cfg.classes]
    panel = SynthConfig(classes=2, groups=cfg.groups, clips=1, frames=cfg.frames, width=cfg.width // 2,
                        height=cfg.height, fps=cfg.fps, seed=cfg.seed)
    rows, n_frames = [], 0
    with Progress("synth", len(jobs), unit="videos", enabled=progress) as bar:
        for g, c in jobs:
            rng = np.random.default_rng([cfg.seed, 99, g, c])
            first = int(rng.integers(len(motions)))  # every clip has at least one motion
            second = int(rng.integers(len(motions) + 1))  # the other panel: a motion, or (== len) a still object
            labels, panels = set(), []
            for k, m in enumerate((first, second)):
                if m < len(motions):
                    name, family, direction = motions[m]
                    labels.add(name)
                else:  # no object, a still background: no label
                    family, direction = "pan_x", 0
                group_rng = np.random.default_rng([cfg.seed, 98, g, k])
                clip_rng = np.random.default_rng([cfg.seed, 97, g, c, k])
                panels.append(_render_clip(panel, family, direction, group_rng, clip_rng))
            name = f"v_Multi_g{g:02d}_c{c:02d}.avi"
            tmp = videos / f".{name}.tmp-{os.getpid()}.avi"
            try:
                write_video(tmp, (np.concatenate(frames, axis=1) for frames in zip(*panels)), fps=cfg.fps,
                            codec="mpeg4", quality=3)
                tmp.replace(videos / name)
            finally:
                tmp.unlink(missing_ok=True)
            n_frames += cfg.frames
            rows.append((f"videos/{name}", LABEL_SEP.join(sorted(labels)), "valid" if g <= TEST_GROUPS else "train"))
            bar.update(1)
    atomic_write_text(root / "labels.csv", "path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows))
    write_mark(root, settings)
    train = sum(s == "train" for _, _, s in rows)
    return SynthResult(root, len(rows), n_frames, [m[0] for m in motions], train, len(rows) - train)
