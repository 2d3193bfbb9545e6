"""Reliability and security across vidseq: bad input through every entry point, fuzzing, interruptions,
resource limits, unsafe archives and models, and the command line's contract.

The per-module tests check each piece on its own; here one table of bad (and merely unusual) videos goes
through every way a file enters vidseq, and a batch job meets the crashes and attacks it must survive
without losing data, hanging or showing a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import typing
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import vidseq.clips.sources
import vidseq.io.video
from conftest import moving_square, wait_for_an_epoch
from vidseq.cli import app, main
from vidseq.clips import ClipTfm, get_action_dataloaders
from vidseq.errors import DataWarning, ModelError, UnsafeArchiveError, VideoError
from vidseq.extract import extract_dataset, frame_files, read_manifest
from vidseq.io import FrameReader, probe, read_frames, write_video
from vidseq.predict import predict_files
from vidseq.runs import load_run, save_weights

CLI = [sys.executable, "-m", "vidseq"]  # the command line as a process of its own


@pytest.fixture(autouse=True)
def no_hang():
    """A hang is a failure here: every test gets two minutes, then SIGALRM stops it."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def hung(signum, frame):
        raise TimeoutError("the test hung for 120 s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message and str(path) in message, message


def stderr_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.strip()]


def data_warnings(recwarn) -> list[str]:
    """The data-quality warnings a library user got (the command line shows each as one `vidseq: warning:` line)."""
    return [str(w.message) for w in recwarn.list if issubclass(w.category, DataWarning)]


# ------------------------------------------------------------------------------------ the table of bad input


def _write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _video(n: int, codec: str = "mpeg4", width: int = 64, height: int = 48, *, gray: bool = False,
           **kw) -> Callable[[Path], None]:
    return lambda path: write_video(path, moving_square(n, width, height, gray=gray), codec=codec, **kw)


def _encoded(path: Path, n: int, codec: str) -> bytes:
    whole = path.with_name(".whole-" + path.name)
    data = write_video(whole, moving_square(n, 64, 48), codec=codec).read_bytes()
    whole.unlink()
    return data


def _cut(fraction: float, codec: str = "mpeg4", n: int = 12) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        data = _encoded(path, n, codec)
        path.write_bytes(data[: int(len(data) * fraction)])

    return make


def _cut_after(tag: bytes, codec: str) -> Callable[[Path], None]:
    """Cut the file a few bytes into the first box or chunk called `tag`."""

    def make(path: Path) -> None:
        data = _encoded(path, 12, codec)
        path.write_bytes(data[: data.index(tag) + 4])

    return make


def _zeroed_after(tag: bytes, codec: str = "mpeg4") -> Callable[[Path], None]:
    """Every byte after the first `tag` zeroed: the header is whole, the frames are gone."""

    def make(path: Path) -> None:
        data = bytearray(_encoded(path, 12, codec))
        start = data.index(tag) + len(tag)
        data[start:] = bytes(len(data) - start)
        path.write_bytes(bytes(data))

    return make


def _flipped(codec: str, *, seed: int, count: int = 24) -> Callable[[Path], None]:
    """Random bytes past the first tenth of the file (the container's header) replaced."""

    def make(path: Path) -> None:
        data = bytearray(_encoded(path, 12, codec))
        rng = np.random.default_rng(seed)
        for i in rng.integers(len(data) // 10, len(data), count):
            data[i] = int(rng.integers(256))
        path.write_bytes(bytes(data))

    return make


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)


