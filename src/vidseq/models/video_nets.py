"""torchvision's video classifiers, pretrained on Kinetics-400: `r3d_18`, `mc3_18`, `r2plus1d_18`, `s3d`,
`mvit_v1_b`, `mvit_v2_s`, `swin3d_t`, `swin3d_s`, `swin3d_b`.

Each is torchvision's own network with its classifier replaced for the dataset's classes; vidseq adds nothing
to its computation: a `(B, T, C, H, W)` clip batch normalised with the checkpoint's statistics is rearranged to
torchvision's `(B, C, T, H, W)`, so the logits are exactly those of torchvision's model. What each checkpoint
expects (frames per clip, crop size, the crop's share of the short side, mean and std) comes from its weights
enum and is registered as the model's `Recipe`, which `vidseq train` takes as the run's defaults.

Where the numbers in `VIDEO_NETS` come from. Frames per clip: each weights enum's documentation (`clip_len` 16
for the ResNets and MViTs, 32 for Video Swin); S3D's weights were evaluated on 128-frame clips, too long for
UCF101-sized videos (7 s on average), so vidseq starts it at 32 (its minimum is 14). Learning rates are vidseq's
defaults for AdamW with one-cycle at batch 16-64, not a checkpoint author's recipe: 1e-3 for the 3D CNNs, as for
vidseq's other CNNs; a lower 2e-4 (1e-4 for swin3d_b) for the transformers, which fine-tune at lower rates than
CNNs. One frozen epoch trains the new classifier before the whole network.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidseq.clips.clip import Stats
from vidseq.errors import ModelError
from vidseq.models._registry import Recipe, register_model
from vidseq.models.layers import as_clip
from vidseq.models.weights import Pretrained, fit_state_dict, read_state_dict, torchvision_state_dict, weights_path


@dataclass(frozen=True)
class VideoNet:
    """A torchvision video classifier: where its classifier is, and how it fine-tunes."""

    head: str  # the attribute holding the classifier (replaced for the dataset's classes)
    frames: int  # frames per clip the checkpoint was trained with
    lr: float
    epochs: int = 8
    freeze_epochs: int = 1
    blocks: tuple[str, ...] = ()  # attributes holding stacks of blocks (each block recomputed with checkpointing)
    shape: tuple[int, int, int] | None = None  # (frames, height, width) where the network takes only that


RESNET = ("layer1", "layer2", "layer3", "layer4")
VIDEO_NETS: dict[str, VideoNet] = {
    "r3d_18": VideoNet("fc", 16, 1e-3, blocks=RESNET),
    "mc3_18": VideoNet("fc", 16, 1e-3, blocks=RESNET),
    "r2plus1d_18": VideoNet("fc", 16, 1e-3, blocks=RESNET),
    "s3d": VideoNet("classifier", 32, 1e-3, blocks=("features",)),
    "mvit_v1_b": VideoNet("head", 16, 2e-4, epochs=10, blocks=("blocks",), shape=(16, 224, 224)),
    "mvit_v2_s": VideoNet("head", 16, 2e-4, epochs=10, blocks=("blocks",), shape=(16, 224, 224)),
    "swin3d_t": VideoNet("head", 32, 2e-4, epochs=10, blocks=("features",)),
    "swin3d_s": VideoNet("head", 32, 2e-4, epochs=10, blocks=("features",)),
    "swin3d_b": VideoNet("head", 32, 1e-4, epochs=10, blocks=("features",)),
}


def checkpoint_preprocessing(name: str) -> tuple[int, float, Stats]:
    """(crop size, crop / short side at evaluation, mean/std) of torchvision's default weights for `name`."""
    t = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    crop, resize = t.crop_size[0], min(t.resize_size)
    return crop, crop / resize, Stats(tuple(t.mean), tuple(t.std))


def weights_meta(name: str) -> dict:
    """torchvision's metadata of the default weights of `name` (parameters, GFLOPs, Kinetics-400 top-1)."""
    return dict(torchvision.models.get_model_weights(name).DEFAULT.meta)


