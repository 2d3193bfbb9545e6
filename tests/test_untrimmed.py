"""Untrimmed video: segments as items, Kinetics CSVs, timelines over long videos, synth --long."""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from vidseq.cli import main
from vidseq.clips.sources import FILES
from vidseq.datasets import load_items
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.datasets.synth_long import LongConfig, make_long_synth, plan_video
from vidseq.errors import DatasetError, VideoError
from vidseq.evaluate import view_probs
from vidseq.io import read_frames, video_index, write_video
from vidseq.io.segment import parse_segment, segment_frames, segment_path
from vidseq.runs import load_run
from vidseq.timeline import Segment, best_iou, merge_segments, predict_timeline, temporal_iou
from vidseq.timeline.windows import (
    Assembler,
    cell_bounds,
    plan_windows,
    smooth_labels,
    smooth_probs,
    window_offsets,
)

BASE = SynthConfig(classes=2, groups=16, clips=2, frames=16, width=32, height=32)  # MoveLeft, MoveRight


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    return make_long_synth(root, LongConfig(base=BASE, videos=2, segments=4))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """tsm trained on the trimmed classes (groups 8-16; groups 1-7 held out): it tells them apart."""
    root = tmp_path_factory.mktemp("run")
    make_synth(root / "data", BASE)
    assert main(["train", str(root / "data" / "videos"), "--model", "tsm", "--backbone", "resnet18",
                 "--no-pretrained", "--size", "32", "--frames", "4", "--bs", "8", "--workers", "0", "--epochs", "4",
                 "--out", str(root / "run")]) == 0
    return root / "run"


def test_a_segment_path_names_its_file_and_range(tmp_path, make_video):
    video = make_video("long.avi", n=50, fps=25)
    p = segment_path(video, 0.4, 1.2)
    assert str(p) == f"{video}#t=0.4,1.2"
    seg = parse_segment(p)
    assert (seg.file, seg.start, seg.end) == (video, 0.4, 1.2)
    assert segment_frames(seg) == (10, 20)  # frames 10..29 show from 0.4 s to 1.2 s at 25 fps
    assert parse_segment(video) is None and parse_segment(f"{video}#t=2,1") is None
    odd = tmp_path / "odd#t=1,2"  # a file really named like a segment is a file
    odd.write_bytes(b"x")
    assert parse_segment(odd) is None
    with pytest.raises(ValueError):
        segment_path(video, 2, 1)


def test_a_segment_reads_its_own_frames_of_the_file(make_video):
    video = make_video("long.mp4", n=50, fps=25, codec="libx264", options={"g": "12", "bf": "0"})
    item = segment_path(video, 0.4, 1.2)
    assert FILES.n_frames(item) == 20
    np.testing.assert_array_equal(FILES.read(item, [0, 5, 19]), read_frames(video, [10, 15, 29]))
    keys, all_keys = FILES.keyframes(item), video_index(video).keyframes
    assert keys[0] == 0 and set(all_keys[(all_keys >= 10) & (all_keys < 30)] - 10) <= set(keys)
    with pytest.raises(VideoError, match="a segment of 20 frames"):
        FILES.read(item, [20])
    with pytest.raises(VideoError, match="holds no frame"):
        FILES.n_frames(segment_path(video, 5, 6))


