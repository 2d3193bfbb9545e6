"""torchvision's video classifiers as vidseq models: the same logits as torchvision's own network from the same
weights, the checkpoint's preprocessing as the run's defaults, checkpointing, freezing, runs and offline weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torchvision.transforms.v2 import functional as TF

from vidseq.errors import ModelError
from vidseq.models import VIDEO_NETS, create_model, model_recipe, splitter
from vidseq.train import TrainConfig
from vidseq.train.learner import native_clip

SHAPES = {"s3d": (14, 224), "mvit_v1_b": (16, 224), "mvit_v2_s": (16, 224)}  # their smallest (MViT: only) clips


def shape(name: str) -> tuple[int, int]:
    return SHAPES.get(name, (4, 32))


def reference(name: str) -> torch.nn.Module:
    """torchvision's own network with its 400 Kinetics classes (random weights)."""
    return getattr(torchvision.models.video, name)(weights=None)


@pytest.mark.parametrize("name", list(VIDEO_NETS))
def test_logits_equal_torchvisions_network_loaded_with_the_same_weights(tmp_path, name):
    t, size = shape(name)
    torch.manual_seed(0)
    ref = reference(name).eval()
    weights = tmp_path / "kinetics.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(weights))
    model = create_model(name, 400, seq_len=t, image_size=size, pretrained=str(weights)).eval()
    head = VIDEO_NETS[name].head
    model.head.load_state_dict(getattr(ref, head).state_dict())  # the one part a new dataset replaces
    x = torch.randn(1 if name in SHAPES else 2, t, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x.transpose(1, 2)), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d"])
def test_the_checkpoints_preprocessing_is_the_models_recipe(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    t = weights.transforms()
    recipe = model_recipe(name)
    assert recipe.stats.mean == tuple(t.mean) and recipe.stats.std == tuple(t.std)
    assert recipe.size == t.crop_size[0] and recipe.crop_pct == pytest.approx(t.crop_size[0] / min(t.resize_size))
    assert recipe.frames == VIDEO_NETS[name].frames and recipe.frames >= weights.meta.get("min_temporal_size", 1)


def test_a_run_takes_the_checkpoints_clip_shape_unless_given():
    recipe = model_recipe("r3d_18")
    cfg = native_clip(TrainConfig(data="d", model="r3d_18"), recipe)
    assert (cfg.frames, cfg.size) == (16, 112)
    cfg = native_clip(TrainConfig(data="d", model="r3d_18", frames=8), recipe)  # given: kept
    assert (cfg.frames, cfg.size) == (8, 112)
    cfg = native_clip(TrainConfig(data="d", model="r3d_18", size=64, given=frozenset({"size"})), recipe)
    assert (cfg.frames, cfg.size) == (16, 64)
    frame_model = native_clip(TrainConfig(data="d", model="frame_avg"), model_recipe("frame_avg"))
    assert (frame_model.frames, frame_model.size) == (5, 64)  # image models have no clip shape of their own


@pytest.mark.parametrize("name", ["r3d_18", "swin3d_t"])
def test_checkpointing_changes_memory_not_results(name):
    t, size = shape(name)
    x, y = torch.randn(2, t, 3, size, size), torch.tensor([0, 1])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = create_model(name, 3, seq_len=t, image_size=size, checkpointing=checkpointing)
        F.cross_entropy(model(x), y).backward()
        grads.append({k: p.grad for k, p in model.named_parameters()})
        if checkpointing:
            assert model.state_dict().keys() == create_model(name, 3, seq_len=t, image_size=size).state_dict().keys()
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(VIDEO_NETS))
def test_a_frozen_step_trains_the_head_and_leaves_the_body(name):
    t, size = shape(name)
    torch.manual_seed(0)
    model = create_model(name, 3, seq_len=t, image_size=size, dropout=0.0)
    body, head = splitter(model)
    for p in body:
        p.requires_grad_(False)
    before_body, before_head = [p.clone() for p in body], [p.clone() for p in head]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    n = 1 if name in SHAPES else 2
    F.cross_entropy(model(torch.randn(n, t, 3, size, size)), torch.tensor([0, 2])[:n]).backward()
    opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before_body, body, strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(before_head, head, strict=True))


def test_mvit_refuses_another_clip_shape_in_one_line():
    with pytest.raises(ModelError, match="mvit_v2_s takes clips of exactly 16 frames of 224x224 pixels") as e:
        create_model("mvit_v2_s", 3, seq_len=8, image_size=112)
    assert "\n" not in str(e.value)


def test_weights_for_another_network_or_with_a_backbone_are_one_line(tmp_path):
    wrong = tmp_path / "r3d.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision.models.video.r3d_18().state_dict().items()}, str(wrong))
    with pytest.raises(ModelError, match="do not fit torchvision mc3_18") as e:
        create_model("mc3_18", 3, seq_len=4, image_size=32, pretrained=str(wrong))
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="swin3d_t has its own network and takes no backbone"):
        create_model("swin3d_t", 3, backbone="resnet18")


def test_pretrained_offline_is_one_line_naming_a_local_file(monkeypatch, tmp_path):
    import urllib.error

    def fail(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    for name in ("mc3_18", "swin3d_t"):
        with pytest.raises(ModelError, match="cannot get pretrained weights") as e:
            create_model(name, 3, seq_len=4, image_size=32, pretrained=True)
        assert "\n" not in str(e.value) and "pretrained=False" in str(e.value) and "weights.safetensors" in str(e.value)


def test_a_run_records_the_checkpoints_preprocessing_and_evaluation_uses_it(tmp_path):
    import json

    from vidseq.datasets.synth import SynthConfig, make_synth
    from vidseq.evaluate import evaluate_run
    from vidseq.evaluate.inference import clip_tfm_for
    from vidseq.runs import load_run
    from vidseq.train import train

    make_synth(tmp_path / "data", SynthConfig(classes=2, groups=8, clips=1, frames=8, width=40, height=32))
    result = train(TrainConfig(data=str(tmp_path / "data" / "videos"), model="mc3_18", pretrained=False, frames=4,
                               size=32, bs=4, epochs=1, workers=0, out=str(tmp_path / "run"), verbose=False))
    clip = json.loads((result.run / "config.json").read_text())["clip"]
    kinetics = torchvision.models.get_model_weights("mc3_18").DEFAULT.transforms()
    assert clip["normalize"] == {"mean": list(kinetics.mean), "std": list(kinetics.std)}
    assert clip["crop_pct"] == pytest.approx(112 / 128) and (clip["frames"], clip["size"]) == (4, 32)
    run = load_run(result.run)
    tfm = clip_tfm_for(run.config)
    assert tfm.crop_pct == pytest.approx(0.875)
    frames = torch.arange(32 * 40, dtype=torch.uint8).reshape(1, 32, 40, 1).expand(4, 32, 40, 3).numpy()
    crop = tfm.resize(frames, train=False, rng=None)  # the centre 28 x 28 (0.875 of 32), resized to 32
    centre = TF.resized_crop(torch.from_numpy(frames).permute(0, 3, 1, 2), 2, 6, 28, 28, [32, 32], antialias=True)
    assert torch.equal(crop, centre)
    ev = evaluate_run(result.run)
    assert len(ev.paths) == 14 and 0 <= ev.top1 <= 1
