"""Decode and probe videos. With `vidseq.io.write`, the only module of vidseq that imports PyAV.

Every failure to open or decode a file raises :class:`~vidseq.errors.VideoError`, whose message names
the file and the reason; PyAV's and FFmpeg's own exceptions never escape from here.

>>> info = probe("v_Jump_g01_c01.avi")                         # doctest: +SKIP
>>> with FrameReader("v_Jump_g01_c01.avi", size=64) as r:      # doctest: +SKIP
...     first = next(r.rgb())                                   # (64, 85, 3) uint8

Clips of chosen frames are read by `vidseq.io.read.read_frames`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

from vidseq.errors import VideoError

#: Container extensions that vidseq looks for when it walks a folder of videos.
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".ogv", ".3gp", ".ts", ".mts", ".m2ts", ".vob", ".divx", ".asf", ".mxf", ".f4v"})

#: Largest frame (width x height) decoded by default: 8K UHD. A file that declares more is refused
#: before any frame is decoded, so a hostile header cannot make vidseq allocate gigabytes.
MAX_PIXELS = 7680 * 4320

av.logging.set_level(av.logging.PANIC)  # FFmpeg's own stderr chatter; errors reach us as exceptions


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns of a video without decoding it."""

    path: str
    frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    rotation: int
    container: str = ""  #: FFmpeg's name of the format it was read as (e.g. "avi", "mov,mp4,m4a,3gp,3g2,mj2")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_still_or_text(self) -> bool:
        """Read by a demuxer of still images or of text (FFmpeg opens a .txt file as a "video" of its
        characters drawn), not a video."""
        return self.container in ("tty", "image2") or self.container.endswith("_pipe")


def is_video_file(path: str | Path) -> bool:
    """True for a file whose extension is a known video container."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open(path: str | Path, max_pixels: int):
    """Open `path` and return (container, video stream), or raise VideoError."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(path=path, reason="no such file")
    if path.stat().st_size == 0:
        raise VideoError(path=path, reason="empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(path=path, reason=f"not a readable video ({_reason(e)})") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise VideoError(path=path, reason=f"not a readable video ({e})") from None
    return container, video_stream(container, path, max_pixels)


def video_stream(container, path: str | Path, max_pixels: int):
    """The first video stream of an open `container`, checked (a known codec, a frame size within `max_pixels`);
    else the container is closed and VideoError raised."""
    if not container.streams.video:
        container.close()
        raise VideoError(path=path, reason="has no video stream")
    stream = container.streams.video[0]
    cc = stream.codec_context
    if cc is None:  # FFmpeg found a video stream but no codec for it (a damaged or cut-off header)
        container.close()
        raise VideoError(path=path, reason="the video stream's codec is unknown or its header is damaged")
    if cc.width <= 0 or cc.height <= 0:
        container.close()
        raise VideoError(path=path, reason=f"video stream has no frame size ({cc.width}x{cc.height})")
    if cc.width * cc.height > max_pixels:
        container.close()
        raise VideoError(path=path, reason=
            f"declared frame size {cc.width}x{cc.height} exceeds the limit of {max_pixels} pixels "
            "(raise max_pixels if the file is trusted)"
        )
    return stream


def _reason(e: BaseException) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).splitlines()[0] if msg else type(e).__name__


def _stream_rotation(stream) -> int:
    """Clockwise rotation in degrees (0, 90, 180, 270) that the file asks a player to apply."""
    rotate = stream.metadata.get("rotate")
    if rotate is not None:
        try:
            return int(rotate) % 360
        except ValueError:
            return 0
    return 0


def _frame_rotation(frame) -> int:
    """Rotation of a decoded frame from its display matrix, as clockwise degrees."""
    try:
        r = frame.rotation  # counter-clockwise degrees, as FFmpeg's display matrix reports them
    except (AttributeError, ValueError):
        return 0
    return int(round(-r)) % 360 if r else 0


