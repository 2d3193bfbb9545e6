"""Classify video files with a trained run: no extraction step, any container PyAV opens.

>>> for p in predict_files("runs/cnn_lstm", ["jump.mp4"]):                    # doctest: +SKIP
...     print(p.path, p.top[0])
jump.mp4 ('JumpRope', 0.93)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidseq.datasets import is_frame_folder
from vidseq.errors import VideoError
from vidseq.evaluate import predict_paths
from vidseq.io import probe
from vidseq.runs import Run, load_run


@dataclass
class Prediction:
    """The top classes of one file with their probabilities, or the reason it could not be read."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    labels: list[str] | None = None  # a multi-label run's prediction: every class above its threshold

    def to_dict(self) -> dict:
        if self.error:
            return {"path": self.path, "error": self.error}
        out = {"path": self.path, "top": [{"label": c, "probability": p} for c, p in self.top]}
        return out if self.labels is None else {**out, "labels": self.labels}


def predict_files(run: str | Path | Run, files: Sequence[str | Path], *, top: int = 5, clips: int = 1, crops: int = 1,
                  bs: int = 8, device: str | torch.device | None = None) -> list[Prediction]:
    """Top-`top` classes for each file, averaging `clips` clips spread over the video, each through `crops` crops
    (1 or 3). A file that cannot be read gets its error in `Prediction.error`; the others are still predicted."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run = run if isinstance(run, Run) else load_run(run, device=device)
    out: list[Prediction | None] = [None] * len(files)
    readable = []
    for i, f in enumerate(files):
        p = Path(f)
        try:
            if not p.exists():
                raise FileNotFoundError
            if p.is_dir() and not is_frame_folder(p):
                raise VideoError(path=f, reason="a folder without numbered frames (0.jpg, 1.jpg, ...); give video "
                                 "files or a frame folder")
            info = probe(p) if p.is_file() else None  # fail fast, with vidseq's reason, before queueing the file
            if info is not None and info.is_still_or_text:
                raise VideoError(path=f, reason=f"not a video (read as {info.container}): give video files or frame "
                                 "folders")
            readable.append(i)
        except FileNotFoundError:
            out[i] = Prediction(str(f), error=f"{f}: no such file")
        except Exception as e:  # noqa: BLE001 - VideoError and friends: one line per bad file
            out[i] = Prediction(str(f), error=str(e))
    if readable:
        probs, errors = predict_paths(run, [files[i] for i in readable], clips=clips, crops=crops, bs=bs,
                                      device=device)
        k = min(top, len(run.classes))
        for j, i in enumerate(readable):
            if j in errors:
                out[i] = Prediction(str(files[i]), error=errors[j])
                continue
            order = np.argsort(-probs[j])[:k]
            labels = None
            if run.config.multi_label:
                threshold = run.config.threshold if run.config.threshold is not None else 0.5
                labels = [run.classes[c] for c in np.argsort(-probs[j]) if probs[j, c] > threshold]
            out[i] = Prediction(str(files[i]), top=[(run.classes[c], float(probs[j, c])) for c in order],
                                labels=labels)
    return [p for p in out if p is not None]
