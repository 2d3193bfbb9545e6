"""End to end through the command line and the library: train -> evaluate -> predict, resume, run folders."""

import copy
import json
import re
from pathlib import Path

import pytest
import torch

from vidseq.cli import main
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.errors import ModelError
from vidseq.runs import load_optimizer, load_run, read_metrics, save_optimizer, save_weights
from vidseq.train import RunCheckpoint, TrainConfig, adamw, run_folder, train

TRAIN = ["--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--size", "32", "--frames", "3",
         "--bs", "4", "--workers", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf")
    make_synth(root, SynthConfig(classes=2, groups=9, clips=2, frames=8, width=32, height=32))
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "fa"
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "1", "--out", str(run)]) == 0
    return run


def test_train_writes_a_run_folder_without_pickles(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.csv", "history.png"} <= names
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["classes"] == ["MoveLeft", "MoveRight"]
    assert cfg["clip"]["frames"] == 3 and cfg["clip"]["size"] == 32
    assert cfg["data"]["split"] == "official:1"
    assert "torch" in cfg["versions"]
    for p in trained.rglob("*"):
        if p.is_file():
            assert p.suffix not in (".pkl", ".pth", ".pt"), p
            assert not p.read_bytes().startswith(b"\x80"), f"{p} looks like a pickle"


def test_every_file_of_a_run_folder_has_the_mode_of_a_new_file(trained, tmp_path):
    """Those sharing a run folder can read all of it: the weights too (safetensors creates its files 0600)."""
    (tmp_path / "new").write_text("")
    usual = (tmp_path / "new").stat().st_mode & 0o777
    modes = {str(p.relative_to(trained)): p.stat().st_mode & 0o777 for p in trained.rglob("*") if p.is_file()}
    assert "model.safetensors" in modes and "checkpoint/model.safetensors" in modes
    assert {name: oct(m) for name, m in modes.items() if m != usual} == {}


def test_evaluate_prints_metrics_and_writes_report(trained, capsys):
    assert main(["evaluate", str(trained), "--json", "--clips", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["videos"] == 28 and out["clips"] == 2  # groups 1-7 of 2 classes x 2 clips
    assert 0 <= out["top1"] <= 1 and out["top5"] == 1.0  # two classes: top-5 holds every class
    assert len(out["confusion"]) == 2 and sum(map(sum, out["confusion"])) == 28
    html = (trained / "report.html").read_text()
    assert "Confusion matrix" in html and "data:image/png;base64," in html
    assert "top-5" not in html  # two classes: a top-5 of 100 % says nothing
    assert (trained / "confusion.png").is_file() and (trained / "per_class.csv").is_file()
    assert main(["evaluate", str(trained), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" not in out


def test_predict_reads_videos_and_survives_a_bad_file(trained, data, tmp_path, capsys):
    good = sorted((data / "videos").rglob("*.avi"))[:2]
    bad = tmp_path / "bad.avi"
    bad.write_text("not a video")
    assert main(["predict", str(trained), str(good[0]), str(bad), str(good[1]), "--top", "2", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [("error" in p) for p in preds] == [False, True, False]
    assert abs(sum(t["probability"] for t in preds[0]["top"]) - 1) < 1e-4
    assert main(["predict", str(trained), str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.avi" in err[0]


def test_config_round_trip_rebuilds_the_same_model(trained):
    a = load_run(trained).model
    b = load_run(trained).model
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x))


def test_resume_after_interruption_does_not_redo_epochs(data, tmp_path, monkeypatch):
    run = tmp_path / "r"
    cfg = TrainConfig(data=str(data / "videos"), model="frame_avg", backbone="resnet18", pretrained=False, size=32,
                      frames=3, bs=4, workers=0, epochs=3, out=str(run), verbose=False)
    original = RunCheckpoint.after_epoch
    epochs_run = []

    def interrupt_after_first(self):
        original(self)
        if not self._skipped:  # an epoch that trained (resumed runs skip the epochs already done)
            epochs_run.append(self.epoch)
        if len(epochs_run) == 1 and not resumed:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "after_epoch", interrupt_after_first)
    resumed = False
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    first = (run / "metrics.csv").read_text().splitlines()
    assert len(first) == 2  # header + epoch 1
    resumed = True
    result = train(TrainConfig(**{**cfg.__dict__, "resume": True}))
    assert result.epochs == 3
    assert epochs_run == [0, 1, 2]  # epoch 0 ran once, before the interruption
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[1] == first[1]


@pytest.mark.parametrize("kind", ["fastai_adam", "torch_adamw"])
def test_optimizer_state_round_trips_through_safetensors(kind, tmp_path):
    from fastai.optimizer import Adam

    def build(model):
        groups = [list(model[0].parameters()), list(model[1].parameters())]
        return Adam(groups, lr=1e-2) if kind == "fastai_adam" else adamw(torch.device("cpu"))(groups, lr=1e-2)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = build(model)
    opt.set_hypers(lr=[1e-3, 1e-2], mom=0.9)  # discriminative rates and a scheduled momentum
    for _ in range(3):
        model(torch.randn(5, 4)).square().sum().backward()
        opt.step()
        opt.zero_grad()
    save_optimizer(opt, tmp_path / "opt.safetensors")
    assert b"pickle" not in (tmp_path / "opt.safetensors").read_bytes()[:8]
    fresh = build(model)
    load_optimizer(fresh, tmp_path / "opt.safetensors", "cpu")
    assert fresh.hypers == opt.hypers

    def flat(sd):
        states = sd["state"].values() if isinstance(sd["state"], dict) else sd["state"]
        return [t for st in states for t in st.values() if isinstance(t, torch.Tensor)]

    before, after = flat(opt.state_dict()), flat(fresh.state_dict())
    assert len(before) == len(after) >= 6 and all(torch.equal(a, b) for a, b in zip(before, after))


def test_training_uses_adamw_behind_fastai_schedules(trained):
    import safetensors

    with safetensors.safe_open(str(trained / "checkpoint" / "optimizer.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["vidseq"])["packed"]
    groups = dict(meta["dict"])["param_groups"]
    assert len(groups) == 2  # body and head, from the model's splitter
    group = dict(groups[0]["dict"])
    assert group["decoupled_wd"] == 0.01 and group["weight_decay"] == 0 and group["eps"] == 1e-5
    assert group["fused"] is False  # CPU


def test_fastai_adamw_takes_fastai_adams_steps():
    """Same update as fastai's Adam, one-cycle-style hyper-parameter changes and spared biases included."""
    from fastai.optimizer import Adam

    from vidseq.train import FastaiAdamW

    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3))
    ours = copy.deepcopy(ref)
    opts = []
    for model, make in ((ref, Adam), (ours, FastaiAdamW)):
        opt = make([list(model[:2].parameters()), list(model[2].parameters())], lr=1e-2)
        for m in (model[1], model[0], model[2]):  # what Learner.create_opt marks (wd_bn_bias=False)
            for name, param in m.named_parameters():
                if m is model[1] or name == "bias":
                    opt.state[param]["do_wd"] = False
        opt.set_hypers(wd=0.1)
        opts.append(opt)
    for step in range(6):
        x = torch.randn(8, 5)
        for model, opt in zip((ref, ours), opts):
            opt.set_hypers(lr=[1e-3 * (step + 1), 1e-2], mom=0.95 - 0.02 * step)
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(ref.parameters(), ours.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert opts[1].hypers[0]["wd"] == 0.1 and opts[1].hypers[1]["lr"] == 1e-2


def test_lr_auto_runs_lr_find_and_trains_with_its_suggestion(data, tmp_path):
    run = tmp_path / "lr"
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "1", "--lr", "auto", "--out", str(run)]) == 0
    assert (run / "lr_find.png").stat().st_size > 1000
    lr = json.loads((run / "config.json").read_text())["train"]["lr"]
    assert isinstance(lr, float) and 1e-7 < lr < 10


def test_pickle_and_mismatched_weights_are_refused(trained, tmp_path):
    import shutil

    bad = tmp_path / "model.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ModelError, match="pickle"):
        load_run(trained, weights=bad)
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model"]["n_classes"] = 5
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="do not fit"):
        load_run(other)
    save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(ModelError, match="do not fit"):
        load_run(trained, weights=tmp_path / "w.safetensors")


@pytest.mark.parametrize("args", [
    ["train", "/no/such/data", *TRAIN],
    ["train", "{data}/videos", "--model", "nope", "--no-pretrained"],
    ["train", "{data}/videos", "--split", "sideways", *TRAIN],
    ["train", "{data}/one", *TRAIN],
    ["evaluate", "{tmp}"],
    ["predict", "{tmp}", "x.avi"],
    ["train", "{data}/videos", "--lr", "fast", *TRAIN],
    ["train", "{data}/videos", "--option", "depth", *TRAIN],
    ["train", "{data}/videos", "--option", "no_such_option=3", *TRAIN],
    ["train", "{data}/videos", "--option", "head_dropout=abc", *TRAIN],
    ["train", "{data}/videos", "--lr", "-1", *TRAIN],
    ["train", "{data}/videos", "--device", "bogus", *TRAIN],
    ["train", "{data}/videos", "--device", "cuda:7", *TRAIN],
    ["train", "{data}/videos", "--workers", "-1", *TRAIN[:-2]],
    ["train", "{data}/videos", "--resume", *TRAIN],
    ["train", "{data}/videos", "--resume", "--overwrite", *TRAIN],
    ["train", "{data}/videos", "--device", "meta", *TRAIN],
    ["train", "{data}/videos", "--lr", "inf", *TRAIN],
    ["evaluate", "{tmp}", "--bs", "0"],
    ["predict", "{tmp}", "x.avi", "--top", "0"],
])
def test_user_errors_give_one_line_and_exit_2(args, data, tmp_path, capsys):
    one = data / "one" / "MoveLeft"
    if not one.exists():
        one.mkdir(parents=True)
        src = next((data / "videos" / "MoveLeft").glob("*.avi"))
        (one / src.name).write_bytes(src.read_bytes())
    args = [a.format(data=data, tmp=tmp_path) for a in args]
    assert main(args + ["--out", str(tmp_path / "o")] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0], err
    assert not (tmp_path / "o").exists()  # a run that could not start leaves no folder behind


def test_train_refuses_a_file_as_its_run_folder(data, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "1", "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_model_options_are_checked_and_read_as_python_writes_them(data, tmp_path):
    from vidseq.cli import _model_options

    assert _model_options(["motion=False", "a=true", "b=None", "c=3", "d=0.5", "e=text"]) == \
        {"motion": False, "a": True, "b": None, "c": 3, "d": 0.5, "e": "text"}
    from vidseq.models import create_model

    for bad in ({"motion": "False"}, {"shift_div": 2.5}):
        with pytest.raises(ModelError, match=f"option {next(iter(bad))} must be"):
            create_model("tsm", 3, backbone="resnet18", pretrained=False, **bad)


def test_resume_keeps_the_runs_settings_and_refuses_other_ones(data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "r"
    args = ["train", str(data / "videos"), *TRAIN, "--epochs", "2", "--out", str(run)]
    original = RunCheckpoint.after_epoch

    def interrupt(self):
        original(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "after_epoch", interrupt)
    assert main(args) == 130
    hint = capsys.readouterr().err.strip()
    assert hint == f"vidseq: interrupted; continue with: vidseq train {data / 'videos'} --out {run} --resume"
    monkeypatch.setattr(RunCheckpoint, "after_epoch", original)
    assert main(["train", str(data / "videos"), "--out", str(run), "--resume", "--size", "48"]) == 2
    assert "--size 48 (the run's: 32)" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # the hint, as printed, from another folder: the run's own settings
    assert main(["train", str(data / "videos"), "--out", str(run), "--resume"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["clip"]["size"] == 32 and config["clip"]["frames"] == 3 and config["train"]["bs"] == 4
    assert config["train"]["pretrained"] is False and config["model"]["backbone"] == "resnet18"
    assert config["data"]["source"] == str((data / "videos").resolve())  # absolute: evaluate from anywhere


def test_interrupt_before_an_epoch_ends_does_not_suggest_resume(data, tmp_path, monkeypatch, capsys):
    import vidseq.train.learner as learner

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(learner, "_fit", interrupt)
    assert main(["train", str(data / "videos"), *TRAIN, "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err.strip() == "vidseq: interrupted"


@pytest.mark.parametrize("damage", ["config.json", "checkpoint/optimizer.safetensors", "checkpoint/state.json"])
def test_resume_of_a_damaged_run_is_one_line(data, trained, tmp_path, damage, capsys):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(trained, run)
    (run / "checkpoint").mkdir(exist_ok=True)
    save_weights(load_run(trained).model, run / "checkpoint" / "model.safetensors")
    (run / "checkpoint" / "optimizer.safetensors").write_bytes(b"")
    (run / "checkpoint" / "state.json").write_text('{"epochs_done": 1}')
    target = run / damage
    if damage.endswith("state.json"):
        target.write_text("garbage")
    else:
        target.unlink()
    assert main(["train", str(data / "videos"), "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume" in err[0] and "train with --no-resume" in err[0]


def test_predict_refuses_files_that_are_not_videos_and_folders_of_videos(trained, data, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "notes.txt").write_text("hello\nworld\n" * 50)  # FFmpeg reads it as a "video" of its text
    Image.new("RGB", (32, 32)).save(tmp_path / "photo.png")
    video = next((data / "videos" / "MoveLeft").glob("*.avi"))
    other = tmp_path / "clip.mts"  # a real video under an unusual extension is still a video
    other.write_bytes(video.read_bytes())
    assert main(["predict", str(trained), str(tmp_path / "notes.txt"), str(tmp_path / "photo.png"),
                 str(data / "videos" / "MoveLeft"), str(video), str(other)]) == 0
    out, err = capsys.readouterr()
    assert "notes.txt: not a video (read as tty)" in err and "photo.png: not a video (read as png_pipe)" in err
    assert "a folder without numbered frames" in err
    assert str(video) in out and str(other) in out and "notes.txt" not in out


def test_a_new_training_run_removes_the_old_runs_evaluation(trained, data, tmp_path):
    import shutil

    run = tmp_path / "again"
    shutil.copytree(trained, run)
    (run / "report.html").write_text("an old report")
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "1", "--out", str(run), "--overwrite"]) == 0
    assert not (run / "report.html").exists()


def _tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_into_a_folder_that_holds_a_run_is_refused_and_overwrite_replaces_it(trained, data, tmp_path,
                                                                                     capsys):
    import shutil

    run = tmp_path / "done"
    shutil.copytree(trained, run)
    before = _tree(run)
    capsys.readouterr()
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "2", "--out", str(run)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"vidseq: error: {run}: holds a finished run (frame_avg, 1 epoch); "
                                                    "replace it with --overwrite, or give another --out DIR"]
    assert _tree(run) == before
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "2", "--out", str(run), "--overwrite"]) == 0
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2"]  # the new run's, not the old one's


def test_training_a_model_again_without_out_goes_into_the_next_free_folder(trained, data, tmp_path, monkeypatch,
                                                                           capsys):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained, tmp_path / "runs" / "frame_avg")
    (tmp_path / "runs" / "frame_avg-2").mkdir()  # a folder that holds no run is free
    before = _tree(tmp_path / "runs" / "frame_avg")
    capsys.readouterr()
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "1"]) == 0
    out, err = capsys.readouterr()
    assert "vidseq: runs/frame_avg holds a run already; training into runs/frame_avg-2" in err.splitlines()
    assert "run: runs/frame_avg-2" in out.splitlines()
    assert _tree(tmp_path / "runs" / "frame_avg") == before
    assert (tmp_path / "runs" / "frame_avg-2" / "config.json").is_file()
    assert run_folder(TrainConfig(data="", model="frame_avg")) == Path("runs/frame_avg-3")
    assert run_folder(TrainConfig(data="", model="frame_avg", resume=True)) == Path("runs/frame_avg")


def test_resume_refuses_any_setting_given_that_is_not_the_runs_and_a_finished_run(data, tmp_path, monkeypatch,
                                                                                  capsys):
    run = tmp_path / "r"
    original = RunCheckpoint.after_epoch

    def interrupt(self):
        original(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "after_epoch", interrupt)
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "2", "--out", str(run)]) == 130
    monkeypatch.setattr(RunCheckpoint, "after_epoch", original)
    capsys.readouterr()
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "2", "--out", str(run)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"vidseq: error: {run}: holds a run (frame_avg, 1 of 2 epochs done); continue it with --resume, replace it "
        "with --overwrite, or give another --out DIR"]
    for given in (["--size", "64"], ["--bs", "32"], ["--epochs", "5"], ["--pretrained"]):  # 64, 32: the defaults
        assert main(["train", str(data / "videos"), "--out", str(run), "--resume", *given]) == 2
        assert "cannot resume with other settings than the run's" in capsys.readouterr().err
    assert main(["train", str(data / "videos"), "--out", str(run), "--resume", "--size", "32"]) == 0  # the run's
    weights = (run / "model.safetensors").read_bytes()
    assert main(["train", str(data / "videos"), "--out", str(run), "--resume"]) == 2
    assert "finished all its 2 epochs, nothing to resume" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == weights


def test_a_training_run_that_cannot_start_leaves_the_old_run_as_it_was(trained, data, tmp_path, capsys):
    import shutil

    run = tmp_path / "old"
    shutil.copytree(trained, run)
    (run / "report.html").write_text("the old report")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for args in (["/no/such/data", *TRAIN], [str(data / "videos"), *TRAIN, "-o", "head_dropout=abc"]):
        assert main(["train", *args, "--out", str(run), "--overwrite"]) == 2
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_training_into_a_log_writes_lines_not_progress_bars(data, tmp_path, monkeypatch, capsys):
    import vidseq.train.learner as learner

    every_batch = learner.LogProgress
    monkeypatch.setattr(learner, "LogProgress", lambda: every_batch(every=0.0))  # a progress line each batch
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()  # captured: stdout is not a terminal, as in a log file
    assert "\r" not in out and "█" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "top5", "time"]
    assert [line.split()[0] for line in lines[1:3]] == ["1", "2"] and lines[3].startswith("run: ")  # as metrics.csv
    assert "\r" not in err and "█" not in err
    assert re.search(r"^epoch 1/2 +\d+% +1/\d+ batches +\[\d\d:\d\d<\d\d:\d\d, [\d.]+ batches/s, \d+ clips, "
                     r"[\d,]+ clips/s\]$", err, re.M), err



