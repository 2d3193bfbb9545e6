"""Write videos with PyAV (test fixtures, `vidseq synth`): any codec and container FFmpeg has."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def write_video(path: str | Path, frames: Iterable[np.ndarray], *, fps: float = 25, codec: str = "mpeg4",
                pix_fmt: str | None = None, quality: int | None = None, rotation: int = 0,
                options: dict[str, str] | None = None) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (or (H, W) grayscale ones) into a video file.

    The container follows the extension (.avi, .mp4, .mkv, .webm, ...). `quality` is the codec's
    quantiser scale where it has one (lower is better; mpeg4 takes 1-31). `rotation` writes a display
    rotation (clockwise degrees) into the file's metadata, as phones do.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("write_video needs at least one frame")
    with VideoWriter(path, fps=fps, codec=codec, pix_fmt=pix_fmt, quality=quality, rotation=rotation,
                     options=options) as writer:
        for a in _chain(first, frames):
            writer.write(a)
    return Path(path)


class VideoWriter:
    """Encode frames one at a time into a video file; use as a context manager (the file is complete when the
    block ends without an error).

    The stream takes the size of the first frame. `gop` is the keyframe interval (a keyframe every `gop`
    frames; decoders can start at each). `format` names the container where the file name does not (a
    temporary name). Other arguments as for `write_video`.
    """

    def __init__(self, path: str | Path, *, fps: float = 25, codec: str = "mpeg4", pix_fmt: str | None = None,
                 quality: int | None = None, gop: int | None = None, rotation: int = 0,
                 options: dict[str, str] | None = None, format: str | None = None):
        self.path, self.codec, self.pix_fmt, self.quality, self.gop = Path(path), codec, pix_fmt, quality, gop
        self.rotation, self.options, self.rate = rotation, dict(options or {}), _fraction(fps)
        self.container = av.open(str(self.path), mode="w", format=format)
        self.stream = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(flush=kind is None)

    def _open_stream(self, first: np.ndarray) -> None:
        gray = first.ndim == 2
        pix_fmt = self.pix_fmt or {"mjpeg": "yuvj420p", "rawvideo": "rgb24"}.get(
            self.codec, "gray" if gray and self.codec == "ffv1" else "yuv420p")
        stream = self.container.add_stream(self.codec, rate=self.rate)
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = pix_fmt
        if self.quality is not None:
            stream.codec_context.qscale = self.quality
            stream.codec_context.flags |= av.codec.context.Flags.qscale
        if self.gop is not None:
            stream.codec_context.gop_size = self.gop
        if self.options:
            stream.options = self.options
        if self.rotation % 360:
            stream.set_display_rotation(-(self.rotation % 360) % 360)  # PyAV takes counter-clockwise degrees
        self.stream = stream

    def write(self, a: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame (or (H, W) grayscale)."""
        if self.stream is None:
            self._open_stream(a)
        fmt = "gray" if a.ndim == 2 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format=fmt)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self, *, flush: bool = True) -> None:
        """Finish the file (`flush`: encode what the encoder still holds; False after an error)."""
        if self.container is None:
            return
        try:
            if flush and self.stream is not None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None


def _chain(first, rest):
    yield first
    yield from rest


def _fraction(fps: float):
    from fractions import Fraction

    f = Fraction(fps).limit_denominator(1001)
    if f <= 0 or not math.isfinite(float(f)):
        raise ValueError(f"fps must be positive, got {fps}")
    return f
