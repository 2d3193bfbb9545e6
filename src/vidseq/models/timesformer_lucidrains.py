"""`timesformer_lucidrains`: the tutorial's exact model, lucidrains' `timesformer-pytorch` 0.4.1.

Registered only where that optional extra is installed (`pip install 'vidseq[lucidrains]'`), for readers who
want the tutorial's numbers with the tutorial's model. vidseq's own `timesformer` is the faster equivalent.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from torch import Tensor, nn

from vidseq.errors import ModelError
from vidseq.models._registry import Recipe, register_model, register_unavailable
from vidseq.models.layers import as_clip
from vidseq.models.weights import Pretrained

AVAILABLE = importlib.util.find_spec("timesformer_pytorch") is not None


class LucidrainsTimeSformer(nn.Module):
    """lucidrains' `TimeSformer` behind vidseq's model contract (tensor or tuple input, body/head groups)."""

    def __init__(self, n_classes: int, *, seq_len: int = 5, image_size: int = 128, patch_size: int = 16,
                 dim: int = 128, depth: int = 12, heads: int = 8, dim_head: int = 64, attn_dropout: float = 0.1,
                 ff_dropout: float = 0.1) -> None:
        from timesformer_pytorch import TimeSformer

        super().__init__()
        self.model = TimeSformer(dim=dim, num_frames=seq_len, num_classes=n_classes, image_size=image_size,
                                 patch_size=patch_size, depth=depth, heads=heads, dim_head=dim_head,
                                 attn_dropout=attn_dropout, ff_dropout=ff_dropout)

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        return self.model(as_clip(x))

    def param_groups(self) -> list[list[nn.Parameter]]:
        head = {id(p) for p in self.model.to_out.parameters()}
        return [[p for p in self.parameters() if id(p) not in head], list(self.model.to_out.parameters())]


if AVAILABLE:

    @register_model(recipe=Recipe(lr=5e-4, epochs=12, freeze_epochs=0))
    def timesformer_lucidrains(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
                               pretrained: Pretrained, patch_size: int = 16, dim: int = 128, depth: int = 12,
                               heads: int = 8, dim_head: int = 64, attn_dropout: float = 0.1,
                               ff_dropout: float = 0.1) -> LucidrainsTimeSformer:
        """lucidrains' TimeSformer 0.4.1 at the tutorial's configuration (rotary embeddings, from scratch)."""
        if backbone is not None or (pretrained is not False and pretrained is not None):
            raise ModelError("timesformer_lucidrains has no backbone or pretrained weights: use backbone=None and "
                             "pretrained=False (vidseq's timesformer can start from a ViT)")
        if image_size[0] != image_size[1] or image_size[0] % patch_size:
            raise ModelError(f"timesformer_lucidrains needs square frames that patch_size {patch_size} divides, got "
                             f"{image_size[0]}x{image_size[1]}")
        return LucidrainsTimeSformer(n_classes, seq_len=seq_len, image_size=image_size[0], patch_size=patch_size,
                                     dim=dim, depth=depth, heads=heads, dim_head=dim_head,
                                     attn_dropout=attn_dropout, ff_dropout=ff_dropout)
else:
    register_unavailable("timesformer_lucidrains", "install the lucidrains extra: pip install 'vidseq[lucidrains]' "
                         "(timesformer-pytorch==0.4.1)")