def test_a_segments_csv_makes_an_item_per_row_and_reports_bad_ranges(tmp_path, make_video):
    make_video("a.avi", n=100, fps=25)  # 4 s
    make_video("b.avi", n=50, fps=25, seed=1)  # 2 s
    (tmp_path / "s.csv").write_text("path,label,start,end,split\n"
                                    "a.avi,Jump,0,1.5,train\n"
                                    "a.avi,Run,1.5,4,train\n"
                                    "b.avi,Jump,0.5,3.5,valid\n"  # runs past the end: clipped, noted
                                    "b.avi,Run,2.5,3,valid\n"  # starts past the end: reported
                                    "c.avi,Run,0,1,valid\n"  # no such file: reported
                                    "b.avi,Run,,,valid\n")  # no range: the whole file
    items = load_items(tmp_path / "s.csv")
    assert items.split == "csv"
    assert [(str(it.path.name), it.label) for it in items.items] == [
        ("a.avi#t=0,1.5", "Jump"), ("a.avi#t=1.5,4", "Run"), ("b.avi#t=0.5,3.5", "Jump"), ("b.avi", "Run")]
    assert items.items[0].group == items.items[1].group == "a"  # segments of one file stay on one side
    assert len(items.missing) == 2 and "past the end" in items.missing[0] and "c.avi" in items.missing[1]
    assert any("clipped" in w for w in items.warnings)
    assert FILES.n_frames(items.items[2].path) == 37  # frames 13-49 of b.avi: from 0.52 s to its end
    (tmp_path / "bad.csv").write_text("path,label,start,end\na.avi,Jump,2,1\n")
    with pytest.raises(DatasetError, match=r"bad.csv:2: start 2.0 and end 1.0"):
        load_items(tmp_path / "bad.csv")


def test_kinetics_csvs_are_read_as_they_come(tmp_path, make_video):
    make_video("k/train/abc_000002_000004.avi", n=50, fps=25)  # a trimmed clip, named as downloaders do
    make_video("k/full/xyz.avi", n=150, fps=25, seed=2)  # a whole video: its rows are segments of it
    (tmp_path / "k" / "kinetics.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,abc,2,4,train,0\n"
        "air drumming,xyz,0,3,train,0\n"
        "air drumming,xyz,3,6,val,0\n"
        "abseiling,xyz,10,20,val,0\n"  # past the end of xyz (6 s): reported, not fatal
        "abseiling,gone,0,10,val,0\n")  # no file: reported
    items = load_items(tmp_path / "k" / "kinetics.csv")
    assert items.classes == ["abseiling", "air drumming"]
    names = [it.path.name for it in items.items]
    assert names == ["abc_000002_000004.avi", "xyz.avi#t=0,3", "xyz.avi#t=3,6"]
    assert items.is_valid == [False, False, True]
    assert len(items.missing) == 2 and "past the end" in items.missing[0] and items.missing[1].endswith("gone")


def test_a_list_of_path_start_end_label(tmp_path, make_video):
    make_video("v.avi", n=100, fps=25)
    (tmp_path / "list.txt").write_text("v.avi 0 2 jumping jacks\nv.avi 2 4 push ups\n")
    items = load_items(tmp_path / "list.txt", split="none")
    assert [(it.path.name, it.label) for it in items.items] == [("v.avi#t=0,2", "jumping jacks"),
                                                               ("v.avi#t=2,4", "push ups")]


def test_synth_long_writes_videos_and_their_true_segments(long_data):
    rows = (long_data.csv).read_text().splitlines()
    assert rows[0] == "path,label,start,end" and len(rows) == 1 + 2 * 4
    segs = [s for p, s in long_data.segments if p == "long/long_01.avi"]
    assert all(a.end <= b.start for a, b in zip(segs, segs[1:]))
    assert all(s.end - s.start >= 2 * BASE.frames / BASE.fps - 1e-9 for s in segs)
    plan = plan_video(LongConfig(base=BASE, videos=2, segments=4), 1)
    total = sum(n for *_, n in plan)
    assert video_index(long_data.root / "long" / "long_01.avi").n_frames == total
    items = load_items(long_data.csv, split="none")  # the ground truth reads back as a dataset of segments
    assert len(items.items) == 8 and not items.missing


