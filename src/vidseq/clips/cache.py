"""A clip cache: every video decoded once into uint8 frames at training size, in one memory-mapped file.

Long trainings then load clips at memory speed instead of decoding JPEGs or videos every epoch. Each item
keeps up to `frames` frames spread evenly over it (all of them when it has fewer), centre-cropped to a
``size x size`` square (the tutorial's `Resize`), a little larger than the training size so that random
crops still have room.

Layout of DEST::

    frames.u8      raw uint8 array (N, size, size, 3), all items' frames one after the other
    index.json     {"size", "frames", "items": [{"path", "label", "offset", "count"}, ...]}

Both are written under temporary names and renamed when complete; an interrupted build resumes from the
items already done (``progress.jsonl``).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidseq.clips.sources import FILES, keyframes_of
from vidseq.errors import DatasetError, VidseqError, note_space
from vidseq.files import exclusive, named_errors, output_folder
from vidseq.progress import Progress, available_cpus
from vidseq.sampling import uniform

INDEX, FRAMES, PROGRESS = "index.json", "frames.u8", "progress.jsonl"


@dataclass(frozen=True)
class CacheEntry:
    path: str
    label: str
    offset: int
    count: int


def _square(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3): short side resized to `size`, centre crop."""
    from torchvision.transforms.v2 import functional as TF

    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)
    h, w = clip.shape[-2:]
    s = min(h, w)
    clip = TF.resized_crop(clip, (h - s) // 2, (w - s) // 2, s, s, size=[size, size], antialias=True)
    return clip.permute(0, 2, 3, 1).contiguous().numpy()


def _init_worker() -> None:
    """One compute thread per worker process (the pool's processes already share the cores); Ctrl-C is the
    main process's to handle: it stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _start_forkserver_ignoring_ctrl_c() -> None:
    """Start multiprocessing's fork server (if it is not running yet) with Ctrl-C ignored, so the workers it
    forks ignore it from their first instruction: a Ctrl-C while they start would otherwise kill one before
    `_init_worker` runs, and the pool's manager thread would die with a traceback."""
    import threading
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def _fill(args) -> tuple[int, str | None]:
    """Worker: decode item `i` and write its frames into the memory-mapped file."""
    i, path, n_frames, keep, offset, total, size, frames_file = args
    try:
        idx = uniform(n_frames, keep) if n_frames > keep else np.arange(n_frames)
        arr = _square(FILES.read(Path(path), idx, min_side=size), size)
        mm = np.memmap(frames_file, dtype=np.uint8, mode="r+", shape=(total, size, size, 3))
        mm[offset: offset + len(arr)] = arr
        mm.flush()
        del mm
        return i, None
    except (VidseqError, OSError, ValueError) as e:
        return i, str(e)


def build_cache(paths: Sequence[str | Path], dest: str | Path, *, labels: Sequence[str] | None = None, size: int = 72,
                frames: int = 32, workers: int | None = None, progress: bool = True) -> Path:
    """Decode each item (frame folder or video) once into `dest`; returns `dest`.

    A complete cache with the same settings is reused as it is; a second build into `dest` while one runs refuses
    in one line.
    """
    with exclusive(dest, what="cache"):
        return _build_cache(paths, dest, labels=labels, size=size, frames=frames, workers=workers, progress=progress)


def _build_cache(paths: Sequence[str | Path], dest: str | Path, *, labels: Sequence[str] | None, size: int,
                 frames: int, workers: int | None, progress: bool) -> Path:
    from fastai.data.transforms import parent_label

    if size < 1 or frames < 1:
        raise ValueError(f"size and frames must be at least 1, got size {size}, frames {frames}")
    dest = Path(dest)
    paths = [_key(p) for p in paths]  # absolute: the cache serves any working folder
    labels = [parent_label(Path(p)) for p in paths] if labels is None else list(labels)
    if (dest / INDEX).is_file():
        meta = json.loads((dest / INDEX).read_text())
        known = {_key(e["path"]) for e in meta["items"]} | {_key(p) for p in meta.get("failures", {})}
        if meta["size"] == size and meta["frames"] == frames and known >= set(paths):
            return dest
    output_folder(dest, what="cache folder")
    counts, unreadable = {}, {}
    for p in paths:
        try:
            counts[p] = FILES.n_frames(Path(p))
        except VidseqError as e:
            counts[p], unreadable[p] = 0, str(e)
        if not counts[p] and p not in unreadable:
            unreadable[p] = "no frames"
    entries, offset = [], 0
    for p, lab in zip(paths, labels):
        keep = min(counts[p], frames)
        if keep:
            entries.append(CacheEntry(p, lab, offset, keep))
            offset += keep
    if not entries:
        raise DatasetError(path=dest, reason=f"none of the {len(paths)} items has readable frames")
    plan = {"size": size, "frames": frames, "items": [e.__dict__ for e in entries]}
    tmp_frames, tmp_index = dest / (FRAMES + ".tmp"), dest / (INDEX + ".tmp")
    done: set[int] = set()
    if tmp_index.is_file() and tmp_frames.is_file() and json.loads(tmp_index.read_text()) == plan:
        if (dest / PROGRESS).is_file():
            done = {int(x) for x in (dest / PROGRESS).read_text().split()}
    else:
        _allocate(tmp_frames, offset * size * size * 3)
        tmp_index.write_text(json.dumps(plan))
        (dest / PROGRESS).write_text("")
    todo = [(i, e.path, counts[e.path], e.count, e.offset, offset, size, str(tmp_frames))
            for i, e in enumerate(entries) if i not in done]
    failures = dict(unreadable)
    # forkserver, not fork: a process forked after torch ran OpenMP threads deadlocks in its first parallel op
    ctx = multiprocessing.get_context("forkserver")
    _start_forkserver_ignoring_ctrl_c()
    n_workers = max(1, workers or available_cpus())
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker) as pool, \
            open(dest / PROGRESS, "a") as log, Progress("cache", len(todo), unit="items", enabled=progress) as bar:
        # the progress line is ended also on Ctrl-C; what was written is kept for the next run
        for i, err in pool.map(_fill, todo, chunksize=4):
            if err:
                failures[entries[i].path] = err
            else:
                with named_errors(dest / PROGRESS):
                    log.write(f"{i}\n")
                    log.flush()
            bar.update(1)
    if failures:
        plan["items"] = [e for e in plan["items"] if e["path"] not in failures]
        plan["failures"] = failures
        tmp_index.write_text(json.dumps(plan))
    os.replace(tmp_frames, dest / FRAMES)
    os.replace(tmp_index, dest / INDEX)
    (dest / PROGRESS).unlink(missing_ok=True)
    return dest


