"""Multi-label datasets: labels joined by ";" or one column per class, sigmoid outputs and BCE, mAP and per-class
AP against scikit-learn, a threshold chosen on the validation set, and a synth set with known labels that a
model learns well above the label-frequency baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidseq.cli import main
from vidseq.datasets import load_items
from vidseq.datasets.synth import SynthConfig
from vidseq.datasets.synth_multilabel import make_multilabel_synth
from vidseq.errors import DatasetError
from vidseq.scores import average_precision, best_threshold, mean_ap, per_class_ap


def test_average_precision_is_scikit_learns():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(20):
        n, c = 40, 5
        targets = rng.random((n, c)) < 0.3
        targets[0] = True  # every class has a positive
        scores = np.round(rng.random((n, c)), 1 if trial % 2 else 6)  # coarse scores: many ties
        for k in range(c):
            assert average_precision(scores[:, k], targets[:, k]) == pytest.approx(
                sklearn.average_precision_score(targets[:, k], scores[:, k]))
        expected = np.mean([sklearn.average_precision_score(targets[:, k], scores[:, k]) for k in range(c)])
        assert mean_ap(scores, targets) == pytest.approx(expected)
    assert np.isnan(per_class_ap(np.ones((3, 2)), np.array([[1, 0], [1, 0], [0, 0]])))[1]


def test_the_threshold_maximises_f1_on_the_validation_scores():
    scores = np.array([[0.9, 0.2], [0.7, 0.6], [0.4, 0.3], [0.1, 0.8]])
    targets = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    t = best_threshold(scores, targets)
    assert 0.4 < t < 0.6  # above 0.4, below 0.6: every prediction right
    assert ((scores > t) == targets.astype(bool)).all()


def test_label_lists_and_class_columns_make_the_same_multi_label_dataset(tmp_path):
    make_multilabel_synth(tmp_path / "d", SynthConfig(classes=3, groups=8, clips=1, frames=4, width=32, height=32))
    joined = load_items(tmp_path / "d" / "labels.csv")
    assert joined.multi_label and joined.classes == ["Grow", "MoveLeft", "SpinClockwise"]
    rows = [line.split(",") for line in (tmp_path / "d" / "labels.csv").read_text().splitlines()[1:]]
    columns = tmp_path / "d" / "columns.csv"
    columns.write_text("path,split," + ",".join(joined.classes) + "\n" + "".join(
        f"{p},{s}," + ",".join("1" if c in label.split(";") else "0" for c in joined.classes) + "\n"
        for p, label, s in rows))
    by_column = load_items(columns)
    assert by_column.multi_label and by_column.classes == joined.classes
    assert [(it.path, it.label) for it in by_column.items] == [(it.path, it.label) for it in joined.items]
    assert by_column.is_valid == joined.is_valid
    assert any(";" in it.label for it in joined.items) and all(1 <= len(it.label.split(";")) <= 2
                                                                for it in joined.items)
    columns.write_text("path,split,Grow\nvideos/x.avi,train,2\n")
    with pytest.raises(DatasetError, match=r"columns\.csv:2: class columns hold 0 or 1"):
        load_items(columns)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    make_multilabel_synth(root / "d", SynthConfig(classes=3, groups=16, clips=4, frames=4, width=64, height=64))
    run = root / "run"
    assert main(["train", str(root / "d" / "labels.csv"), "--model", "frame_avg", "--backbone", "resnet18",
                 "--no-pretrained", "--frames", "2", "--size", "64", "--bs", "16", "--workers", "0", "--epochs", "8",
                 "--lr", "1e-3", "--out", str(run)]) == 0
    return run


def test_a_multi_label_run_learns_well_above_the_label_frequency_baseline(trained, capsys):
    config = json.loads((trained / "config.json").read_text())
    assert config["multi_label"] is True and 0 < config["threshold"] < 1
    assert main(["evaluate", str(trained), "--json", "--crops", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    valid = load_items(trained.parent / "d" / "labels.csv").valid_items()
    targets = np.array([[c in it.label.split(";") for c in out["classes"]] for it in valid])
    baseline = targets.mean(0).mean()  # a constant score's AP is the class's positive rate
    assert out["mAP"] > baseline + 0.15, (out["mAP"], baseline)
    assert {r["class"] for r in out["per_class"]} == set(out["classes"]) and "confusion" not in out
    assert out["views"] == "1 clip x 3 crops" and "clip_mAP" in out
    html = (trained / "report.html").read_text()
    assert "average precision" in html and "Confusion matrix" not in html and not (trained / "confusion.png").exists()


def test_predict_gives_every_label_above_the_runs_threshold(trained, capsys):
    videos = sorted((trained.parent / "d" / "videos").glob("*.avi"))[:4]
    assert main(["predict", str(trained), *map(str, videos), "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    threshold = json.loads((trained / "config.json").read_text())["threshold"]
    for p in preds:
        probs = {t["label"]: t["probability"] for t in p["top"]}
        assert p["labels"] == [c for c, v in sorted(probs.items(), key=lambda kv: -kv[1]) if v > threshold]
        assert all(0 <= v <= 1 for v in probs.values())  # sigmoid scores, not a distribution
