"""`cnn_lstm`: the tutorial's RNNModel — pooled per-frame features, an LSTM, a head on its last hidden state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torchvision
from einops import rearrange
from torch import Tensor, nn

from vidseq.models._registry import Recipe, register_model
from vidseq.models.backbones import create_backbone
from vidseq.models.frame_avg import arch_name
from vidseq.models.layers import FLOW_CHANNELS, PerFrame, as_clip, widen_input, with_normal_flow
from vidseq.models.weights import Pretrained


class CnnLstm(nn.Module):
    """Per-frame `backbone` features, average-pooled, through `nn.LSTM`; fastai's `LinBnDrop` on the final
    hidden states of every layer (and direction), concatenated. With `motion`, every frame also carries the
    clip's normal flow (`normal_flow`: FLOW_CHANNELS more input channels; the first convolution is widened for them).
    """

    def __init__(self, n_classes: int, *, backbone: str | None = None, pretrained: Pretrained = False,
                 image_size: tuple[int, int] = (64, 64), hidden_size: int = 512, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, head_dropout: float = 0.0,
                 motion: bool = False) -> None:
        from fastai.layers import LinBnDrop

        super().__init__()
        bb = create_backbone(backbone, pretrained=pretrained, image_size=image_size)
        self.backbone_name = bb.name
        self.motion = motion
        if motion:
            widen_input(bb.module, FLOW_CHANNELS, zero=bool(pretrained))
        self.body = PerFrame(nn.Sequential(bb.module, nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        self.rnn = nn.LSTM(bb.n_features, hidden_size, num_layers=num_layers, batch_first=True,
                           bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        n_hidden = num_layers * (2 if bidirectional else 1) * hidden_size
        self.head = LinBnDrop(n_hidden, n_classes, p=head_dropout)

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        x = as_clip(x)
        if self.motion:
            x = with_normal_flow(x)
        features = self.body(x)  # (b, t, f)
        _, (h, _) = self.rnn(features)  # h: (layers * directions, b, hidden)
        return self.head(rearrange(h, "l b d -> b (l d)"))

    def param_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.body.parameters()), [*self.rnn.parameters(), *self.head.parameters()]]


@register_model(recipe=Recipe(lr=2e-3, epochs=8, freeze_epochs=1))
def cnn_lstm(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
             pretrained: Pretrained, hidden_size: int = 512, num_layers: int = 1, bidirectional: bool = False,
             dropout: float = 0.0, head_dropout: float = 0.0, motion: bool = False) -> CnnLstm:
    """The tutorial's RNNModel on any backbone (default resnet34): LSTM layers, bidirectional, dropout options;
    `motion` adds the clip's normal flow to every frame's input (see `vidseq.models.layers.normal_flow`)."""
    return CnnLstm(n_classes, backbone=backbone, pretrained=pretrained, image_size=image_size,
                   hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                   head_dropout=head_dropout, motion=motion)


class RNNModel(CnnLstm):
    """The tutorial's `RNNModel(arch=resnet34, n_out=101, num_rnn_layers=1)`; pretrained weights by default.

    Same as `create_model("cnn_lstm", n_out, backbone=arch, num_layers=num_rnn_layers)`. Unlike the tutorial's
    `h.view(bs, -1)`, the hidden states of several layers are not mixed across the batch.
    """

    def __init__(self, arch: str | Callable[..., Any] = torchvision.models.resnet34, n_out: int = 101,
                 num_rnn_layers: int = 1, pretrained: Pretrained = True, *, image_size: int = 64,
                 hidden_size: int = 512, bidirectional: bool = False, dropout: float = 0.0,
                 head_dropout: float = 0.0) -> None:
        name = arch_name(arch)
        super().__init__(n_out, backbone=name, pretrained=pretrained, image_size=(image_size, image_size),
                         hidden_size=hidden_size, num_layers=num_rnn_layers, bidirectional=bidirectional,
                         dropout=dropout, head_dropout=head_dropout)
        self.vidseq_config = {"name": "cnn_lstm", "n_classes": n_out, "seq_len": 5, "image_size": image_size,
                              "backbone": name, "hidden_size": hidden_size, "num_layers": num_rnn_layers,
                              "bidirectional": bidirectional, "dropout": dropout, "head_dropout": head_dropout}
