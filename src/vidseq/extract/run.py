"""A whole tree of videos -> frame folders: parallel, sharded, resumable, with a manifest.

The layout is the tutorial's: a video at ``SRC/<rel>/<stem>.<ext>`` becomes ``DEST/<rel>/<stem>/<i>.jpg``
with ``i`` counting from 0 (``DEST/<stem>/`` when SRC is a single video).

>>> summary = extract_dataset("UCF101", "UCF101-frames", size=128)   # doctest: +SKIP
>>> summary.done, summary.failed, summary.frames                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import re
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidseq.errors import DatasetError, VideoError, note_space
from vidseq.extract.pool import run_pool
from vidseq.extract.records import (
    DONE,
    FAILED,
    PARTIAL,
    ExtractSummary,
    Journal,
    VideoRecord,
    output_names,
    read_manifest,
    write_failures,
)
from vidseq.extract.video import _check_quality, _publish, extract_job, tree_size
from vidseq.files import OutsideLinks, exclusive, hidden_stem, output_folder
from vidseq.io import VIDEO_EXTENSIONS, frame_files, is_video_file, probe
from vidseq.io.segment import parse_segment
from vidseq.progress import Progress, available_cpus

#: Official split-list folders copied along from SRC or its parent: UCF101's and HMDB51's.
SPLIT_FOLDERS = ("ucfTrainTestlist", "testTrainMulti_7030_splits")

#: Seconds a worker may spend on one video before it is killed and the video recorded as failed.
DEFAULT_TIMEOUT = 600.0

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-\d+$")


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

    Hidden files and folders (names starting with ".") are left out, and so are symbolic links that lead outside
    `src` (one warning names them); links inside it are followed, each folder once (a link loop ends there).
    """
    src = Path(src)
    if src.is_file():
        return [(src, src.name)]
    found = []
    seen: set[str] = set()
    outside = OutsideLinks(src)
    for root, dirs, files in os.walk(src, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not outside.leads_out(os.path.join(root, d)))
        for name in sorted(files):
            if not name.startswith(".") and is_video_file(name) and not outside.leads_out(os.path.join(root, name)):
                path = Path(root) / name
                found.append((path, path.relative_to(src).as_posix()))
    outside.warn()
    return found


@dataclass(frozen=True)
class Output:
    """What a conversion of a tree of videos writes for each video (frame folders, re-encoded videos)."""

    label: str  #: the job's name on its progress line ("extract")
    what: str  #: the kind of DEST, for messages ("frames folder")
    name_for: Callable[[str], str]  #: a video's path relative to SRC -> its output's path relative to DEST
    task: Callable[[str, str], VideoRecord]  #: picklable: (video, output path) -> its record, output published
    complete: Callable[..., VideoRecord | None]  #: (rel, label, name, out, video, prior) -> record if done
    folders: bool = True  #: outputs are folders, which must not be parents of other outputs


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
    return convert_dataset(src, dest, frame_folders(size, quality), workers=workers, shard=shard, overwrite=overwrite,
                           timeout=timeout, progress=progress, worker_hook=worker_hook)


def frame_folders(size: int | None, quality: int) -> Output:
    """What `vidseq extract` writes for each video: a frame folder of JPEGs (short side `size`, or as decoded)."""
    _check_quality(quality)
    if size is not None and size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return Output("extract", "frames folder", _folder_for, functools.partial(extract_job, size=size, quality=quality),
                  functools.partial(_complete_record, size=size))


