"""Annotation formats users bring: MMAction2 list files and Something-Something v2's JSON give the same items and
split as the equivalent CSV manifest; a bad line is one error naming the file and line."""

from __future__ import annotations

import json
import shutil

import pytest

from vidseq.cli import main
from vidseq.datasets import load_items
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.errors import DatasetError
from vidseq.extract import extract_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ann")
    make_synth(root / "synth", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    return root


def videos_of(data):
    return sorted((data / "synth" / "videos").rglob("*.avi"))


def same(a, b):
    """The same items (path, label) on the same sides."""
    key = lambda s: sorted((str(it.path.resolve()), it.label, v) for it, v in zip(s.items, s.is_valid))  # noqa: E731
    return key(a) == key(b)


def test_mmaction2_video_lists_are_the_csv(data, tmp_path):
    vids = videos_of(data)
    classes = ["MoveLeft", "MoveRight"]
    (tmp_path / "label_map_synth.txt").write_text("\n".join(classes) + "\n")
    rows = {"train": [v for v in vids if int(v.stem.split("_g")[1][:2]) > 2],
            "val": [v for v in vids if int(v.stem.split("_g")[1][:2]) <= 2]}
    for side, vs in rows.items():
        (tmp_path / f"synth_{side}_list_videos.txt").write_text(
            "".join(f"{v} {classes.index(v.parent.name)}\n" for v in vs))
    (tmp_path / "same.csv").write_text("path,label,split\n" + "".join(
        f"{v},{v.parent.name},{side if side == 'train' else 'valid'}\n" for side, vs in rows.items() for v in vs))
    from_list = load_items(tmp_path / "synth_train_list_videos.txt")
    assert from_list.split == "csv" and from_list.classes == classes and from_list.kind == "video"
    assert same(from_list, load_items(tmp_path / "same.csv"))
    assert same(load_items(tmp_path / "synth_val_list_videos.txt"), from_list)  # either list finds its partner


def test_mmaction2_rawframe_lists_and_numbered_labels(data, tmp_path):
    frames = tmp_path / "frames"
    extract_dataset(data / "synth" / "videos", frames, workers=1)
    folders = sorted(p for p in frames.glob("*/*") if p.is_dir())
    lines = "".join(f"{f.relative_to(tmp_path)} 6 {int(f.parent.name == 'MoveRight')}\n" for f in folders)
    (tmp_path / "train.txt").write_text(lines)  # no label map: the class indices are the names
    items = load_items(tmp_path / "train.txt", split="none")
    assert items.kind == "frames" and items.classes == ["0", "1"] and len(items.items) == len(folders)


@pytest.mark.parametrize("line,message", [
    ("a.avi", r"train\.txt:2: expected 'path label"),
    ("a.avi one", r"train\.txt:2: expected 'path label"),
    ("{video} 7", r"train\.txt:2: label 7, but the label map has 2 classes"),
    ("{text} 0", r"train\.txt:2: .* is neither a video nor a frame folder"),
])
def test_a_bad_list_line_is_one_error_naming_file_and_line(data, tmp_path, capsys, line, message):
    video = videos_of(data)[0]
    (tmp_path / "label_map.txt").write_text("MoveLeft\nMoveRight\n")
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "train.txt").write_text(f"{video} 0\n{line.format(video=video, text=tmp_path / 'notes.txt')}\n")
    with pytest.raises(DatasetError, match=message):
        load_items(tmp_path / "train.txt")
    assert main(["info", str(tmp_path / "train.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.txt:2" in err[0]


def ssv2(folder, vids, templates):
    """A tiny Something-Something v2 layout: labels, train and validation JSON, videos as <id>.webm."""
    videos = folder / "20bn-something-something-v2"
    videos.mkdir(parents=True)
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(templates)}
    (folder / "annotations").mkdir()
    (folder / "annotations" / "something-something-v2-labels.json").write_text(json.dumps(labels))
    entries = {"train": [], "validation": []}
    for i, v in enumerate(vids):
        shutil.copy(v, videos / f"{1000 + i}.webm")
        side = "validation" if i % 4 == 0 else "train"
        template = templates[v.parent.name == "MoveRight"]
        entries[side].append({"id": str(1000 + i), "label": template.lower(), "template": template,
                              "placeholders": ["thing"]})
    for side, es in entries.items():
        (folder / "annotations" / f"something-something-v2-{side}.json").write_text(json.dumps(es))
    return entries


def test_something_something_v2_json_is_the_csv(data, tmp_path):
    vids = videos_of(data)
    templates = ["Pushing [something] from right to left", "Pushing [something] from left to right"]
    entries = ssv2(tmp_path, vids, templates)
    rows = [(tmp_path / "20bn-something-something-v2" / f"{e['id']}.webm",
             e["template"].replace("[", "").replace("]", ""), side) for side, es in entries.items() for e in es]
    (tmp_path / "same.csv").write_text("path,label,split\n" + "".join(
        f"{p},{label},{'valid' if side == 'validation' else 'train'}\n" for p, label, side in rows))
    items = load_items(tmp_path / "annotations")
    assert items.split == "csv" and items.classes == sorted(t.replace("[", "").replace("]", "") for t in templates)
    assert same(items, load_items(tmp_path / "same.csv"))
    assert same(load_items(tmp_path / "annotations" / "something-something-v2-train.json"), items)


def test_something_something_v2_with_an_unknown_template_is_one_error(data, tmp_path):
    entries = ssv2(tmp_path, videos_of(data)[:4], ["Pushing [something]", "Pulling [something]"])
    entries["train"][0]["template"] = "Juggling [something]"
    (tmp_path / "annotations" / "something-something-v2-train.json").write_text(json.dumps(entries["train"]))
    with pytest.raises(DatasetError, match=r"train\.json: entry 1 \(\d+\): class 'Juggling something' is not in"):
        load_items(tmp_path / "annotations")


def test_an_mmaction2_line_with_several_labels_is_a_multi_label_item(data, tmp_path):
    vids = videos_of(data)
    (tmp_path / "label_map.txt").write_text("MoveLeft\nMoveRight\n")
    (tmp_path / "train.txt").write_text("".join(f"{v} 0 1\n" if i % 3 == 0 else f"{v} {i % 2}\n"
                                                for i, v in enumerate(vids)))
    items = load_items(tmp_path / "train.txt", split="random")
    assert items.multi_label and items.classes == ["MoveLeft", "MoveRight"]
    assert items.items[0].label == "MoveLeft;MoveRight"
