import hashlib
import re

import numpy as np
import pytest

from vidseq.datasets.synth import MOTIONS, PRESETS, SynthConfig, make_synth
from vidseq.io import probe, read_frames

CFG = SynthConfig(classes=4, groups=9, clips=2, frames=10, width=48, height=32, seed=3)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("s")
    make_synth(root, CFG)
    return root


def test_layout_and_class_index(synth):
    lines = (synth / "ucfTrainTestlist" / "classInd.txt").read_text().splitlines()
    assert lines == [f"{i + 1} {m[0]}" for i, m in enumerate(MOTIONS[:4])]
    videos = sorted(p.relative_to(synth / "videos").as_posix() for p in (synth / "videos").rglob("*.avi"))
    assert len(videos) == 4 * 9 * 2
    for v in videos:
        assert re.fullmatch(r"(\w+)/v_\1_g\d\d_c\d\d\.avi", v), v


def test_train_and_test_lists_follow_ucf101_split_one(synth):
    lists = synth / "ucfTrainTestlist"
    names = [line.split()[1] for line in (lists / "classInd.txt").read_text().splitlines()]
    train = (lists / "trainlist01.txt").read_text().splitlines()
    test = (lists / "testlist01.txt").read_text().splitlines()
    train_groups, test_groups = set(), set()
    for line in train:
        rel, label = line.split(" ")
        cls = rel.split("/")[0]
        assert names[int(label) - 1] == cls  # 1-based label
        g = int(re.search(r"_g(\d\d)_", rel).group(1))
        assert g > 7
        train_groups.add((cls, g))
        assert (synth / "videos" / rel).is_file()
    for line in test:
        assert " " not in line  # test lists carry no label
        g = int(re.search(r"_g(\d\d)_", line).group(1))
        assert 1 <= g <= 7
        test_groups.add((line.split("/")[0], g))
        assert (synth / "videos" / line).is_file()
    assert not train_groups & test_groups
    assert len(train) + len(test) == 4 * 9 * 2


def test_videos_decode_to_the_asked_frame_count_and_size(synth):
    path = next((synth / "videos").rglob("*.avi"))
    info = probe(path)
    assert (info.width, info.height, info.codec) == (48, 32, "mpeg4")
    frames = read_frames(path)
    assert frames.shape == (10, 32, 48, 3) and frames.dtype == np.uint8
    assert probe(path, exact=True).frames == 10


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".avi", ".txt"):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(read_frames(p).tobytes() if p.suffix == ".avi" else p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_data_other_seed_other_data(synth, tmp_path):
    cfg = SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32, seed=5)
    make_synth(tmp_path / "a", cfg)
    make_synth(tmp_path / "b", cfg)
    make_synth(tmp_path / "c", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32, seed=6))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_clips_of_a_group_look_alike_and_groups_differ(synth):
    def first(cls, g, c):
        return read_frames(synth / "videos" / cls / f"v_{cls}_g{g:02d}_c{c:02d}.avi", [0]).astype(float)

    same_group = np.abs(first("MoveLeft", 8, 1) - first("MoveLeft", 8, 2)).mean()
    other_group = np.abs(first("MoveLeft", 8, 1) - first("MoveLeft", 9, 1)).mean()
    assert same_group * 3 < other_group
    # both classes of a pair share the group's look, so the look never tells the direction
    other_direction = np.abs(first("MoveLeft", 8, 1) - first("MoveRight", 8, 1)).mean()
    other_pair = np.abs(first("MoveLeft", 8, 1) - first("SpinClockwise", 8, 1)).mean()
    assert other_direction * 3 < other_pair


def test_direction_pairs_are_mirror_motions(synth):
    """Frames of a direction pair hold the same content; only the order of frames tells them apart."""
    for cls in ("MoveLeft", "MoveRight"):
        clip = read_frames(synth / "videos" / cls / f"v_{cls}_g08_c01.avi").astype(float)
        assert np.abs(clip[-1] - clip[0]).mean() > 2  # the object moved


@pytest.mark.parametrize("bad", [dict(classes=1), dict(classes=13), dict(groups=7), dict(width=33)])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        SynthConfig(**bad)


def test_presets_are_valid():
    assert PRESETS["bench"].width == 320 and PRESETS["bench"].height == 240
    assert PRESETS["demo"].classes >= 8


# ------------------------------------------------------------------------------ DEST that holds something already
FOUR = ["--classes", "4", "--groups", "8", "--clips", "1", "--frames", "4", "--size", "32x32"]