def convert_dataset(src: str | Path, dest: str | Path, output: Output, *, workers: int | None = None,
                    shard: tuple[int, int] | None = None, overwrite: bool = False,
                    timeout: float | None = DEFAULT_TIMEOUT, progress: bool = False,
                    worker_hook: Callable[[Path], None] | None = None,
                    listed: list[tuple[Path, str, str]] | None = None) -> ExtractSummary:
    """Convert every video under `src` into `output`'s form under `dest`: the machinery of `extract_dataset`
    (shards, workers, timeouts, manifest, resuming, split lists) for any per-video conversion. A second run on
    the same `dest` (and shard) while this one works refuses in one line (`vidseq.files.exclusive`); shards of
    one `dest` run side by side. `listed` gives the videos (path, name relative to `dest`, label) instead of a
    tree: the segments of an annotation file `src`."""
    key = "" if shard is None else f"-shard-{shard[0]}-of-{shard[1]}"
    with exclusive(dest, what=output.what, key=key):
        return _convert_dataset(src, dest, output, workers=workers, shard=shard, overwrite=overwrite,
                                timeout=timeout, progress=progress, worker_hook=worker_hook, listed=listed)


def _convert_dataset(src: str | Path, dest: str | Path, output: Output, *, workers: int | None,
                     shard: tuple[int, int] | None, overwrite: bool, timeout: float | None, progress: bool,
                     worker_hook: Callable[[Path], None] | None,
                     listed: list[tuple[Path, str, str]] | None = None) -> ExtractSummary:
    start = time.perf_counter()
    src, dest = Path(src), Path(dest)
    if shard is not None:
        shard = parse_shard(f"{shard[0]}/{shard[1]}")
    workers = available_cpus() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not src.exists():
        raise DatasetError(path=src, reason="no such file or folder")
    if src.is_file() and not is_video_file(src) and listed is None:
        raise DatasetError(path=src,
                           reason=f"not a video file (known extensions: {' '.join(sorted(VIDEO_EXTENSIONS))})")
    if src.is_dir() and (dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents):
        raise DatasetError(path=dest, reason=f"the output must go outside the videos' folder {src} (a dataset "
                           "folder holds videos or frame folders, not both); choose another DEST")
    all_videos = find_videos(src) if listed is None else [(p, rel) for p, rel, _ in listed]
    if not all_videos:
        raise DatasetError(path=src, reason=f"no video files found (looked for {' '.join(sorted(VIDEO_EXTENSIONS))})")
    # outputs are assigned over all videos, so that every shard settles a name clash the same way
    folder_of = {rel: output.name_for(rel) for _, rel in all_videos}
    parents = {a.as_posix() for f in folder_of.values() for a in Path(f).parents} if output.folders else set()
    owner: dict[str, str] = {}
    for _, rel in all_videos:
        owner.setdefault(folder_of[rel], rel)
    videos = [(p, rel) for p, rel in all_videos if in_shard(rel, shard)]

    output_folder(dest, what=output.what)
    split_lists = _copy_split_lists(src, dest, overwrite=overwrite) if src.is_dir() else []
    manifest_path, failures_path = output_names(dest, shard)
    prior = {rec.video: rec for rec in read_manifest(dest)}
    label_of = {rel: (p.parent.name if src.is_dir() else src.resolve().parent.name) for p, rel in videos} \
        if listed is None else {rel: label for _, rel, label in listed}

    records: dict[str, VideoRecord] = {}
    jobs: list[tuple[Path, str, Path]] = []
    leftovers = _Leftovers(dest)
    for path, rel in videos:
        folder = folder_of[rel]
        if owner[folder] != rel or folder in parents:
            why = (f"is taken by {owner[folder]} (same name, other extension)" if owner[folder] != rel else
                   "also holds the frame folders of the videos in the folder of the same name")
            kind = "frame folder" if output.folders else "output"
            records[rel] = VideoRecord(rel, label_of[rel], reason=f"its {kind} {folder} {why}")
            continue
        out = dest / folder
        leftovers.clean(out)
        done = None if overwrite else output.complete(rel, label_of[rel], folder, out, path, prior.get(rel))
        if done is not None:
            records[rel] = done
        else:
            jobs.append((path, rel, out))
    skipped = len(records) - sum(r.status == FAILED for r in records.values())

    journal = Journal(manifest_path, [records[k] for k in sorted(records)])
    home = _identity(dest)
    bar = Progress(output.label, len(jobs), unit="videos", enabled=progress, extra="frames", last_line=False)
    frames, failing = 0, False
    try:
        if jobs:
            for rel, rec, reason in run_pool(jobs, output.task, workers=workers, timeout=timeout, hook=worker_hook):
                if rec is None:
                    rec = VideoRecord(rel, label_of[rel], reason=reason)
                rec = dataclasses.replace(rec, video=rel, label=label_of[rel],
                                          folder="" if rec.status == FAILED else folder_of[rel])
                if _identity(dest) != home:  # removed or replaced: what was written is gone with it
                    raise DatasetError(path=dest, reason=f"disappeared while being written ({len(records)} videos "
                                       "were done); make sure nothing else removes it and run the same command "
                                       "again: it redoes what is missing")
                records[rel] = rec
                journal.append(rec)
                if rec.status != FAILED:
                    frames += rec.frames
                bar.update(1, extra=rec.frames if rec.status != FAILED else 0)
    except OSError as e:
        failing = True
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            _estimate_space(e, jobs, records, dest)
        raise
    except BaseException:
        failing = True
        raise
    finally:
        bar.close()
        ordered = [records[k] for k in sorted(records)]
        try:
            if _identity(dest) == home:
                journal.close(ordered)
                write_failures(failures_path, ordered)
            else:  # a new folder in its place (a worker may have made one): no manifest of folders not in it
                journal.close(None)
        except OSError:
            if not failing:  # else the run's own error is the one to show (this is most likely the same full disk)
                raise

    fresh = [records[rel] for _, rel, _ in jobs]
    return ExtractSummary(
        dest=dest, videos=len(videos), done=sum(r.status == DONE for r in fresh),
        partial=sum(r.status == PARTIAL for r in fresh), skipped=skipped,
        failed=sum(r.status == FAILED for r in records.values()), frames=frames,
        seconds=time.perf_counter() - start, manifest=manifest_path, failures=failures_path,
        split_lists=split_lists, records=ordered)


