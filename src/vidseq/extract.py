"""Videos -> folders of JPEG frames: parallel, atomic per video, resumable, with a manifest.

The layout is the tutorial's: a video at ``SRC/<rel>/<stem>.<ext>`` becomes ``DEST/<rel>/<stem>/<i>.jpg``
with ``i`` counting from 0 (``DEST/<stem>/`` when SRC is a single video). Frames are encoded straight
from the decoded YUV planes (no RGB step), one decoder thread per worker process.

Reliability:

* Atomic per video: frames go to ``.<stem>.tmp-<pid>/`` beside the final folder (hidden, so that
  nothing that walks DEST takes it for a frame folder), which is renamed into place when the video is
  finished. A frame folder exists only when complete, so a rerun skips the folders that exist, removes
  what killed runs left, and redoes everything else (``overwrite=True`` redoes all).
* A file that cannot be read (empty, not a video, corrupt) is recorded with its reason and skipped. A
  truncated file keeps the frames decoded before the damage and is marked ``partial``.
* Each worker is a process of its own: one that dies (a decoder crash) or runs past the per-video
  timeout is recorded as a failure and replaced, and the run goes on.

Records: ``DEST/manifest.csv`` (one row per video: video, label, frames, fps, width, height, status,
folder, reason) and ``DEST/failures.jsonl`` (one line per failed or partial video: video, status,
reason). A run with ``shard=(i, n)`` writes
``manifest-shard-i-of-n.csv`` and ``failures-shard-i-of-n.jsonl`` instead, so shards never write the
same file; a later run without a shard (it finds every folder complete) merges them into
``manifest.csv``. :func:`read_manifest` reads whichever are there.

>>> summary = extract_dataset("UCF101", "UCF101-frames", size=128)   # doctest: +SKIP
>>> summary.done, summary.failed, summary.frames                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import faulthandler
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from vidseq.errors import DatasetError, VideoError, VidseqError
from vidseq.files import atomic_write_text, output_folder
from vidseq.video import VIDEO_EXTENSIONS, FrameReader, is_video_file, probe

#: Statuses of a manifest row. A ``partial`` video is truncated: its folder holds the frames that
#: decoded before the damage. A ``failed`` one has no folder.
DONE, PARTIAL, FAILED = "done", "partial", "failed"
MANIFEST_FIELDS = ("video", "label", "frames", "fps", "width", "height", "status", "folder", "reason")

#: Official split-list folders copied along from SRC or its parent: UCF101's and HMDB51's.
SPLIT_FOLDERS = ("ucfTrainTestlist", "testTrainMulti_7030_splits")

#: Seconds a worker may spend on one video before it is killed and the video recorded as failed.
DEFAULT_TIMEOUT = 600.0

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
_FRAME_NAME = re.compile(r"^(\d+)\.jpg$")
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-\d+$")


@dataclass
class VideoRecord:
    """What happened to one video: a row of the manifest."""

    video: str  #: path relative to SRC (POSIX separators)
    label: str  #: name of the folder holding the video (the class, in UCF101's layout)
    frames: int = 0  #: JPEG files written: 0.jpg .. frames-1.jpg
    fps: float = 0.0
    width: int = 0  #: size of the JPEGs
    height: int = 0
    status: str = FAILED  #: done, partial or failed
    folder: str = ""  #: frame folder relative to DEST ("" when failed)
    reason: str = ""  #: why partial or failed

    def row(self) -> dict:
        return {"video": self.video, "label": self.label, "frames": self.frames, "fps": f"{self.fps:.6g}",
                "width": self.width, "height": self.height, "status": self.status, "folder": self.folder,
                "reason": self.reason}

    @classmethod
    def from_row(cls, row: dict) -> VideoRecord | None:
        """Parse a manifest row; None for a damaged one (a run killed while writing it)."""
        try:
            rec = cls(video=row["video"], label=row["label"], frames=int(row["frames"]), fps=float(row["fps"]),
                      width=int(row["width"]), height=int(row["height"]), status=row["status"],
                      folder=row.get("folder") or "", reason=row.get("reason") or "")
        except (KeyError, TypeError, ValueError):
            return None
        return rec if rec.video and rec.status in (DONE, PARTIAL, FAILED) else None


@dataclass
class ExtractSummary:
    """The outcome of :func:`extract_dataset`. Counts are of this run's videos (this shard's)."""

    dest: Path
    videos: int
    done: int  #: extracted completely by this run
    partial: int  #: extracted by this run from truncated files
    skipped: int  #: complete from an earlier run
    failed: int
    frames: int  #: JPEGs written by this run
    seconds: float
    manifest: Path
    failures: Path
    split_lists: list[Path] = field(default_factory=list)  #: official split folders copied into DEST
    records: list[VideoRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there are frames to use (extracted now or by an earlier run), or nothing failed."""
        return self.done + self.partial + self.skipped > 0 or self.failed == 0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------------------------- one video


