"""A tree of videos -> the same videos re-encoded for training: short side at the training size, a keyframe
every few frames, a codec that decodes fast (MPEG-4 part 2). Several times smaller than frame folders of the
same size, and read by seeking (`vidseq.io.read`) at a few decoded frames per clip frame.

Everything else is `vidseq.extract`'s: workers, shards, timeouts, ``manifest.csv`` (``folder`` names the new
file), resuming, split lists. Each file is written to ``.<name>.tmp-<pid>`` beside its final name and renamed
when complete, so a file at the final name is always whole. Frame timing becomes constant at the source's
average rate; the frames and their order are the source's.

>>> summary = transcode_dataset("UCF101", "UCF101-128", size=128, gop=8)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path

from vidseq.errors import VideoError
from vidseq.extract.records import DONE, PARTIAL, ExtractSummary, VideoRecord
from vidseq.extract.run import DEFAULT_TIMEOUT, Output, convert_dataset
from vidseq.files import hidden_sibling
from vidseq.io import FrameReader, VideoWriter, video_index

#: The container of transcoded videos, and the codecs `transcode` offers: FFmpeg's encoder and its options.
EXTENSION = ".mp4"
CODECS = {"mpeg4": ("mpeg4", {}), "h264": ("libx264", {"preset": "fast", "bf": "0", "tune": "fastdecode"})}


def _check(size: int | None, gop: int, quality: int, codec: str) -> None:
    if size is not None and size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if gop < 1:
        raise ValueError(f"gop must be at least 1, got {gop}")
    if not 1 <= quality <= 31:
        raise ValueError(f"quality must be between 1 (best) and 31, got {quality}")
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")


def transcode_video(video: str | Path, out: str | Path, *, size: int | None = 128, gop: int = 8, quality: int = 4,
                    codec: str = "mpeg4", threads: int = 1) -> VideoRecord:
    """Re-encode `video` as `out` (an .mp4): short side `size` (None: keep), a keyframe every `gop` frames,
    `quality` the quantiser (1 best, 31 worst; for h264 the constant rate factor is ``quality * 2 + 10``).

    Atomic: written beside `out` under a temporary name, then renamed. A truncated file keeps the frames decoded
    before the damage (status ``partial``); VideoError when no frame decodes (nothing is left behind then).
    """
    _check(size, gop, quality, codec)
    video, out = Path(video), Path(out)
    tmp = hidden_sibling(out, f"tmp-{os.getpid()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    name, options = CODECS[codec]
    options = dict(options, crf=str(quality * 2 + 10)) if codec == "h264" else dict(options)
    damage = ""
    try:
        with FrameReader(video, size=size, threads=threads) as reader:
            fps = reader.fps or 25.0
            with VideoWriter(tmp, fps=fps, codec=name, gop=gop, quality=None if codec == "h264" else quality,
                             options=options, format="mp4") as writer:
                try:
                    for frame in reader.rgb():
                        h, w = frame.shape[:2]
                        writer.write(frame[: h - h % 2, : w - w % 2])  # 4:2:0 wants even sizes
                except VideoError as e:
                    damage = e.reason
                if not writer.frames:
                    raise VideoError(path=video, reason="no frame could be decoded" + (f" ({damage})" if damage
                                                                                        else ""))
                height, width = h - h % 2, w - w % 2
            reason = (f"{damage}; kept the {writer.frames} frames decoded before it" if damage else
                      reader.incomplete() or "")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return VideoRecord(video=str(video), label=video.parent.name, frames=writer.frames, fps=fps, width=width,
                       height=height, status=PARTIAL if reason else DONE, folder=str(out), reason=reason)


def transcode_job(video: str, out: str, *, size: int | None, gop: int, quality: int, codec: str) -> VideoRecord:
    """A worker's job: `transcode_video` on one decoder thread."""
    return transcode_video(video, out, size=size, gop=gop, quality=quality, codec=codec, threads=1)


def _name_for(rel: str) -> str:
    return Path(rel).with_suffix(EXTENSION).as_posix()


def _complete(rel: str, label: str, name: str, out: Path, video: Path, prior: VideoRecord | None, *,
              size: int | None) -> VideoRecord | None:
    """The record of a file finished by an earlier run, or None when it has to be done (again): no file, no
    manifest row for it, or a file that does not hold the frames (or the size) its row says."""
    if not out.is_file() or prior is None or prior.status not in (DONE, PARTIAL) or prior.folder != name:
        return None
    if size is not None and abs(min(prior.width, prior.height) - size) > 1:
        return None
    try:
        if video_index(out).n_frames != prior.frames:
            return None
    except VideoError:
        return None
    return dataclasses.replace(prior, label=label)


def transcode_dataset(src: str | Path, dest: str | Path, *, size: int | None = 128, gop: int = 8, quality: int = 4,
                      codec: str = "mpeg4", workers: int | None = None, shard: tuple[int, int] | None = None,
                      overwrite: bool = False, timeout: float | None = DEFAULT_TIMEOUT, progress: bool = False,
                      worker_hook: Callable[[Path], None] | None = None) -> ExtractSummary:
    """Re-encode every video under `src` (a tree, or one video) as ``dest/<rel>.mp4`` (see `transcode_video`);
    the other arguments, the records and the resuming are `vidseq.extract.extract_dataset`'s."""
    _check(size, gop, quality, codec)
    output = Output("transcode", "videos folder", _name_for,
                    functools.partial(transcode_job, size=size, gop=gop, quality=quality, codec=codec),
                    functools.partial(_complete, size=size), folders=False)
    return convert_dataset(src, dest, output, workers=workers, shard=shard, overwrite=overwrite, timeout=timeout,
                           progress=progress, worker_hook=worker_hook)
