"""Hugging Face video classifiers (``hf:<folder>``) from tiny checkpoints written in the test: the checkpoint's own
input as the recipe, the same logits as transformers' model, a new head, training runs, export, and the one-line
failures (no transformers, no network, a clip shape the checkpoint cannot take)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from hf_tiny import LABELS, SIZE, T, tiny_checkpoint, train_tiny_hf_run  # noqa: E402
from vidseq.errors import ModelError, VidseqError  # noqa: E402
from vidseq.models import create_model, model_recipe, splitter  # noqa: E402

KINDS = ["videomae", "timesformer", "vivit", "vjepa2"]


@pytest.fixture(scope="module", params=KINDS)
def checkpoint(request, tmp_path_factory):
    return request.param, tiny_checkpoint(tmp_path_factory.mktemp(request.param), request.param)


def processed(folder, video: np.ndarray) -> torch.Tensor:
    """The checkpoint's own processor on `video` (T, H, W, 3): what transformers' users feed the model."""
    t = transformers
    try:
        p = t.AutoVideoProcessor.from_pretrained(folder)
        batch = p(videos=[video], return_tensors="pt")
    except (OSError, ValueError, KeyError, TypeError):
        p = t.AutoImageProcessor.from_pretrained(folder)
        batch = p(list(video), return_tensors="pt")
    return next(v for k, v in batch.items() if k.startswith("pixel_values"))


def test_the_checkpoints_input_is_the_recipe_as_its_processor_computes_it(checkpoint):
    kind, folder = checkpoint
    recipe = model_recipe(f"hf:{folder}")
    assert (recipe.frames, recipe.size) == (T, SIZE)
    saved = json.loads(next(p for p in folder.iterdir() if p.name.endswith("processor_config.json")).read_text())
    assert recipe.crop_pct == pytest.approx(SIZE / saved["size"]["shortest_edge"])
    assert recipe.crop_pct < 1 if kind in ("videomae", "vjepa2") else recipe.crop_pct == 1
    colours = np.random.default_rng(0).integers(0, 256, (T, 1, 1, 3)).astype(np.uint8)
    video = np.broadcast_to(colours, (T, SIZE, SIZE, 3)).copy()  # constant frames: resizing changes nothing
    mean, std = torch.tensor(recipe.stats.mean), torch.tensor(recipe.stats.std)
    ours = (torch.from_numpy(video).float() / 255 - mean) / std  # (T, H, W, C): vidseq's normalisation
    torch.testing.assert_close(ours.permute(0, 3, 1, 2)[None], processed(folder, video).float(), atol=1e-4,
                               rtol=1e-4)


def test_logits_equal_transformers_model_on_the_same_input(checkpoint):
    kind, folder = checkpoint
    ref = transformers.AutoModelForVideoClassification.from_pretrained(folder).eval()
    model = create_model(f"hf:{folder}", LABELS, seq_len=T, image_size=SIZE, pretrained=True).eval()
    x = torch.randn(2, T, 3, SIZE, SIZE)
    name = "pixel_values_videos" if kind == "vjepa2" else "pixel_values"
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(**{name: x}).logits, rtol=0, atol=0)


def test_a_new_head_for_the_datasets_classes_keeps_the_body(checkpoint):
    kind, folder = checkpoint
    ref = transformers.AutoModelForVideoClassification.from_pretrained(folder)
    model = create_model(f"hf:{folder}", 3, seq_len=T, image_size=SIZE, pretrained=True)
    groups = splitter(model)  # embeddings, one group per block (2), final norms and the head: layer-wise rates
    assert len(groups) == 4 and all(groups)
    body, head = [p for g in groups[:-1] for p in g], groups[-1]
    assert model(torch.randn(1, T, 3, SIZE, SIZE)).shape == (1, 3)
    ours = dict(model.net.named_parameters())
    head_ids = {id(p) for p in head}
    for name, p in ref.named_parameters():
        if id(ours[name]) not in head_ids:
            assert torch.equal(ours[name], p), name
    for p in body:
        p.requires_grad_(False)
    before_body, before_head = [p.clone() for p in body], [p.clone() for p in head]
    opt = torch.optim.AdamW(head, lr=1e-2)
    F.cross_entropy(model(torch.randn(2, T, 3, SIZE, SIZE)), torch.tensor([0, 2])).backward()
    opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before_body, body, strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(before_head, head, strict=True))


def test_the_config_rebuilds_the_model_without_the_checkpoint(tmp_path):
    folder = tiny_checkpoint(tmp_path / "ckpt", "videomae")
    model = create_model(f"hf:{folder}", 3, seq_len=T, image_size=SIZE, pretrained=False)
    config = json.loads(json.dumps(model.vidseq_config))
    assert config["hf_config"]["model_type"] == "videomae" and config["hf_processor"]
    for p in folder.iterdir():
        p.unlink()
    rebuilt = create_model(**config)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, T, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))


def test_checkpointing_changes_memory_not_results(tmp_path):
    folder = tiny_checkpoint(tmp_path / "ckpt", "videomae")
    x, y = torch.randn(2, T, 3, SIZE, SIZE), torch.tensor([0, 1])
    grads = []
    for checkpointing in (False, True):
        model = create_model(f"hf:{folder}", 3, seq_len=T, image_size=SIZE, pretrained=True,
                             checkpointing=checkpointing)
        torch.manual_seed(0)
        model.head_modules()[0].reset_parameters()
        F.cross_entropy(model(x), y).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-5, rtol=1e-4)


def test_train_evaluate_and_export_a_folder_transformers_loads(tmp_path):
    from vidseq.evaluate import evaluate_run
    from vidseq.export import export_hf
    from vidseq.runs import load_run

    result = train_tiny_hf_run(tmp_path)
    saved = json.loads((result.run / "config.json").read_text())
    assert (saved["clip"]["frames"], saved["clip"]["size"]) == (T, SIZE)  # the checkpoint's, not vidseq's 5 x 64
    assert saved["train"]["lr"] == pytest.approx(5e-4 * 4 / 256)  # VideoMAE's rate, scaled to the batch of 4
    assert saved["clip"]["normalize"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    run = load_run(result.run)
    assert len(evaluate_run(run).paths) == 14

    dest = export_hf(run, tmp_path / "export")
    exported = transformers.AutoModelForVideoClassification.from_pretrained(dest).eval()
    assert exported.config.id2label == {0: "MoveLeft", 1: "MoveRight"}
    colours = np.random.default_rng(1).integers(0, 256, (T, 1, 1, 3)).astype(np.uint8)
    video = np.broadcast_to(colours, (T, 36, 48, 3)).copy()
    x = processed(dest, video)  # the exported processor: the run's crop and normalisation
    with torch.no_grad():
        torch.testing.assert_close(exported(pixel_values=x).logits, run.model(x), rtol=0, atol=0)
    again = model_recipe(f"hf:{dest}")  # the exported folder as a checkpoint: the run's own input
    clip = run.config.clip
    assert (again.frames, again.size) == (clip.frames, clip.size) and again.crop_pct == pytest.approx(clip.crop_pct)
    np.testing.assert_allclose(again.stats.mean, clip.normalize.mean, atol=1e-5)
    np.testing.assert_allclose(again.stats.std, clip.normalize.std, atol=1e-5)
    with pytest.raises(VidseqError, match="exists"):
        export_hf(run, dest)
    assert export_hf(run, dest, overwrite=True) == dest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no temporary folder left


def test_a_clip_shape_the_checkpoint_cannot_take_is_one_line(tmp_path):
    folder = tiny_checkpoint(tmp_path / "ckpt", "videomae")
    with pytest.raises(ModelError, match=r"takes clips of exactly 4 frames of 32x32 pixels") as e:
        create_model(f"hf:{folder}", 3, seq_len=8, image_size=SIZE)
    assert "\n" not in str(e.value)


def test_without_transformers_one_line_says_what_to_install(monkeypatch, tmp_path):
    from vidseq.models import hf

    monkeypatch.setitem(sys.modules, "transformers", None)
    hf._checkpoint.cache_clear()
    with pytest.raises(ModelError, match=r"need transformers: pip install 'vidseq\[hf\]'"):
        create_model(f"hf:{tmp_path}", 3)


def test_offline_hub_checkpoint_and_non_hf_export_are_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    from vidseq.datasets.synth import SynthConfig, make_synth

    make_synth(tmp_path / "data", SynthConfig(classes=2, groups=8, clips=1, frames=8, width=32, height=32))
    args = [sys.executable, "-m", "vidseq", "train", str(tmp_path / "data" / "videos"), "--workers", "0"]
    out = subprocess.run([*args, "--model", "hf:someone/videomae-not-here", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2 and not (tmp_path / "r").exists()
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "someone/videomae-not-here" in lines[0] and "hf:DIR" in lines[0], out.stderr
    out = subprocess.run([*args, "--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--frames", "2",
                          "--size", "32", "--epochs", "1", "--out", str(tmp_path / "fa")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-m", "vidseq", "export", str(tmp_path / "fa"), str(tmp_path / "x"),
                          "--format", "hf"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2 and "only runs of Hugging Face models" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_a_hub_models_run_folder_is_named_after_the_checkpoint():
    from pathlib import Path

    from vidseq.train.folder import default_run_folder

    assert default_run_folder("hf:MCG-NJU/videomae-base-finetuned-kinetics") == Path(
        "runs/hf-videomae-base-finetuned-kinetics")
    assert default_run_folder("hf:/data/ckpt/") == Path("runs/hf-ckpt")
    assert default_run_folder("swin3d_t") == Path("runs/swin3d_t")


def test_layer_wise_decay_gives_each_block_its_rate(tmp_path):
    from fastai.callback.core import Callback
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat

    from vidseq.train.learner import _fit

    folder = tiny_checkpoint(tmp_path / "ckpt", "videomae")
    model = create_model(f"hf:{folder}", 2, seq_len=T, image_size=SIZE, pretrained=True)
    items = [(torch.randn(T, 3, SIZE, SIZE), torch.tensor(i % 2)) for i in range(4)]
    learn = Learner(DataLoaders.from_dsets(items, items, bs=2, device="cpu"), model, splitter=splitter,
                    loss_func=CrossEntropyLossFlat(), path=tmp_path, model_dir=".")
    rates = []

    class Rates(Callback):
        def after_batch(self):
            rates.append([h["lr"] for h in self.opt.hypers])

    learn.add_cb(Rates())
    _fit(learn, tmp_path, {"freeze_epochs": 1, "epochs": 1, "lr": 1e-3, "layer_decay": 0.7}, done=0, resume=False,
         device="cpu", rank0=True)
    last = np.array(rates[-1])  # the unfrozen phase: head's rate x 0.7 per group towards the input
    assert len(last) == 4
    np.testing.assert_allclose(last[:-1] / last[1:], 0.7, rtol=1e-6)