def extract_video(video: str | Path, out_dir: str | Path, *, size: int | None = None, quality: int = 90,
                  threads: int = 1) -> VideoRecord:
    """Write every frame of `video` as ``out_dir/<i>.jpg`` (i from 0), atomically.

    Frames are written to ``.<name>.tmp-<pid>`` beside `out_dir` and renamed to `out_dir` when
    finished; an existing `out_dir` is replaced. `size` resizes so the short side is `size` pixels.
    A truncated file keeps the frames decoded before the damage (status ``partial``, with the reason).
    Raises VideoError when no frame at all can be decoded; nothing is left behind then.
    """
    import simplejpeg

    _check_quality(quality)
    video, out_dir = Path(video), Path(out_dir)
    tmp = _tmp_dir(out_dir, os.getpid())
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n, width, height, damage = 0, 0, 0, None
    try:
        with FrameReader(video, size=size, threads=threads) as reader:
            try:
                for y, u, v in reader.yuv420():
                    data = simplejpeg.encode_jpeg_yuv_planes(_even_padded(y), u, v, quality=quality)
                    _write_file(os.path.join(tmp, f"{n}.jpg"), data)
                    n += 1
                    height, width = y.shape
            except VideoError as e:
                damage = _short_reason(str(e), video)
            fps = reader.fps
            if n == 0:
                raise VideoError(f"{video}: no frame could be decoded" + (f" ({damage})" if damage else ""))
            if damage:
                declared = f" of the {reader.declared} the container declares" if reader.declared else ""
                reason = f"{damage}; kept the {n} frames{declared} decoded before it"
            else:
                reason = reader.incomplete() or ""
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return VideoRecord(video=str(video), label=video.parent.name, frames=n, fps=fps, width=width, height=height,
                       status=PARTIAL if reason else DONE, folder=str(out_dir), reason=reason)


def _write_file(path: str, data: bytes) -> None:
    """Plain create + write + close: the cheapest way to put a small file on disk."""
    fd = os.open(path, _WRITE_FLAGS, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _even_padded(y: np.ndarray) -> np.ndarray:
    """`y` itself when its size is even, else a view of the same size into a copy padded to even size
    by repeating the edge. TurboJPEG reads 4:2:0 luma in whole 2x2 blocks: without the padding it reads
    past the end of an odd-sized plane, and the JPEG changes with whatever memory lies there."""
    h, w = y.shape
    if not (h % 2 or w % 2):
        return y
    return np.pad(y, ((0, h % 2), (0, w % 2)), mode="edge")[:h, :w]


def _tmp_dir(out_dir: Path, pid: int) -> Path:
    return out_dir.with_name(f".{out_dir.name}.tmp-{pid}")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished `tmp` folder to `out_dir`, replacing an old one."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def _check_quality(quality: int) -> None:
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")


def _short_reason(message: str, video: Path | str) -> str:
    """A VideoError's message without the leading file name (the record names the video already)."""
    prefix = f"{video}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def frame_files(folder: str | Path) -> list[Path]:
    """The frames of an extracted folder, ``0.jpg .. N-1.jpg``, in numeric order."""
    folder = Path(folder)
    found = []
    for name in os.listdir(folder):
        m = _FRAME_NAME.match(name)
        if m:
            found.append((int(m.group(1)), folder / name))
    return [p for _, p in sorted(found)]


# ------------------------------------------------------------------------------------------- a whole dataset


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (1 <= I <= N) into (I, N); ValueError with a clear message otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"expected I/N such as 1/4, got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"shard {i}/{n}: I must be between 1 and N (N >= 1)")
    return i, n


def in_shard(video: str, shard: tuple[int, int] | None) -> bool:
    """Whether the video at relative path `video` belongs to `shard` (I, N): a stable hash of the path,
    so the assignment does not depend on which other files a machine sees."""
    if shard is None:
        return True
    i, n = shard
    return zlib.crc32(video.encode("utf-8", "surrogateescape")) % n == i - 1


def find_videos(src: str | Path) -> list[tuple[Path, str]]:
    """(path, path relative to `src`) of every video file under `src`, sorted; `src` may be one video.

    Hidden files and folders (names starting with ".") are left out.
    """
    src = Path(src)
    if src.is_file():
        return [(src, src.name)]
    found = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(src, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and is_video_file(name):
                path = Path(root) / name
                found.append((path, path.relative_to(src).as_posix()))
    return found


def output_names(dest: str | Path, shard: tuple[int, int] | None = None) -> tuple[Path, Path]:
    """(manifest, failures) file paths that a run with `shard` writes in `dest`."""
    dest = Path(dest)
    if shard is None:
        return dest / "manifest.csv", dest / "failures.jsonl"
    i, n = shard
    return dest / f"manifest-shard-{i}-of-{n}.csv", dest / f"failures-shard-{i}-of-{n}.jsonl"


def read_manifest(dest: str | Path) -> list[VideoRecord]:
    """Records of an extracted dataset: ``manifest.csv`` and every ``manifest-shard-*.csv`` merged
    (for a video in several, the newest file wins), sorted by video. Damaged rows are skipped."""
    dest = Path(dest)
    files = [p for p in dest.glob("manifest*.csv") if p.name == "manifest.csv" or p.name.startswith("manifest-shard-")]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name))
    records: dict[str, VideoRecord] = {}
    for path in files:
        for rec in _read_manifest_file(path):
            records[rec.video] = rec
    return [records[k] for k in sorted(records)]