def _allocate(path: Path, nbytes: int) -> None:
    """Create `path` with `nbytes` of disk reserved (a full disk fails here, in one line with the size, instead of
    killing a worker with SIGBUS when its memory-mapped write finds no space); nothing is left when it fails."""
    try:
        with open(path, "wb") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, nbytes)
            else:  # pragma: no cover - macOS, Windows: sparse, as before
                f.truncate(nbytes)
    except OSError as e:
        path.unlink(missing_ok=True)
        e.filename = e.filename or str(path)
        raise note_space(e, needed=nbytes, what="the cache's frames") from None


def _key(path) -> str:
    """An item's key in a cache: its absolute path, links and `..` resolved (against the working folder of
    the moment, for a relative path)."""
    path = os.fspath(path)
    return _real(path) if os.path.isabs(path) else os.path.realpath(path)


@functools.lru_cache(maxsize=1 << 16)
def _real(path: str) -> str:
    return os.path.realpath(path)


class ClipCache:
    """Read side of a cache folder, a frame source (`vidseq.clips.sources.FrameSource`): frame counts and frames
    of each item from the memory map; items missing from the cache are read from their files."""

    def __init__(self, dest: str | Path, *, fallback=FILES):
        self.fallback = fallback
        self.dest = Path(dest)
        index = self.dest / INDEX
        if not index.is_file():
            raise DatasetError(path=self.dest, reason=f"not a clip cache (no {INDEX}); build one with 'vidseq cache'")
        meta = json.loads(index.read_text())
        self.size, self.frames = meta["size"], meta["frames"]
        self.entries = {_key(e["path"]): CacheEntry(**e) for e in meta["items"]}
        self.failures: dict[str, str] = meta.get("failures", {})  #: items left out, and why
        self.total = sum(e.count for e in self.entries.values())
        self._mm = None

    def __getstate__(self):  # the memory map is opened again in each worker process
        return {**self.__dict__, "_mm": None}

    @property
    def array(self) -> np.ndarray:
        if self._mm is None:
            self._mm = np.memmap(self.dest / FRAMES, dtype=np.uint8, mode="r", shape=(self.total, self.size,
                                                                                     self.size, 3))
        return self._mm

    def __contains__(self, path) -> bool:
        return _key(path) in self.entries

    def left_out(self, path) -> str | None:
        """Why item `path` was left out of the cache (unreadable), or None."""
        return self.failures.get(_key(path))

    def count(self, path) -> int:
        return self.entries[_key(path)].count

    def n_frames(self, path) -> int:
        return self.count(path) if path in self else self.fallback.n_frames(path)

    def exact_frames(self, path) -> int:
        return self.count(path) if path in self else self.fallback.exact_frames(path)

    def keyframes(self, path) -> np.ndarray | None:
        return None if path in self else keyframes_of(self.fallback, path)  # cached frames: all equally cheap

    def read(self, path, indices: Sequence[int], *, min_side: int | None = None) -> np.ndarray:
        """Frames `indices` of `path`: from the cache at its size, else from the files (`min_side` applies to
        those only)."""
        if path not in self:
            return self.fallback.read(path, indices, min_side=min_side)
        e = self.entries[_key(path)]
        return self.array[e.offset + np.asarray(indices, dtype=np.int64)]
