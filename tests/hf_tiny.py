"""Tiny Hugging Face checkpoints written locally (config, random weights, processor, as `save_pretrained` writes
them) and a run trained from one: ``hf:`` models tested without a download. Needs transformers."""

from __future__ import annotations

from pathlib import Path

import torch

T, SIZE, LABELS = 4, 32, 5
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def tiny_checkpoint(folder, kind: str):
    """A tiny checkpoint of `kind` (config, random weights, processor) in `folder`, as save_pretrained writes it."""
    import transformers as t

    labels = {"id2label": {i: f"k{i}" for i in range(LABELS)}, "label2id": {f"k{i}": i for i in range(LABELS)}}
    if kind == "videomae":
        config = t.VideoMAEConfig(image_size=SIZE, patch_size=8, num_frames=T, tubelet_size=2, **TINY, **labels)
        processor = t.VideoMAEImageProcessor(size={"shortest_edge": 36}, crop_size={"height": SIZE, "width": SIZE},
                                             image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    elif kind == "timesformer":
        config = t.TimesformerConfig(image_size=SIZE, patch_size=8, num_frames=T, **TINY, **labels)
        processor = t.VideoMAEImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
                                             image_mean=[0.45, 0.45, 0.45], image_std=[0.225, 0.225, 0.225])
    elif kind == "vivit":
        config = t.VivitConfig(image_size=SIZE, num_frames=T, tubelet_size=[2, 8, 8], **TINY, **labels)
        processor = t.VivitImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    elif kind == "vjepa2":
        config = t.VJEPA2Config(crop_size=SIZE, frames_per_clip=T, patch_size=8, tubelet_size=2, hidden_size=32,
                                num_hidden_layers=2, num_attention_heads=2, pred_hidden_size=32,
                                pred_num_hidden_layers=1, pred_num_attention_heads=2, num_pooler_layers=1, **labels)
        processor = t.VJEPA2VideoProcessor(size={"shortest_edge": 40}, crop_size={"height": SIZE, "width": SIZE})
    torch.manual_seed(0)
    t.AutoModelForVideoClassification.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def train_tiny_hf_run(root: Path):
    """A tiny VideoMAE checkpoint in root/ckpt, tiny synth data (2 classes, 40x32) in root/data and a run trained
    from the checkpoint on it (one frozen epoch, one unfrozen) in root/run; returns the `TrainResult`."""
    from vidseq.datasets.synth import SynthConfig, make_synth
    from vidseq.train import TrainConfig, train

    folder = tiny_checkpoint(root / "ckpt", "videomae")
    make_synth(root / "data", SynthConfig(classes=2, groups=8, clips=1, frames=8, width=40, height=32))
    return train(TrainConfig(data=str(root / "data" / "videos"), model=f"hf:{folder}", bs=4, epochs=1,
                             freeze_epochs=1, workers=0, out=str(root / "run"), verbose=False))