def _read_manifest_file(path: Path) -> Iterator[VideoRecord]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # a row cut short by a killed run
    for row in csv.DictReader(io.StringIO("".join(lines))):
        rec = VideoRecord.from_row(row)
        if rec is not None:
            yield rec


def extract_dataset(src: str | Path, dest: str | Path, *, size: int | None = None, quality: int = 90,
                    workers: int | None = None, shard: tuple[int, int] | None = None, overwrite: bool = False,
                    timeout: float | None = DEFAULT_TIMEOUT, progress: bool = False,
                    worker_hook: Callable[[Path], None] | None = None) -> ExtractSummary:
    """Extract every video under `src` (a folder tree, or one video) into frame folders under `dest`.

    `workers` processes (default: the CPUs this process may use) each decode with one thread. `shard`
    = (I, N) takes the videos whose path hashes to shard I of N, so N machines can share a dataset.
    Complete folders are skipped unless `overwrite`. A video that takes longer than `timeout` seconds
    is killed and recorded as failed. `progress` prints videos done, frames/s and ETA on stderr.
    `worker_hook`, a picklable function, runs in the worker before each video (for fault injection
    in tests). Official split lists found beside the videos are copied to `dest`.

    Raises DatasetError when `src` is missing or holds no video; ValueError for bad arguments.
    """
    start = time.perf_counter()
    src, dest = Path(src), Path(dest)
    _check_quality(quality)
    if size is not None and size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if shard is not None:
        shard = parse_shard(f"{shard[0]}/{shard[1]}")
    workers = _default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not src.exists():
        raise DatasetError(f"{src}: no such file or folder")
    if src.is_file() and not is_video_file(src):
        raise DatasetError(f"{src}: not a video file (known extensions: {' '.join(sorted(VIDEO_EXTENSIONS))})")
    if src.is_dir() and (dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents):
        raise DatasetError(f"{dest}: the frames must go outside the videos' folder {src} (a dataset folder "
                           "holds videos or frame folders, not both); choose another DEST")
    all_videos = find_videos(src)
    if not all_videos:
        raise DatasetError(f"{src}: no video files found (looked for {' '.join(sorted(VIDEO_EXTENSIONS))})")
    # frame folders are assigned over all videos, so that every shard settles a name clash the same way
    folder_of = {rel: _folder_for(rel) for _, rel in all_videos}
    parents = {a.as_posix() for f in folder_of.values() for a in Path(f).parents}
    owner: dict[str, str] = {}
    for _, rel in all_videos:
        owner.setdefault(folder_of[rel], rel)
    videos = [(p, rel) for p, rel in all_videos if in_shard(rel, shard)]

    output_folder(dest, what="frames folder")
    split_lists = _copy_split_lists(src, dest, overwrite=overwrite) if src.is_dir() else []
    manifest_path, failures_path = output_names(dest, shard)
    prior = {rec.video: rec for rec in read_manifest(dest)}
    label_of = {rel: (p.parent.name if src.is_dir() else src.resolve().parent.name) for p, rel in videos}

    records: dict[str, VideoRecord] = {}
    jobs: list[tuple[Path, str, Path]] = []
    leftovers = _Leftovers(dest)
    for path, rel in videos:
        folder = folder_of[rel]
        if owner[folder] != rel or folder in parents:
            why = (f"is taken by {owner[folder]} (same name, other extension)" if owner[folder] != rel else
                   "also holds the frame folders of the videos in the folder of the same name")
            records[rel] = VideoRecord(rel, label_of[rel], reason=f"its frame folder {folder} {why}")
            continue
        out = dest / folder
        leftovers.clean(out)
        done = None if overwrite else _complete_record(rel, label_of[rel], folder, out, path, prior.get(rel), size)
        if done is not None:
            records[rel] = done
        else:
            jobs.append((path, rel, out))
    skipped = len(records) - sum(r.status == FAILED for r in records.values())

    journal = _Journal(manifest_path, [records[k] for k in sorted(records)])
    bar = _Progress(len(jobs), enabled=progress)
    frames = 0
    try:
        if jobs:
            for rel, rec in _run_pool(jobs, size=size, quality=quality, workers=workers,
                                      timeout=timeout, hook=worker_hook):
                rec = dataclasses.replace(rec, video=rel, label=label_of[rel],
                                          folder="" if rec.status == FAILED else folder_of[rel])
                records[rel] = rec
                journal.append(rec)
                if rec.status != FAILED:
                    frames += rec.frames
                bar.update(frames)
    finally:
        bar.close()
        ordered = [records[k] for k in sorted(records)]
        journal.close(ordered)
        _write_failures(failures_path, ordered)

    fresh = [records[rel] for _, rel, _ in jobs]
    return ExtractSummary(
        dest=dest, videos=len(videos), done=sum(r.status == DONE for r in fresh),
        partial=sum(r.status == PARTIAL for r in fresh), skipped=skipped,
        failed=sum(r.status == FAILED for r in records.values()), frames=frames,
        seconds=time.perf_counter() - start, manifest=manifest_path, failures=failures_path,
        split_lists=split_lists, records=ordered)


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _folder_for(rel: str) -> str:
    p = Path(rel)
    return p.with_suffix("").as_posix() if p.suffix else p.as_posix() + "_frames"


