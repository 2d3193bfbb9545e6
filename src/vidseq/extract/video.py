"""One video -> one folder of JPEG frames, atomically: encoded straight from the decoded YUV planes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from vidseq.errors import TruncatedVideoError, VideoError, note_space
from vidseq.extract.records import DONE, PARTIAL, VideoRecord
from vidseq.files import hidden_sibling
from vidseq.io import FrameReader, probe, read_frames
from vidseq.io.segment import Segment, parse_segment, segment_frames

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


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
    if (seg := parse_segment(video)) is not None:
        return _extract_segment(seg, out_dir, size=size, quality=quality)
    tmp = tmp_dir(out_dir, os.getpid())
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n, width, height, damage, reader = 0, 0, 0, None, None
    try:
        with FrameReader(video, size=size, threads=threads) as reader:
            try:
                for y, u, v in reader.yuv420():
                    data = simplejpeg.encode_jpeg_yuv_planes(_even_padded(y), u, v, quality=quality)
                    _write_file(os.path.join(tmp, f"{n}.jpg"), data)
                    n += 1
                    height, width = y.shape
            except VideoError as e:
                damage = e.reason
            fps = reader.fps
            if n == 0:
                raise VideoError(path=video, reason="no frame could be decoded" + (f" ({damage})" if damage else ""))
            if damage:
                declared = f" of the {reader.declared} the container declares" if reader.declared else ""
                reason = f"{damage}; kept the {n} frames{declared} decoded before it"
            else:
                reason = reader.incomplete() or ""
        _publish(tmp, out_dir)
    except OSError as e:
        if n and reader is not None and reader.declared:  # the disk filled: what this video would have taken
            note_space(e, needed=tree_size(tmp) / n * reader.declared)
            e.source_bytes = video.stat().st_size
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return VideoRecord(video=str(video), label=video.parent.name, frames=n, fps=fps, width=width, height=height,
                       status=PARTIAL if reason else DONE, folder=str(out_dir), reason=reason)


#: Frames of a segment read (by seeking, see `vidseq.io.read_frames`) and written at a time: bounded memory.
SEGMENT_CHUNK = 64


def _extract_segment(seg: Segment, out_dir: Path, *, size: int | None, quality: int) -> VideoRecord:
    """A segment of a long video (``long.mp4#t=12,22``) as its own frame folder: only its frames are decoded
    (seeking to the keyframe before them), in chunks, and written atomically as `extract_video` does."""
    import simplejpeg

    first, n = segment_frames(seg)
    tmp = tmp_dir(out_dir, os.getpid())
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    written, reason, height, width = 0, "", 0, 0
    try:
        for at in range(0, n, SEGMENT_CHUNK):
            try:
                frames = read_frames(seg.file, range(first + at, first + min(n, at + SEGMENT_CHUNK)), size=size)
            except TruncatedVideoError as e:
                reason = f"{e.reason}; kept the {written} frames of the segment decoded before it"
                break
            for rgb in frames:
                _write_file(os.path.join(tmp, f"{written}.jpg"), simplejpeg.encode_jpeg(
                    np.ascontiguousarray(rgb), quality=quality, colorsubsampling="420"))
                written += 1
            height, width = frames.shape[1:3]
        if written == 0:
            raise VideoError(path=seg.path, reason="no frame of the segment could be decoded" +
                             (f" ({reason})" if reason else ""))
        fps = probe(seg.file).fps
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return VideoRecord(video=str(seg.path), label=seg.file.parent.name, frames=written, fps=fps, width=width,
                       height=height, status=PARTIAL if reason else DONE, folder=str(out_dir), reason=reason)


def _write_file(path: str, data: bytes) -> None:
    """Plain create + write + close: the cheapest way to put a small file on disk."""
    fd = os.open(path, _WRITE_FLAGS, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def tree_size(path: Path) -> int:
    """Bytes in the files of folder `path` (or of file `path`); 0 where it is gone."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())
    except OSError:
        return 0


def _even_padded(y: np.ndarray) -> np.ndarray:
    """`y` itself when its size is even, else a view of the same size into a copy padded to even size
    by repeating the edge. TurboJPEG reads 4:2:0 luma in whole 2x2 blocks: without the padding it reads
    past the end of an odd-sized plane, and the JPEG changes with whatever memory lies there."""
    h, w = y.shape
    if not (h % 2 or w % 2):
        return y
    return np.pad(y, ((0, h % 2), (0, w % 2)), mode="edge")[:h, :w]


def tmp_dir(out_dir: Path, pid: int) -> Path:
    return hidden_sibling(out_dir, f"tmp-{pid}")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished `tmp` folder to `out_dir`, replacing an old one."""
    if out_dir.exists():
        old = hidden_sibling(out_dir, f"old-{os.getpid()}")
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def _check_quality(quality: int) -> None:
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")


def extract_job(video: str, out: str, *, size: int | None, quality: int) -> VideoRecord:
    """A worker's job: `extract_video` on one decoder thread (the pool's processes share the cores)."""
    return extract_video(video, out, size=size, quality=quality, threads=1)
