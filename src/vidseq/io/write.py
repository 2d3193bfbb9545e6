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
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("write_video needs at least one frame")
    gray = first.ndim == 2
    if pix_fmt is None:
        pix_fmt = {"mjpeg": "yuvj420p", "rawvideo": "rgb24"}.get(codec, "gray" if gray and codec == "ffv1" else
                                                                  "yuv420p")
    rate = _fraction(fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = pix_fmt
        opts = dict(options or {})
        if quality is not None:
            stream.codec_context.qscale = quality
            stream.codec_context.flags |= av.codec.context.Flags.qscale
        if opts:
            stream.options = opts
        if rotation % 360:
            stream.set_display_rotation(-(rotation % 360) % 360)  # PyAV takes counter-clockwise degrees
        for a in _chain(first, frames):
            fmt = "gray" if a.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format=fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _chain(first, rest):
    yield first
    yield from rest


def _fraction(fps: float):
    from fractions import Fraction

    f = Fraction(fps).limit_denominator(1001)
    if f <= 0 or not math.isfinite(float(f)):
        raise ValueError(f"fps must be positive, got {fps}")
    return f