def _complete_record(rel: str, label: str, folder: str, out: Path, video: Path, prior: VideoRecord | None,
                     size: int | None) -> VideoRecord | None:
    """The record of a folder finished by an earlier run (from its manifest row, else rebuilt), or None when
    it has to be done (again): no folder, no frames in it, not the frame count its manifest row says, or
    frames of another size than `size` asks."""
    if not out.is_dir():
        return None
    files = frame_files(out)
    if not files:
        return None
    if prior is not None and prior.status in (DONE, PARTIAL) and prior.folder == folder:
        if prior.frames != len(files) or _other_size(prior.width, prior.height, size):
            return None
        return dataclasses.replace(prior, label=label)
    import simplejpeg

    width = height = 0
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(files[0].read_bytes())
    except (OSError, ValueError):
        pass
    if _other_size(width, height, size):
        return None
    try:
        fps = probe(video).fps
    except VideoError:
        fps = 0.0
    return VideoRecord(rel, label, len(files), fps, width, height, DONE, folder)


def _other_size(width: int, height: int, size: int | None) -> bool:
    """Whether frames of width x height are not what `size` (short side, or None: any) asks for."""
    return size is not None and width > 0 and abs(min(width, height) - size) > 1


class _Leftovers:
    """Temporary (``.<name>.tmp-<pid>``) and displaced (``.<name>.old-<pid>``) folders of killed runs."""

    def __init__(self, dest: Path):
        self.dest = dest
        self._by_parent: dict[Path, dict[str, list[str]]] = {}

    def clean(self, out: Path) -> None:
        parent = out.parent
        if parent not in self._by_parent:
            index: dict[str, list[str]] = {}
            try:
                names = os.listdir(parent)
            except OSError:
                names = []
            for name in names:
                m = _LEFTOVER.match(name)
                if m:
                    index.setdefault(m.group("name"), []).append(name)
            self._by_parent[parent] = index
        for name in self._by_parent[parent].pop(out.name, []):
            shutil.rmtree(parent / name, ignore_errors=True)


def _copy_split_lists(src: Path, dest: Path, *, overwrite: bool) -> list[Path]:
    """Copy UCF101's / HMDB51's split folders from `src` or its parent into `dest`."""
    copied = []
    for name in SPLIT_FOLDERS:
        found = next((d / name for d in (src, src.parent) if (d / name).is_dir()), None)
        if found is None:
            continue
        target = dest / name
        if found.resolve() == target.resolve():
            copied.append(target)
            continue
        if target.exists() and not overwrite:
            copied.append(target)
            continue
        tmp = dest / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(found, tmp)
        try:
            _publish(tmp, target)
        except OSError:  # another shard put it there first
            shutil.rmtree(tmp, ignore_errors=True)
        copied.append(target)
    return copied