def _estimate_space(e: OSError, jobs: list[tuple[Path, str, Path]], records: dict[str, VideoRecord],
                    dest: Path) -> None:
    """Note on full-disk error `e` about how much the videos not yet done would take: their source size times the
    outputs-to-source ratio of this run's finished videos, else of the video that failed (from its frames so far)."""
    left = [p for p, rel, _ in jobs if rel not in records]
    done = [(p, dest / records[rel].folder) for p, rel, _ in jobs
            if rel in records and records[rel].status != FAILED]
    source, written = sum(_file_size(p) for p, _ in done), sum(tree_size(out) for _, out in done)
    if source and written:
        ratio = written / source
    elif getattr(e, "needed", None) and getattr(e, "source_bytes", 0):
        ratio = e.needed / e.source_bytes
    else:
        return
    note_space(e, needed=ratio * sum(map(_file_size, left)), what=f"the {len(left)} videos left")


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of `folder`: another value (None: gone) means it was removed or replaced."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _folder_for(rel: str) -> str:
    p = Path(rel)
    return p.with_suffix("").as_posix() if p.suffix else p.as_posix() + "_frames"


def _complete_record(rel: str, label: str, folder: str, out: Path, video: Path, prior: VideoRecord | None, *,
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
    seg = parse_segment(video)
    try:
        fps = probe(video if seg is None else seg.file).fps
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
        for name in self._by_parent[parent].pop(hidden_stem(out.name), []):
            left = parent / name
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)


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
        files = [f for f in sorted(found.iterdir()) if f.is_file()]
        try:
            tmp.mkdir()
            for file in files:  # not copytree: a full disk must stay an OSError, not become a shutil.Error
                shutil.copyfile(file, tmp / file.name)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            e.filename, e.filename2 = str(target / (Path(e.filename2 or "").name or name)), None  # not the temporary
            raise note_space(e, needed=sum(map(_file_size, files)), what="the split lists") from None
        try:
            _publish(tmp, target)
        except OSError:  # another shard put it there first
            shutil.rmtree(tmp, ignore_errors=True)
        copied.append(target)
    return copied
