"""Hugging Face video classifiers: ``hf:<hub id or local folder>`` (VideoMAE, TimeSformer, ViViT, V-JEPA 2 and
every other architecture of `AutoModelForVideoClassification`), with `transformers` (``pip install vidseq[hf]``).

A checkpoint brings its own input: frames per clip from its config, crop size, resize and normalisation from its
processor config (`preprocessor_config.json` or `video_preprocessor_config.json`). vidseq reads the processor's
normalisation as it computes it (a black and a white clip through the processor: per channel an affine map, so
offsets such as ViViT's [-1, 1] rescaling come out right) and makes it the model's `Recipe`, which training takes
as the run's defaults. The model gets a new classifier for the dataset's classes (``ignore_mismatched_sizes``); the
checkpoint's config and processor are kept in the run's config, so a run rebuilds, evaluates and exports
(`vidseq.export.export_hf`) without the checkpoint at hand.

>>> model = create_model("hf:MCG-NJU/videomae-base-finetuned-kinetics", 101, seq_len=16, image_size=224,
...                      pretrained=True)                                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from vidseq.clips.clip import Stats
from vidseq.errors import ModelError
from vidseq.files import usual_mode
from vidseq.models._registry import Recipe, register_family
from vidseq.models.layers import as_clip
from vidseq.models.weights import Pretrained, one_line

INSTALL = "Hugging Face models need transformers: pip install 'vidseq[hf]'"
#: model types whose position embeddings are fixed to the checkpoint's clip shape
FIXED_SHAPE = ("videomae", "vivit")
#: the modules a new dataset retrains from scratch: the classifier (and V-JEPA 2's attentive pooler)
HEAD_MODULES = ("classifier", "pooler")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ModelError(INSTALL) from None
    return transformers


def _hub_error(ref: str, exc: BaseException) -> ModelError:
    return ModelError(f"cannot read the Hugging Face checkpoint {ref} ({one_line(exc)}): give a local folder "
                      "written by save_pretrained or downloaded with `hf download ID --local-dir DIR` as hf:DIR, "
                      "or check the hub id")


@functools.cache
def _checkpoint(ref: str) -> tuple[dict, dict, str]:
    """(model config, processor config, processor kind) of checkpoint `ref` (a folder or a hub id)."""
    t = _transformers()
    try:
        config = t.AutoConfig.from_pretrained(ref)
    except (OSError, ValueError, KeyError) as e:
        raise _hub_error(ref, e) from None
    for kind, auto in (("video", getattr(t, "AutoVideoProcessor", None)), ("image", t.AutoImageProcessor)):
        if auto is None:
            continue
        try:
            processor = auto.from_pretrained(ref)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return config.to_dict(), json.loads(processor.to_json_string()), kind
    raise ModelError(path=ref, reason="has no processor config (preprocessor_config.json) to say how its frames "
                     "are sized and normalised")


def _processor(processor: dict, kind: str):
    t = _transformers()
    name = processor.get("video_processor_type" if kind == "video" else "image_processor_type") \
        or processor.get("image_processor_type")
    cls = getattr(t, name or "", None)
    if cls is None:
        raise ModelError(f"transformers {t.__version__} has no processor {name!r}: update transformers")
    return cls.from_dict(processor)


def _frames(config: dict) -> int:
    for key in ("num_frames", "frames_per_clip"):
        if config.get(key):
            return int(config[key])
    raise ModelError(f"the checkpoint's config ({config.get('model_type')}) gives no frame count")


def _edge(size: Any) -> int | None:
    """The short side a processor's `size` or `crop_size` gives."""
    if isinstance(size, dict):
        if "shortest_edge" in size:
            return int(size["shortest_edge"])
        if "height" in size and "width" in size:
            return min(int(size["height"]), int(size["width"]))
        return None
    return int(size) if isinstance(size, (int, float)) else None


