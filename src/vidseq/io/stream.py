"""Live input: frames of a source FFmpeg opens as they arrive, a file played at its own rate, a network stream
(rtsp://, http://, udp://, ...) or a V4L2 camera (/dev/video0).

A source that sends nothing for `timeout` seconds, or ends (a network stream that ends has dropped), raises
`StreamLost`; what to do then (reconnect, give up) is the caller's choice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import av

from vidseq.errors import VideoError
from vidseq.io.video import MAX_PIXELS, FrameReader, _fps, _reason, _stream_rotation


class StreamLost(VideoError):
    """A live source that stalled (nothing for `timeout` seconds), dropped or ended."""


def is_live(source: str) -> bool:
    """Whether `source` is a live source (a URL or a device) rather than a file to play at its own rate."""
    return not Path(source).is_file() or source.startswith("/dev/")


def _open_live(source: str, timeout: float):
    fmt = "v4l2" if source.startswith("/dev/video") else None
    # FFmpeg probes a network stream for 5 s by default before it gives the first frame: a live source is
    # probed for at most a third of the stall timeout (and a second), so that the first decision comes early
    probe_us = str(int(min(1.0, timeout / 3) * 1e6))
    options = {"analyzeduration": probe_us, "probesize": "1000000"}
    try:  # opening reads the first packets and probes them: it may take the probe time longer than a read
        container = av.open(source, mode="r", format=fmt, timeout=(timeout + 2.0, timeout), metadata_errors="ignore",
                            container_options=options)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise StreamLost(path=source, reason=f"cannot open ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise StreamLost(path=source, reason="has no video stream")
    return container, container.streams.video[0]


class StreamReader(FrameReader):
    """A `FrameReader` of a live source (see the module's docstring): frames as they arrive. A file given as the
    source is played at its own rate (each frame no sooner than its time since the first)."""

    def __init__(self, source: str, *, timeout: float = 5.0, min_side: int | None = None,
                 max_pixels: int = MAX_PIXELS):
        self.live = is_live(source)
        self.timeout = timeout
        if not self.live:
            super().__init__(source, min_side=min_side, max_pixels=max_pixels)
            return
        self.path = Path(source)
        self.source = source
        self.container, self.stream = _open_live(source, timeout)
        cc = self.stream.codec_context
        if cc.width * cc.height > max_pixels:
            self.container.close()
            raise VideoError(path=source, reason=f"frame size {cc.width}x{cc.height} exceeds {max_pixels} pixels")
        self.min_side, self.size, self.threads = min_side, None, 0
        self.stream.thread_type = "AUTO"
        self.declared, self.decoded = 0, 0
        self.fps = _fps(self.stream)
        self.rotation = _stream_rotation(self.stream)
        self._end_time, self._geom = None, None
        from av.video.reformatter import VideoReformatter

        self._sws = VideoReformatter()

    def _frames(self) -> Iterator:
        if not self.live:  # a file: at its own rate
            start = time.monotonic()
            first = None
            for frame in super()._frames():
                t = frame.time
                if t is not None:
                    first = t if first is None else first
                    delay = (t - first) - (time.monotonic() - start)
                    if delay > 0:
                        time.sleep(delay)
                yield frame
            return
        try:
            for frame in self.container.decode(self.stream):
                self.decoded += 1
                yield frame
        except av.FFmpegError as e:
            if isinstance(e, av.ExitError):
                raise StreamLost(path=self.source, reason=f"nothing for {self.timeout:g} s") from None
            raise StreamLost(path=self.source, reason=f"dropped ({_reason(e)})") from None
        raise StreamLost(path=self.source, reason="the stream ended")
