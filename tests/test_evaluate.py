"""Multi-view testing: K clips x 1 or 3 crops per video, batched, averaged; clip-level and video-level accuracy
side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidseq.cli import main
from vidseq.clips import ClipTfm
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.evaluate import Evaluation, evaluate_run, view_probs
from vidseq.runs import load_run

TRAIN = ["--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--size", "32", "--frames", "3",
         "--bs", "4", "--workers", "0", "--epochs", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mv")
    make_synth(root / "data", SynthConfig(classes=2, groups=8, clips=1, frames=8, width=48, height=32))
    assert main(["train", str(root / "data" / "videos"), *TRAIN, "--out", str(root / "run")]) == 0
    return root / "run"


def test_three_crops_cover_the_frame_and_differ():
    tfm = ClipTfm(2, 16)
    h, w = 20, 50  # landscape: squares of 20 at the left, centre and right
    frames = np.zeros((2, h, w, 3), np.uint8)
    frames[..., 0] = np.arange(w, dtype=np.uint8)[None, None, :] * 5  # red grows to the right
    views = tfm.views(frames, crops=3)
    assert views.shape == (3, 2, 3, 16, 16) and views.dtype == torch.uint8
    red = views[:, :, 0].float().mean(dim=(1, 2, 3))
    assert red[0] < red[1] < red[2]  # left, centre, right
    assert views[0, 0, 0, 0, 0] <= 5 and views[2, 0, 0, 0, -1] >= 5 * (w - 2)  # from the left edge to the right
    portrait = tfm.views(np.transpose(frames, (0, 2, 1, 3)), crops=3)  # top, centre, bottom
    assert not torch.equal(portrait[0], portrait[2])
    torch.testing.assert_close(tfm.views(frames, crops=1)[0], tfm.resize(frames, train=False, rng=None))
    with pytest.raises(ValueError, match="crops must be 1 or 3"):
        tfm.views(frames, crops=2)


def test_all_views_average_the_single_views_in_one_forward_per_batch(trained):
    run = load_run(trained)
    paths = sorted((trained.parent / "data" / "videos").rglob("*.avi"))[:3]
    calls = []
    run.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    views, errors = view_probs(run, paths, clips=2, crops=3, bs=8)
    assert not errors and views.shape == (3, 6, 2)
    assert calls == [18]  # 3 videos x 2 clips x 3 crops: one forward
    np.testing.assert_allclose(views.sum(-1), 1, atol=1e-5)
    single, _ = view_probs(run, paths, clips=2, crops=1, bs=8)
    np.testing.assert_allclose(views[:, 1::3], single, atol=1e-5)  # crop 1 of 3 is the single view's centre square


def test_clip_level_and_video_level_accuracy_differ_and_are_named():
    # two videos of class 0, four views each: half the single views are wrong, every average is right
    views = np.array([[[0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.45, 0.55]],
                      [[0.3, 0.7], [0.8, 0.2], [0.35, 0.65], [0.9, 0.1]]])
    ev = Evaluation(classes=["a", "b"], paths=["x", "y"], targets=np.array([0, 0]), probs=views.mean(1), clips=2,
                    crops=2, view_probs=views, errors={})
    assert ev.top1 == 1.0 and ev.clip_top1 == 0.5
    summary = ev.summary()
    assert summary["views"] == "2 clips x 2 crops" and (summary["top1"], summary["clip_top1"]) == (1.0, 0.5)


def test_evaluate_and_predict_take_crops(trained, capsys):
    assert main(["evaluate", str(trained), "--clips", "2", "--crops", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["views"] == "2 clips x 3 crops" and out["crops"] == 3 and 0 <= out["clip_top1"] <= 1
    html = (trained / "report.html").read_text()
    assert "video-level (2 clips x 3 crops)" in html and "clip-level (one view" in html
    ev = evaluate_run(trained, clips=2, crops=3)
    assert ev.view_probs.shape == (14, 6, 2)
    assert ev.top1 == float((ev.view_probs.mean(1).argmax(1) == ev.targets).mean())
    video = sorted((trained.parent / "data" / "videos").rglob("*.avi"))[0]
    assert main(["predict", str(trained), str(video), "--clips", "2", "--crops", "3", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert abs(sum(t["probability"] for t in preds[0]["top"]) - 1) < 1e-4
    assert main(["evaluate", str(trained), "--crops", "2"]) == 2
    assert "crops" in capsys.readouterr().err


def test_tensorboard_logs_losses_metrics_confusion_and_clips(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_synth(tmp_path / "data", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "data" / "videos"), *TRAIN, "--log", "tensorboard", "--out", str(run)]) == 0
    tags, confusion = set(), []
    for f in sorted((run / "tensorboard").glob("events.*")):  # one file per fit phase and one for the summary
        acc = EventAccumulator(str(f), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        tags |= set(acc.Tags()["scalars"]) | set(acc.Tags()["images"])
        confusion += acc.Images("confusion") if "confusion" in acc.Tags()["images"] else []
    assert {"train_loss", "valid_loss", "accuracy", "lr_0", "confusion"} <= tags, tags
    assert any(t.startswith("validation clips") for t in tags)
    assert len(confusion) == 1 and confusion[0].width > 50 and confusion[0].height > 50


def test_an_unknown_or_missing_tracker_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    data = tmp_path / "nothing"
    assert main(["train", str(data), *TRAIN, "--log", "mlflow"]) == 2
    assert "unknown tracker --log mlflow: choose tensorboard or wandb" in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["train", str(data), *TRAIN, "--log", "wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install wandb" in err[0]


def test_wandb_runs_offline_without_an_account(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    make_synth(tmp_path / "data", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "data" / "videos"), *TRAIN, "--log", "wandb", "--out", str(run)]) == 0
    offline = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