def test_windows_cover_the_video_and_memory_stays_bounded():
    offsets = lambda m: window_offsets(m, 4, sampler="uniform")  # noqa: E731
    windows = plan_windows(1000, 50, 12, offsets)
    assert windows[0].first == 0 and windows[-1].last == 999 and all(w.last - w.first == 49 for w in windows)
    assert plan_windows(30, 50, 12, offsets)[0].indices[-1] < 30  # a short video: one window of all of it
    asm, most, got = Assembler(windows), 0, []
    for i in range(1000):
        for w, frames in asm.push(i, i if asm.needs(i) else None):
            assert frames == list(w.indices)
            got.append(w)
        most = max(most, asm.kept)
    assert got == windows and most <= (50 // 12 + 1) * 4


def test_segments_merge_windows_and_leave_out_background():
    classes = ["a", "b"]
    # windows every second: a for 4 s, background for 2 s, b for 3 s with one stray window of a in it
    top = ["a"] * 4 + [None] * 2 + ["b", "a", "b", "b"]
    probs = np.array([[0.9, 0.1] if t == "a" else [0.1, 0.9] if t == "b" else [0.45, 0.55 - 0.2] for t in top])
    centres = np.arange(len(top)) + 0.5
    segs = merge_segments(probs, centres, 10.0, classes, threshold=0.5, min_length=1.5)
    assert [(s.label, s.start, s.end) for s in segs] == [("a", 0.0, 4.0), ("b", 6.0, 10.0)]
    assert segs[0].score == pytest.approx(0.9)
    assert smooth_labels([0, 0, -1, 0, 0], cell_bounds(range(5), 5), 1.5) == [0] * 5
    assert temporal_iou((0, 4), (2, 6)) == pytest.approx(2 / 6)
    np.testing.assert_allclose(smooth_probs(np.array([[1.0], [0], [0], [1]]), 3), [[2 / 3], [1 / 3], [1 / 3], [2 / 3]])
    flicker = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]])  # one window says b, its neighbours a
    assert [s.label for s in merge_segments(flicker, [0.5, 1.5, 2.5, 3.5], 4, classes, threshold=0.5,
                                            min_length=0, smooth=3)] == ["a"]
    multi = merge_segments(np.array([[0.9, 0.8], [0.9, 0.1], [0.2, 0.1]]), [0.5, 1.5, 2.5], 3.0, classes,
                           threshold=0.5, min_length=0, multi_label=True)
    assert [(s.label, s.start, s.end) for s in multi] == [("a", 0.0, 2.0), ("b", 0.0, 1.0)]


def test_the_timeline_scores_each_window_as_the_segment_item_it_covers(run, long_data):
    video = long_data.root / "long" / "long_01.avi"
    loaded = load_run(run, device="cpu")
    tl = predict_timeline(loaded, video, window=0.64, stride=0.32, device="cpu")
    assert len(tl.probs) == len(tl.starts) >= tl.duration / 0.32 - 2
    assert np.all(np.diff(tl.starts) > 0) and tl.ends[-1] == pytest.approx(tl.duration)
    # one in-order read gives what reading each window as a segment item gives
    items = [segment_path(video, s, e) for s, e in zip(tl.starts[:6], tl.ends[:6])]
    probs, errors = view_probs(loaded, items, device="cpu")
    assert not errors
    np.testing.assert_allclose(tl.probs[:6], probs[:, 0], atol=1e-5)
    data = tl.to_dict(top=2)
    assert set(data) >= {"path", "duration", "window", "stride", "segments", "windows"}
    assert len(data["windows"][0]["top"]) == 2 and torch.isfinite(torch.tensor(tl.probs)).all()


def test_a_timeline_finds_the_segments_of_held_out_clips_played_one_after_another(run, tmp_path):
    """The small case of benchmarks/timeline.py: validation clips (groups the model never saw), two of a class in a
    row, the classes alternating; windows of one clip each land on the clips, and the segments are the truth."""
    data = run.parent / "data" / "videos"
    frames, truth = [], []
    for k, g in enumerate(range(1, 8)):
        label = ("MoveLeft", "MoveRight")[k % 2]
        start = len(frames) / BASE.fps
        for c in (1, 2):
            frames += list(read_frames(data / label / f"v_{label}_g{g:02d}_c{c:02d}.avi"))
        truth.append(Segment(label, start, len(frames) / BASE.fps, 1.0))
    video = write_video(tmp_path / "clips.avi", frames, fps=BASE.fps, quality=3)
    clip = BASE.frames / BASE.fps
    tl = predict_timeline(run, video, window=clip, stride=clip, smooth=1, device="cpu")
    ious = [best_iou(s, tl.segments) for s in truth]
    assert sum(i >= 0.5 for i in ious) >= 6, (ious, tl.segments)  # at least 6 of the 7 segments found


