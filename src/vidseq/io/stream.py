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
from vidseq.io.video import MAX_PIXELS, FrameReader, _reason, video_stream


class StreamLost(VideoError):
    """A live source that stalled (nothing for `timeout` seconds), dropped or ended."""


def is_live(source: str) -> bool:
    """Whether `source` is a live source (a URL or a device) rather than a file to play at its own rate."""
    return not Path(source).is_file() or source.startswith("/dev/")


class StreamReader(FrameReader):
    """A `FrameReader` of a live source (see the module's docstring): frames as they arrive. A file given as the
    source is played at its own rate (each frame no sooner than its time since the first)."""

    def __init__(self, source: str, *, timeout: float = 5.0, min_side: int | None = None,
                 max_pixels: int = MAX_PIXELS):
        self.source, self.live, self.timeout = source, is_live(source), timeout
        super().__init__(source, min_side=min_side, max_pixels=max_pixels)

    def _open_source(self, max_pixels: int):
        if not self.live:
            return super()._open_source(max_pixels)
        fmt = "v4l2" if self.source.startswith("/dev/video") else None
        # FFmpeg probes a network stream for 5 s by default before it gives the first frame: a live source is
        # probed for at most a third of the stall timeout (and a second), so that the first decision comes early
        probe_us = str(int(min(1.0, self.timeout / 3) * 1e6))
        options = {"analyzeduration": probe_us, "probesize": "1000000"}
        try:  # opening reads the first packets and probes them: it may take the probe time longer than a read
            container = av.open(self.source, mode="r", format=fmt, timeout=(self.timeout + 2.0, self.timeout),
                                metadata_errors="ignore", container_options=options)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise StreamLost(path=self.source, reason=f"cannot open ({_reason(e)})") from None
        if not container.streams.video:  # not yet, perhaps: a source that may come back
            container.close()
            raise StreamLost(path=self.source, reason="has no video stream")
        return container, video_stream(container, self.source, max_pixels)

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
