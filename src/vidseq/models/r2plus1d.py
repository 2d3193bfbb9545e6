"""`r2plus1d_18`: torchvision's (2+1)D ResNet-18 video network, with its Kinetics-400 weights when available."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from einops import rearrange
from torch import Tensor, nn

from vidseq.clips.clip import IMAGENET
from vidseq.errors import ModelError
from vidseq.models._registry import Recipe, register_model
from vidseq.models.layers import as_clip
from vidseq.models.weights import (
    Pretrained,
    fit_state_dict,
    read_state_dict,
    torchvision_state_dict,
    weights_path,
)


class R2Plus1D(nn.Module):
    """torchvision's `r2plus1d_18` with a new `n_classes` classifier.

    Takes ImageNet-normalised clips like every vidseq model and re-normalises them to the Kinetics-400
    statistics its weights were trained with (one per-channel affine map).
    """

    def __init__(self, n_classes: int, *, pretrained: Pretrained = False, dropout: float = 0.0) -> None:
        super().__init__()
        net = torchvision.models.video.r2plus1d_18(weights=None)
        kinetics = torchvision.models.video.R2Plus1D_18_Weights.KINETICS400_V1.transforms()
        path = weights_path(pretrained)
        if path is not None:
            fit_state_dict(net, read_state_dict(path), source=str(path), what="torchvision r2plus1d_18", skip=("fc.",))
        elif pretrained:
            fit_state_dict(net, torchvision_state_dict("r2plus1d_18"), source="of torchvision r2plus1d_18",
                         what="r2plus1d_18")
        in_mean, in_std = torch.tensor(IMAGENET.mean), torch.tensor(IMAGENET.std)
        k_mean, k_std = torch.tensor(kinetics.mean), torch.tensor(kinetics.std)
        self.register_buffer("scale", rearrange(in_std / k_std, "c -> c 1 1 1"), persistent=False)
        self.register_buffer("shift", rearrange((in_mean - k_mean) / k_std, "c -> c 1 1 1"), persistent=False)
        self.body = nn.Sequential(net.stem, net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool,
                                  nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.fc.in_features, n_classes))

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        x = rearrange(as_clip(x), "b t c h w -> b c t h w")
        return self.head(self.body(x * self.scale + self.shift))

    def param_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.body.parameters()), list(self.head.parameters())]


@register_model(recipe=Recipe(lr=1e-3, epochs=8, freeze_epochs=1))
def r2plus1d_18(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
                pretrained: Pretrained, dropout: float = 0.0) -> R2Plus1D:
    """torchvision's R(2+1)D-18 3D CNN (Kinetics-400 weights with pretrained=True); any frame count."""
    if backbone not in (None, "r2plus1d_18"):
        raise ModelError(f"r2plus1d_18 has its own network and takes no backbone (got {backbone!r})")
    model = R2Plus1D(n_classes, pretrained=pretrained, dropout=dropout)
    model.backbone_name = None
    return model
