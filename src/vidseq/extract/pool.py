"""Worker processes for per-file jobs, supervised: a worker that dies (a decoder crash) or runs past its
timeout fails its job and is replaced, and the run goes on.

The pool knows nothing of what a job does: `run_pool` yields ``(key, result, None)`` for a finished job and
``(key, None, reason)`` for a failed one.
"""

from __future__ import annotations

import faulthandler
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from vidseq.errors import STORAGE_FAULTS, VidseqError
from vidseq.extract.video import tmp_dir

_READY = "ready"  # a worker's first message: it started and imported what it needs


def _worker_main(conn, task: Callable[..., Any], hook: Callable[[Path], None] | None) -> None:
    """A worker process: run `task(path, out)` for each job it is sent, one at a time, and send back
    ``(key, result, None)`` or ``(key, None, reason)`` when the task raised."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops its workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command line's handler (forked): SIGTERM ends a worker
    faulthandler.disable()  # a crash is reported by the parent, as the job's failure
    conn.send(_READY)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        key, path, out = job
        try:
            if hook is not None:
                hook(Path(path))
            conn.send((key, task(path, out), None))
        except VidseqError as e:
            conn.send((key, None, getattr(e, "reason", None) or str(e)))
        except OSError as e:
            if e.errno in STORAGE_FAULTS:  # the destination's fault (full, read-only): the run's, sent up whole
                # as a plain OSError (PyAV's own subclass has a read-only filename) naming the output where a failed
                # write() names no file, with what vidseq.errors.note_space noted on it
                fault = OSError(e.errno, e.strerror or os.strerror(e.errno), e.filename or str(out))
                for name in ("needed", "needed_for", "written", "source_bytes"):
                    if hasattr(e, name):
                        setattr(fault, name, getattr(e, name))
                conn.send((key, None, fault))
            else:
                conn.send((key, None, f"{type(e).__name__}: {e}".splitlines()[0]))
        except Exception as e:  # anything else is this job's failure, not the run's
            conn.send((key, None, f"{type(e).__name__}: {e}".splitlines()[0]))


class _Slot:
    """One worker process and the job it is working on."""

    def __init__(self, ctx, task, hook):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, task, hook), daemon=True)
        self.proc.start()
        child.close()
        self.job: tuple[Path, str, Path] | None = None
        self.started = 0.0
        self.ready = False  # sent _READY: it got past its start
        self.closed = False

    def give(self, job: tuple[Path, str, Path]) -> None:
        self.job, self.started = job, time.monotonic()
        try:
            self.conn.send((job[1], str(job[0]), str(job[2])))
        except OSError:  # the worker is gone already: the pool finds it dead and deals with the job
            pass

    def poll(self):
        """The job's result if it has come, else None (and notes a _READY on the way)."""
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if msg == _READY:
                    self.ready = True
                else:
                    return msg
        except (EOFError, OSError):
            pass
        return None

    def stop(self, *, kill: bool = False) -> None:
        if self.closed:
            return
        if kill or self.job is not None:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.proc.kill()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()
        self.closed = True
        if self.job is not None:  # whatever it had half-written
            out = self.job[2]
            shutil.rmtree(tmp_dir(out, self.proc.pid), ignore_errors=True)
            self.job = None


def _start_method() -> str:
    """"fork" (workers start at once) where the parent runs a single Python thread, as the command line
    does; "spawn" beside other threads (a notebook, a training job), where forking can deadlock."""
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _death_reason(proc) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"the worker process was killed by {signal.Signals(-code).name} (a decoder crash?)"
        except ValueError:
            pass
    return f"the worker process died (exit code {code})"


def run_pool(jobs: list[tuple[Path, str, Path]], task: Callable[..., Any], *, workers: int, timeout: float | None,
             hook: Callable[[Path], None] | None = None) -> Iterator[tuple[str, Any, str | None]]:
    """Run `task(path, out)` for `jobs` (path, key, out folder) on worker processes; yield
    ``(key, result, None)`` as each finishes, ``(key, None, reason)`` for one that raised, died or timed out
    (its worker is replaced). `task` and `hook` (run before each job, for fault injection) must be
    picklable. Workers that die before they have started (three in a row) stop the run with VidseqError, and a
    task that fails because the destination is full or read-only (`STORAGE_FAULTS`) raises its OSError here."""
    ctx = mp.get_context(_start_method())
    pending = deque(jobs)
    slots = [_Slot(ctx, task, hook) for _ in range(min(workers, len(jobs)))]
    false_starts = 0
    try:
        while True:
            for i, slot in enumerate(slots):
                if slot.job is None and pending:
                    if slot.closed:
                        slot = slots[i] = _Slot(ctx, task, hook)
                    slot.give(pending.popleft())
            busy = [s for s in slots if s.job is not None]
            if not busy:
                return
            now = time.monotonic()
            wait_for = 1.0 if timeout is None else max(0.0, min(s.started + timeout for s in busy) - now)
            ready = set(wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=min(wait_for, 1.0)))
            for slot in busy:
                job = slot.job
                if slot.conn in ready or slot.proc.sentinel in ready:
                    result = slot.poll()
                    if slot.ready:
                        false_starts = 0
                    if result is not None:
                        slot.job = None
                        if isinstance(result[2], OSError):  # the destination cannot take more: every job would fail
                            raise result[2]
                        yield result
                        continue
                    if slot.proc.is_alive():
                        continue
                    reason = _death_reason(slot.proc)
                    if not slot.ready:  # not the video's fault: the worker could not start at all
                        slot.stop(kill=True)
                        pending.appendleft(job)
                        false_starts += 1
                        if false_starts >= 3:
                            raise VidseqError(f"worker processes exit as they start ({reason}); run vidseq "
                                              "from a script file or the command line, or check memory")
                        continue
                elif timeout is not None and time.monotonic() - slot.started > timeout:
                    reason = f"timed out after {timeout:g} s (the worker was stopped)"
                else:
                    continue
                slot.stop(kill=True)
                yield job[1], None, reason
    finally:
        for slot in slots:
            slot.stop()
