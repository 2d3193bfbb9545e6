"""vidseq.extract and `vidseq extract`: layout, atomicity, resume, shards, failures, crashes and hangs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg

from vidseq.cli import main
from vidseq.errors import DatasetError
from vidseq.extract import (
    extract_dataset,
    extract_video,
    find_videos,
    frame_files,
    in_shard,
    parse_shard,
    read_manifest,
)
from vidseq.io import read_frames, write_video


def frames_of(n: int, width: int = 48, height: int = 32, *, gray: bool = False) -> list[np.ndarray]:
    """Smooth gradients with a soft moving blob (lossy codecs keep them well)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(n):
        cx = width * (0.2 + 0.6 * t / max(1, n - 1))
        blob = 110 * np.exp(-((xx - cx) ** 2 + (yy - height / 2) ** 2) / (2 * (width / 7) ** 2))
        f = np.clip(np.stack([40 + 100 * xx / width + blob, 60 + 120 * yy / height, 170 - 70 * xx / width], -1),
                    0, 255).astype(np.uint8)
        out.append(f[..., 1] if gray else f)
    return out


def pyav_count(path: Path) -> int:
    """Frames PyAV decodes from `path`, up to the first decoding error (a truncated file)."""
    n = 0
    with av.open(str(path)) as c:
        try:
            for _ in c.decode(video=0):
                n += 1
        except av.FFmpegError:
            pass
    return n


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


GOOD = {  # relative path -> (frames, write_video arguments)
    "Walk/mpeg4.avi": (10, {"codec": "mpeg4"}),
    "Walk/h264.mp4": (10, {"codec": "libx264"}),
    "Walk/vp9.webm": (6, {"codec": "libvpx-vp9"}),
    "Walk/mjpeg.mkv": (6, {"codec": "mjpeg"}),
    "Run/gray.avi": (5, {"codec": "mpeg4", "gray": True}),
    "Run/odd.mkv": (3, {"codec": "ffv1", "size": (321, 239)}),
    "Run/one.avi": (1, {"codec": "mpeg4"}),
    "Run/three.mp4": (3, {"codec": "libx264"}),
    "Run/rotated.mp4": (4, {"codec": "libx264", "rotation": 90}),
    "deep/a/b/nested.mov": (4, {"codec": "mpeg4"}),
}
BROKEN = ["Walk/empty.avi", "Walk/text.avi", "Run/unreadable.mp4"]
PARTIAL = "Run/cut.avi"


def make_tree(root: Path) -> Path:
    """A folder tree of good, truncated and broken videos, as `vidseq extract` meets them."""
    for rel, (n, kw) in GOOD.items():
        kw = dict(kw)
        w, h = kw.pop("size", (48, 32))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, frames_of(n, w, h, gray=kw.pop("gray", False)), **kw)
    (root / "Walk/empty.avi").write_bytes(b"")
    (root / "Walk/text.avi").write_text("not a video at all\n" * 50)
    whole = write_video(root / "whole.mp4", frames_of(10), codec="libx264")
    (root / "Run/unreadable.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # no index
    whole.unlink()
    whole = write_video(root / "whole.avi", frames_of(30), codec="mjpeg")
    (root / PARTIAL).write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # first ~15 frames readable
    whole.unlink()
    (root / "Walk/notes.txt").write_text("not a video extension: ignored")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("videos"))


def folder_of(rel: str) -> str:
    return str(Path(rel).with_suffix(""))


def snapshot(dest: Path) -> dict[str, bytes]:
    """Every JPEG under `dest`, by relative path."""
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.jpg"))}


def manifest_rows(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["video"]: row for row in csv.DictReader(f)}


# --------------------------------------------------------------------------------------------------- layout