def _variable_rate(path: Path) -> None:
    """12 frames 10, 40 and 100 ms apart, in turn."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, a in enumerate(moving_square(12, 64, 48)):
            frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += (40, 10, 100)[i % 3]
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _size_switch(path: Path) -> None:
    """Motion JPEG: 4 frames of 64x48, then 4 of 32x24 in the same stream (as a resolution switch)."""
    parts = [write_video(path.with_name(f".{i}-{path.name}"), moving_square(4, w, h, seed=i), codec="mjpeg")
             for i, (w, h) in enumerate([(64, 48), (32, 24)])]
    with av.open(str(parts[0])) as first, av.open(str(parts[1])) as second, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(first.streams.video[0])
        n = 0
        for src in (first, second):
            for packet in src.demux(video=0):
                if packet.size:
                    packet.stream, packet.time_base = stream, Fraction(1, 25)
                    packet.pts = packet.dts = n
                    packet.duration = 1
                    out.mux(packet)
                    n += 1
    for part in parts:
        part.unlink()


@dataclass(frozen=True)
class Case:
    """A file and what every entry point must make of it."""

    name: str  #: file name (its stem is unique in the table)
    make: Callable[[Path], None]
    expect: str  #: "error" (vidseq's error with `reason`), "ok" (`frames` frames of `size`), "either"
    reason: str = ""
    frames: int = 0
    size: tuple[int, int] = (64, 48)  #: (width, height) as displayed


HUGE = b"YUV4MPEG2 W9000 H9000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096)  # 81 Mpx declared, 4 kB there

CASES = [
    Case("zero-bytes.avi", _write(b""), "error", "empty file"),
    Case("text-named-avi.avi", _write(b"this is not a video\n" * 50), "error", "not a readable video"),
    Case("audio-only.mkv", _audio_only, "error", "has no video stream"),
    Case("declared-9000x9000.avi", _write(HUGE), "error", "declared frame size 9000x9000 exceeds the limit"),
    Case("mp4-cut-half.mp4", _cut(0.5, "libx264"), "error", "not a readable video"),  # its index is at the end
    Case("mp4-cut-in-track.mp4", _cut_after(b"minf", "libx264"), "error", "codec is unknown or its header"),
    Case("avi-cut-10.avi", _cut(0.1), "error", "not a readable video"),
    Case("avi-cut-66.avi", _cut(0.66), "either"),  # the header promises 12 frames; few or none decode
    Case("avi-cut-90.avi", _cut(0.9), "either"),
    Case("avi-frames-zeroed.avi", _zeroed_after(b"movi"), "either"),  # the header promises 12, none decode
    Case("mjpeg-cut-50.mkv", _cut(0.5, "mjpeg", n=30), "either"),
    Case("webm-cut-50.webm", _cut(0.5, "libvpx-vp9"), "either"),
    Case("flipped-bytes-mpeg4.avi", _flipped("mpeg4", seed=1), "either"),
    Case("flipped-bytes-h264.mp4", _flipped("libx264", seed=2), "either"),
    Case("flipped-bytes-mjpeg.mkv", _flipped("mjpeg", seed=3), "either"),
    Case("one-frame.avi", _video(1), "ok", frames=1),
    Case("two-frames.mp4", _video(2, "libx264"), "ok", frames=2),
    Case("three-frames.webm", _video(3, "libvpx-vp9"), "ok", frames=3),
    Case("grayscale.avi", _video(12, gray=True), "ok", frames=12),
    Case("odd-size.mkv", _video(5, "ffv1", 65, 49), "ok", frames=5, size=(65, 49)),
    Case("rotated-90.mp4", _video(6, "libx264", rotation=90), "ok", frames=6, size=(48, 64)),
    Case("variable-rate.mkv", _variable_rate, "ok", frames=12),
    Case("size-switch.mkv", _size_switch, "ok", frames=8),  # every frame comes out at the first one's size
]
IDS = [c.name for c in CASES]
BAD = [c for c in CASES if c.expect != "ok"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("table")
    for case in CASES:
        case.make(folder / case.name)
    return {case.name: folder / case.name for case in CASES}


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> list[Path]:
    """Good videos: classes A and B, groups 1-3."""
    root = tmp_path_factory.mktemp("pool")
    out = []
    for cls in ("A", "B"):
        for g in (1, 2, 3):
            path = root / cls / f"v_{cls}_g{g:02d}_c01.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            out.append(write_video(path, moving_square(8, 48, 32, seed=g), codec="mpeg4"))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as `vidseq train` writes it (config.json + model.safetensors), untrained."""
    from vidseq.models import create_model

    run = tmp_path_factory.mktemp("run")
    model = create_model("frame_avg", 2, seq_len=3, image_size=32, backbone="mobilenet_v3_small", pretrained=False)
    save_weights(model, run / "model.safetensors")
    config = {"model": model.vidseq_config, "classes": ["A", "B"], "data": {"source": "none", "split": "group"},
              "clip": {"frames": 3, "size": 32, "sampler": "uniform"}, "train": {"seed": 0}}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def loaded_run(run_dir):
    return load_run(run_dir)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_probe_and_read_frames(table, case):
    path = table[case.name]
    calls = (probe, read_frames, lambda p: read_frames(p, [0, 0, 1], size=16), lambda p: probe(p, exact=True))
    if case.expect == "error":
        for call in calls:
            with pytest.raises(VideoError, match=case.reason) as e:
                call(path)
            one_line_naming(str(e.value), path)
    elif case.expect == "ok":
        info, frames = probe(path), read_frames(path)
        assert info.frames == probe(path, exact=True).frames == case.frames
        assert (info.width, info.height) == case.size
        assert frames.shape == (case.frames, case.size[1], case.size[0], 3) and frames.dtype == np.uint8
    else:
        for call in calls:
            try:
                call(path)
            except VideoError as e:
                one_line_naming(str(e), path)


