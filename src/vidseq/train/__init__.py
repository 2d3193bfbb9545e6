"""Training: `train(TrainConfig(...))` fits a model on a dataset into a run folder; resumable, one process or
several (torchrun), with fastai's Learner, schedules and mixed precision.

>>> result = train(TrainConfig(data="demo/frames", model="cnn_lstm", pretrained=False, out="runs/lstm"))
...                                                                                  # doctest: +SKIP
"""

from vidseq.train.callbacks import LogProgress, RunCheckpoint
from vidseq.train.config import TrainConfig, TrainResult
from vidseq.train.folder import default_run_folder, run_folder
from vidseq.train.learner import build_dataloaders, loader_workers, train
from vidseq.train.optim import FastaiAdamW, adamw, pick_device, resolve_precision
from vidseq.train.resume import resume_state, resumed_config

__all__ = ["FastaiAdamW", "LogProgress", "RunCheckpoint", "TrainConfig", "TrainResult", "adamw", "build_dataloaders",
           "default_run_folder", "loader_workers", "pick_device", "resolve_precision", "resume_state", "resumed_config",
           "run_folder", "train"]
