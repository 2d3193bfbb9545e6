"""Hostile names and trees through extract, info and predict: spaces, unicode, a newline and a leading dash in file
names, a 255-byte name, a symbolic link loop, links leading outside SRC (left out, one warning), folders named like
videos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vidseq.cli import main
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.files import hidden_stem

LONG = "L" * 251 + ".avi"  # 255 bytes: the longest name ext4 takes; its frame folder's temporary name is longer
NAMES = ["my video.avi", "vidéo_ü.avi", "new\nline.avi", "-x.avi", LONG]


@pytest.fixture(scope="module")
def tree(tmp_path_factory, tiny_run) -> tuple[Path, Path]:
    """SRC with the hostile names, a loop, links leading out, folders named like videos; and a run to predict with."""
    root = tmp_path_factory.mktemp("hostile-names")
    make_synth(root / "data", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    video = root / "data" / "videos" / "MoveLeft" / "v_MoveLeft_g01_c01.avi"
    src = root / "SRC"
    (src / "Class A").mkdir(parents=True)
    for name in NAMES:
        shutil.copyfile(video, src / "Class A" / name)
    (src / "a.mp4").mkdir()  # a folder named like a video: a class
    shutil.copyfile(video, src / "a.mp4" / "inner.avi")
    (src / "Class A" / "b.avi").mkdir()  # an empty folder named like a video: nothing
    os.symlink("..", src / "Class A" / "loop")
    (root / "elsewhere").mkdir()
    shutil.copyfile(video, root / "elsewhere" / "x.avi")
    os.symlink(root / "elsewhere", src / "Class A" / "outdir")
    os.symlink(root / "elsewhere" / "x.avi", src / "Class A" / "outfile.avi")
    return src, tiny_run


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("vidseq: warning:")]


def test_extract_takes_every_name_leaves_links_out_in_one_warning_and_reruns(tree, tmp_path, capsys):
    src, _ = tree
    dest = tmp_path / "frames"
    assert main(["extract", str(src), str(dest), "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert "extracted 6 videos, skipped 0 complete, 0 failed of 6" in out.out and "Traceback" not in out.err
    (warning,) = warnings_of(out.err)
    assert warning.startswith(f"vidseq: warning: {src}: left out 2 symbolic link(s) leading outside it")
    for name in NAMES:
        assert len(os.listdir(dest / "Class A" / Path(name).stem)) == 6, name
    assert os.listdir(dest / "a.mp4" / "inner") and not (dest / "Class A" / "outdir").exists()
    assert not (dest / "Class A" / "outfile").exists() and not (dest / "Class A" / "b").exists()
    leftover = dest / "Class A" / f".{hidden_stem(LONG[:-4])}.tmp-99999"  # a killed run's, of the long name
    leftover.mkdir()
    assert main(["extract", str(src), str(dest), "--workers", "1", "--overwrite"]) == 0
    assert "extracted 6 videos" in capsys.readouterr().out and not leftover.exists()


def test_info_counts_the_names_and_leaves_links_out(tree, capsys):
    src, _ = tree
    assert main(["info", str(src), "--split", "none"]) == 0
    out = capsys.readouterr()
    assert f"{src}: 6 videos, 2 classes" in out.out and len(warnings_of(out.err)) == 1


def test_predict_takes_a_leading_dash_after_double_dash_and_keeps_a_newline_in_its_line(tree, monkeypatch, capsys):
    src, run = tree
    monkeypatch.chdir(src / "Class A")
    assert main(["predict", str(run), "-x.avi"]) == 2  # an option to the parser, as for any command-line tool
    assert "No such option: -x" in capsys.readouterr().err
    assert main(["predict", str(run), "--", "-x.avi", "new\nline.avi", LONG]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [x for x in lines if not x.startswith(" ")] == ["-x.avi", "new\\x0aline.avi", LONG]
