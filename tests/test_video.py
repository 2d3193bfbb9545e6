"""vidseq.video: probe, read_frames and FrameReader on real files in several codecs and containers."""

from __future__ import annotations

import av
import numpy as np
import pytest
import simplejpeg

import vidseq.io.video as video
from vidseq.errors import VideoError
from vidseq.io import FrameReader, probe, read_frames, write_video

# (file name, write_video arguments): the containers and codecs vidseq promises to read.
FORMATS = [
    ("mpeg4.avi", {"codec": "mpeg4"}),
    ("h264.mp4", {"codec": "libx264"}),
    ("vp9.webm", {"codec": "libvpx-vp9"}),
    ("mjpeg.mkv", {"codec": "mjpeg"}),
    ("ffv1.mkv", {"codec": "ffv1"}),
]


def smooth_frames(n: int = 8, width: int = 64, height: int = 48, *, gray: bool = False) -> list[np.ndarray]:
    """Gradients with a soft moving blob: no sharp edges, so lossy codecs keep them well."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(n):
        cx = width * (0.2 + 0.6 * t / max(1, n - 1))
        blob = 120 * np.exp(-((xx - cx) ** 2 + (yy - height / 2) ** 2) / (2 * (width / 8) ** 2))
        r = 40 + 100 * xx / width + blob
        g = 60 + 120 * yy / height
        b = 180 - 80 * xx / width + 0.5 * blob
        f = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
        frames.append(f[..., 1] if gray else f)
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def pyav_count(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("name,kw", FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_decode_to_rgb_with_pyav_frame_count(tmp_path, name, kw):
    src = smooth_frames(9)
    path = write_video(tmp_path / name, src, **kw)
    info = probe(path)
    frames = read_frames(path)
    assert frames.dtype == np.uint8 and frames.shape == (9, 48, 64, 3)
    assert info.frames == pyav_count(path) == len(frames) == probe(path, exact=True).frames
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.fps == pytest.approx(25) and info.duration == pytest.approx(9 / 25, abs=0.05)
    assert np.mean([psnr(a, b) for a, b in zip(frames, src)]) > 30  # the picture, not just its shape


@pytest.mark.parametrize("n", [1, 2, 3])
def test_very_short_videos(make_video, n):
    path = make_video(f"short{n}.mp4", n=n, codec="libx264")
    assert probe(path).frames == n == len(read_frames(path)) == pyav_count(path)


def test_grayscale_comes_out_rgb(tmp_path):
    src = smooth_frames(4, gray=True)
    for name, codec in [("g.mkv", "ffv1"), ("g.avi", "mpeg4")]:
        frames = read_frames(write_video(tmp_path / name, src, codec=codec))
        assert frames.shape == (4, 48, 64, 3)
        assert np.abs(frames[..., 0].astype(int) - frames[..., 2]).max() <= 3  # grey stays grey
        assert psnr(frames[..., 1], np.stack(src)) > 35


@pytest.mark.parametrize("codec,pix_fmt", [("ffv1", None), ("mjpeg", "yuvj444p")])
def test_odd_size_is_kept(tmp_path, codec, pix_fmt):
    src = smooth_frames(3, 321, 239)
    path = write_video(tmp_path / f"odd-{codec}.mkv", src, codec=codec, pix_fmt=pix_fmt)
    info = probe(path)
    assert (info.width, info.height) == (321, 239)
    frames = read_frames(path)
    assert frames.shape == (3, 239, 321, 3)
    assert psnr(frames, np.stack(src)) > 35
    with FrameReader(path) as r:
        y, u, v = next(r.yuv420())
    assert y.shape == (239, 321) and u.shape == v.shape == (120, 161)


@pytest.mark.parametrize("name,codec", [("rot.mp4", "libx264"), ("rot.mkv", "mpeg4")])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, name, codec, rotation):
    src = smooth_frames(3, 64, 48)
    for f in src:
        f[:8, :8] = (255, 255, 255)  # a white mark in the stored picture's top-left corner
    path = write_video(tmp_path / name, src, codec=codec, rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    expect = np.rot90(np.stack(src), k=-rotation // 90, axes=(1, 2))  # clockwise, as a player shows it
    assert (info.width, info.height) == (expect.shape[2], expect.shape[1])
    frames = read_frames(path)
    assert frames.shape == expect.shape
    assert psnr(frames, expect) > 30
    # the mark ends where a clockwise turn puts it: 90 -> top-right, 180 -> bottom-right, 270 -> bottom-left
    corner = {90: (slice(0, 8), slice(-8, None)), 180: (slice(-8, None), slice(-8, None)),
              270: (slice(-8, None), slice(0, 8))}[rotation]
    assert frames[0][corner].mean() > 200
    small = read_frames(path, size=24)
    assert min(small.shape[1:3]) == 24 and (small.shape[1] > small.shape[2]) == (frames.shape[1] > frames.shape[2])


def test_indices_and_size(make_video, monkeypatch):
    path = make_video("clip.avi", n=20)
    full = read_frames(path)
    picked = read_frames(path, indices=[5, 0, 5, 2])
    assert np.array_equal(picked, full[[5, 0, 5, 2]])
    assert read_frames(path, size=24).shape == (20, 24, 32, 3)  # short side 24, aspect kept
    assert read_frames(path, size=(40, 30)).shape == (20, 30, 40, 3)

    decoded = []
    real = video._decode

    def counting(*args):
        for frame in real(*args):
            decoded.append(frame)
            yield frame

    monkeypatch.setattr(video, "_decode", counting)
    read_frames(path, indices=[3, 1])
    assert len(decoded) == 4  # decoding stopped after frame 3


def test_bad_indices(make_video):
    path = make_video("clip.avi", n=5)
    with pytest.raises(VideoError, match="frame 7 asked for, but only 5 frames decode"):
        read_frames(path, indices=[1, 7])
    with pytest.raises(ValueError):
        read_frames(path, indices=[])
    with pytest.raises(ValueError):
        read_frames(path, indices=[-1])
    with pytest.raises(ValueError):
        read_frames(path, size=0)


def _audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.mark.parametrize("kind,reason", [
    ("missing", "no such file"),
    ("empty", "empty file"),
    ("text", "not a readable video"),
    ("truncated_mp4", "not a readable video"),
    ("audio_only", "has no video stream"),
])
def test_bad_files_raise_video_error_naming_the_file(tmp_path, make_video, kind, reason):
    path = tmp_path / f"{kind}.avi"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 20)
    elif kind == "truncated_mp4":
        good = make_video("good.mp4", n=12, codec="libx264")  # the index (moov) is at the end: cut it off
        path = tmp_path / "truncated.mp4"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "audio_only":
        path = _audio_only(tmp_path / "audio.mka")
    for call in (probe, read_frames, lambda p: list(FrameReader(p).rgb())):
        with pytest.raises(VideoError, match=reason) as e:
            call(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_huge_declared_size_is_refused(make_video):
    path = make_video("clip.avi", n=2)
    with pytest.raises(VideoError, match="exceeds the limit"):
        probe(path, max_pixels=100)


def _truncate(path, fraction: float):
    out = path.with_name("cut-" + path.name)
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("name,codec", [("t.avi", "mjpeg"), ("t.mkv", "mjpeg")])
def test_truncated_file_keeps_the_frames_before_the_damage(tmp_path, name, codec):
    whole = write_video(tmp_path / name, smooth_frames(30), codec=codec)
    with FrameReader(whole) as r:
        assert len(list(r.yuv420())) == 30 and r.incomplete() is None
    cut = _truncate(whole, 0.5)
    with FrameReader(cut, threads=1) as r:
        n = len(list(r.yuv420()))
        assert 5 <= n < 30 and r.decoded == n == pyav_count(cut)
        assert r.incomplete() is not None
    assert probe(cut).frames >= n  # probe does not decode: it reports what the container says


def test_yuv420_planes_make_faithful_jpegs(tmp_path):
    for name, codec in [("y.avi", "mpeg4"), ("y.mkv", "mjpeg")]:  # limited-range and full-range sources
        path = write_video(tmp_path / name, smooth_frames(4), codec=codec)
        rgb = read_frames(path)
        with FrameReader(path, threads=1) as r:
            planes = list(r.yuv420())
        assert len(planes) == 4
        y, u, v = planes[0]
        assert y.shape == (48, 64) and u.shape == v.shape == (24, 32) and y.dtype == np.uint8
        jpegs = [simplejpeg.decode_jpeg(simplejpeg.encode_jpeg_yuv_planes(*p, quality=95)) for p in planes]
        assert psnr(np.stack(jpegs), rgb) > 35
        with FrameReader(path, threads=1) as r:  # limited range is not what a JPEG wants
            limited = [simplejpeg.decode_jpeg(simplejpeg.encode_jpeg_yuv_planes(*p, quality=95))
                       for p in r.yuv420(full_range=False)]
        assert psnr(np.stack(limited), rgb) < psnr(np.stack(jpegs), rgb) - 3


def test_yuv420_rotated_and_resized(tmp_path):
    path = write_video(tmp_path / "r.mp4", smooth_frames(2, 65, 49), codec="ffv1", pix_fmt="yuv444p", rotation=90)
    with FrameReader(path) as r:
        y, u, v = next(r.yuv420())
    assert y.shape == (64, 48) and u.shape == (32, 24)  # displayed 49x65, cropped to even for 4:2:0
    with FrameReader(path, size=32) as r:
        y, u, v = next(r.yuv420())
    assert y.shape[1] == 32 and y.shape[0] % 2 == 0 and u.shape == (y.shape[0] // 2, 16)


@pytest.mark.parametrize("name,kw", FORMATS, ids=[f[0] for f in FORMATS])
def test_damaged_files_fail_only_with_video_error(tmp_path, name, kw):
    whole = write_video(tmp_path / name, smooth_frames(20), **kw)
    data = whole.read_bytes()
    for i, fraction in enumerate((0.05, 0.3, 0.6, 0.9)):
        cut = tmp_path / f"cut{i}-{name}"
        cut.write_bytes(data[: int(len(data) * fraction)])
        flipped = tmp_path / f"flip{i}-{name}"
        noisy = bytearray(data)
        noisy[int(len(data) * fraction):int(len(data) * fraction) + 64] = bytes(64)
        flipped.write_bytes(bytes(noisy))
        for path in (cut, flipped):
            for call in (probe, read_frames):
                try:
                    call(path)
                except VideoError as e:
                    assert str(path) in str(e)