def test_predict_timeline_writes_json_picture_and_segments(run, long_data, tmp_path, capsys):
    video = long_data.root / "long" / "long_02.avi"
    out = tmp_path / "tl"
    assert main(["predict", str(run), str(video), "--timeline", "--window", "0.64", "--threshold", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "windows of 0.64 s" in printed and "segment(s)" in printed
    data = json.loads((out / "long_02.avi.timeline.json").read_text())
    assert data["segments"] and data["segments"][0]["start"] == 0  # threshold 0: every second is claimed
    assert (out / "long_02.avi.timeline.png").stat().st_size > 1000
    assert (out / "segments.csv").read_text().startswith("path,label,start,end,score\n")
    assert main(["predict", str(run), str(video), "--timeline", "--clips", "3"]) == 2
    assert main(["predict", str(run), str(tmp_path / "missing.avi"), "--timeline", "--out", str(out)]) == 1
    assert "missing.avi" in capsys.readouterr().err


def test_a_timeline_says_why_it_found_nothing(run, long_data, tmp_path, capsys):
    video = long_data.root / "long" / "long_02.avi"
    args = ["predict", str(run), str(video), "--timeline", "--out", str(tmp_path)]
    assert main([*args, "--window", "0.64", "--threshold", "1"]) == 0
    out, err = capsys.readouterr()
    assert "0 segment(s)" in out
    assert re.fullmatch(rf"vidseq: warning: {video}: no window reaches the threshold 1 \(the highest probability is "
                        r"0\.\d\d\); a --threshold below it shows the model's best guesses\n", err)
    assert main([*args, "--window", "600"]) == 0
    out, err = capsys.readouterr()
    assert ", 1 window of 600 s," in out
    assert f"{video}: the window (600 s) spans the whole video" in err


def test_a_file_given_as_a_stream_is_played_at_its_own_rate(run, long_data, capsys):
    video = long_data.root / "long" / "long_01.avi"
    start = time.monotonic()
    assert main(["predict", str(run), "--stream", str(video), "--window", "0.64", "--json",
                 "--threshold", "0"]) == 0
    took = time.monotonic() - start
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(set(d) >= {"time", "label", "probability", "latency_ms", "top"} for d in lines)
    assert all(a["label"] != b["label"] for a, b in zip(lines, lines[1:]))  # a line when the label changes
    assert took >= video_index(video).n_frames / BASE.fps * 0.9  # not faster than the video plays
    assert "played to its end" in err
    assert main(["predict", str(run), str(video), "--stream", str(video)]) == 2


def _ffmpeg_udp(video, port: int):
    """An FFmpeg process sending `video` again and again (MPEG-TS, at its own rate) to udp://127.0.0.1:port."""
    return subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video),
                             "-t", "60", "-c:v", "mpeg2video", "-q:v", "4", "-f", "mpegts",
                             f"udp://127.0.0.1:{port}?pkt_size=1316"])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(pipe) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in pipe] and None, daemon=True).start()
    return q