def test_run_config_is_typed_round_trips_and_refuses_a_newer_format(trained):
    import json

    from vidseq.runs import FORMAT, ClipConfig, RunConfig, read_config

    cfg = read_config(trained)
    assert isinstance(cfg, RunConfig) and isinstance(cfg.clip, ClipConfig) and cfg.format == FORMAT
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    doc = json.loads((trained / "config.json").read_text())
    assert doc["format"] == FORMAT and doc["clip"]["normalize"]["mean"] == [0.485, 0.456, 0.406]
    old = {k: v for k, v in doc.items() if k != "format"}  # a run from before the version was written
    old["clip"] = {k: v for k, v in doc["clip"].items() if k not in ("sampler", "pad", "normalize")}
    assert RunConfig.from_dict(old).clip.sampler == "random"
    with pytest.raises(ModelError, match="newer vidseq"):
        RunConfig.from_dict({**doc, "format": FORMAT + 1})
    with pytest.raises(ModelError, match="missing 'clip'"):
        RunConfig.from_dict({k: v for k, v in doc.items() if k != "clip"})


def test_valid_pct_sets_the_share_a_group_split_validates_on_and_the_run_keeps_it(data, tmp_path):
    from vidseq.datasets import load_items
    from vidseq.errors import VidseqError
    from vidseq.evaluate import evaluate_run
    from vidseq.runs import read_config
    from vidseq.train import resumed_config

    run = tmp_path / "half"
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "1", "--split", "group", "--valid-pct", "0.5",
                 "--out", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())["data"]
    half = load_items(data / "videos", split="group", valid_pct=0.5).valid_items()
    assert saved["split"] == "group" and saved["valid_pct"] == 0.5
    assert saved["valid"] == len(half) > len(load_items(data / "videos", split="group").valid_items())
    assert len(evaluate_run(run, device="cpu").targets) == len(half)  # evaluated on the run's own validation items
    with pytest.raises(VidseqError, match=r"valid_pct=0.3 \(the run's: 0.5\)"):
        resumed_config(TrainConfig(data=str(data / "videos"), valid_pct=0.3), read_config(run))