def processor_input(processor: dict, kind: str, frames: int) -> tuple[int, float, Stats]:
    """(crop size, crop / short side at evaluation, mean/std in vidseq's terms) of a processor config: the
    normalisation as the processor computes it, from clips of black and of white frames."""
    p = _processor(processor, kind)
    resize, crop = _edge(processor.get("size")), _edge(processor.get("crop_size"))
    size = crop if processor.get("do_center_crop", crop is not None) and crop else resize
    if not size:
        raise ModelError(f"the checkpoint's processor gives no frame size ({processor.get('size')!r})")
    out = []
    for value in (0, 255):
        video = np.full((frames, size, size, 3), value, np.uint8)
        batch = p(videos=[video], return_tensors="pt") if kind == "video" else p(list(video), return_tensors="pt")
        x = next(v for k, v in batch.items() if k.startswith("pixel_values")).float()
        out.append(x.mean(dim=(0, 1, 3, 4)).tolist())  # per channel
    lo, hi = np.array(out[0]), np.array(out[1])
    scale = hi - lo  # normalised = x / 255 * scale + lo  ->  (x / 255 - mean) / std
    if not np.all(scale > 0):
        raise ModelError("the checkpoint's processor does not map brighter pixels to larger values")
    stats = Stats(tuple(float(v) for v in -lo / scale), tuple(float(v) for v in 1 / scale))
    crop_pct = size / resize if resize and resize >= size else 1.0
    return size, crop_pct, stats


@functools.cache
def hf_recipe(ref: str) -> Recipe:
    """The checkpoint's clip shape and input, with VideoMAE's fine-tuning recipe for UCF101 (MCG-NJU/VideoMAE,
    scripts/ucf101/.../finetune.sh: AdamW, 5e-4 per 256 clips, layer-wise decay 0.7) over 10 epochs instead of its
    100, one frozen epoch first."""
    config, processor, kind = _checkpoint(ref)
    frames = _frames(config)
    size, crop_pct, stats = processor_input(processor, kind, frames)
    return Recipe(lr=5e-4, bs=256, layer_decay=0.7, epochs=10, freeze_epochs=1, stats=stats, frames=frames,
                  size=size, crop_pct=crop_pct)


class HFVideo(nn.Module):
    """A `transformers` video classifier taking vidseq's `(B, T, C, H, W)` clips; `net` is the transformers model."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.input_name = "pixel_values_videos" if net.config.model_type == "vjepa2" else "pixel_values"

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        return self.net(**{self.input_name: as_clip(x)}).logits

    def head_modules(self) -> list[nn.Module]:
        return [m for name in HEAD_MODULES if isinstance(m := getattr(self.net, name, None), nn.Module)]

    def blocks(self) -> nn.ModuleList | None:
        """The encoder's transformer blocks (``encoder.layer``, ``layers``: the biggest list of blocks outside
        the head), or None."""
        head = {id(m) for h in self.head_modules() for m in h.modules()}
        lists = [m for m in self.net.modules() if isinstance(m, nn.ModuleList) and id(m) not in head and len(m) > 1
                 and len({type(b) for b in m}) == 1]
        return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()), default=None)

    def param_groups(self) -> list[list[nn.Parameter]]:
        """The input side (embeddings), one group per encoder block, then the rest (final norms) with the head:
        fastai's discriminative rates across them are a layer-wise decay."""
        head = [p for m in self.head_modules() for p in m.parameters()]
        head_ids = {id(p) for p in head}
        blocks = self.blocks()
        if blocks is None:
            return [[p for p in self.net.parameters() if id(p) not in head_ids], head]
        block_of = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
        before, groups, after = [], [[] for _ in blocks], []
        for p in self.net.parameters():
            if id(p) in head_ids:
                continue
            if id(p) in block_of:
                groups[block_of[id(p)]].append(p)
            else:
                (after if any(groups) else before).append(p)
        return [before, *groups, after + head]


