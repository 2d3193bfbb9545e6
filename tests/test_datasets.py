"""Split lists in UCF101's and HMDB51's exact formats, folder and CSV items, splitters, fetch and CLI."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseq import datasets as ds
from vidseq.cli import main
from vidseq.datasets import (
    GroupSplitter,
    Item,
    StratifiedSplitter,
    fetch_dataset,
    find_split_lists,
    group_of,
    load_items,
    parent_label,
    read_class_index,
    read_split,
)
from vidseq.errors import DatasetError

CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "MoveLeft"]
FILE_NAMES = {"ApplyEyeMakeup": "ApplyEyeMakeup", "HandstandPushups": "HandStandPushups", "MoveLeft": "MoveLeft"}


def ucf_name(cls: str, g: int, c: int) -> str:
    return f"v_{FILE_NAMES[cls]}_g{g:02d}_c{c:02d}"


def write_ucf_lists(folder: Path, *, groups: int = 6, clips: int = 2, test_groups=(1, 2), extra_test=()) -> None:
    """UCF101's ucfTrainTestlist exactly: CRLF lines, 1-based labels in trainlists, none in testlists.

    Split N puts groups test_groups shifted by N-1 in the test list (as UCF101's three splits rotate).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, 1)).encode())
    for n in (1, 2, 3):
        test = {g + n - 1 for g in test_groups}
        train_lines, test_lines = [], []
        for i, cls in enumerate(CLASSES, 1):
            for g in range(1, groups + 1):
                for c in range(1, clips + 1):
                    rel = f"{cls}/{ucf_name(cls, g, c)}.avi"
                    (test_lines if g in test else train_lines).append(rel if g in test else f"{rel} {i}")
        test_lines += list(extra_test)
        (folder / f"trainlist0{n}.txt").write_bytes("".join(x + "\r\n" for x in train_lines).encode())
        (folder / f"testlist0{n}.txt").write_bytes("".join(x + "\r\n" for x in test_lines).encode())


def write_videos(root: Path, *, groups: int = 6, clips: int = 2, classes=CLASSES, skip=()) -> Path:
    """Empty files with UCF101's names: items are found by name, nothing is decoded here."""
    for cls in classes:
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                name = ucf_name(cls, g, c)
                if name not in skip:
                    (root / cls).mkdir(parents=True, exist_ok=True)
                    (root / cls / f"{name}.avi").write_bytes(b"")
    return root


def write_frames(root: Path, videos: Path, n: int = 3) -> Path:
    """The layout vidseq extract writes: DEST/<Class>/<video_stem>/0.jpg ..."""
    for v in videos.rglob("*.avi"):
        d = root / v.parent.name / v.stem
        d.mkdir(parents=True)
        for i in range(n):
            (d / f"{i}.jpg").write_bytes(b"")
    return root


@pytest.fixture
def ucf(tmp_path) -> Path:
    """tmp/UCF101/UCF-101/<Class>/v_*.avi and tmp/UCF101/ucfTrainTestlist, as downloads lay it out."""
    write_ucf_lists(tmp_path / "UCF101" / "ucfTrainTestlist")
    write_videos(tmp_path / "UCF101" / "UCF-101")
    return tmp_path / "UCF101"


# ---------------------------------------------------------------- names


def test_group_and_label_of_ucf_names():
    assert group_of("UCF-101/MoveLeft/v_MoveLeft_g08_c01.avi") == "MoveLeft_g08"
    assert group_of(Path("frames/MoveLeft/v_MoveLeft_g8_c01")) == "MoveLeft_g08"  # a frame folder
    assert group_of("HandstandPushups/v_HandStandPushups_g01_c04.avi") == "HandStandPushups_g01"
    assert group_of("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi") is None
    assert parent_label("UCF-101/MoveLeft/v_MoveLeft_g08_c01.avi") == "MoveLeft"


# ---------------------------------------------------------------- split lists


def test_ucf_lists_parse_in_the_exact_format(ucf):
    lists = find_split_lists(ucf / "UCF-101")  # found in the parent of the videos tree
    assert lists.kind == "ucf101" and lists.folder == ucf / "ucfTrainTestlist" and lists.splits == (1, 2, 3)
    assert read_class_index(lists.folder / "classInd.txt") == CLASSES
    classes, entries = read_split(lists, 2)
    assert classes == CLASSES
    e = entries[0]
    assert (e.label, e.name, e.side) == ("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01.avi", "train")
    test = [x for x in entries if x.side == "test"]
    assert len(test) == 3 * 2 * 2 and {x.name[-10:-8] for x in test} == {"02", "03"}


def test_malformed_list_lines_name_file_and_line(tmp_path):
    write_ucf_lists(tmp_path / "lists")
    (tmp_path / "lists" / "classInd.txt").write_text("1 A\nB\n")
    with pytest.raises(DatasetError, match=r"classInd.txt:2: expected"):
        read_class_index(tmp_path / "lists" / "classInd.txt")


def test_official_split_of_a_videos_tree(ucf):
    s = load_items(ucf / "UCF-101")
    assert s.split == "official:1" and s.kind == "video" and s.classes == CLASSES
    assert len(s.items) == 36 and len(s.valid_items()) == 12 and s.missing == [] and s.warnings == []
    assert {it.group for it in s.valid_items()} == {f"{FILE_NAMES[c]}_g{g:02d}" for c in CLASSES for g in (1, 2)}
    assert s.valid_idxs() == [i for i, v in enumerate(s.is_valid) if v]
    assert len(s.train_items()) + len(s.valid_items()) == len(s.items) and s.leaked_groups == 0


def test_handstand_spelling_mismatch_is_matched(ucf):
    s = load_items(ucf, split="official:1")
    hs = [it for it in s.items if it.label == "HandstandPushups"]
    assert len(hs) == 12 and all("v_HandStandPushups_" in it.path.name for it in hs)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_splits_1_to_3(ucf, n):
    s = load_items(ucf, split=f"official:{n}")
    assert s.split == f"official:{n}"
    assert {int(it.group[-2:]) for it in s.valid_items()} == {n, n + 1}


def test_missing_videos_are_counted_not_fatal(tmp_path, capsys):
    write_ucf_lists(tmp_path / "UCF101/ucfTrainTestlist", extra_test=["MoveLeft/v_MoveLeft_g99_c01.avi"])
    write_videos(tmp_path / "UCF101/UCF-101", skip={"v_MoveLeft_g01_c01", "v_MoveLeft_g05_c02"})
    s = load_items(tmp_path / "UCF101")
    assert sorted(s.missing) == ["MoveLeft/v_MoveLeft_g01_c01.avi", "MoveLeft/v_MoveLeft_g05_c02.avi",
                                 "MoveLeft/v_MoveLeft_g99_c01.avi"]
    assert len(s.items) == 34
    assert main(["info", str(tmp_path / "UCF101")]) == 0
    out = capsys.readouterr().out
    assert "missing: 3 listed entries have no file" in out and "v_MoveLeft_g99_c01.avi" in out


def test_same_split_for_videos_tree_and_frames_tree(ucf, tmp_path):
    videos = load_items(ucf / "UCF-101")
    frames_dest = write_frames(tmp_path / "frames", ucf / "UCF-101")
    # extract copies ucfTrainTestlist into DEST
    write_ucf_lists(frames_dest / "ucfTrainTestlist")
    frames = load_items(frames_dest)
    assert frames.kind == "frames" and frames.split == "official:1"
    key = [(it.label, it.path.stem, v) for it, v in zip(videos.items, videos.is_valid)]
    assert [(it.label, it.path.name, v) for it, v in zip(frames.items, frames.is_valid)] == key


def test_lists_beside_the_frames_tree_and_case_insensitive_match(tmp_path):
    root = tmp_path / "data"
    write_ucf_lists(root / "ucfTrainTestlist")
    write_videos(tmp_path / "v")
    write_frames(root / "frames", tmp_path / "v")
    (root / "frames" / "MoveLeft").rename(root / "frames" / "moveleft")  # a case-folding copy
    s = load_items(root / "frames", split="official")
    assert s.split == "official:1" and len(s.items) == 36
    assert "MoveLeft" in s.classes and all(it.label in CLASSES for it in s.items)


def test_classes_absent_on_disk_are_dropped_with_a_warning(tmp_path):
    write_ucf_lists(tmp_path / "d/ucfTrainTestlist")
    write_videos(tmp_path / "d/videos", classes=CLASSES[:2])
    (tmp_path / "d/videos/Other").mkdir()
    (tmp_path / "d/videos/Other/v_Other_g01_c01.avi").write_bytes(b"")
    s = load_items(tmp_path / "d")
    assert s.classes == CLASSES[:2] and len(s.missing) == 12 and s.unlisted == 1
    assert any("1 class(es)" in w and "MoveLeft" in w for w in s.warnings)
    assert any("1 item(s) on disk are in no list" in w for w in s.warnings)


def test_hmdb51_lists(tmp_path):
    root = tmp_path / "HMDB51"
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for cls in ("brush_hair", "cartwheel"):
        (root / "hmdb51_org" / cls).mkdir(parents=True)
        names = [f"{cls}_clip_{i}.avi" for i in range(6)]
        for nm in names:
            (root / "hmdb51_org" / cls / nm).write_bytes(b"")
        for n in (1, 2, 3):
            flags = [(i + n) % 3 for i in range(6)]
            (lists / f"{cls}_test_split{n}.txt").write_text("".join(f"{nm} {f} \n" for nm, f in zip(names, flags)))
    (lists / "cartwheel_test_split1.txt").write_text(
        (lists / "cartwheel_test_split1.txt").read_text() + "gone.avi 1\n")
    found = find_split_lists(root / "hmdb51_org")
    assert found.kind == "hmdb51" and found.splits == (1, 2, 3)
    s = load_items(root / "hmdb51_org")
    assert s.split == "official:1" and s.classes == ["brush_hair", "cartwheel"]
    assert len(s.items) == 8  # a third of each class is "0": unused
    assert all(it.path.name in {f"{it.label}_clip_{i}.avi" for i in (1, 4)} for it in s.valid_items())
    assert s.missing == ["cartwheel/gone.avi"] and s.unlisted == 0 and s.warnings == []


# ---------------------------------------------------------------- auto, group, random, errors


def test_auto_without_lists_uses_groups(tmp_path):
    write_videos(tmp_path / "v")
    s = load_items(tmp_path / "v", valid_pct=0.34, seed=3)
    assert s.split == "group" and s.warnings == [] and s.leaked_groups == 0
    valid_groups = {it.group for it in s.valid_items()}
    assert not valid_groups & {it.group for it in s.train_items()}
    assert len(valid_groups) == 3 * 2  # round(0.34 * 6) groups of each class
    assert load_items(tmp_path / "v", valid_pct=0.34, seed=3).is_valid == s.is_valid


def test_random_split_warns_about_groups_only_when_there_are_groups(tmp_path):
    write_videos(tmp_path / "v")
    s = load_items(tmp_path / "v", split="random", valid_pct=0.25)
    assert s.split == "random" and len(s.valid_items()) == 9  # 3 of 12 per class: stratified
    assert len(s.warnings) == 1 and "near-duplicates" in s.warnings[0]
    plain = tmp_path / "plain"
    for cls in ("cats", "dogs"):
        (plain / cls).mkdir(parents=True)
        for i in range(5):
            (plain / cls / f"clip{i}.mp4").write_bytes(b"")
    p = load_items(plain)
    assert p.split == "random" and p.warnings == [] and len(p.valid_items()) == 2
    with pytest.raises(DatasetError, match="no UCF-style group names"):
        load_items(plain, split="group")


def test_videos_in_nested_download_layout_and_dataset_name(tmp_path, monkeypatch, ucf):
    monkeypatch.setattr(ds.fetch, "fastai_dirs", lambda: (tmp_path / "archive", tmp_path))
    s = load_items("ucf101")
    assert s.root == tmp_path / "UCF101" and s.split == "official:1" and len(s.items) == 36
    with pytest.raises(DatasetError, match="vidseq download hmdb51"):
        load_items("hmdb51")


@pytest.mark.parametrize("setup,split,msg", [
    ("missing", "auto", "no such file or folder"),
    ("empty", "auto", "no videos or frame folders"),
    ("one", "auto", "at least 2 classes"),
    ("both", "auto", "both videos"),
    ("plain", "official", "no official split lists"),
    ("plain", "csv", "needs a CSV manifest"),
    ("plain", "sideways", "unknown split"),
    ("plain", "official:4", "has no split 4"),
])
def test_user_errors_are_one_line(tmp_path, setup, split, msg, capsys):
    d = tmp_path / "d"
    if setup == "empty":
        (d / "A").mkdir(parents=True)
        (d / "A" / "notes.txt").write_text("x")
    elif setup == "one":
        write_videos(d, classes=["MoveLeft"])
    elif setup == "both":
        write_videos(d / "videos")
        write_frames(d / "frames", d / "videos")
    elif setup == "plain":
        write_videos(d)
        if split == "official:4":
            write_ucf_lists(d / "lists")
    with pytest.raises(DatasetError, match=msg) as e:
        load_items(d, split=split)
    assert "\n" not in str(e.value)
    assert main(["info", str(d), "--split", split]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vidseq: error:") and msg in err


def test_bad_valid_pct(tmp_path):
    write_videos(tmp_path / "v")
    with pytest.raises(DatasetError, match="valid_pct"):
        load_items(tmp_path / "v", valid_pct=1.5)


def test_lists_that_match_nothing_are_ignored_in_auto_and_fatal_when_asked(tmp_path):
    write_ucf_lists(tmp_path / "ucfTrainTestlist")
    for cls in ("cats", "dogs"):
        (tmp_path / "v" / cls).mkdir(parents=True)
        (tmp_path / "v" / cls / f"v_{cls}_g01_c01.avi").write_bytes(b"")
        (tmp_path / "v" / cls / f"v_{cls}_g02_c01.avi").write_bytes(b"")
    s = load_items(tmp_path / "v")
    assert s.split == "group" and any("name none of the items" in w for w in s.warnings)
    with pytest.raises(DatasetError, match="name none of the 4 items"):
        load_items(tmp_path / "v", split="official")


def test_synth_dataset_with_real_videos(tiny_synth):
    s = load_items(tiny_synth / "videos")
    assert s.split == "official:1" and s.classes == ["MoveLeft", "MoveRight"] and s.kind == "video"
    assert len(s.items) == 16 and len(s.valid_items()) == 14  # groups 1-7 of 8 are the test list


# ---------------------------------------------------------------- CSV manifests


def test_csv_manifest_with_split_column(tmp_path):
    write_videos(tmp_path / "v")
    rows = ["path,label,split"]
    for i, p in enumerate(sorted((tmp_path / "v").rglob("*.avi"))):
        rel = p.relative_to(tmp_path) if i % 2 else p  # relative to the CSV's folder, or absolute
        rows.append(f"{rel},{p.parent.name},{'test' if 'g01' in p.name else 'train'}")
    rows.append("v/MoveLeft/nothere.avi,MoveLeft,train")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    s = load_items(tmp_path / "m.csv")
    assert s.split == "csv" and s.kind == "video" and len(s.items) == 36 and len(s.valid_items()) == 6
    assert s.missing == ["v/MoveLeft/nothere.avi"] and s.leaked_groups == 0
    assert load_items(tmp_path / "m.csv", split="group").split == "group"


def test_csv_without_header_or_split_column_of_frame_folders(tmp_path):
    write_frames(tmp_path / "f", write_videos(tmp_path / "v"))
    lines = [f"f/{d.parent.name}/{d.name},{d.parent.name.lower()}" for d in sorted((tmp_path / "f").glob("*/*"))]
    (tmp_path / "m.csv").write_text("\n".join(lines))
    s = load_items(tmp_path / "m.csv", split="random", seed=1)
    assert s.kind == "frames" and s.classes == ["applyeyemakeup", "handstandpushups", "moveleft"]
    assert s.split == "random" and "near-duplicates" in s.warnings[0]


@pytest.mark.parametrize("text,msg", [
    ("path,label,split\nv/MoveLeft/v_MoveLeft_g01_c01.avi,MoveLeft,holdout\n", ":2: split must be"),
    ("v/MoveLeft/v_MoveLeft_g01_c01.avi\n", ":1: expected path,label"),
    ("path,split\nx,train\n", "needs 'path' and 'label'"),
    ("path,label\nnotes.csv,MoveLeft\n", "neither a video"),
    ("path,label\nv/MoveLeft/v_MoveLeft_g01_c01.avi,MoveLeft\nv/MoveLeft/v_MoveLeft_g02_c01.avi,MoveLeft\n",
     "at least 2 classes"),
    ("path,label,split\nv/MoveLeft/v_MoveLeft_g01_c01.avi,MoveLeft,train\n"
     "v/MoveLeft/v_MoveLeft_g02_c01.avi,B,\n", "some rows only"),
    ("path,label\nnope.avi,A\n", "no usable rows"),
    ("filename,class\nv/MoveLeft/v_MoveLeft_g01_c01.avi,MoveLeft\n", ":1: a header without 'path' and 'label'"),
])
def test_bad_csv_is_one_line(tmp_path, text, msg):
    write_videos(tmp_path / "v")
    (tmp_path / "notes.csv").write_text(text)
    with pytest.raises(DatasetError, match=msg) as e:
        load_items(tmp_path / "notes.csv")
    assert "\n" not in str(e.value)


def test_csv_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("path,label\n\u00e9t\u00e9.avi,L\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8 text .*save the manifest as UTF-8") as e:
        load_items(tmp_path / "latin1.csv")
    assert "\n" not in str(e.value)


def test_the_manifest_vidseq_extract_writes_is_a_dataset(tmp_path, make_video):
    from vidseq.extract import extract_dataset

    for cls in ("A", "B"):
        for g in (1, 2):
            make_video(f"src/{cls}/v_{cls}_g0{g}_c01.avi", n=4, seed=g)
    src = next(iter(tmp_path.rglob("src")))
    (src / "A" / "v_A_g03_c01.avi").write_bytes(b"not a video")
    extract_dataset(src, tmp_path / "frames", workers=1)
    s = load_items(tmp_path / "frames" / "manifest.csv", split="group", valid_pct=0.5)
    assert s.kind == "frames" and len(s.items) == 4 and s.missing == []  # the failed row is left out
    assert {it.path.parent.name for it in s.items} == {"A", "B"} and all(it.path.is_dir() for it in s.items)


def test_random_split_warning_says_whether_groups_were_split(tmp_path):
    write_videos(tmp_path / "v")
    texts = {load_items(tmp_path / "v", split="random", seed=seed).warnings[0] for seed in range(6)}
    assert any("have clips on both sides" in t for t in texts)
    assert all("0 of them" not in t for t in texts)


# ---------------------------------------------------------------- splitters


@st.composite
def ucf_paths(draw):
    n_classes = draw(st.integers(1, 5))
    paths = []
    for ci in range(n_classes):
        for g in range(1, draw(st.integers(1, 8)) + 1):
            for c in range(1, draw(st.integers(1, 4)) + 1):
                paths.append(f"root/C{ci}/v_C{ci}_g{g:02d}_c{c:02d}.avi")
    extra = draw(st.integers(0, 3))  # names without a group: each is its own group
    paths += [f"root/C0/other{i}.avi" for i in range(extra)]
    return draw(st.permutations(paths))


@settings(max_examples=150, deadline=None)
@given(paths=ucf_paths(), pct=st.floats(0.05, 0.95), seed=st.integers(0, 10_000))
def test_group_split_never_puts_a_group_on_both_sides(paths, pct, seed):
    train, valid = GroupSplitter(pct, seed)(paths)
    assert sorted(train + valid) == list(range(len(paths)))
    train_groups = {group_of(paths[i]) or paths[i] for i in train}
    valid_groups = {group_of(paths[i]) or paths[i] for i in valid}
    assert not train_groups & valid_groups
    assert GroupSplitter(pct, seed)(paths) == (train, valid)  # deterministic
    for cls in {parent_label(p) for p in paths}:  # every class with 2+ groups keeps groups on both sides
        groups = {group_of(p) or p for p in paths if parent_label(p) == cls}
        if len(groups) >= 2:
            assert any(parent_label(paths[i]) == cls for i in valid)
            assert any(parent_label(paths[i]) == cls for i in train)


def test_splitters_accept_items_and_differ_by_seed():
    items = [Item(Path(f"r/C{c}/v_C{c}_g{g:02d}_c01.avi"), f"C{c}", f"C{c}_g{g:02d}")
             for c in range(3) for g in range(1, 21)]
    a = GroupSplitter(0.2, seed=0)(items)
    assert len(a[1]) == 12 and a != GroupSplitter(0.2, seed=1)(items)
    t, v = StratifiedSplitter(0.25, seed=0)(items)
    assert len(v) == 15 and sorted(t + v) == list(range(60))
    with pytest.raises(ValueError):
        GroupSplitter(1.5)


def test_group_splitter_works_as_a_fastai_splitter(tmp_path):
    from fastai.data.core import Datasets

    paths = sorted(write_videos(tmp_path / "v").rglob("*.avi"))
    dsets = Datasets(paths, [[parent_label]], splits=GroupSplitter(0.3, seed=0)(paths))
    train_groups = {group_of(p) for p in dsets.train.items}
    assert dsets.valid.items and not train_groups & {group_of(p) for p in dsets.valid.items}


# ---------------------------------------------------------------- fetch (download + unpack) and CLI


def _zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


@pytest.fixture
def fake_ucf_server(tmp_path, monkeypatch):
    """A local server holding a tiny UCF101.zip and split-list zip; DATASETS["ucf101"] points at it."""
    served = tmp_path / "served"
    served.mkdir()
    src = write_videos(tmp_path / "src" / "UCF-101")
    write_ucf_lists(tmp_path / "src" / "ucfTrainTestlist")
    _zip(served / "UCF101.zip", {str(p.relative_to(tmp_path / "src")): b"" for p in src.rglob("*.avi")})
    _zip(served / "splits.zip", {f"ucfTrainTestlist/{p.name}": p.read_bytes()
                                 for p in (tmp_path / "src" / "ucfTrainTestlist").iterdir()})
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            requests.append(self.path)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    monkeypatch.setitem(ds.DATASETS, "ucf101", ds.DatasetSpec("UCF101", "UCF101", (
        ds.Remote(f"{url}/UCF101.zip"), ds.Remote(f"{url}/splits.zip"))))
    yield requests
    srv.shutdown()
    srv.server_close()


def test_fetch_downloads_unpacks_and_is_not_redone(fake_ucf_server, tmp_path):
    log = []
    root = fetch_dataset("UCF101", dest=tmp_path / "store", progress=False, log=log.append)
    assert root == tmp_path / "store" / "UCF101"
    assert (root / "UCF-101" / "MoveLeft").is_dir() and (root / "ucfTrainTestlist" / "classInd.txt").is_file()
    assert (tmp_path / "store" / "UCF101.zip").is_file()
    s = load_items(root)
    assert s.split == "official:1" and len(s.items) == 36
    n = len(fake_ucf_server)
    fetch_dataset("ucf101", dest=tmp_path / "store", progress=False, log=log.append)
    assert len(fake_ucf_server) == n  # nothing fetched again
    assert sum("already unpacked" in m for m in log) == 2


def test_download_command(fake_ucf_server, tmp_path, capsys):
    assert main(["download", "ucf101", "--dest", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "store" / "UCF101") in out and "vidseq info" in out
    assert main(["info", str(tmp_path / "store" / "UCF101"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["split"] == "official:1" and info["counts"] == {"train": 24, "valid": 12, "total": 36}


def test_download_command_without_network_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(ds.DATASETS, "hmdb51", ds.DatasetSpec("HMDB51", "HMDB51", (
        ds.Remote(f"http://127.0.0.1:{port}/hmdb51_org.rar", into="hmdb51_org", recursive=True),)))
    assert main(["download", "hmdb51", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vidseq: error: cannot download http://127.0.0.1")
    assert str(tmp_path / "hmdb51_org.rar") in err[-1]
    assert main(["download", "kinetics"]) == 2


def test_unpack_command(tmp_path, capsys):
    _zip(tmp_path / "a.zip", {"x/1.txt": b"1"})
    assert main(["unpack", str(tmp_path / "a.zip"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out/x/1.txt").read_bytes() == b"1"
    assert "x" in capsys.readouterr().out
    _zip(tmp_path / "evil.zip", {"../../evil.txt": b"1"})
    assert main(["unpack", str(tmp_path / "evil.zip"), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unsafe archive" in err


def test_info_command_text(ucf, capsys):
    assert main(["info", str(ucf / "UCF-101"), "--split", "official:2"]) == 0
    out = capsys.readouterr().out
    assert "36 videos, 3 classes" in out and "split: official:2" in out and "train 24, valid 12" in out
    assert "HandstandPushups" in out and "groups: 18 (0 on both sides)" in out
    assert main(["info", str(ucf), "--split", "random"]) == 0
    assert "warning: random split" in capsys.readouterr().out


def test_info_json_lists_everything(ucf, capsys):
    assert main(["info", str(ucf), "--json", "--split", "group", "--valid-pct", "0.5", "--seed", "2"]) == 0
    info = json.load(io.StringIO(capsys.readouterr().out))
    assert info["split"] == "group" and info["classes"] == CLASSES and info["groups"] == 18
    assert info["per_class"]["MoveLeft"] == {"train": 6, "valid": 6} and info["leaked_groups"] == 0