def _cli(capsys, *args) -> tuple[int, str]:
    from vidseq.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_over_a_dataset_of_other_settings_is_refused_and_overwrite_replaces_it(tmp_path, capsys):
    import json

    dest = tmp_path / "ds"
    assert _cli(capsys, "synth", dest, *FOUR)[0] == 0
    before = _files(dest)
    code, err = _cli(capsys, "synth", dest, "--preset", "tiny")
    assert code == 2 and err.splitlines() == [
        f"vidseq: error: {dest}: holds a synth dataset of other settings (there: classes=4 frames=4; asked: classes=2 "
        "frames=8); give another folder, or --overwrite to replace it"]
    assert _files(dest) == before  # nothing written
    assert _cli(capsys, "synth", dest, *FOUR)[0] == 0 and _files(dest) == before  # the same settings: done again
    assert _cli(capsys, "synth", dest, "--preset", "tiny", "--overwrite")[0] == 0
    assert sorted(p.name for p in (dest / "videos").iterdir()) == ["MoveLeft", "MoveRight"]  # no old videos left
    assert len(list((dest / "videos").rglob("*.avi"))) == 16
    assert json.loads((dest / "synth.json").read_text())["classes"] == 2
    summary = json.loads(_info(dest / "videos", capsys))
    assert summary["classes"] == ["MoveLeft", "MoveRight"] and summary["unlisted"] == 0 and not summary["missing"]


def _info(videos, capsys) -> str:
    from vidseq.cli import main

    capsys.readouterr()
    assert main(["info", str(videos), "--json"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", [["--long", "--videos", "1", "--segments", "1"], ["--multi-label"]])
def test_synth_of_another_kind_over_a_dataset_is_refused(tmp_path, capsys, kind):
    dest = tmp_path / "ds"
    assert _cli(capsys, "synth", dest, *FOUR)[0] == 0
    before = _files(dest)
    code, err = _cli(capsys, "synth", dest, *FOUR, *kind)
    other = "long" if "--long" in kind else "multi-label"
    assert code == 2 and err.splitlines() == [f"vidseq: error: {dest}: holds a trimmed synth dataset, not a {other} "
                                              "one; give another folder, or --overwrite to replace it"]
    assert _files(dest) == before


def test_synth_into_a_folder_of_other_files_is_refused_and_overwrite_leaves_them(tmp_path, capsys):
    dest = tmp_path / "mine"
    (dest / "videos" / "Jump").mkdir(parents=True)
    (dest / "videos" / "Jump" / "a.avi").write_bytes(b"someone's video")
    (dest / "notes.txt").write_text("mine\n")
    code, err = _cli(capsys, "synth", dest, "--preset", "tiny")
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"vidseq: error: {dest}: is not empty and holds no vidseq synth dataset of these settings "
                          "(e.g. ") and "--overwrite" in err
    assert sorted(_files(dest)) == ["notes.txt", "videos/Jump/a.avi"]
    assert _cli(capsys, "synth", dest, "--preset", "tiny", "--overwrite")[0] == 0
    assert (dest / "notes.txt").read_text() == "mine\n" and not (dest / "videos" / "Jump").exists()


def test_an_interrupted_synth_completes_with_its_settings_and_refuses_others(tmp_path, monkeypatch, capsys):
    import vidseq.datasets.synth as synth_module

    real, calls = synth_module.write_video, []

    def stop_at_the_third(path, frames, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, frames, **kw)

    dest, two_clips = tmp_path / "ds", [*FOUR, "--clips", "2"]
    monkeypatch.setattr(synth_module, "write_video", stop_at_the_third)
    assert _cli(capsys, "synth", dest, *two_clips)[0] == 130
    monkeypatch.setattr(synth_module, "write_video", real)
    assert not (dest / "synth.json").exists() and sorted(_files(dest)) == [
        "videos/MoveLeft/v_MoveLeft_g01_c01.avi", "videos/MoveLeft/v_MoveLeft_g01_c02.avi"]
    code, err = _cli(capsys, "synth", dest, *FOUR)  # one clip a group: c02 is not of this dataset
    assert code == 2 and err.splitlines() == [
        f"vidseq: error: {dest}: is not empty and holds no vidseq synth dataset of these settings (e.g. "
        "videos/MoveLeft/v_MoveLeft_g01_c02.avi); give a new or empty folder, or --overwrite to write it there (a "
        "synth dataset's folders and files there are replaced, others stay)"]
    assert _cli(capsys, "synth", dest, *two_clips)[0] == 0
    assert _cli(capsys, "synth", tmp_path / "fresh", *two_clips)[0] == 0
    assert _files(dest) == _files(tmp_path / "fresh")