def test_extract_dataset_layout_manifest_and_failures(tree, tmp_path):
    dest = tmp_path / "frames"
    s = extract_dataset(tree, dest, workers=2, quality=90)
    assert (s.videos, s.done, s.partial, s.failed, s.skipped) == (len(GOOD) + len(BROKEN) + 1, len(GOOD), 1, 3, 0)
    assert s.ok and s.manifest == dest / "manifest.csv" and s.failures == dest / "failures.jsonl"

    for rel in GOOD:
        files = frame_files(dest / folder_of(rel))
        n = pyav_count(tree / rel)
        assert [p.name for p in files] == [f"{i}.jpg" for i in range(n)], rel
    assert s.frames == sum(pyav_count(tree / r) for r in GOOD) + len(frame_files(dest / folder_of(PARTIAL)))
    # pictures are the video's, in RGB, sized and rotated as displayed
    assert simplejpeg.decode_jpeg((dest / "Run/odd/0.jpg").read_bytes()).shape == (239, 321, 3)
    assert simplejpeg.decode_jpeg((dest / "Run/rotated/0.jpg").read_bytes()).shape == (48, 32, 3)
    gray = simplejpeg.decode_jpeg((dest / "Run/gray/2.jpg").read_bytes())
    assert gray.shape == (32, 48, 3)
    for rel in ("Walk/mpeg4.avi", "Walk/mjpeg.mkv", "Run/rotated.mp4"):
        ref = read_frames(tree / rel)
        got = np.stack([simplejpeg.decode_jpeg(p.read_bytes()) for p in frame_files(dest / folder_of(rel))])
        assert psnr(got, ref) > 35, rel

    rows = manifest_rows(dest / "manifest.csv")
    assert list(rows) == sorted(rows) and set(rows) == set(GOOD) | set(BROKEN) | {PARTIAL}
    row = rows["Walk/mpeg4.avi"]
    assert row == {"video": "Walk/mpeg4.avi", "label": "Walk", "frames": "10", "fps": "25", "width": "48",
                   "height": "32", "status": "done", "folder": "Walk/mpeg4", "reason": ""}
    assert rows["deep/a/b/nested.mov"]["label"] == "b" and (dest / "deep/a/b/nested/0.jpg").is_file()
    assert rows["Run/rotated.mp4"]["width"] == "32"
    assert rows[PARTIAL]["status"] == "partial" and 5 <= int(rows[PARTIAL]["frames"]) < 30
    assert int(rows[PARTIAL]["frames"]) == pyav_count(tree / PARTIAL) == len(frame_files(dest / "Run/cut"))
    for rel in BROKEN:
        assert rows[rel]["status"] == "failed" and rows[rel]["frames"] == "0"
        assert not (dest / folder_of(rel)).exists()

    failures = [json.loads(line) for line in (dest / "failures.jsonl").read_text().splitlines()]
    reasons = {f["video"]: f["reason"] for f in failures}
    assert set(reasons) == set(BROKEN) | {PARTIAL}
    assert {f["status"] for f in failures if f["video"] != PARTIAL} == {"failed"}
    assert "empty file" in reasons["Walk/empty.avi"] and "not a readable video" in reasons["Walk/text.avi"]
    assert "of the 30 the container declares" in reasons[PARTIAL] or "of the 30 frames" in reasons[PARTIAL]
    assert rows[PARTIAL]["reason"] == reasons[PARTIAL] and rows["Walk/empty.avi"]["reason"]
    assert not list(dest.rglob("*.tmp-*")) and [r.video for r in read_manifest(dest)] == sorted(rows)


def test_extract_video_replaces_a_folder_atomically(tmp_path):
    video = write_video(tmp_path / "v.avi", frames_of(12, 64, 48), codec="mpeg4")
    out = tmp_path / "out" / "v"
    out.mkdir(parents=True)
    (out / "99.jpg").write_bytes(b"stale")
    rec = extract_video(video, out, size=16, quality=95)
    assert (rec.status, rec.frames, rec.width, rec.height) == ("done", 12, 21, 16)  # short side 16
    assert [p.name for p in frame_files(out)] == [f"{i}.jpg" for i in range(12)]
    assert sorted(os.listdir(tmp_path / "out")) == ["v"]  # no temporary or old folder left
    with pytest.raises(ValueError, match="quality"):
        extract_video(video, out, quality=0)


def test_frame_files_are_in_numeric_order(tmp_path):
    for i in (10, 2, 0, 1, 11, 9):
        (tmp_path / f"{i}.jpg").write_bytes(b"x")
    (tmp_path / "cover.jpg").write_bytes(b"x")
    assert [p.name for p in frame_files(tmp_path)] == ["0.jpg", "1.jpg", "2.jpg", "9.jpg", "10.jpg", "11.jpg"]


