"""`frame_avg`: the tutorial's SimpleModel — a per-frame backbone and head, logits averaged over time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torchvision
from einops import reduce
from torch import Tensor, nn

from vidseq.errors import ModelError
from vidseq.models._registry import Recipe, register_model
from vidseq.models.backbones import create_backbone
from vidseq.models.layers import PerFrame, as_clip
from vidseq.models.weights import Pretrained


class FrameAvg(nn.Module):
    """Each frame through `backbone` and fastai's `create_head`; the clip's logits are the mean over its frames.

    Sees no order: reversing or shuffling the frames gives the same logits.
    """

    def __init__(self, n_classes: int, *, backbone: str | None = None, pretrained: Pretrained = False,
                 image_size: tuple[int, int] = (64, 64), head_dropout: float = 0.5) -> None:
        from fastai.vision.learner import create_head

        super().__init__()
        bb = create_backbone(backbone, pretrained=pretrained, image_size=image_size)
        self.backbone_name = bb.name
        self.body = PerFrame(bb.module)
        self.head = PerFrame(create_head(bb.n_features, n_classes, ps=head_dropout))

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        return reduce(self.head(self.body(as_clip(x))), "b t k -> b k", "mean")

    def param_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.body.parameters()), list(self.head.parameters())]


@register_model(recipe=Recipe(lr=2e-3, epochs=8, freeze_epochs=1))
def frame_avg(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
              pretrained: Pretrained, head_dropout: float = 0.5) -> FrameAvg:
    """The tutorial's SimpleModel on any torchvision or timm backbone (default resnet34); any frame count."""
    return FrameAvg(n_classes, backbone=backbone, pretrained=pretrained, image_size=image_size,
                    head_dropout=head_dropout)


def arch_name(arch: str | Callable[..., Any]) -> str:
    """A backbone name from the tutorial's `arch` argument: a torchvision builder such as `resnet34`, or a name."""
    if isinstance(arch, str):
        return arch
    name = getattr(arch, "__name__", None)
    if callable(arch) and name in torchvision.models.list_models(module=torchvision.models):
        return name
    raise ModelError(f"arch must be a torchvision model function such as resnet34 or a backbone name, got {arch!r}")


class SimpleModel(FrameAvg):
    """The tutorial's `SimpleModel(arch=resnet34, n_out=101)`; pretrained weights by default, as there.

    Same as `create_model("frame_avg", n_out, backbone=arch)`; `vidseq_config` rebuilds it that way.
    """

    def __init__(self, arch: str | Callable[..., Any] = torchvision.models.resnet34, n_out: int = 101,
                 pretrained: Pretrained = True, *, image_size: int = 64, head_dropout: float = 0.5) -> None:
        name = arch_name(arch)
        super().__init__(n_out, backbone=name, pretrained=pretrained, image_size=(image_size, image_size),
                         head_dropout=head_dropout)
        self.vidseq_config = {"name": "frame_avg", "n_classes": n_out, "seq_len": 5, "image_size": image_size,
                              "backbone": name, "head_dropout": head_dropout}
