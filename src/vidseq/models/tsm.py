"""`tsm`: the temporal shift module in a 2D ResNet — temporal modelling at 2D cost (Lin, Gan & Han, 2019)."""

from __future__ import annotations

from collections.abc import Sequence

from einops import rearrange, reduce
from torch import Tensor, nn

from vidseq.errors import ModelError
from vidseq.models._registry import Recipe, register_model
from vidseq.models.backbones import create_backbone
from vidseq.models.layers import FLOW_CHANNELS, TemporalShift, as_clip, widen_input, with_normal_flow
from vidseq.models.weights import Pretrained


def _residual_blocks(module: nn.Module) -> list[nn.Module]:
    """The ResNet residual blocks (torchvision's or timm's BasicBlock / Bottleneck) inside `module`."""
    return [m for m in module.modules() if type(m).__name__ in ("BasicBlock", "Bottleneck")
            and isinstance(getattr(m, "conv1", None), nn.Conv2d)]


class TSM(nn.Module):
    """A ResNet whose residual blocks shift 1/`shift_div` of their channels one frame back and 1/`shift_div`
    one frame forward before their first convolution; per-frame logits averaged over time (TSN consensus).

    With `motion`, every frame also carries the clip's normal flow there (`normal_flow`: FLOW_CHANNELS more input
    channels, computed from the frames on the device; the first convolution is widened for them).
    """

    def __init__(self, n_classes: int, *, backbone: str | None = None, pretrained: Pretrained = False,
                 image_size: tuple[int, int] = (64, 64), shift_div: int = 8, dropout: float = 0.5,
                 motion: bool = False) -> None:
        super().__init__()
        if shift_div < 2:
            raise ModelError(f"tsm: shift_div must be at least 2 (1/shift_div of the channels shift each way), "
                             f"got {shift_div}")
        bb = create_backbone(backbone, pretrained=pretrained, image_size=image_size)
        blocks = _residual_blocks(bb.module)
        if not blocks:
            raise ModelError(f"tsm needs a ResNet backbone (resnet18/34/50, resnext, wide_resnet or timm/resnet*), "
                             f"got {bb.name}")
        for block in blocks:
            block.conv1 = TemporalShift(block.conv1, shift_div=shift_div)
        self._shifts = [b.conv1 for b in blocks]
        self.motion = motion
        if motion:
            widen_input(bb.module, FLOW_CHANNELS, zero=bool(pretrained))
        self._n_frames = 1
        self.backbone_name = bb.name
        self.body = nn.Sequential(bb.module, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(bb.n_features, n_classes))

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        x = as_clip(x)
        b, t = x.shape[:2]
        if self.motion:
            x = with_normal_flow(x)
        if t != self._n_frames:  # the shifts need the frame count of the (b t) batch they see
            for shift in self._shifts:
                shift.n_frames = t
            self._n_frames = t
        logits = self.head(self.body(rearrange(x, "b t c h w -> (b t) c h w")))
        return reduce(logits, "(b t) k -> b k", "mean", b=b)

    def param_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.body.parameters()), list(self.head.parameters())]


@register_model(recipe=Recipe(lr=2e-3, epochs=8, freeze_epochs=1))
def tsm(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
        pretrained: Pretrained, shift_div: int = 8, dropout: float = 0.5, motion: bool = True) -> TSM:
    """Temporal shift module on a torchvision or timm ResNet (default resnet34); any frame count. `motion`
    (on by default) adds the clip's normal flow to every frame's input (`vidseq.models.layers.normal_flow`);
    with pretrained weights its input weights start at zero, so the network starts as the pretrained one."""
    return TSM(n_classes, backbone=backbone, pretrained=pretrained, image_size=image_size, shift_div=shift_div,
               dropout=dropout, motion=motion)