@pytest.fixture(scope="module")
def extracted(table, tmp_path_factory):
    src, dest = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("frames")
    (src / "C").mkdir()
    for case in CASES:
        shutil.copy(table[case.name], src / "C" / case.name)
    summary = extract_dataset(src, dest, workers=2, timeout=60)
    return dest, summary, {r.video: r for r in read_manifest(dest)}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_extract_dataset_records_every_file(extracted, case):
    dest, summary, records = extracted
    rec = records[f"C/{case.name}"]
    folder = dest / "C" / Path(case.name).stem
    if case.expect == "error" or rec.status == "failed":
        assert case.expect != "ok" and rec.status == "failed", rec
        assert rec.reason and re.search(case.reason, rec.reason) and not folder.exists()
    else:
        assert rec.status in (("done",) if case.expect == "ok" else ("done", "partial"))
        assert [p.name for p in frame_files(folder)] == [f"{i}.jpg" for i in range(rec.frames)]
        assert rec.frames == case.frames or case.expect == "either"
        assert (rec.width, rec.height) == case.size
        assert rec.frames >= 1 and (rec.status == "done") == (not rec.reason)
    assert not list(dest.rglob("*.tmp-*"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dataloaders_over_videos_leave_bad_files_out_and_never_stop(pool, table, case, capsys, recwarn):
    path = table[case.name]
    items = [*pool, path]
    val = [i for i, p in enumerate(pool) if "_g01_" in p.name]
    dls = get_action_dataloaders(items, labels=[p.parent.name for p in pool] + ["A"], val_idxs=val, bs=3,
                                 image_size=24, seq_len=4, sampler="random", augment=True, workers=0, drop_last=False)
    if case.expect == "error":
        assert re.search(case.reason, dls.skipped[str(path)])
    elif case.expect == "ok":
        assert str(path) not in dls.skipped
        assert ClipTfm(4, 24, sampler="uniform").load(path).shape == (4, 3, 24, 24)
    assert len(dls.train_ds) == len(pool) - len(val) + (str(path) not in dls.skipped)
    for dl in (dls.train, dls.valid, dls.train):  # a second epoch meets an item found unreadable again
        seen = 0
        for x, y in dl:
            assert x.shape[1:] == (4, 3, 24, 24) and torch.isfinite(x).all()
            seen += len(y)
        assert seen == len(dl.dataset)
    assert stderr_lines(capsys) == []  # no traceback, nothing printed: the library warns
    lines = data_warnings(recwarn)
    for line in lines:  # reports, one each: left out at the start, or when met
        assert "leaving out" in line and "\n" not in line, line
    try:
        decodable = probe(path, exact=True).frames
    except VideoError:
        decodable = 0
    if str(path) not in dls.skipped and not decodable:  # looked fine at the start, found unreadable when met
        assert any("leaving out an unreadable item" in line and str(path) in line for line in lines), lines


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_predict_files_gives_a_reason_or_probabilities(loaded_run, table, case):
    path = table[case.name]
    [pred] = predict_files(loaded_run, [path], top=2, device="cpu")
    if case.expect == "error":
        assert re.search(case.reason, pred.error)
    if pred.error:
        assert case.expect != "ok"
        one_line_naming(pred.error, path)
    else:
        assert [c for c, _ in pred.top] in (["A", "B"], ["B", "A"])
        assert sum(p for _, p in pred.top) == pytest.approx(1, abs=1e-4)


CLI_CASES = [(c, cmd) for c in BAD for cmd in ("extract", "predict", "info", "evaluate", "train")
             if c.expect == "error" or cmd != "train"]  # train on readable files would train: not a fast test


@pytest.mark.parametrize("case,command", CLI_CASES, ids=[f"{c.name}-{cmd}" for c, cmd in CLI_CASES])
def test_cli_commands_on_bad_files_give_one_line_and_no_traceback(table, run_dir, case, command, tmp_path, capsys):
    path = table[case.name]
    tree = tmp_path / "data"  # two classes, two groups each, every item a copy of the file
    for cls in ("A", "B"):
        (tree / cls).mkdir(parents=True)
        for g in (1, 2):
            shutil.copy(path, tree / cls / f"v_{cls}_g{g:02d}_c01{path.suffix}")
    args = {
        "extract": ["extract", str(path), str(tmp_path / "frames"), "--workers", "1"],
        "predict": ["predict", str(run_dir), str(path)],
        "info": ["info", str(tree), "--split", "group"],
        "evaluate": ["evaluate", str(run_dir), "--data", str(tree), "--split", "group", "--no-report"],
        "train": ["train", str(tree), "--split", "group", "--model", "frame_avg", "--backbone", "mobilenet_v3_small",
                  "--no-pretrained", "--size", "32", "--frames", "3", "--bs", "2", "--workers", "0", "--epochs", "1",
                  "--out", str(tmp_path / "run")],
    }[command]
    rc = main(args)
    lines = stderr_lines(capsys)
    assert all(line.startswith("vidseq") for line in lines), lines
    if command == "info":  # info reads names, not pictures
        assert rc == 0 and not lines
        return
    if case.expect == "either":
        assert rc in (0, 1, 2) and len(lines) <= 1
        return
    assert len(lines) == 1, lines
    if command == "extract":  # the work failed (exit 1); the reason is in failures.jsonl
        assert rc == 1 and "nothing could be extracted" in lines[0]
        failures = [json.loads(x) for x in (tmp_path / "frames" / "failures.jsonl").read_text().splitlines()]
        assert len(failures) == 1 and re.search(case.reason, failures[0]["reason"])
    else:
        assert rc == (1 if command == "predict" else 2) and re.search(case.reason, lines[0]), lines


# ------------------------------------------------------------------------------------------------ fuzzing

FUZZ = {"mpeg4.avi": "mpeg4", "h264.mp4": "libx264", "vp9.webm": "libvpx-vp9", "mjpeg.mkv": "mjpeg"}
#: Where containers keep their structure (MP4 boxes, RIFF chunks, Matroska elements): cuts near these are
#: the likeliest to leave a header that half parses.
MARKERS = [b"ftyp", b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"avcC", b"stts", b"stsz", b"mdat", b"RIFF",
           b"hdrl", b"strl", b"strh", b"strf", b"movi", b"idx1", b"\x1aE\xdf\xa3", b"\x18S\x80g", b"\x16T\xaek",
           b"\xae", b"\x1fC\xb6u", b"\xa3"]


class _Encoded(dict):
    """name -> (the file's bytes, offsets of structure markers), in `folder`; short in failure reports."""

    folder: Path

    def __repr__(self) -> str:
        return f"<{len(self)} small videos in {self.folder}>"


@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory) -> _Encoded:
    bases = _Encoded()
    bases.folder = tmp_path_factory.mktemp("fuzz")
    for name, codec in FUZZ.items():
        data = write_video(bases.folder / name, moving_square(10, 48, 32), codec=codec).read_bytes()
        marks = sorted({m.start() for tag in MARKERS for m in re.finditer(re.escape(tag), data[:4096])})
        bases[name] = data, marks
    return bases


@pytest.mark.parametrize("name", list(FUZZ))
@settings(max_examples=60, deadline=5000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.one_of(st.floats(0.0, 1.0), st.tuples(st.integers(0, 255), st.integers(-8, 24))),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=12))
def test_truncated_and_flipped_files_raise_only_video_error_in_time(fuzz_bases, name, cut, flips):
    base, marks = fuzz_bases[name]
    end = int(len(base) * cut) if isinstance(cut, float) else marks[cut[0] % len(marks)] + cut[1]
    data = bytearray(base[: max(0, end)])
    for where, value in flips:
        if data:
            data[int(where * len(data))] = value
    path = fuzz_bases.folder / f"fuzzed-{name}"
    path.write_bytes(bytes(data))
    for call in (probe, lambda p: probe(p, exact=True), read_frames, lambda p: read_frames(p, [0, 3, 9], size=16),
                 lambda p: sum(1 for _ in FrameReader(p, size=20, threads=1).yuv420())):
        try:
            call(path)
        except VideoError as e:
            one_line_naming(str(e), path)


