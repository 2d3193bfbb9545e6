"""`vidseq info`'s summary counted while reading (CSV split columns, official split lists): the same report as
`load_items(...).summary()`, in memory that does not grow with the rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_datasets import CLASSES, ucf_name, write_frames, write_ucf_lists, write_videos
from vidseq.cli import main
from vidseq.datasets import load_items, summarize
from vidseq.errors import DatasetError


def csv_dataset(root: Path, *, header: str = "path,label,split", multi: bool = False) -> Path:
    """Videos of three classes in a CSV with a split column, two rows naming files that do not exist, and
    groups on both sides."""
    videos = write_videos(root / "videos")
    rows = []
    for i, v in enumerate(sorted(videos.rglob("*.avi"))):
        label = v.parent.name + (";Tall" if multi and i % 3 == 0 else "")
        rows.append(f"videos/{v.parent.name}/{v.name},{label},{'valid' if i % 4 == 0 else 'train'}")
    rows += ["videos/MoveLeft/gone.avi,MoveLeft,train", "videos/MoveLeft/lost.avi,MoveLeft,valid"]
    path = root / "items.csv"
    path.write_text("\n".join(([header] if header else []) + rows) + "\n")
    return path


def hmdb_dataset(root: Path) -> Path:
    """HMDB51's layout: per-class lists `<class>_test_split<N>.txt` (0 unused, 1 train, 2 test), one entry with
    no file."""
    for cls in ("brush_hair", "cartwheel"):
        (root / "hmdb51_org" / cls).mkdir(parents=True)
        lines = []
        for i in range(6):
            name = f"{cls}_clip_{i}.avi"
            (root / "hmdb51_org" / cls / name).write_bytes(b"")
            lines.append(f"{name} {i % 3}")
        lines.append("missing_clip.avi 1")
        for n in (1, 2, 3):
            (root / f"{cls}_test_split{n}.txt").write_text("\n".join(lines) + "\n")
    return root / "hmdb51_org"


def ucf_dataset(root: Path, *, frames: bool = False) -> Path:
    """UCF101 with what a real copy meets: a listed video missing, a video in no list, a .mp4 beside an .avi of
    the same name, a class of the lists with no folder."""
    write_ucf_lists(root / "ucfTrainTestlist", extra_test=["Absent/v_Absent_g01_c01.avi"])
    videos = write_videos(root / "UCF-101", skip={ucf_name("MoveLeft", 3, 1)})
    (videos / "MoveLeft" / "v_MoveLeft_g09_c01.avi").write_bytes(b"")  # in no list
    (videos / "MoveLeft" / f"{ucf_name('MoveLeft', 4, 2)}.mp4").write_bytes(b"")  # a second file of one name
    if frames:
        (videos / "MoveLeft" / f"{ucf_name('MoveLeft', 4, 2)}.mp4").unlink()
        return write_frames(root / "frames", videos)
    return videos


@pytest.mark.parametrize("case", ["csv", "csv-multi-label", "csv-no-split-column", "ucf", "ucf-frames",
                                  "ucf-split-2", "ucf-group", "hmdb"])
def test_the_summary_counted_while_reading_is_the_one_load_items_gives(tmp_path, case):
    split = "auto"
    if case.startswith("csv"):
        data = csv_dataset(tmp_path, multi=case == "csv-multi-label",
                           header="path,label" if case == "csv-no-split-column" else "path,label,split")
    elif case == "hmdb":
        data = hmdb_dataset(tmp_path)
    else:
        data = ucf_dataset(tmp_path, frames=case == "ucf-frames")
        split = {"ucf-split-2": "official:2", "ucf-group": "group"}.get(case, "auto")
    s = summarize(data, split=split)
    assert s == load_items(data, split=split).summary()
    expected_split = {"csv": "csv", "csv-multi-label": "csv", "csv-no-split-column": "group", "ucf-split-2":
                      "official:2", "ucf-group": "group"}.get(case, "official:1")
    assert s["split"] == expected_split
    if case in ("csv", "ucf", "hmdb"):
        assert s["missing"] == 2  # the rows or listed entries with no file
    if case == "ucf":
        assert s["unlisted"] == 1 and s["missing_entries"] == ["MoveLeft/v_MoveLeft_g03_c01.avi",
                                                               "Absent/v_Absent_g01_c01.avi"]
        assert any("share a class and name" in w for w in s["warnings"])
        assert s["classes"] == CLASSES and s["counts"]["total"] == 35
    if case == "csv-multi-label":
        assert s["multi_label"] and "Tall" in s["classes"]


def test_a_summary_names_the_first_hundred_missing_entries_and_counts_them_all(tmp_path):
    data = csv_dataset(tmp_path)
    with data.open("a") as f:
        f.writelines(f"videos/MoveLeft/gone{i}.avi,MoveLeft,train\n" for i in range(250))
    s = summarize(data)
    assert s["missing"] == 252 and len(s["missing_entries"]) == 100
    assert s == load_items(data).summary()


def test_the_summary_says_what_load_items_says_of_a_bad_split(tmp_path):
    data = csv_dataset(tmp_path)
    data.write_text(data.read_text().replace(",valid\n", ",train\n"))
    with pytest.raises(DatasetError, match="the csv split leaves no validation items"):
        summarize(data)
    data.write_text(data.read_text().replace("MoveLeft,train\n", "MoveLeft,\n", 1))
    with pytest.raises(DatasetError, match="the split column is filled on some rows only"):
        summarize(data)
    with pytest.raises(DatasetError, match="valid_pct must be between 0 and 1"):
        summarize(data, valid_pct=1.5)


#: Peak Python allocations (tracemalloc) of each call, in a process of its own: in the test session, threads other
#: tests leave behind would be traced too.
PEAKS = """
import gc, json, sys, tracemalloc
from pathlib import Path
from vidseq.datasets import load_items, summarize

