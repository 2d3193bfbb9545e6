"""One worker thread that owns the model: requests' clips wait in a bounded queue, and what is waiting when the
model is free goes through it as one batch (up to `max_batch` clips), so concurrent requests share forwards."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

import numpy as np
import torch

from vidseq.evaluate import normalize
from vidseq.runs import Run

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The batcher's queue holds `size` requests already: the caller should answer 503 and be retried."""

    def __init__(self, size: int):
        super().__init__(f"the queue is full ({size} requests waiting)")
        self.size = size


class Batcher:
    """`submit(views)` -> a Future of the views' class probabilities (V, C) (softmax, or sigmoid for a multi-label
    run); views are uint8 clips (V, T, C, S, S). At most `queue` submissions wait; one more raises `QueueFull`."""

    def __init__(self, run: Run, *, device: str | torch.device = "cpu", queue_size: int = 16, max_batch: int = 16):
        self.run, self.device, self.max_batch = run, torch.device(device), max_batch
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.batches = 0  # forwards done, and clips through them: how much batching happened
        self.clips = 0
        self._thread = threading.Thread(target=self._work, name="vidseq-batcher", daemon=True)
        self._stop = object()

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Finish what is queued, then end the worker thread."""
        if self._thread.is_alive():
            self.queue.put(self._stop)
            self._thread.join(timeout)

    def submit(self, views: torch.Tensor) -> Future:
        fut: Future = Future()
        try:
            self.queue.put_nowait((views, fut))
        except queue.Full:
            raise QueueFull(self.queue.maxsize) from None
        return fut

    def _work(self) -> None:
        while True:
            first = self.queue.get()
            if first is self._stop:
                return
            jobs, stop = [first], False
            n = len(first[0])
            while n < self.max_batch:  # whatever else is waiting now joins this forward
                try:
                    job = self.queue.get_nowait()
                except queue.Empty:
                    break
                if job is self._stop:
                    stop = True
                    break
                jobs.append(job)
                n += len(job[0])
            jobs = [(v, f) for v, f in jobs if f.set_running_or_notify_cancel()]  # timed-out requests are dropped
            if jobs:
                self._forward(jobs)
            if stop:
                return

    @torch.no_grad()
    def _forward(self, jobs: list[tuple[torch.Tensor, Future]]) -> None:
        try:
            x = torch.cat([v for v, _ in jobs]).to(self.device)
            logits = self.run.model(normalize(x, self.run.config)).float()
            probs = (logits.sigmoid() if self.run.config.multi_label else logits.softmax(-1)).cpu().numpy()
        except Exception as e:  # noqa: BLE001 - the model's failure goes to every request of the batch
            log.warning("a batch of %d requests failed in the model: %s", len(jobs), e)
            for _, f in jobs:
                f.set_exception(e)
            return
        self.batches += 1
        self.clips += len(x)
        for (_, f), p in zip(jobs, np.split(probs, np.cumsum([len(v) for v, _ in jobs])[:-1])):
            f.set_result(p)