class _Journal:
    """The manifest, rewritten atomically at start and end and appended to as each video finishes,
    so a killed run leaves every finished video on record."""

    def __init__(self, path: Path, records: list[VideoRecord]):
        self.path = path
        atomic_write_text(path, _csv_text(records))
        self._file = open(path, "a", newline="", encoding="utf-8", errors="surrogateescape")
        self._writer = csv.DictWriter(self._file, fieldnames=MANIFEST_FIELDS)

    def append(self, rec: VideoRecord) -> None:
        self._writer.writerow(rec.row())
        self._file.flush()

    def close(self, records: list[VideoRecord]) -> None:
        self._file.close()
        atomic_write_text(self.path, _csv_text(records))


def _csv_text(records: list[VideoRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS)
    writer.writeheader()
    for rec in records:
        writer.writerow(rec.row())
    return buf.getvalue()


def _write_failures(path: Path, records: list[VideoRecord]) -> None:
    lines = [json.dumps({"video": r.video, "status": r.status, "reason": r.reason}, ensure_ascii=False) + "\n"
             for r in records if r.status != DONE]
    atomic_write_text(path, "".join(lines))


# ----------------------------------------------------------------------------------------- the worker pool


_READY = "ready"  # a worker's first message: it started and imported what it needs


def _worker_main(conn, size: int | None, quality: int, hook: Callable[[Path], None] | None) -> None:
    """A worker process: extract the videos it is sent, one at a time, and send back records."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops its workers
    faulthandler.disable()  # a decoder crash is reported by the parent, in the failures file
    conn.send(_READY)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        key, video, out = job
        try:
            if hook is not None:
                hook(Path(video))
            rec = extract_video(video, out, size=size, quality=quality, threads=1)
        except VideoError as e:
            rec = VideoRecord(str(video), "", reason=_short_reason(str(e), video))
        except Exception as e:  # anything else is this video's failure, not the run's
            rec = VideoRecord(str(video), "", reason=f"{type(e).__name__}: {e}".splitlines()[0])
        conn.send((key, rec))


class _Slot:
    """One worker process and the job it is working on."""

    def __init__(self, ctx, size, quality, hook):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, size, quality, hook), daemon=True)
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
            shutil.rmtree(_tmp_dir(out, self.proc.pid), ignore_errors=True)
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


def _run_pool(jobs: list[tuple[Path, str, Path]], *, size: int | None, quality: int, workers: int,
              timeout: float | None, hook) -> Iterator[tuple[str, VideoRecord]]:
    """Run `jobs` (video, relative path, out folder) on worker processes; yield (relative path, record)
    as each finishes. A worker that dies or times out yields a failed record and is replaced; workers
    that die before they have started (three in a row) stop the run with VidseqError."""
    ctx = mp.get_context(_start_method())
    pending = deque(jobs)
    slots = [_Slot(ctx, size, quality, hook) for _ in range(min(workers, len(jobs)))]
    false_starts = 0
    try:
        while True:
            for i, slot in enumerate(slots):
                if slot.job is None and pending:
                    if slot.closed:
                        slot = slots[i] = _Slot(ctx, size, quality, hook)
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
                yield job[1], VideoRecord(job[1], "", reason=reason)
    finally:
        for slot in slots:
            slot.stop()


class _Progress:
    """Videos done, frames/s and ETA on stderr: redrawn in place on a terminal, a line every 30 s else."""

    def __init__(self, total: int, *, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled and total > 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = self.last = time.monotonic()
        self.done = 0
        self.frames = 0

    def update(self, frames: int) -> None:
        self.done += 1
        self.frames = frames
        now = time.monotonic()
        if not self.enabled:
            return
        if self.tty and now - self.last < 0.2 and self.done < self.total:
            return
        if not self.tty and now - self.last < 30.0:  # logs get a line every 30 s; the summary says the rest
            return
        self.last = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        eta = (self.total - self.done) * elapsed / self.done if self.done else 0.0
        line = (f"extract: {self.done}/{self.total} videos, {self.frames:,} frames, {self.frames / elapsed:,.0f} "
                f"frames/s, ETA {_clock(eta)}")
        if self.tty:
            self.stream.write("\r" + line.ljust(78))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