# ---------------------------------------------------------------------------------------- interruptions


def _gradient_video(path: Path, n: int, width: int, height: int) -> Path:
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], -1).astype(np.uint8)

    def frames():
        for t in range(n):
            f = base.copy()
            x = (t * 5) % (width - 40)
            f[height // 3: height // 3 + 40, x: x + 40] = (250, 220, 30)
            yield f

    return write_video(path, frames(), codec="mpeg4")


@pytest.fixture(scope="module")
def extract_job(tmp_path_factory) -> tuple[Path, Path, int]:
    """Videos that take a while to extract (a few small ones first) and their uninterrupted extraction."""
    src = tmp_path_factory.mktemp("job")
    (src / "C").mkdir()
    for i in range(3):
        write_video(src / "C" / f"a{i}.avi", moving_square(6, 48, 32, seed=i), codec="mpeg4")
    for i in range(4):
        _gradient_video(src / "C" / f"b{i}.avi", 120, 640, 480)
    reference = tmp_path_factory.mktemp("reference")
    assert extract_dataset(src, reference, workers=1).done == 7
    return src, reference, 7


def snapshot(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.jpg"))}


def _cli_process(args: list[str], **kw) -> subprocess.Popen:
    # a job started with Ctrl-C ignored (some CI runners do that) passes it on: let the child take it
    reset = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if reset else None, **kw)


def _wait_for_work_in_progress(folder: Path, proc: subprocess.Popen) -> str:
    """The name of the first temporary frame folder of a big video that shows up in `folder`."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
        try:
            names = [n for n in os.listdir(folder) if re.fullmatch(r"\.b\d\.tmp-\d+", n)]
        except FileNotFoundError:
            names = []
        if names:
            return names[0]
        time.sleep(0.005)
    raise AssertionError("no video was ever in progress")


@pytest.mark.slow
def test_ctrl_c_of_the_extract_command_then_rerun_gives_the_uninterrupted_frames(extract_job, tmp_path):
    src, reference, total = extract_job
    dest = tmp_path / "frames"
    proc = _cli_process(["extract", str(src), str(dest), "--workers", "1"])
    _wait_for_work_in_progress(dest / "C", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.splitlines() == ["vidseq: interrupted"], err
    assert not list(dest.rglob("*.tmp-*"))
    folders = {p.name for p in (dest / "C").iterdir()}
    finished = {Path(r.folder).name for r in read_manifest(dest) if r.status == "done"}
    assert 3 <= len(finished) and finished <= folders and len(folders) < total
    for name in folders:  # what is there is whole: no folder half-written
        assert sorted(os.listdir(dest / "C" / name)) == sorted(os.listdir(reference / "C" / name))
    ref = snapshot(reference)
    assert snapshot(dest).items() <= ref.items()
    assert main(["extract", str(src), str(dest), "--workers", "1"]) == 0
    assert snapshot(dest) == ref


@pytest.mark.slow
def test_a_killed_extract_worker_is_recorded_and_a_rerun_completes(extract_job, tmp_path):
    src, reference, total = extract_job
    dest = tmp_path / "frames"
    proc = _cli_process(["extract", str(src), str(dest), "--workers", "1"])
    busy = _wait_for_work_in_progress(dest / "C", proc)
    os.kill(int(busy.rsplit("-", 1)[1]), signal.SIGKILL)  # the temporary folder is named after its worker
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    failures = [json.loads(x) for x in (dest / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and "SIGKILL" in failures[0]["reason"]
    assert not (dest / Path(failures[0]["video"]).with_suffix("")).exists() and not list(dest.rglob("*.tmp-*"))
    for folder in (dest / "C").iterdir():
        assert sorted(os.listdir(folder)) == sorted(os.listdir(reference / "C" / folder.name))
    assert snapshot(dest).items() <= snapshot(reference).items()
    assert main(["extract", str(src), str(dest), "--workers", "1"]) == 0
    assert snapshot(dest) == snapshot(reference)


TRAIN = ["--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--size", "32", "--frames", "3",
         "--bs", "4", "--workers", "0"]


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_training_killed_after_epoch_k_resumes_through_the_cli_without_redoing_epochs(tmp_path, capsys):
    from vidseq.datasets.synth import SynthConfig, make_synth

    make_synth(tmp_path / "data", SynthConfig(classes=2, groups=9, clips=2, frames=8, width=32, height=32))
    run = tmp_path / "run"
    args = ["train", str(tmp_path / "data" / "videos"), *TRAIN, "--epochs", "4", "--out", str(run)]
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    state = run / "checkpoint" / "state.json"
    try:
        wait_for_an_epoch(proc, run)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # as an out-of-memory killer or a preempted node would
        proc.communicate()
    k = json.loads(state.read_text())["epochs_done"]
    assert 1 <= k < 4
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, k + 1))  # every epoch the checkpoint counts is on record
    # mark the finished epochs: an epoch done again would write its row anew
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{**r, "train_loss": "-1"} for r in rows])
    assert main([*args, "--resume"]) == 0
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert [r["train_loss"] == "-1" for r in rows] == [e <= k for e in (1, 2, 3, 4)]
    assert json.loads(state.read_text())["epochs_done"] == 4
    assert load_run(run).classes == ["MoveLeft", "MoveRight"]


def test_ctrl_c_gives_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    import vidseq.datasets
    import vidseq.train

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vidseq.datasets, "summarize", interrupt)
    assert main(["info", "anything"]) == 130
    assert capsys.readouterr().err == "vidseq: interrupted\n"
    monkeypatch.setattr(vidseq.train, "train", interrupt)
    assert main(["train", "data", "--out", "runs/x"]) == 130
    assert stderr_lines(capsys) == ["vidseq: interrupted"]  # no epoch completed: nothing to resume

    def interrupt_after_an_epoch(*args, **kwargs):
        (tmp_path / "runs" / "y" / "checkpoint").mkdir(parents=True)
        (tmp_path / "runs" / "y" / "checkpoint" / "state.json").write_text('{"epochs_done": 1}')
        raise KeyboardInterrupt

    monkeypatch.setattr(vidseq.train, "train", interrupt_after_an_epoch)
    assert main(["train", "data", "--out", "runs/y"]) == 130
    assert stderr_lines(capsys) == ["vidseq: interrupted; continue with: vidseq train data --out runs/y --resume"]

    def abort(*args, **kwargs):
        raise typer.Abort()

    monkeypatch.setattr(vidseq.datasets, "load_items", abort)
    assert main(["info", "anything"]) == 130
    assert capsys.readouterr().err == "vidseq: interrupted\n"


# --------------------------------------------------------------------------------------- resource limits


def _jpeg_declaring(path: Path, width: int, height: int) -> Path:
    """A small real JPEG whose header (SOF) is changed to declare `width` x `height`."""
    Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def _png_declaring(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bombs_in_frame_folders_are_refused_and_left_out(tmp_path, capsys, recwarn):
    folders = []
    for cls in ("A", "B"):
        for g in (1, 2, 3):
            folder = tmp_path / cls / f"v_{cls}_g{g:02d}_c01"
            folder.mkdir(parents=True)
            for i in range(6):
                Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(folder / f"{i}.jpg")
            folders.append(folder)
    jpeg = _jpeg_declaring(tmp_path / "A" / "v_A_g02_c01" / "2.jpg", 30000, 30000)
    png = _png_declaring(tmp_path / "B" / "v_B_g03_c01" / "4.png", 30000, 30000)
    (tmp_path / "B" / "v_B_g03_c01" / "4.jpg").unlink()

    tfm = ClipTfm(6, 16)
    tracemalloc.start()
    try:
        for folder, bomb in ((jpeg.parent, jpeg), (png.parent, png)):
            with pytest.raises(VideoError) as e:
                tfm.load(folder)
            one_line_naming(str(e.value), bomb)
            assert "30000x30000" in str(e.value) or "decompression bomb" in str(e.value)
        assert tracemalloc.get_traced_memory()[1] < 16e6  # the 2.7 GB picture was never allocated
    finally:
        tracemalloc.stop()

    val = [i for i, f in enumerate(folders) if "_g01_" in f.name]
    dls = get_action_dataloaders(folders, bs=2, image_size=16, seq_len=6, val_idxs=val, workers=0, drop_last=False)
    for _ in range(2):  # two epochs: each bad item is reported once, when first met
        assert sum(len(y) for _, y in dls.train) == 4
    assert stderr_lines(capsys) == []
    reports = data_warnings(recwarn)
    assert len(reports) == 2 and all("leaving out an unreadable item" in line for line in reports)
    assert any(str(jpeg) in line for line in reports) and any(str(png) in line for line in reports)


def test_declared_size_above_max_pixels_is_refused_before_decoding(make_video, monkeypatch):
    path = make_video("v.avi", n=4)  # 64x48
    decoded = []
    real = vidseq.io.video._decode

    def counting(*args):
        for frame in real(*args):
            decoded.append(frame)
            yield frame

    monkeypatch.setattr(vidseq.io.video, "_decode", counting)
    for call in (probe, read_frames, lambda p, **kw: list(FrameReader(p, **kw).rgb())):
        with pytest.raises(VideoError, match=f"exceeds the limit of {64 * 48 - 1} pixels"):
            call(path, max_pixels=64 * 48 - 1)
    assert decoded == []
    assert read_frames(path, max_pixels=64 * 48).shape == (4, 48, 64, 3)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """2,000 frames of 160x120: held as RGB they would take 115 MB."""
    return _gradient_video(tmp_path_factory.mktemp("long") / "long.avi", 2000, 160, 120)


PEAK_RSS = """
import sys
from vidseq.io import probe, read_frames

def peak_mb():  # this program's own high-water mark (getrusage's carries over the parent's through exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

path, which = sys.argv[1], sys.argv[2]
n = probe(path).frames
read_frames(path, [0, 1])
before = peak_mb()
clip = read_frames(path, [0, n // 2, n - 1] if which == "three" else None)
print(n, len(clip), peak_mb() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc")
def test_reading_a_long_video_holds_only_the_frames_asked_for(long_video):
    def grew(which: str) -> tuple[int, int, float]:
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(long_video), which], capture_output=True,
                             text=True, timeout=100)
        n, got, mb = out.stdout.split()
        return int(n), int(got), float(mb)

    n, got, mb = grew("three")
    assert (n, got) == (2000, 3)
    assert mb < 32, f"decoding 2,000 frames to keep 3 grew the process by {mb:.0f} MB"
    assert grew("all")[2] > 100  # the measure does see frames held: all 2,000 take 115 MB


def test_predict_on_a_long_video_asks_only_for_the_frames_of_its_clips(loaded_run, long_video, monkeypatch):
    asked = []
    real = vidseq.clips.sources.read_frames

    def spy(path, indices=None, size=None, **kw):
        asked.append(None if indices is None else len(indices))
        return real(path, indices, size, **kw)

    monkeypatch.setattr(vidseq.clips.sources, "read_frames", spy)
    [pred] = predict_files(loaded_run, [long_video], clips=2, device="cpu")
    assert pred.error is None and asked == [3, 3]  # two clips of three frames, out of 2,000


# ------------------------------------------------------------------------------------ archives and models


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _renamed_rar(src: Path, old: str, new: str, out: Path) -> Path:
    """`src` with member `old` renamed to `new` (same length) and its header checksum fixed."""
    import rarfile

    assert len(old) == len(new)
    data = bytearray(src.read_bytes())
    off = next(i for i in rarfile.RarFile(str(src)).infolist() if i.filename == old).header_offset
    if data.startswith(b"Rar!\x1a\x07\x01\x00"):  # RAR5: CRC32 of the header after its own 4 bytes
        size, start = _vint(data, off + 4)
        at = data.index(old.encode(), off, start + size)
        data[at: at + len(old)] = new.encode()
        data[off: off + 4] = struct.pack("<I", zlib.crc32(data[off + 4: start + size]))
    else:  # RAR3: low 16 bits of the CRC32 of the header after its 2 bytes; names with backslashes
        size = struct.unpack_from("<H", data, off + 5)[0]
        o, n = old.replace("/", "\\").encode(), new.replace("/", "\\").encode()
        at = data.index(o, off, off + size)
        data[at: at + len(o)] = n
        data[off: off + 2] = struct.pack("<H", zlib.crc32(data[off + 2: off + size]) & 0xFFFF)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("version", ["rar3", "rar5"])
@pytest.mark.parametrize("name,why", [("sb/../../file1.txt", "climbs out with '..'"),
                                      ("/ub/dir1/file1.txt", "has an absolute path")])
def test_rar_members_climbing_out_or_absolute_are_refused(shared_dir, tmp_path, capsys, version, name, why):
    from vidseq.datasets.archive import unpack

    fixture = shared_dir / "fixtures" / "rar" / f"{version}-subdirs.rar"
    if not fixture.is_file():
        pytest.skip("no RAR fixtures in ../shared")
    evil = _renamed_rar(fixture, "sub/dir1/file1.txt", name, tmp_path / "evil.rar")
    (tmp_path / "w").mkdir()
    with pytest.raises(UnsafeArchiveError, match=re.escape(why)):
        unpack(evil, tmp_path / "w" / "dest")
    assert main(["unpack", str(evil), str(tmp_path / "w" / "dest")]) == 2
    [line] = stderr_lines(capsys)
    assert "unsafe archive refused" in line
    assert not list(tmp_path.rglob("file1.txt")) and not list((tmp_path / "w").iterdir())


def test_models_load_from_safetensors_and_json_only(run_dir, table, tmp_path, monkeypatch, capsys):
    import pickle

    good = table["one-frame.avi"]
    fake = tmp_path / "pickled"  # a pickle under the expected name
    shutil.copytree(run_dir, fake)
    torch.save({"weight": torch.zeros(2)}, fake / "model.safetensors")
    shutil.copy(fake / "model.safetensors", fake / "model.safetensors.pth")
    mismatched = tmp_path / "mismatched"
    shutil.copytree(run_dir, mismatched)
    cfg = json.loads((mismatched / "config.json").read_text())
    cfg["model"]["n_classes"] = 5
    (mismatched / "config.json").write_text(json.dumps(cfg))

    def unpickling(*args, **kwargs):
        raise AssertionError("vidseq unpickled a file")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, unpickling)
    assert load_run(run_dir).classes == ["A", "B"]
    with pytest.raises(ModelError, match="safetensors"):
        load_run(fake)
    with pytest.raises(ModelError, match="refusing to load a pickle"):
        load_run(run_dir, weights=fake / "model.safetensors.pth")
    for run, reason in ((fake, "not a readable safetensors file"), (mismatched, "do not fit the model")):
        assert main(["predict", str(run), str(good)]) == 2
        [line] = stderr_lines(capsys)
        assert reason in line and str(run) in line


# ------------------------------------------------------------------------------------- the command line


COMMANDS = typer.main.get_command(app).commands


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_documents_its_options(name, capsys):
    command = COMMANDS[name]
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert command.help and " ".join(command.help.split("\n")[0].split()) in " ".join(out.split())
    for param in command.params:
        if param.name == "help":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{name}: {param.name} is not documented"
        names = param.opts + param.secondary_opts if param.param_type_name == "option" else [param.name]
        for opt in names:
            assert opt in out, f"{name} --help does not show {opt}"


def _numeric_options(name: str) -> set[str]:
    """Names of the parameters of command `name` that take a number."""
    info = next(c for c in app.registered_commands if (c.name or c.callback.__name__.replace("_", "-")) == name)
    hints = typing.get_type_hints(info.callback)
    return {k for k, t in hints.items() if t in (int, float) or set(typing.get_args(t)) & {int, float}}


def _usage_errors() -> list[list[str]]:
    cases = []
    for name, command in sorted(COMMANDS.items()):
        required = ["x" for p in command.params if p.param_type_name == "argument" and p.required]
        cases.append([name, *required, "--no-such-option"])
        if required:
            cases.append([name])
        numeric = _numeric_options(name)
        for p in command.params:
            if p.param_type_name == "option" and p.name in numeric:
                cases.append([name, *required, p.opts[0], "not-a-number"])
    return cases


@pytest.mark.parametrize("args", _usage_errors(), ids=" ".join)
def test_every_usage_error_gives_one_line_and_exit_2(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    [line] = stderr_lines(capsys)
    assert "error" in line and args[0] in line
    assert not list(tmp_path.iterdir())  # nothing ran


def test_data_warnings_from_dataloader_workers_reach_the_command_line_as_one_line(pool, tmp_path):
    data = tmp_path / "data"
    for path in pool:
        (data / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, data / path.parent.name / path.name)
    bad = data / "A" / "v_A_g02_c02.avi"
    _zeroed_after(b"movi")(bad)  # its header promises 12 frames: it is left out only when a worker decodes it
    args = ["train", str(data), "--model", "frame_avg", "--backbone", "mobilenet_v3_small", "--no-pretrained",
            "--size", "24", "--frames", "3", "--bs", "2", "--epochs", "1", "--workers", "2",
            "--out", str(tmp_path / "r")]
    done = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "DataWarning" not in done.stderr, done.stderr
    reports = [line for line in done.stderr.splitlines() if str(bad) in line]
    assert reports and all(line.startswith("vidseq: warning: leaving out an unreadable item (") for line in reports)
