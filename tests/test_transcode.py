"""vidseq transcode: videos re-encoded for training (size, keyframe interval, fast codec), atomic and resumable
like extract, and read back frame for frame."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import moving_square
from vidseq.cli import main
from vidseq.datasets import load_items
from vidseq.errors import VideoError
from vidseq.extract import read_manifest, transcode_dataset, transcode_video
from vidseq.io import probe, read_frames, video_index, write_video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    for cls, kw in (("A", {"codec": "mpeg4"}), ("B", {"codec": "libx264"}), ("C", {"codec": "libvpx-vp9"})):
        for g in (1, 2):
            path = src / cls / f"v_{cls}_g{g:02d}_c01{'.avi' if cls == 'A' else '.mp4' if cls == 'B' else '.webm'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, moving_square(30, 96, 72, seed=g), **kw)
    lists = src / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 A\n2 B\n3 C\n")
    return src


def test_transcoded_videos_have_the_size_keyframes_and_frames_asked_for(tree, tmp_path):
    dest = tmp_path / "out"
    s = transcode_dataset(tree, dest, size=48, gop=6, workers=2)
    assert (s.done, s.failed, s.videos, s.frames) == (6, 0, 6, 180)
    assert (dest / "ucfTrainTestlist" / "classInd.txt").is_file()
    for rec in read_manifest(dest):
        out = dest / rec.folder
        assert out.suffix == ".mp4" and rec.status == "done" and (rec.width, rec.height) == (64, 48)
        info, index = probe(out), video_index(out)
        assert (info.width, info.height, info.frames, info.codec) == (64, 48, 30, "mpeg4")
        assert index.seekable and index.keyframes.tolist() == list(range(0, 30, 6))
        source = read_frames(tree / rec.video, size=48)
        assert psnr(read_frames(out), source) > 30  # the same frames, in order
    assert not [p for p in dest.rglob(".*") if p.is_file()]  # no temporary file left
    again = transcode_dataset(tree, dest, size=48, gop=6, workers=2)
    assert (again.done, again.skipped) == (0, 6)
    items = load_items(dest)
    assert len(items.items) == 6 and items.classes == ["A", "B", "C"]


def test_a_transcoded_file_that_changed_is_done_again_and_size_changes_redo_all(tree, tmp_path):
    dest = tmp_path / "out"
    transcode_dataset(tree, dest, size=48, workers=1)
    victim = dest / "A" / "v_A_g01_c01.mp4"
    write_video(victim, moving_square(5, 64, 48))  # not the 30 frames its manifest row says
    s = transcode_dataset(tree, dest, size=48, workers=1)
    assert (s.done, s.skipped) == (1, 5) and probe(victim).frames == 30
    assert transcode_dataset(tree, dest, size=32, workers=1).done == 6


def test_a_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    import vidseq.extract.transcode as transcode

    src = write_video(tmp_path / "v.avi", moving_square(20, 64, 48))
    out = tmp_path / "out" / "v.mp4"
    real = transcode.VideoWriter.write
    calls = [0]

    def failing(self, a):
        calls[0] += 1
        if calls[0] == 10:
            raise OSError(28, "No space left on device")
        real(self, a)

    monkeypatch.setattr(transcode.VideoWriter, "write", failing)
    with pytest.raises(OSError):
        transcode_video(src, out, size=32)
    assert list((tmp_path / "out").iterdir()) == []


def test_damaged_and_unreadable_sources_are_recorded_not_fatal(tree, tmp_path):
    (tree / "A" / "v_A_g03_c01.avi").write_bytes(b"not a video" * 100)
    cut = tree / "C" / "v_C_g03_c01.avi"
    write_video(cut, moving_square(30, 96, 72))
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) * 2 // 3])
    s = transcode_dataset(tree, tmp_path / "out", size=48, workers=2)
    rows = {r.video: r for r in read_manifest(tmp_path / "out")}
    assert rows["A/v_A_g03_c01.avi"].status == "failed" and "not a readable video" in rows["A/v_A_g03_c01.avi"].reason
    assert rows["C/v_C_g03_c01.avi"].status in ("partial", "done") and 0 < rows["C/v_C_g03_c01.avi"].frames <= 30
    assert s.failed == 1 and s.ok
    with pytest.raises(VideoError, match="not a readable video"):
        transcode_video(tree / "A" / "v_A_g03_c01.avi", tmp_path / "x.mp4")


def test_transcode_command(tree, tmp_path, capsys):
    dest = tmp_path / "out"
    assert main(["transcode", str(tree), str(dest), "--size", "32", "--gop", "4", "--codec", "h264"]) == 0
    out = capsys.readouterr().out
    assert "transcoded 6 videos, skipped 0 complete, 0 failed of 6" in out and "<Class>/<video>.mp4" in out
    assert probe(dest / "B" / "v_B_g01_c01.mp4").codec == "h264"
    assert video_index(dest / "B" / "v_B_g01_c01.mp4").keyframes.tolist() == list(range(0, 30, 4))
    assert main(["transcode", str(tree), str(dest), "--codec", "av2"]) == 2
    assert "unknown codec 'av2'" in capsys.readouterr().err
    assert main(["transcode", str(tree), str(tree / "inside")]) == 2
    assert "outside the videos' folder" in capsys.readouterr().err
