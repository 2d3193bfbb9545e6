"""Per-frame image backbones: any torchvision classification model or any timm model, cut before its pooling.

`create_backbone("resnet34", ...)` (torchvision, cut as fastai's `create_body`) or
`create_backbone("timm/convnext_tiny", ...)`; both map `(N, 3, H, W)` to an `(N, F, h, w)` feature map.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor, nn

from vidseq.clips.clip import Stats
from vidseq.errors import ModelError
from vidseq.models.weights import (
    Pretrained,
    fit_state_dict,
    no_weights_error,
    one_line,
    read_state_dict,
    torchvision_state_dict,
    weights_path,
)

DEFAULT_BACKBONE = "resnet34"  # the tutorial's


class Backbone(NamedTuple):
    """A per-frame network `(N, 3, H, W) -> (N, n_features, h, w)`, with its name."""

    module: nn.Module
    n_features: int
    name: str


class TimmFeatures(nn.Module):
    """A timm model's unpooled features as an `(N, F, h, w)` map (pooled `(N, F, 1, 1)` for token models)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.n_features = int(model.num_features)

    def forward(self, x: Tensor) -> Tensor:
        f = self.model.forward_features(x)
        if f.ndim == 4 and f.shape[1] == self.n_features:
            return f
        return rearrange(self.model.forward_head(f, pre_logits=True), "n f -> n f 1 1")


def _torchvision_body(name: str, pretrained: Pretrained) -> nn.Module:
    import torchvision
    from fastai.vision.learner import cut_model, has_pool_type

    net = torchvision.models.get_model(name, weights=None)
    children = list(net.named_children())
    cut = next((i for i, (_, m) in reversed(list(enumerate(children))) if has_pool_type(m)), None)
    if cut is None:
        raise ModelError(f"backbone {name} has no pooling layer to cut at: use a CNN such as resnet34, or "
                         f"timm/{name}")
    head_prefixes = tuple(f"{n}." for n, _ in children[cut:])
    path = weights_path(pretrained)
    if path is not None:
        fit_state_dict(net, read_state_dict(path), source=str(path), what=f"torchvision {name}", skip=head_prefixes)
    elif pretrained:
        fit_state_dict(net, torchvision_state_dict(name), source=f"of torchvision {name}", what=name)
    return cut_model(net, cut)


def _timm_body(name: str, pretrained: Pretrained, image_size: tuple[int, int]) -> nn.Module:
    import timm

    if not timm.is_model(name.split(".")[0]):
        raise ModelError(f"timm has no model {name!r}: see timm.list_models() for the names")
    path = weights_path(pretrained)
    download = pretrained is True
    try:
        try:
            net = timm.create_model(name, pretrained=download, num_classes=0, img_size=image_size)
        except TypeError:  # CNNs take no image size
            net = timm.create_model(name, pretrained=download, num_classes=0)
    except (RuntimeError, ValueError, AssertionError) as e:
        if not download:
            raise ModelError(f"timm cannot build {name} ({one_line(e)})") from None
        raise no_weights_error(f"timm {name}", e, hint=f"a state dict of timm's {name}") from None
    except Exception as e:  # network and hub errors while downloading
        raise no_weights_error(f"timm {name}", e, hint=f"a state dict of timm's {name}") from None
    if path is not None:
        classifier = net.pretrained_cfg.get("classifier") or ()
        classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        fit_state_dict(net, read_state_dict(path), source=str(path), what=f"timm {name}",
                     skip=tuple(f"{c}." for c in classifier))
    return TimmFeatures(net)


def backbone_stats(name: str | None) -> Stats | None:
    """The input statistics backbone `name`'s weights were trained with: a timm model's own (its pretrained
    config's mean and std, e.g. 0.5 for many ViTs), None for torchvision's (ImageNet's, the model's recipe)."""
    if not name or not name.startswith("timm/"):
        return None
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name[len("timm/"):])
    except (RuntimeError, ValueError, KeyError):
        return None
    if cfg is None or not cfg.mean or not cfg.std:
        return None
    return Stats(tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std))


def create_backbone(name: str | None, *, pretrained: Pretrained, image_size: tuple[int, int]) -> Backbone:
    """Build per-frame backbone `name`: a torchvision classification model ("resnet34") or "timm/<name>".

    `pretrained`: False, True (download torchvision or timm weights) or a local weights file of that network.
    """
    import torchvision

    name = name or DEFAULT_BACKBONE
    if name.startswith("timm/"):
        module = _timm_body(name[len("timm/"):], pretrained, image_size)
    elif name in torchvision.models.list_models(module=torchvision.models):
        module = _torchvision_body(name, pretrained)
    else:
        raise ModelError(f"unknown backbone {name!r}: give a torchvision classification model such as resnet34, "
                         f"or timm/<name> for a timm model")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            features = module(torch.zeros(1, 3, *image_size))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise ModelError(f"backbone {name} cannot take {image_size[0]}x{image_size[1]} frames ({one_line(e)}): "
                         "use a larger image_size") from None
    module.train(was_training)
    return Backbone(module, int(features.shape[1]), name)