# ------------------------------------------------------------------------------------------ resume, rerun


def test_rerun_skips_complete_videos_and_overwrite_redoes(tree, tmp_path):
    dest = tmp_path / "frames"
    extract_dataset(tree, dest, workers=2)
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*.jpg")}
    again = extract_dataset(tree, dest, workers=2)
    assert (again.done, again.partial, again.skipped, again.failed, again.frames) == (0, 0, len(GOOD) + 1, 3, 0)
    assert again.ok  # the first run's frames are there to use; only the broken files fail again
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.jpg")} == before
    assert manifest_rows(dest / "manifest.csv")[PARTIAL]["status"] == "partial"  # kept from the first run
    redo = extract_dataset(tree, dest, workers=2, overwrite=True)
    assert (redo.done, redo.partial, redo.skipped) == (len(GOOD), 1, 0)


def test_leftovers_of_a_killed_run_are_redone(tree, tmp_path):
    dest = tmp_path / "frames"
    reference = tmp_path / "reference"
    extract_dataset(tree, reference, workers=2)
    extract_dataset(tree, dest, workers=2)
    # as a run killed mid-way leaves things: a half-written folder, a folder displaced by an overwrite,
    # the final folder not there yet, and a manifest whose last row was cut short
    for cls, stem in (("Walk", "mpeg4"), ("Run", "gray")):
        os.rename(dest / cls / stem, dest / cls / f".{stem}.tmp-4242")
        (dest / cls / f".{stem}.tmp-4242" / "7.jpg").write_bytes(b"half")
    os.rename(dest / "Run/three", dest / "Run/.three.old-77")
    text = (dest / "manifest.csv").read_text()
    (dest / "manifest.csv").write_text(text + "Walk/zzz.avi,Walk,4,25,48,3")
    s = extract_dataset(tree, dest, workers=2)
    assert (s.done, s.skipped) == (3, len(GOOD) + 1 - 3)
    assert snapshot(dest) == snapshot(reference)
    assert not list(dest.rglob("*.tmp-*")) and not list(dest.rglob("*.old-*"))
    assert "zzz" not in (dest / "manifest.csv").read_text()


def slow_hook(video: Path) -> None:
    time.sleep(0.3)


