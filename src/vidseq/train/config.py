"""What a training run is asked to do (`TrainConfig`) and what it returns (`TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidseq.sampling import DEFAULT_SAMPLER


@dataclass
class TrainConfig:
    """Everything `train` needs; also what the CLI's `vidseq train` options fill in."""

    data: str
    model: str = "frame_avg"
    out: str | None = None
    frames: int = 5
    size: int = 64
    bs: int = 32
    epochs: int | None = None
    lr: float | str | None = None  # a float, "auto" (lr_find) or None (the model's recipe)
    sampler: str = DEFAULT_SAMPLER
    split: str = "auto"
    valid_pct: float = 0.2  # the share of each class a group or random split validates on
    precision: str = "auto"  # auto, bf16, fp16, fp32
    pretrained: bool = True
    backbone: str | None = None
    workers: int | None = None
    cache: bool = False  # build a clip cache in the run folder
    cache_dir: str | None = None  # or load clips from this one, built by `vidseq cache` (build_cache)
    compile: bool = False
    resume: bool = False  # continue the interrupted run in `out`
    overwrite: bool = False  # replace the run `out` holds (else a folder holding a run is refused)
    augment: bool = True
    flip: bool = False
    freeze_epochs: int | None = None
    seed: int = 0
    device: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    sync_bn: bool = False
    decode_device: str | None = None  # None: vidseq's reads (PyAV); "cpu" or "cuda": torchcodec there
    log: str | None = None  # experiment tracking: "tensorboard" or "wandb"
    verbose: bool = True
    #: the settings the user gave explicitly (the command line fills it in); None: those that differ from
    #: the defaults. A resumed run refuses a given setting that differs from the run's own.
    given: frozenset[str] | None = None

    def is_given(self, name: str) -> bool:
        """Whether setting `name` was given: named in `given`, or (without it) set to other than its default."""
        if self.given is not None:
            return name in self.given
        return getattr(self, name) != getattr(TrainConfig(data=""), name)


#: What `vidseq evaluate` writes into a run folder: a new training run in that folder removes them.
EVALUATION_FILES = ("confusion.png", "per_class.csv", "evaluation.json", "report.html")


@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, float]
    epochs: int
    seconds: float