def probe(path: str | Path, *, exact: bool = False, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Frame count, fps, duration, size, codec and rotation of a video.

    The frame count comes from the container when it declares one, else from counting the stream's
    packets (no decoding); `exact=True` decodes every frame and counts what comes out (in a damaged
    file, the frames before the damage; VideoError when not even the first frame decodes).
    Width and height are those of the displayed picture (after rotation).
    """
    container, stream = _open(path, max_pixels)
    try:
        cc = stream.codec_context
        fps = _fps(stream)
        if exact:
            frames = 0
            try:
                for _ in _decode(container, stream, path):
                    frames += 1
            except VideoError:
                if not frames:
                    raise
        else:
            frames = stream.frames or 0
            if frames <= 0:
                frames = sum(1 for p in container.demux(stream) if p.size)
        duration = _duration(container, stream)
        if duration is None:
            duration = frames / fps if fps else 0.0
        rotation = _stream_rotation(stream)
        if rotation == 0:
            rotation = _display_matrix_rotation(path, max_pixels)
        width, height = cc.width, cc.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(str(path), int(frames), fps, duration, width, height, cc.name, rotation,
                         container.format.name)
    except av.FFmpegError as e:
        raise VideoError(path=path, reason=f"cannot read the video stream ({_reason(e)})") from None
    finally:
        container.close()


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration(container, stream) -> float | None:
    """Seconds the container says the video stream lasts, or None where it does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _display_matrix_rotation(path, max_pixels: int) -> int:
    """Rotation from the stream's display matrix, read off the first decoded frame of a fresh open.

    A fresh open rather than a seek: damaged files (a truncated WebM) refuse to seek back.
    """
    try:
        container, stream = _open(path, max_pixels)
    except VideoError:
        return 0
    try:
        for frame in _decode(container, stream, path):
            return _frame_rotation(frame)
    except VideoError:
        return 0
    finally:
        container.close()
    return 0


def _decode(container, stream, path) -> Iterator:
    """Decoded frames of `stream`; any FFmpeg failure becomes a VideoError."""
    try:
        yield from container.decode(stream)
    except av.FFmpegError as e:
        raise VideoError(path=path, reason=f"decoding failed ({_reason(e)})") from None
    except (MemoryError, ValueError, RuntimeError) as e:
        raise VideoError(path=path, reason=f"decoding failed ({e})") from None


def _target_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) after resizing so that the short side is `size`, or to exactly (w, h)."""
    if size is None:
        return width, height
    if isinstance(size, tuple):
        return size
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def _lowres(short: int, min_side: int) -> int:
    """FFmpeg's `lowres` for a picture of short side `short`: the largest k (at most 3) whose 1/2**k scale keeps
    the short side at least `min_side`. Decoders that scale in the DCT domain (MPEG-4 part 2, MPEG-1/2, MJPEG,
    H.263) then decode at that scale, several times faster, as JPEG's reduced-size decoding does; the others
    (H.264, HEVC, VP9, AV1) ignore it."""
    k = 0
    while k < 3 and (short >> (k + 1)) >= min_side:
        k += 1
    return k


def _rotate(a: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an (H, W, ...) array clockwise by `rotation` degrees."""
    if rotation == 0:
        return a
    return np.ascontiguousarray(np.rot90(a, k=-(rotation // 90), axes=(0, 1)))


class FrameReader:
    """Iterate over a video's frames as RGB arrays or YUV planes, sized and rotated for display.

    `size` resizes every frame (short side, or exactly (width, height)); `min_side` instead asks for frames no
    smaller than that, as cheaply as they come: decoded at a reduced scale where the codec can (see `_lowres`),
    scaled down only when still over twice `min_side`, else converted as they are.

    Use as a context manager. `declared` is the container's frame count (0 when unknown) and
    `decoded` counts frames decoded so far; after iterating to the end, :meth:`incomplete` tells
    whether the file looks truncated. `threads=1` decodes and converts on the calling thread only
    (what a pool of worker processes wants); 0 lets FFmpeg pick a thread count.
    """

    def __init__(self, path: str | Path, *, size: int | tuple[int, int] | None = None, threads: int = 0,
                 max_pixels: int = MAX_PIXELS, min_side: int | None = None):
        if isinstance(size, int) and size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.path = Path(path)
        self.container, self.stream = self._open_source(max_pixels)
        cc = self.stream.codec_context
        self.min_side = min_side if size is None else None
        if self.min_side:
            cc.options = dict(cc.options, lowres=str(_lowres(min(cc.width, cc.height), self.min_side)))
        if threads == 1:
            cc.thread_count = 1
        else:
            self.stream.thread_type = "AUTO"
            cc.thread_count = threads
        self.threads = threads
        self.declared = self.stream.frames or 0
        self.fps = _fps(self.stream)
        self.rotation = _stream_rotation(self.stream)
        self.size = size
        self.decoded = 0
        self._end_time: float | None = None
        self._geom: tuple[int, int, int] | None = None
        self._sws = VideoReformatter()  # one scaler for all frames: a new one per frame costs 4x

    def _open_source(self, max_pixels: int):
        """(container, video stream) of what this reader reads: the file `path`."""
        return _open(self.path, max_pixels)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def seek(self, pts: int) -> None:
        """Go to the keyframe at or before timestamp `pts` (in the stream's time base): the frames decoded next
        start there (from a new `_frames()`)."""
        try:
            self.container.seek(int(pts), stream=self.stream, backward=True, any_frame=False)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoError(path=self.path, reason=f"cannot seek ({_reason(e)})") from None

    def _frames(self) -> Iterator:
        tb = float(self.stream.time_base) if self.stream.time_base else 0.0
        step = 1 / self.fps if self.fps else 0.0
        for frame in _decode(self.container, self.stream, self.path):
            self.decoded += 1
            if frame.pts is not None and tb:
                self._end_time = (frame.pts + frame.duration) * tb if frame.duration else frame.pts * tb + step
            yield frame

    def incomplete(self) -> str | None:
        """After iterating to the end: why the file seems to hold more frames than decoded, else None.

        A file is taken as truncated when the container declares more frames than decoded, or (where it
        declares no count) when the decoded frames end well before the stream's duration.
        """
        if self.declared:
            if self.decoded < self.declared:
                return f"decoded {self.decoded} of the {self.declared} frames the container declares"
            return None
        duration = _duration(self.container, self.stream)
        if not duration or self._end_time is None or not self.fps:
            return None
        start = self.stream.start_time
        start = float(start * self.stream.time_base) if start is not None and self.stream.time_base else 0.0
        end = self._end_time - start
        if end < duration - max(1.5 / self.fps, 0.01 * duration):
            return f"frames end at {end:.2f} s of the {duration:.2f} s the container declares"
        return None

    def _geometry(self, frame) -> tuple[int, int, int]:
        """(width, height, rotation) of the frame to produce before rotating, computed from the first frame:
        frames of another size later on (a resolution switch, or damage) are scaled to the same output size."""
        if self._geom is not None:
            return self._geom
        w, h = frame.width, frame.height
        rotation = self.rotation or _frame_rotation(frame)
        dw, dh = (h, w) if rotation in (90, 270) else (w, h)
        size = self.size
        if self.min_side and min(dw, dh) > 2 * self.min_side:  # too big to convert as it is: scale on the way
            size = self.min_side
        tw, th = _target_size(dw, dh, size)
        if rotation in (90, 270):
            tw, th = th, tw
        self._geom = (tw, th, rotation)
        return tw, th, rotation

    def _sws_threads(self) -> int:
        return 1 if self.threads == 1 else 0

    def _to_rgb(self, frame) -> np.ndarray:
        w, h, rotation = self._geometry(frame)
        try:
            rgb = self._sws.reformat(frame, width=w, height=h, format="rgb24", threads=self._sws_threads())
            a = rgb.to_ndarray()
        except (ValueError, av.FFmpegError) as e:
            raise VideoError(path=self.path, reason=f"cannot convert frame {self.decoded - 1} ({_reason(e)})") from None
        return _rotate(a, rotation)

    def rgb(self) -> Iterator[np.ndarray]:
        """Each frame as a (H, W, 3) uint8 RGB array."""
        for frame in self._frames():
            yield self._to_rgb(frame)

    def rgb_where(self, wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray | None]]:
        """(index, RGB array) of every frame in order, with None for the frames `wanted(index)` turns down: they are
        decoded (a decoder cannot skip them) but not converted, which is most of a frame's cost at small sizes."""
        for i, frame in enumerate(self._frames()):
            yield i, self._to_rgb(frame) if wanted(i) else None

    def yuv420(self, *, full_range: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each frame as (Y, U, V) uint8 planes of a 4:2:0 picture: Y is (H, W), U and V are
        (ceil(H/2), ceil(W/2)).

        This is the cheapest input for a JPEG encoder (no RGB step). With `full_range` (the default)
        the levels are JPEG's (0-255, as JFIF decoders assume); video's limited range (16-235) is
        converted, which a JPEG needs for its colours to match the video's. A rotated picture of odd
        width or height is cropped by one pixel row or column so that the chroma stays aligned.
        """
        dst_range = ColorRange.JPEG if full_range else ColorRange.MPEG
        for frame in self._frames():
            w, h, rotation = self._geometry(frame)
            if rotation and self.size is not None:
                w, h = max(2, w - w % 2), max(2, h - h % 2)
            name = frame.format.name
            is_full = name == "yuvj420p" or (name == "yuv420p" and frame.color_range == ColorRange.JPEG)
            if not (name in ("yuv420p", "yuvj420p") and is_full == full_range and (w, h) == (frame.width,
                                                                                           frame.height)):
                try:
                    frame = self._sws.reformat(frame, width=w, height=h, format="yuv420p",
                                               dst_color_range=dst_range, threads=self._sws_threads())
                except (ValueError, av.FFmpegError) as e:
                    raise VideoError(path=self.path, reason=
                        f"cannot convert frame {self.decoded - 1} ({_reason(e)})") from None
            if rotation:  # crop odd sizes so that each chroma sample still covers its 2x2 luma block
                w, h = max(2, w - w % 2), max(2, h - h % 2)
            planes = []
            for i, plane in enumerate(frame.planes):
                pw, ph = (w, h) if i == 0 else ((w + 1) // 2, (h + 1) // 2)
                a = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:ph, :pw]
                planes.append(_rotate(a, rotation) if rotation else np.ascontiguousarray(a))
            yield planes[0], planes[1], planes[2]