def test_run_killed_midway_and_rerun_gives_the_complete_set(tree, tmp_path):
    dest, reference = tmp_path / "frames", tmp_path / "reference"
    extract_dataset(tree, reference, workers=2)
    code = ("import sys, test_extract; from vidseq.extract import extract_dataset; "
            "extract_dataset(sys.argv[1], sys.argv[2], workers=1, worker_hook=test_extract.slow_hook)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent)] + sys.path))
    proc = subprocess.Popen([sys.executable, "-c", code, str(tree), str(dest)], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if (dest / "manifest.csv").is_file() and len((dest / "manifest.csv").read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job, workers too, as a scheduler would
        proc.wait()
    done_before = [r for r in read_manifest(dest) if r.status != "failed"]
    assert 1 <= len(done_before) < len(GOOD) + 1
    s = extract_dataset(tree, dest, workers=2)
    assert s.skipped >= len(done_before) and s.done + s.partial + s.skipped == len(GOOD) + 1
    assert snapshot(dest) == snapshot(reference)
    assert not list(dest.rglob("*.tmp-*"))


# ------------------------------------------------------------------------------------------------- shards


def test_shards_are_disjoint_cover_everything_and_merge(tree, tmp_path):
    dest = tmp_path / "frames"
    names = [rel for _, rel in find_videos(tree)]
    seen: list[str] = []
    for i in (1, 2, 3):
        s = extract_dataset(tree, dest, workers=1, shard=(i, 3))
        assert s.manifest == dest / f"manifest-shard-{i}-of-3.csv"
        assert s.failures == dest / f"failures-shard-{i}-of-3.jsonl"
        rows = manifest_rows(s.manifest)
        assert set(rows) == {n for n in names if in_shard(n, (i, 3))}
        seen += list(rows)
    assert sorted(seen) == sorted(names)  # disjoint (no repeats) and covering
    assert not (dest / "manifest.csv").exists()
    assert [r.video for r in read_manifest(dest)] == sorted(names)
    merged = extract_dataset(tree, dest, workers=1)  # finds every folder complete; writes manifest.csv
    assert merged.done == 0 and merged.skipped == len(GOOD) + 1
    assert set(manifest_rows(dest / "manifest.csv")) == set(names)
    assert manifest_rows(dest / "manifest.csv")[PARTIAL]["status"] == "partial"


def test_parse_shard():
    assert parse_shard("2/5") == (2, 5) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/4", "5/4", "3", "a/b", "1/0", "-1/3"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    names = [f"C{i % 7}/v_{i}.avi" for i in range(300)]
    sizes = [sum(in_shard(n, (i, 4)) for n in names) for i in (1, 2, 3, 4)]
    assert sum(sizes) == 300 and min(sizes) > 40  # every name in exactly one shard, roughly even


# --------------------------------------------------------------------------------------- crashes and hangs


def fault_hook(video: Path) -> None:
    """Make a worker fail the way decoders do: exit, crash with a signal, or hang."""
    if video.stem == "crash":
        os._exit(3)
    if video.stem == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if video.stem == "hang":
        time.sleep(120)


def test_dead_and_hanging_workers_are_recorded_and_the_run_goes_on(tmp_path):
    src = tmp_path / "src"
    (src / "C").mkdir(parents=True)
    for name in ("a", "crash", "b", "segv", "c", "hang", "d"):
        write_video(src / "C" / f"{name}.avi", frames_of(3), codec="mpeg4")
    dest = tmp_path / "frames"
    start = time.monotonic()
    s = extract_dataset(src, dest, workers=2, timeout=3, worker_hook=fault_hook)
    assert time.monotonic() - start < 30
    assert (s.done, s.failed) == (4, 3) and s.ok
    failures = [json.loads(x) for x in (dest / "failures.jsonl").read_text().splitlines()]
    reasons = {f["video"]: f["reason"] for f in failures}
    assert "exit code 3" in reasons["C/crash.avi"]
    assert "SIGSEGV" in reasons["C/segv.avi"]
    assert "timed out after 3 s" in reasons["C/hang.avi"]
    assert sorted(os.listdir(dest / "C")) == ["a", "b", "c", "d"]  # nothing half-written left


# ----------------------------------------------------------------------------------- other sources, inputs


def test_single_video_and_split_lists(tiny_synth, tmp_path, capsys):
    tiny_synth = Path(shutil.copytree(tiny_synth, tmp_path / "synth"))  # HMDB lists go into a copy of the shared set
    video = tiny_synth / "videos" / "MoveLeft" / "v_MoveLeft_g01_c01.avi"
    assert main(["extract", str(video), str(tmp_path / "one"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "extracted 1 video, skipped 0 complete" in out
    assert f"frames: {tmp_path / 'one'}/v_MoveLeft_g01_c01/<i>.jpg;" in out  # before: one/<Class>/<video>/...
    assert len(frame_files(tmp_path / "one" / "v_MoveLeft_g01_c01")) == 8
    assert manifest_rows(tmp_path / "one" / "manifest.csv")["v_MoveLeft_g01_c01.avi"]["label"] == "MoveLeft"

    hmdb = tiny_synth / "videos" / "testTrainMulti_7030_splits"
    hmdb.mkdir(exist_ok=True)
    (hmdb / "MoveLeft_test_split1.txt").write_text("v_MoveLeft_g01_c01.avi 1\n")
    s = extract_dataset(tiny_synth / "videos", tmp_path / "all", workers=2, size=16)
    assert s.done == 16
    lists = tmp_path / "all" / "ucfTrainTestlist"
    assert (lists / "trainlist01.txt").read_text() == (tiny_synth / "ucfTrainTestlist" / "trainlist01.txt").read_text()
    assert (tmp_path / "all" / "testTrainMulti_7030_splits" / "MoveLeft_test_split1.txt").is_file()
    assert sorted(p.name for p in s.split_lists) == ["testTrainMulti_7030_splits", "ucfTrainTestlist"]


def test_same_stem_twice_is_a_recorded_failure(tmp_path):
    src = tmp_path / "src"
    (src / "C").mkdir(parents=True)
    write_video(src / "C" / "x.avi", frames_of(3), codec="mpeg4")
    write_video(src / "C" / "x.mp4", frames_of(4), codec="libx264")
    s = extract_dataset(src, tmp_path / "frames", workers=1)
    assert (s.done, s.failed) == (1, 1)
    assert len(frame_files(tmp_path / "frames" / "C" / "x")) == 3
    assert "taken by C/x.avi" in (tmp_path / "frames" / "failures.jsonl").read_text()


def test_bad_arguments(tmp_path, tree):
    with pytest.raises(DatasetError, match="no such file"):
        extract_dataset(tmp_path / "missing", tmp_path / "d")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no video files"):
        extract_dataset(tmp_path / "empty", tmp_path / "d")
    with pytest.raises(ValueError):
        extract_dataset(tree, tmp_path / "d", quality=101)
    with pytest.raises(ValueError):
        extract_dataset(tree, tmp_path / "d", shard=(4, 3))


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_extract(tree, tmp_path, capsys):
    dest = tmp_path / "frames"
    assert main(["extract", str(tree), str(dest), "--size", "16", "--quality", "92", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert f"extracted {len(GOOD) + 1} videos (1 partial)" in out and "3 failed" in out and "manifest.csv" in out
    assert min(simplejpeg.decode_jpeg((dest / "Walk/mpeg4/0.jpg").read_bytes()).shape[:2]) == 16
    assert main(["extract", str(tree), str(dest), "--workers", "2"]) == 0  # only broken files left to do
    assert "3 failed" in capsys.readouterr().out  # reported, but the frames of the first run are there to use
    assert main(["extract", str(tree), str(dest), "--shard", "1/2", "--overwrite", "--workers", "1"]) == 0
    assert (dest / "manifest-shard-1-of-2.csv").is_file()


def test_cli_nothing_extractable_exits_1(tmp_path, capsys):
    (tmp_path / "src" / "C").mkdir(parents=True)
    (tmp_path / "src" / "C" / "broken.avi").write_bytes(b"not a video at all")
    args = ["extract", str(tmp_path / "src"), str(tmp_path / "frames"), "--workers", "1"]
    assert main(args) == 1
    assert main(args) == 1  # and again: still nothing to use
    assert "nothing could be extracted" in capsys.readouterr().err


def test_rerun_redoes_folders_whose_frames_were_removed_or_have_another_size(tmp_path):
    (tmp_path / "src" / "C").mkdir(parents=True)
    for name in ("a", "b", "c"):
        write_video(tmp_path / "src" / "C" / f"{name}.avi", frames_of(4), codec="mpeg4")
    dest = tmp_path / "frames"
    assert extract_dataset(tmp_path / "src", dest, workers=1, size=16).done == 3
    for f in (dest / "C" / "a").iterdir():
        f.unlink()  # all of a's frames gone
    (dest / "C" / "b" / "3.jpg").unlink()  # one of b's
    again = extract_dataset(tmp_path / "src", dest, workers=1, size=16)
    assert (again.done, again.skipped) == (2, 1)
    assert len(frame_files(dest / "C" / "a")) == len(frame_files(dest / "C" / "b")) == 4
    bigger = extract_dataset(tmp_path / "src", dest, workers=1, size=24)  # another size: every video redone
    assert (bigger.done, bigger.skipped) == (3, 0)
    assert min(simplejpeg.decode_jpeg((dest / "C" / "c" / "0.jpg").read_bytes()).shape[:2]) == 24
    assert extract_dataset(tmp_path / "src", dest, workers=1).skipped == 3  # no --size: any size will do


def test_name_clashes_are_settled_the_same_way_in_every_shard(tmp_path):
    (tmp_path / "src" / "C").mkdir(parents=True)
    for name in ("v.avi", "v.mp4", "w.avi", "x.avi"):
        write_video(tmp_path / "src" / "C" / name, frames_of(3), codec="mpeg4")
    dest = tmp_path / "frames"
    runs = [extract_dataset(tmp_path / "src", dest, workers=1, shard=(i, 4)) for i in (1, 2, 3, 4)]
    failed = {r.video: r.reason for run in runs for r in run.records if r.status == "failed"}
    assert list(failed) == ["C/v.mp4"] and "taken by C/v.avi" in failed["C/v.mp4"]
    merged = extract_dataset(tmp_path / "src", dest, workers=1)
    assert (merged.skipped, merged.failed) == (3, 1)


def test_cli_refuses_frames_inside_the_videos_folder(tmp_path, capsys):
    (tmp_path / "src" / "C").mkdir(parents=True)
    write_video(tmp_path / "src" / "C" / "v.avi", frames_of(3), codec="mpeg4")
    for dest in (tmp_path / "src", tmp_path / "src" / "frames"):
        assert main(["extract", str(tmp_path / "src"), str(dest)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "outside the videos' folder" in err
    (tmp_path / "afile").write_text("x")
    assert main(["extract", str(tmp_path / "src"), str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_cli_everything_done_exits_0(tmp_path, capsys):
    (tmp_path / "src" / "C").mkdir(parents=True)
    video = write_video(tmp_path / "src" / "C" / "v.avi", frames_of(3), codec="mpeg4")
    args = ["extract", str(video.parent.parent), str(tmp_path / "frames"), "--workers", "1"]
    assert main(args) == 0
    assert main(args) == 0
    assert "skipped 1" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["extract", "MISSING", "out"],
    ["extract", "SRC", "out", "--shard", "5/4"],
    ["extract", "SRC", "out", "--shard", "x"],
    ["extract", "SRC", "out", "--quality", "0"],
    ["extract", "SRC", "out", "--workers", "0"],
    ["extract", "SRC"],
])
def test_cli_usage_errors_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "SRC" / "C").mkdir(parents=True)
    write_video(tmp_path / "SRC" / "C" / "v.avi", frames_of(2), codec="mpeg4")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape", [(239, 321), (240, 321), (239, 320)])
def test_odd_sized_planes_encode_the_same_whatever_lies_after_them(shape):
    from vidseq.extract.video import _even_padded

    h, w = shape
    rng = np.random.default_rng(0)
    y0 = rng.integers(0, 255, (h, w), dtype=np.uint8)
    u = rng.integers(0, 255, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
    jpegs = set()
    for junk in (0, 255):
        buf = np.full(h * w + 4 * w, junk, np.uint8)  # the plane, then other memory
        y = buf[: h * w].reshape(h, w)
        y[:] = y0
        jpegs.add(simplejpeg.encode_jpeg_yuv_planes(_even_padded(y), u, u, quality=90))
    assert len(jpegs) == 1
    assert simplejpeg.decode_jpeg(jpegs.pop()).shape == (h, w, 3)


def test_workers_start_by_spawn_beside_other_threads(tmp_path):
    import threading

    from vidseq.extract.pool import _start_method

    src = tmp_path / "src"
    (src / "C").mkdir(parents=True)
    write_video(src / "C" / "v.avi", frames_of(3), codec="mpeg4")
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert _start_method() == "spawn"  # forking beside a live thread can deadlock the child
        s = extract_dataset(src, tmp_path / "frames", workers=1, worker_hook=slow_hook)
    finally:
        stop.set()
        thread.join()
    assert s.done == 1 and len(frame_files(tmp_path / "frames" / "C" / "v")) == 3


def _dies_at_start(conn, *args):
    os._exit(1)


def test_workers_that_cannot_start_stop_the_run_without_blaming_videos(tmp_path, monkeypatch):
    import vidseq.extract.pool as extract
    from vidseq.errors import VidseqError

    src = tmp_path / "src"
    (src / "C").mkdir(parents=True)
    write_video(src / "C" / "v.avi", frames_of(2), codec="mpeg4")
    monkeypatch.setattr(extract, "_start_method", lambda: "fork")  # the patched target reaches the child
    monkeypatch.setattr(extract, "_worker_main", _dies_at_start)
    with pytest.raises(VidseqError, match="worker processes exit as they start"):
        extract_dataset(src, tmp_path / "frames", workers=2)
    assert (tmp_path / "frames" / "failures.jsonl").read_text() == ""  # no video was blamed