def peak(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

calls = {"csv": lambda root: summarize(root / "videos.csv"), "lists": lambda root: summarize(root / "videos"),
         "held": lambda root: load_items(root / "videos").summary()}
for call in calls.values():  # once first, for the interpreter's own tables (pathlib interns each name it parses)
    call(Path(sys.argv[-1]))
print(json.dumps({name: [peak(lambda: call(Path(root))) for root in sys.argv[1:]] for name, call in calls.items()}))
"""


def _peaks(*roots: Path) -> dict[str, list[int]]:
    out = subprocess.run([sys.executable, "-c", PEAKS, *map(str, roots)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _big_ucf(root: Path, n: int) -> Path:
    """`n` empty UCF-style videos in 4 classes with their split lists (a fifth of them on the test side)."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    classes = [f"Class{c}" for c in range(4)]
    (lists / "classInd.txt").write_text("".join(f"{c + 1} {name}\n" for c, name in enumerate(classes)))
    train, test = [], []
    for i in range(n):
        cls = classes[i % 4]
        rel = f"{cls}/v_{cls}_g{i // 4 % 25 + 1:02d}_c{i:06d}.avi"
        (root / "videos" / cls).mkdir(parents=True, exist_ok=True)
        (root / "videos" / rel).write_bytes(b"")
        (test.append(rel) if i // 4 % 25 < 5 else train.append(f"{rel} {i % 4 + 1}"))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    (root / "videos.csv").write_text("path,label,split\n" + "".join(
        f"videos/{r.split()[0]},{r.split('/')[0]},{side}\n" for rows, side in ((train, "train"), (test, "valid"))
        for r in rows))
    return root


def test_info_over_ten_times_the_rows_takes_no_more_memory_to_speak_of(tmp_path):
    """Peak Python allocations while summarising 1,000 and 10,000 rows grow by about 100 bytes a CSV row and 40 an
    item of split lists (vidseq keeps nothing per CSV row; the peak is CPython 3.11's table of interned names, as
    pathlib interns each file name it parses, and for split lists the index of names on disk), where holding the
    items (`load_items`) costs about 750."""
    small, big = _big_ucf(tmp_path / "small", 1000), _big_ucf(tmp_path / "big", 10_000)
    peaks = _peaks(small, big)
    per_row = {name: (p[1] - p[0]) / 9000 for name, p in peaks.items()}
    assert per_row["csv"] < 128 and per_row["lists"] < 128, peaks  # about 100 and 40: see the docstring
    assert per_row["held"] > 500, peaks  # what the counting saves: about 750 a row


def test_info_json_on_split_lists(tmp_path, capsys):
    data = ucf_dataset(tmp_path)
    assert main(["info", str(data), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["split"] == "official:1" and s["counts"] == {"train": 23, "valid": 12, "total": 35}


def test_info_warns_of_a_label_typo_and_of_classes_missing_from_a_side(tmp_path, capsys):
    data = csv_dataset(tmp_path)
    with data.open("a") as f:
        f.write("videos/MoveLeft/v_MoveLeft_g01_c01.avi,Moveleft,train\n")  # a typo: a class of its own
    assert main(["info", str(data)]) == 0
    out = capsys.readouterr().out
    assert ("warning: 1 set(s) of class names differ only in case or punctuation, e.g. 'MoveLeft' (12 items) and "
            "'Moveleft' (1 item): a typo in the labels makes a class of its own") in out
    assert "warning: 1 class(es) have no validation items: their accuracy is not measured (Moveleft)" in out
    assert summarize(data) == load_items(data).summary()


def test_a_manifest_separated_by_semicolons_is_one_line_that_says_so(tmp_path, capsys):
    data = csv_dataset(tmp_path)
    data.write_text(data.read_text().replace(",", ";"))
    assert main(["info", str(data)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"vidseq: error: {data}:1: expected path,label[,split], got 1 field(s) (separated by ';'? a manifest's "
        "fields are separated by commas)"]