def _table_epochs(out: str) -> list[str]:
    """The epoch column of the epoch table's rows in `out` (a terminal's bars before them left out), empty rows
    ("0  00:00") too."""
    rows = [line.rsplit("\r", 1)[-1].split() for line in out.splitlines()]
    return [r[0] for r in rows if len(r) >= 2 and r[0].isdigit()]


@pytest.mark.parametrize("terminal", [False, True], ids=["log", "terminal"])
def test_a_resumed_runs_epoch_table_shows_the_epochs_it_runs_numbered_as_metrics_csv(data, tmp_path, monkeypatch,
                                                                                     capsys, terminal):
    import sys

    if terminal:  # fastai's progress bars and their table, as on a terminal
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    run = tmp_path / "r"
    original = RunCheckpoint.after_epoch

    def interrupt_after_the_first(self):
        original(self)
        if self.epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "after_epoch", interrupt_after_the_first)
    capsys.readouterr()
    assert main(["train", str(data / "videos"), *TRAIN, "--epochs", "3", "--out", str(run)]) == 130
    assert _table_epochs(capsys.readouterr().out) == ["1"]
    monkeypatch.setattr(RunCheckpoint, "after_epoch", original)
    assert main(["train", str(data / "videos"), "--out", str(run), "--resume"]) == 0
    assert _table_epochs(capsys.readouterr().out) == ["2", "3"]
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2", "3"]


def test_the_epoch_table_goes_on_counting_from_the_frozen_phase_into_the_main_one(data, tmp_path, monkeypatch,
                                                                                  capsys):
    import torchvision

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",  # no network: random "pretrained" weights
                        lambda *a, **k: torchvision.models.resnet18().state_dict())
    run = tmp_path / "tuned"
    capsys.readouterr()
    assert main(["train", str(data / "videos"), *[a for a in TRAIN if a != "--no-pretrained"], "--epochs", "2",
                 "--out", str(run)]) == 0
    assert _table_epochs(capsys.readouterr().out) == ["1", "2", "3"]  # one frozen epoch, then two
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2", "3"]