def _new_classifier(old: nn.Module, n_classes: int, dropout: float | None) -> nn.Module:
    """The classifier `old` (a Linear, a 1x1x1 Conv3d, or either after a Dropout) for `n_classes` classes."""
    layers = list(old) if isinstance(old, nn.Sequential) else [old]
    last = layers[-1]
    if isinstance(last, nn.Linear):
        new = nn.Linear(last.in_features, n_classes)
    elif isinstance(last, nn.Conv3d):
        new = nn.Conv3d(last.in_channels, n_classes, kernel_size=last.kernel_size, stride=last.stride)
    else:
        raise ModelError(f"cannot replace a classifier of type {type(last).__name__}")
    rest = [nn.Dropout(dropout) if isinstance(m, nn.Dropout) and dropout is not None else m for m in layers[:-1]]
    if dropout is not None and not rest:
        rest = [nn.Dropout(dropout)]
    return nn.Sequential(*rest, new) if rest else new


@functools.cache
def _checkpointed(cls: type[nn.Module]) -> type[nn.Module]:
    """`cls` whose forward, while training, keeps no activations and recomputes them in the backward pass
    (the same parameters and state dict: a module's class is swapped in place)."""

    def forward(self, *args, **kwargs):
        if self.training and torch.is_grad_enabled():
            return checkpoint(super(new, self).forward, *args, use_reentrant=False, **kwargs)
        return super(new, self).forward(*args, **kwargs)

    new = type(f"Checkpointed{cls.__name__}", (cls,), {"forward": forward})
    return new


class TorchvisionVideo(nn.Module):
    """torchvision video classifier `name` with a new `n_classes` classifier; `net` is torchvision's model."""

    def __init__(self, name: str, n_classes: int, *, seq_len: int, image_size: tuple[int, int],
                 pretrained: Pretrained = False, dropout: float | None = None, checkpointing: bool = False) -> None:
        super().__init__()
        spec = VIDEO_NETS[name]
        if spec.shape and (seq_len, *image_size) != spec.shape:
            t, h, w = spec.shape
            raise ModelError(f"{name} takes clips of exactly {t} frames of {h}x{w} pixels (its positional "
                             f"embeddings are made for them), got {seq_len} of {image_size[0]}x{image_size[1]}")
        net = getattr(torchvision.models.video, name)(weights=None)
        path = weights_path(pretrained)
        if path is not None:
            fit_state_dict(net, read_state_dict(path), source=str(path), what=f"torchvision {name}",
                           skip=(f"{spec.head}.",))
        elif pretrained:
            fit_state_dict(net, torchvision_state_dict(name), source=f"of torchvision {name}", what=name,
                           skip=(f"{spec.head}.",))
        setattr(net, spec.head, _new_classifier(getattr(net, spec.head), n_classes, dropout))
        if checkpointing:
            for block in (b for stack in spec.blocks for b in getattr(net, stack)):
                block.__class__ = _checkpointed(type(block))
        self.net, self.name = net, name

    @property
    def head(self) -> nn.Module:
        return getattr(self.net, VIDEO_NETS[self.name].head)

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        return self.net(rearrange(as_clip(x), "b t c h w -> b c t h w"))

    def param_groups(self) -> list[list[nn.Parameter]]:
        head = {id(p) for p in self.head.parameters()}
        return [[p for p in self.net.parameters() if id(p) not in head], list(self.head.parameters())]


def _register(name: str) -> None:
    spec = VIDEO_NETS[name]
    size, crop_pct, stats = checkpoint_preprocessing(name)
    meta = weights_meta(name)
    top1 = meta["_metrics"]["Kinetics-400"]["acc@1"]
    recipe = Recipe(lr=spec.lr, epochs=spec.epochs, freeze_epochs=spec.freeze_epochs, stats=stats,
                    frames=spec.frames, size=size, crop_pct=crop_pct)

    def build(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
              pretrained: Pretrained, dropout: float | None = None, checkpointing: bool = False) -> TorchvisionVideo:
        if backbone not in (None, name):
            raise ModelError(f"{name} has its own network and takes no backbone (got {backbone!r})")
        model = TorchvisionVideo(name, n_classes, seq_len=seq_len, image_size=image_size, pretrained=pretrained,
                                 dropout=dropout, checkpointing=checkpointing)
        model.backbone_name = None
        return model

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"torchvision's {name}, Kinetics-400 weights with pretrained=True ({top1:.1f} % top-1; "
                     f"{meta['num_params'] / 1e6:.1f} M parameters, {meta['_ops']:.0f} GFLOPs a clip, as torchvision "
                     f"gives them); clips of {spec.frames}x{size}x{size}.")
    register_model(build, recipe=recipe)


for _name in VIDEO_NETS:
    _register(_name)
