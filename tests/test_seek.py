"""Seeking reads (vidseq.io.read) and the video index (vidseq.io.index): the frames of a seeking read are those of
a decode from the start, bit for bit, on every codec and GOP structure here; files whose seeks cannot be trusted
are read in order."""

from __future__ import annotations

import logging
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

import vidseq.io.video as video
from conftest import moving_square
from vidseq.errors import TruncatedVideoError, VideoError
from vidseq.io import build_index, decode_plan, frames_decoded, read_frames, video_index

N = 60


def encode(path, codec: str, options: dict | None = None, *, n: int = N, steps_ms: list[int] | None = None):
    """`n` frames of a moving square; `steps_ms` gives the gaps between frames in turn (a variable frame rate)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height = 64, 48
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if options:
            s.options = options
        if steps_ms:
            s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, a in enumerate(moving_square(n, 64, 48)):
            frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            if steps_ms:
                frame.pts, frame.time_base = t, Fraction(1, 1000)
                t += steps_ms[i % len(steps_ms)]
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def repeated_timestamps(path):
    """An MKV whose every 7th frame repeats the timestamp of the frame before (a broken muxer)."""
    src = encode(path.with_name("src-" + path.name), "mpeg4", {"g": "10"})
    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        last = None
        for i, p in enumerate(inp.demux(video=0)):
            if not p.size:
                continue
            p.stream = stream
            if i % 7 == 6 and last is not None:
                p.pts = p.dts = last
            last = p.pts
            out.mux(p)
    src.unlink()
    return path


#: name -> how to make it, and whether its seeks can be trusted (else every read decodes in order): True, False
#: (its index says so), "seek" (a seek lands elsewhere than the index says: found at the first read), None (either)
VIDEOS = {
    "mpeg4-gop12.avi": (lambda p: encode(p, "mpeg4", {"g": "12"}), True),
    "mpeg4-gop250.avi": (lambda p: encode(p, "mpeg4", {"g": "250"}), True),
    "mpeg4-bframes.avi": (lambda p: encode(p, "mpeg4", {"g": "12", "bf": "2"}), None),  # AVI's B-frames: either
    "h264-bframes.mp4": (lambda p: encode(p, "libx264", {"g": "12", "bf": "3"}), True),
    "h264-open-gop.mkv": (lambda p: encode(p, "libx264", {"g": "12", "bf": "3",
                                                          "x264-params": "open-gop=1:keyint=12:min-keyint=4"}), True),
    "h264-vfr.mp4": (lambda p: encode(p, "libx264", {"g": "12", "bf": "2"}, steps_ms=[40, 10, 100]), True),
    "mpeg4-vfr.mkv": (lambda p: encode(p, "mpeg4", {"g": "12"}, steps_ms=[40, 10, 100]), True),
    "hevc-bframes.mp4": (lambda p: encode(p, "libx265", {"x265-params": "keyint=15:bframes=4:log-level=error"}),
                         True),
    "vp9.webm": (lambda p: encode(p, "libvpx-vp9", {"g": "15", "deadline": "realtime", "cpu-used": "8"}), True),
    "mjpeg.avi": (lambda p: encode(p, "mjpeg"), True),
    "mpeg2-bframes.ts": (lambda p: encode(p, "mpeg2video", {"g": "15", "bf": "2"}), "seek"),  # TS seeks by bytes
    "h264-no-timestamps.h264": (lambda p: encode(p, "libx264", {"g": "12", "bf": "2"}), False),
    "repeated-timestamps.mkv": (repeated_timestamps, False),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seek")
    return {name: make(folder / name) for name, (make, _) in VIDEOS.items()}


def clips(seed: int, count: int = 12, n: int = 8) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    out = [sorted(rng.choice(N, n, replace=False).tolist()) for _ in range(count)]
    return out + [[N - 1], [0], [11, 12, 13], [40, 3, 40, 25]]  # the last frame alone, any order and repeats


def full_decode(path) -> np.ndarray:
    return read_frames(path, seek=False)


@pytest.mark.parametrize("name", VIDEOS)
def test_seeking_reads_give_the_frames_of_a_decode_from_the_start(videos, name):
    path = videos[name]
    reference = full_decode(path)
    assert len(reference) == N
    for wanted in clips(seed=len(name)):
        assert np.array_equal(read_frames(path, wanted), reference[wanted]), wanted
        assert np.array_equal(read_frames(path, wanted, size=24), read_frames(path, wanted, size=24, seek=False))


@pytest.mark.parametrize("name", VIDEOS)
def test_the_index_holds_every_frame_and_says_when_seeking_is_not_trusted(videos, name):
    path = videos[name]
    index = build_index(path)
    trusted = VIDEOS[name][1]
    if trusted is False:
        assert not index.seekable and index.reason
    if index.seekable:
        assert index.n_frames == N and index.keyframes[0] == 0 and np.all(np.diff(index.pts) > 0)
        times = index.times()
        assert times[0] == 0 and np.all(np.diff(times) > 0)
    if trusted is True:
        assert video_index(path).seekable  # also after every read above


def decoded_by(monkeypatch, read) -> int:
    count = [0]
    real = video._decode

    def counting(*args):
        for frame in real(*args):
            count[0] += 1
            yield frame

    monkeypatch.setattr(video, "_decode", counting)
    read()
    monkeypatch.setattr(video, "_decode", real)
    return count[0]


@pytest.mark.parametrize("name", ["mpeg4-gop12.avi", "h264-bframes.mp4", "vp9.webm", "mjpeg.avi"])
def test_a_seeking_read_decodes_what_its_plan_says_and_fewer_than_from_the_start(videos, name, monkeypatch):
    path = videos[name]
    wanted = [3, 20, 33, 47, 58]
    index = video_index(path)
    in_order = decoded_by(monkeypatch, lambda: read_frames(path, wanted, seek=False))
    seeking = decoded_by(monkeypatch, lambda: read_frames(path, wanted))
    assert in_order == 59 == frames_decoded(index, wanted, seek=False)
    plan = decode_plan(index, wanted)
    assert set(r.start for r in plan) <= set(index.keyframes.tolist())
    assert [t for r in plan for t in r.targets] == wanted
    assert seeking == frames_decoded(index, wanted) == sum(r.targets[-1] - r.start + 1 for r in plan)
    assert seeking < in_order * (0.2 if name == "mjpeg.avi" else 0.85)
    assert frames_decoded(index, [58]) == index.decode_cost(58) == 58 - index.keyframe_before(58) + 1


def test_keyframes_close_together_are_decoded_through_not_sought(videos):
    index = video_index(videos["mjpeg.avi"])  # every frame a keyframe
    plan = decode_plan(index, [4, 5, 6, 9, 30])
    assert [(r.start, r.targets) for r in plan] == [(4, [4, 5, 6]), (9, [9]), (30, [30])]
    assert decode_plan(index, [4, 6, 9], seek_cost=10)[0].targets == [4, 6, 9]


@pytest.mark.parametrize("name", [n for n, (_, trusted) in VIDEOS.items() if trusted in (False, "seek")])
def test_files_whose_seeks_cannot_be_trusted_are_read_in_order_and_say_so_once(videos, name, caplog, monkeypatch,
                                                                              tmp_path):
    path = tmp_path / name  # a file this process has not indexed yet
    shutil.copy(videos[name], path)
    wanted = [3, 40, 55]
    with caplog.at_level(logging.DEBUG, logger="vidseq.io"):
        for _ in range(3):
            assert np.array_equal(read_frames(path, wanted), full_decode(path)[wanted])
    notes = [r for r in caplog.records if "decode in order" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.DEBUG and str(path) in notes[0].getMessage()
    assert not video_index(path).seekable
    decoded = decoded_by(monkeypatch, lambda: read_frames(path, wanted))
    assert decoded == 56  # in order from the start, once: the index is no longer tried


def test_a_video_shorter_than_its_header_still_raises_truncated(tmp_path):
    path = encode(tmp_path / "short.avi", "mpeg4", {"g": "5"}, n=20)
    with pytest.raises(TruncatedVideoError) as e:
        read_frames(path, [3, 25])
    assert e.value.wanted == 25 and e.value.decoded == 20
    with pytest.raises(VideoError, match="no such file"):
        video_index(tmp_path / "missing.avi")


def test_an_index_follows_the_file_when_it_is_rewritten(tmp_path):
    path = encode(tmp_path / "v.mkv", "mpeg4", {"g": "5"}, n=20)
    assert video_index(path).n_frames == 20
    encode(path, "mpeg4", {"g": "5"}, n=30)
    assert video_index(path).n_frames == 30
    assert read_frames(path, [29]).shape == (1, 48, 64, 3)


@pytest.mark.parametrize("name,min_side,shape", [
    ("mpeg4-gop12.avi", 24, (24, 32)),  # MPEG-4 part 2 decodes at half scale (FFmpeg's lowres)
    ("mpeg4-gop12.avi", 12, (12, 16)),
    ("mpeg4-gop12.avi", 25, (48, 64)),  # half scale would be too small: full size, converted as it is
    ("mjpeg.avi", 24, (24, 32)),
    ("h264-bframes.mp4", 24, (48, 64)),  # no reduced-scale decoding: as it is while within twice min_side
    ("h264-bframes.mp4", 16, (16, 21)),  # over twice min_side: scaled on the way
])
def test_min_side_gives_frames_no_smaller_as_cheaply_as_the_codec_can(videos, name, min_side, shape):
    path = videos[name]
    wanted = [2, 30, 59]
    clip = read_frames(path, wanted, min_side=min_side)
    assert clip.shape == (3, *shape, 3)
    assert np.array_equal(clip, read_frames(path, wanted, min_side=min_side, seek=False))
    full = read_frames(path, wanted, size=(shape[1], shape[0]))  # decoded whole, then scaled
    mse = np.mean((clip.astype(float) - full.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 24  # the same pictures