def _wait_for(q: queue.Queue, text: str, seen: list[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = q.get(timeout=max(0.1, end - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"no {text!r} within {timeout} s; got {seen}")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command (apt-get install ffmpeg)")
def test_a_udp_stream_that_stalls_is_reconnected_then_given_up(run, long_data):
    video = long_data.root / "long" / "long_01.avi"
    port = _free_udp_port()
    follower = subprocess.Popen([sys.executable, "-m", "vidseq", "predict", str(run), "--stream",
                                 f"udp://127.0.0.1:{port}", "--window", "0.64", "--json", "--threshold", "0",
                                 "--stall", "1", "--retries", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sender = _ffmpeg_udp(video, port)
    err, out = _lines(follower.stderr), _lines(follower.stdout)
    seen: list[str] = []
    try:
        _wait_for(err, "a decision every", seen)  # connected
        _wait_for(out, "latency_ms", seen, timeout=30)  # deciding
        sender.kill()  # the source stalls
        _wait_for(err, "nothing for 1 s; trying again", seen, timeout=30)
        sender = _ffmpeg_udp(video, port)  # and comes back
        _wait_for(err, "a decision every", seen)
        _wait_for(out, "latency_ms", seen, timeout=30)
        sender.kill()  # gone for good: the follower gives up after its tries
        _wait_for(err, "gave up after 2 tries", seen, timeout=60)
        assert follower.wait(timeout=30) == 1
    finally:
        for p in (follower, sender):
            if p.poll() is None:
                p.kill()
    decisions = [json.loads(line) for line in seen if line.startswith("{")]
    assert decisions and all(d["latency_ms"] >= 0 for d in decisions)


def test_extract_segments_writes_a_frame_folder_per_segment(tmp_path, make_video):
    video = make_video("videos/v.mp4", n=100, fps=25, codec="libx264", options={"g": "10", "bf": "0"})
    (tmp_path / "s.csv").write_text("path,label,start,end,split\n"
                                    "videos/v.mp4,Jump,0,1,train\n"
                                    "videos/v.mp4,Run,1.5,3.2,valid\n"
                                    "videos/v.mp4,Run,9,10,valid\n"  # past the end: left out, reported
                                    "videos/gone.mp4,Run,0,1,valid\n")
    dest = tmp_path / "frames"
    assert main(["extract", "--segments", str(tmp_path / "s.csv"), str(dest)]) == 0
    first = sorted((dest / "Jump" / "v_000000_000001").iterdir(), key=lambda p: int(p.stem))
    second = dest / "Run" / "v_000001500ms_000003200ms"
    assert len(first) == 25 and len(list(second.iterdir())) == 42  # frames 38-79: 1.52 s to 3.16 s
    from vidseq.io import read_folder_frames

    # the segment's first and last frames are the file's frames 38 and 79 (closest of their neighbours: JPEG)
    for got, at in zip(read_folder_frames(second, [0, 41]).astype(float), (38, 79)):
        near = read_frames(video, [at - 2, at, at + 2]).astype(float)
        assert np.argmin([np.abs(got - f).mean() for f in near]) == 1
    assert (dest / "frames.csv").read_text() == ("path,label,split\nJump/v_000000_000001,Jump,train\n"
                                                 "Run/v_000001500ms_000003200ms,Run,valid\n")
    items = load_items(dest / "frames.csv")
    assert items.kind == "frames" and items.is_valid == [False, True]
    assert main(["extract", "--segments", str(tmp_path / "s.csv"), str(dest)]) == 0  # a rerun skips them
    assert main(["extract", "--segments", str(tmp_path / "s.csv"), str(dest), str(tmp_path / "x")]) == 2


def test_training_and_evaluation_take_segments_as_items(tmp_path, long_data):
    out = tmp_path / "run"
    assert main(["train", str(long_data.csv), "--split", "random", "--model", "frame_avg", "--backbone", "resnet18",
                 "--no-pretrained", "--size", "32", "--frames", "3", "--bs", "4", "--workers", "0", "--epochs", "1",
                 "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["classes"] == sorted({s.label for _, s in long_data.segments})
    assert main(["evaluate", str(out)]) == 0


def test_ctrl_c_stops_a_stream_cleanly(run, long_data):
    video = long_data.root / "long" / "long_02.avi"
    follower = subprocess.Popen([sys.executable, "-m", "vidseq", "predict", str(run), "--stream", str(video),
                                 "--window", "0.64", "--json", "--threshold", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        _wait_for(_lines(follower.stdout), "latency_ms", seen)  # deciding, the video still playing
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
    err = follower.stderr.read()
    assert "stopped after" in err and "Traceback" not in err
