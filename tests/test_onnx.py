"""ONNX export: every model family exports with logits matching PyTorch in onnxruntime; the file carries the
preprocessing contract; predict and evaluate on the ONNX file give the PyTorch path's output; failures are one line."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from conftest import train_tiny_run  # noqa: E402
from vidseq.cli import main  # noqa: E402
from vidseq.errors import ModelError  # noqa: E402
from vidseq.export import OnnxModel, export_onnx  # noqa: E402
from vidseq.export.onnx import check_parity  # noqa: E402
from vidseq.models import create_model  # noqa: E402
from vidseq.runs import ClipConfig, DataConfig, Run, RunConfig, TrainSettings  # noqa: E402

FAMILIES = {"frame_avg": {"backbone": "resnet18"}, "cnn_lstm": {"backbone": "resnet18", "hidden_size": 32},
            "tsm": {"backbone": "resnet18"},
            "timesformer": {"dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "patch_size": 8},
            "r2plus1d_18": {}, "swin3d_t": {}}


def run_of(model, tmp_path, frames: int = 4, size: int = 32) -> Run:
    config = RunConfig(model=model.vidseq_config, classes=["a", "b", "c"], data=DataConfig(source=str(tmp_path)),
                       clip=ClipConfig(frames=frames, size=size), train=TrainSettings())
    return Run(tmp_path, config, model)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_exports_with_pytorchs_logits(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name, 3, seq_len=4, image_size=32, **FAMILIES[name]).eval()
    done = export_onnx(run_of(model, tmp_path), tmp_path / "m.onnx", check=0)
    clips = torch.randn(5, 4, 3, 32, 32)
    diff, same = check_parity(model, done.path, clips)
    assert diff < 1e-4 and same
    onnx_model = OnnxModel(done.path)  # any batch size: the batch dimension is dynamic
    torch.testing.assert_close(onnx_model(clips), model(clips).detach(), atol=1e-4, rtol=1e-4)
    assert onnx_model.contract["frames"] == 4 and onnx_model.contract["classes"] == ["a", "b", "c"]


def test_a_hugging_face_model_exports_too(tmp_path):
    pytest.importorskip("transformers")
    from hf_tiny import SIZE, T, tiny_checkpoint

    folder = tiny_checkpoint(tmp_path / "ckpt", "videomae")
    model = create_model(f"hf:{folder}", 3, seq_len=T, image_size=SIZE, pretrained=True).eval()
    done = export_onnx(run_of(model, tmp_path, T, SIZE), tmp_path / "m.onnx", check=0, dynamic_batch=False)
    diff, same = check_parity(model, done.path, torch.randn(3, T, 3, SIZE, SIZE))
    assert diff < 1e-4 and same


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("onnx"), "tsm")


def test_export_checks_parity_on_the_runs_clips_and_writes_the_contract(trained, tmp_path, capsys):
    out = tmp_path / "tsm.onnx"
    assert main(["export", str(trained), str(out), "--format", "onnx"]) == 0
    line = capsys.readouterr().out
    assert "onnxruntime matches PyTorch on 8 clips of the run's data" in line
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    contract = json.loads(meta["vidseq"])
    config = json.loads((trained / "config.json").read_text())
    assert contract["classes"] == config["classes"] and contract["mean"] == config["clip"]["normalize"]["mean"]
    assert (contract["frames"], contract["size"], contract["layout"]) == (3, 32, "B,T,C,H,W")
    assert main(["export", str(trained), str(out), "--format", "onnx"]) == 2  # exists: --overwrite to replace
    assert "--overwrite" in capsys.readouterr().err


def test_predict_and_evaluate_on_onnx_give_the_pytorch_output(trained, tmp_path, capsys):
    out = tmp_path / "tsm.onnx"
    assert main(["export", str(trained), str(out), "--format", "onnx", "--no-dynamic-batch"]) == 0
    capsys.readouterr()
    videos = [str(p) for p in sorted((trained.parent / "data" / "videos").rglob("*.avi"))[:3]]
    runs = {}
    for extra in ([], ["--onnx", str(out)]):
        assert main(["predict", str(trained), *videos, "--clips", "2", "--json", *extra]) == 0
        runs[bool(extra)] = json.loads(capsys.readouterr().out)
    for a, b in zip(runs[False], runs[True]):
        assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        np.testing.assert_allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]],
                                   atol=1e-4)
    scores = {}
    for extra in ([], ["--onnx", str(out)]):
        assert main(["evaluate", str(trained), "--json", "--no-report", *extra]) == 0
        scores[bool(extra)] = json.loads(capsys.readouterr().out)
    assert scores[False]["top1"] == scores[True]["top1"] and scores[False]["confusion"] == scores[True]["confusion"]


def test_a_file_that_is_not_an_export_of_the_run_is_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["predict", str(trained), str(bad), "--onnx", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable ONNX file" in err[0]

def test_an_export_that_does_not_match_pytorch_is_refused_and_not_written(trained, tmp_path, monkeypatch):
    import vidseq.export.onnx as onnx_export
    from vidseq.runs import load_run

    run = load_run(trained)
    other = create_model(**{**run.config.model, "pretrained": False}).eval()  # other weights: other logits
    diff, same = check_parity(other, export_onnx(run, tmp_path / "a.onnx").path, torch.randn(3, 3, 3, 32, 32))
    assert diff > 1e-3
    monkeypatch.setattr(onnx_export, "check_parity", lambda model, path, clips: (diff, same))
    with pytest.raises(ModelError, match="does not match PyTorch on the run's clips"):
        export_onnx(run, tmp_path / "b.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx"]  # neither the file nor its temporary


# which run a file belongs to


def make_run(trained, dest, *, model: str | None = None, size: int | None = None, seed: int = 1):
    """A run folder like `trained` (same classes and frames) holding other weights: a `model` of another family,
    freshly initialised, or the same one re-initialised; with `size`, made for clips of that size."""
    import shutil

    from vidseq.runs import load_run, save_weights, write_config

    shutil.copytree(trained, dest)
    config = load_run(trained).config
    settings = {**config.model, "pretrained": False}
    if model is not None:
        settings = {"name": model, "backbone": "resnet18", "n_classes": len(config.classes),
                    "seq_len": config.clip.frames, "pretrained": False}
    torch.manual_seed(seed)
    net = create_model(**settings)
    clip = dataclasses.replace(config.clip, size=size or config.clip.size)
    write_config(dest, dataclasses.replace(config, model=net.vidseq_config, clip=clip))
    save_weights(net, dest / "model.safetensors")
    return dest


def older_export(path, dest):
    """`path` as vidseq wrote ONNX files before they recorded their run: the contract without `run` and `shape`."""
    import onnx

    proto = onnx.load(str(path))
    entry = next(p for p in proto.metadata_props if p.key == "vidseq")
    old = {k: v for k, v in json.loads(entry.value).items() if k not in ("run", "shape")}
    entry.value = json.dumps(old)
    onnx.save(proto, str(dest))
    return dest


@pytest.fixture(scope="module")
def tsm_onnx(trained, tmp_path_factory):
    from vidseq.runs import load_run

    return export_onnx(load_run(trained), tmp_path_factory.mktemp("tsm-onnx") / "tsm.onnx", check=0).path


@pytest.mark.parametrize("model", ["cnn_lstm", None], ids=["another-family", "the-same-retrained"])
def test_a_file_exported_from_another_run_is_refused_in_one_line(trained, tsm_onnx, tmp_path, capsys, model):
    other = make_run(trained, tmp_path / "other", model=model)
    video = str(sorted((trained.parent / "data" / "videos").rglob("*.avi"))[0])
    for command in (["predict", str(other), video], ["evaluate", str(other), "--no-report"]):
        assert main([*command, "--onnx", str(tsm_onnx)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"vidseq: error: {tsm_onnx}: ") and f"exported from run '{trained.name}'" in err[0]
        assert f"vidseq export {other} FILE --format onnx" in err[0]


def test_a_file_for_another_clip_size_is_one_line_not_a_traceback(trained, tsm_onnx, tmp_path, capsys):
    bigger = make_run(trained, tmp_path / "bigger", size=40)
    video = str(sorted((trained.parent / "data" / "videos").rglob("*.avi"))[0])
    old = older_export(tsm_onnx, tmp_path / "old.onnx")
    for onnx_file, origin in ((tsm_onnx, f"run '{trained.name}'"), (old, "another run")):
        assert main(["predict", str(bigger), video, "--onnx", str(onnx_file)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"vidseq: error: {onnx_file}: was exported from {origin}"), err
        assert f"vidseq export {bigger} FILE --format onnx" in err[0]
        assert "takes clips of 3 frames of 32 px, the run makes clips of 3 frames of 40 px" in err[0]


def test_an_older_file_without_its_run_is_checked_as_far_as_it_can_be_with_a_warning(trained, tsm_onnx, tmp_path,
                                                                                     capsys):
    old = older_export(tsm_onnx, tmp_path / "old.onnx")
    video = str(sorted((trained.parent / "data" / "videos").rglob("*.avi"))[0])
    assert main(["predict", str(trained), video, "--json", "--onnx", str(old)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["top"]
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and str(old) in warning[0] and "cannot be checked" in warning[0]
    assert f"vidseq export {trained} FILE --format onnx" in warning[0]
    assert main(["predict", str(trained), video, "--json", "--onnx", str(tsm_onnx)]) == 0  # today's: no warning
    assert "warning" not in capsys.readouterr().err


def test_the_contract_records_the_run_and_the_input_shape(trained, tsm_onnx):
    from vidseq.export.onnx import run_identity
    from vidseq.runs import load_run

    model = OnnxModel(tsm_onnx)
    contract = model.contract
    assert contract["run"] == run_identity(load_run(trained)) and contract["run"]["name"] == trained.name
    assert contract["shape"] == [1, 3, 3, 32, 32] == model.session.get_inputs()[0].shape  # TSM's: a fixed batch


def test_a_run_held_in_memory_gets_the_same_check(tmp_path):
    from vidseq.export import with_onnx

    torch.manual_seed(0)
    model = create_model("frame_avg", 3, seq_len=4, image_size=32, backbone="resnet18").eval()
    run = run_of(model, tmp_path)
    path = export_onnx(run, tmp_path / "m.onnx", check=0).path
    assert OnnxModel(path).contract["shape"] == ["batch", 4, 3, 32, 32]
    assert isinstance(with_onnx(run_of(model, tmp_path), path).model, OnnxModel)  # the same weights: accepted
    other = create_model("frame_avg", 3, seq_len=4, image_size=32, backbone="resnet18").eval()
    with pytest.raises(ModelError, match=f"was exported from run '{tmp_path.name}', not from .* \\(other weights\\)"):
        with_onnx(run_of(other, tmp_path), path)
    with pytest.raises(ModelError, match="other settings"):  # the same weights, another clip setting
        with_onnx(Run(tmp_path, _with_clip(run, crop_pct=0.8), model), path)
    with pytest.raises(ModelError, match="other classes"):
        with_onnx(Run(tmp_path, dataclasses.replace(run.config, classes=["x", "y", "z"]), model), path)


def _with_clip(run: Run, **clip):
    return dataclasses.replace(run.config, clip=dataclasses.replace(run.config.clip, **clip))
