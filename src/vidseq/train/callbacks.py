"""Training callbacks: progress lines for logs, and the per-epoch checkpoint and metrics of a run folder."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from fastai.callback.core import Callback

from vidseq.errors import VidseqError
from vidseq.files import atomic_path, atomic_write_text
from vidseq.progress import Progress
from vidseq.runs import CHECKPOINT, METRICS, WEIGHTS, append_metrics, save_optimizer, save_weights

table = logging.getLogger("vidseq.table")  #: the epoch table: the command line shows it on stdout


class LogProgress(Callback):
    """Training progress for a log (stdout not a terminal), in place of fastai's progress bars, whose
    carriage returns would fill the file: the epoch table as fastai prints it (to the ``vidseq.table`` logger,
    which the command line writes to stdout), and the one progress line of every long job (`vidseq.progress`)
    every `every` seconds on stderr: epoch, batches done, clips and clips/s, time left in the epoch."""

    order = 60  # where fastai's ProgressCallback runs: after the Recorder has its names and values

    def __init__(self, every: float = 30.0) -> None:
        self.every = every

    def before_fit(self) -> None:
        from fastai.learner import noop  # what Learner.no_logging() puts in place

        self.old_logger = None
        if self.learn.logger is noop:  # learn.validate() and other quiet loops: no table
            return
        self.old_logger, self.learn.logger = self.learn.logger, self._row
        self.widths: list[int] = []
        self._row(self.recorder.metric_names)

    def _row(self, log) -> None:
        cells = [f"{v:.6f}" if isinstance(v, float) else str(v) for v in log]
        if not self.widths:
            self.widths = [max(8, len(c)) for c in cells]
        table.info("%s", "  ".join(c.ljust(w) for c, w in zip(cells, self.widths)).rstrip())

    def before_train(self) -> None:
        self.bar = None  # made at the first batch: the epoch's batch count is known from then on

    def after_batch(self) -> None:
        if not self.training:
            return
        if self.bar is None:
            self.bar = Progress(f"epoch {self.epoch + 1}/{self.n_epoch}", self.n_iter, unit="batches", extra="clips",
                                enabled=True, every=self.every, last_line=False)
        self.bar.update(1, extra=len(self.learn.yb[0]) if self.learn.yb else 0)

    def after_fit(self) -> None:
        if self.old_logger is not None:
            self.learn.logger = self.old_logger


class EpochTable(Callback):
    """The epoch table as ``metrics.csv`` numbers its rows: epoch `offset` + fastai's epoch + 1 (from 1, and on from
    the frozen phase into the main one), and no row for an epoch skipped (those a resumed run did before), where
    fastai's recorder writes one of empty values ("0  00:00") and counts from 0 in each `fit`."""

    order = 61  # after the progress callbacks (60) have put their row writer in place as learn.logger

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def before_fit(self) -> None:
        self.write, self.learn.logger = self.learn.logger, self._row
        self._skipped = False

    def before_epoch(self) -> None:
        self._skipped = False

    def after_cancel_epoch(self) -> None:
        self._skipped = True

    def _row(self, log) -> None:
        if self._skipped:
            return
        log = list(log)
        if log and isinstance(log[0], int):
            log[0] += self.offset + 1
        self.write(log)

    def after_fit(self) -> None:
        if self.learn.logger == self._row:  # else a progress callback has put back the logger it found
            self.learn.logger = self.write


class RunCheckpoint(Callback):
    """After every completed epoch: weights, optimiser state and progress into ``checkpoint/``, the
    weights also as the run's ``model.safetensors``, and a row in ``metrics.csv``."""

    order = 65  # after the Recorder has logged the epoch

    def __init__(self, run: Path, *, epoch_offset: int, phase: str, rank0: bool = True):
        self.run, self.epoch_offset, self.phase = run, epoch_offset, phase
        self.rank0 = rank0
        self._skipped = False

    def before_epoch(self):
        self._skipped = False

    def after_cancel_epoch(self):
        self._skipped = True

    def after_epoch(self):
        if self._skipped or not self.rank0:
            return
        done = self.epoch_offset + self.epoch + 1
        try:
            self._save(done)
        except FileNotFoundError:
            if self.run.is_dir():
                raise
            raise VidseqError(path=self.run, reason=f"disappeared while training (at epoch {done}); make sure nothing "
                              "else removes it and train again: what it held is gone") from None

    def _save(self, done: int) -> None:
        ck = self.run / CHECKPOINT
        ck.mkdir(exist_ok=True)
        save_weights(self.learn.model, ck / WEIGHTS)
        save_optimizer(self.learn.opt, ck / "optimizer.safetensors")
        with atomic_path(self.run / WEIGHTS, size=(ck / WEIGHTS).stat().st_size) as tmp:
            shutil.copyfile(ck / WEIGHTS, tmp)
        rec = self.learn.recorder
        names = [n for n in rec.metric_names if n != "epoch"]
        values = rec.log[1:] if len(rec.log) == len(rec.metric_names) else rec.log
        row = dict(zip(["epoch"] + names[: len(values)], [done] + list(values)))
        append_metrics(self.run / METRICS, row)
        # last: a run killed before this line redoes the epoch, so every epoch counted done is on record
        atomic_write_text(ck / "state.json", json.dumps({"epochs_done": done, "phase": self.phase}))