def hf_model(n_classes: int, *, ref: str, seq_len: int, image_size: tuple[int, int], backbone: str | None,
             pretrained: Pretrained, hf_config: dict | None = None, hf_processor: dict | None = None,
             processor_kind: str = "image", checkpointing: bool = False) -> HFVideo:
    """A Hugging Face video classifier (VideoMAE, TimeSformer, ViViT, V-JEPA 2, ...) from the hub or a local
    folder, with a new classifier for the dataset's classes; needs transformers (pip install 'vidseq[hf]').

    Its weights with pretrained=True, else random; `hf_config`/`hf_processor` (kept in a run's config) rebuild it
    without the checkpoint.
    """
    t = _transformers()
    if backbone is not None:
        raise ModelError(f"hf:{ref} has its own network and takes no backbone (got {backbone!r})")
    if not isinstance(pretrained, bool):
        raise ModelError(f"for hf:{ref} pretrained is true or false; a local checkpoint is given as hf:FOLDER")
    if hf_config is None or hf_processor is None:
        hf_config, hf_processor, processor_kind = _checkpoint(ref)
    config = t.AutoConfig.for_model(**{k: v for k, v in hf_config.items() if k not in ("id2label", "label2id",
                                                                                        "num_labels")})
    labels = {i: f"LABEL_{i}" for i in range(n_classes)}
    config.id2label, config.label2id = labels, {v: k for k, v in labels.items()}
    frames, size = _frames(hf_config), None
    if config.model_type in FIXED_SHAPE:
        size = hf_config.get("image_size")
        if (seq_len, *image_size) != (frames, size, size):
            raise ModelError(f"hf:{ref} takes clips of exactly {frames} frames of {size}x{size} pixels (its position "
                             f"embeddings are made for them), got {seq_len} of {image_size[0]}x{image_size[1]}")
    if pretrained:
        try:
            net = t.AutoModelForVideoClassification.from_pretrained(ref, config=config, ignore_mismatched_sizes=True)
        except (OSError, ValueError) as e:
            raise _hub_error(ref, e) from None
    else:
        net = t.AutoModelForVideoClassification.from_config(config)
    if checkpointing:
        if not net.supports_gradient_checkpointing:
            raise ModelError(f"hf:{ref} ({config.model_type}) does not support checkpointing in transformers")
        if hasattr(net, "activation_checkpointing_enable"):  # transformers 5.x's name; the old one is deprecated
            net.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = HFVideo(net)
    model.rebuild_options = {"hf_config": json.loads(net.config.to_json_string()), "hf_processor": hf_processor,
                             "processor_kind": processor_kind}
    model.backbone_name = None
    return model


def save_hf(model: HFVideo, folder: Path, *, classes: Sequence[str], processor: dict, processor_kind: str,
            frames: int, size: int, crop_pct: float) -> None:
    """Write `model` as a folder `transformers` loads with `from_pretrained` (model and processor), labelled with
    `classes`, its config and processor set to the clips it was trained on (`frames` of `size` px, the centre
    `crop_pct` of the short side)."""
    net = model.net
    net.config.id2label = dict(enumerate(classes))
    net.config.label2id = {c: i for i, c in enumerate(classes)}
    for key in ("num_frames", "frames_per_clip"):
        if hasattr(net.config, key):
            setattr(net.config, key, frames)
    processor = dict(processor)
    processor["crop_size"] = {"height": size, "width": size}
    processor["size"] = {"shortest_edge": round(size / crop_pct)}
    with _no_progress_bars():
        net.save_pretrained(folder, safe_serialization=True)
    for weights in Path(folder).glob("*.safetensors"):
        usual_mode(weights)
    _processor(processor, processor_kind).save_pretrained(folder)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' progress bars off for the block: its "Writing model shards" bar on stderr, left at 0 % by a
    failed write, would stand before the one line that says why."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


register_family("hf", hf_model, hf_recipe, pattern="hf:<hub id or folder>")
