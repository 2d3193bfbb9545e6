"""Layers shared by the model families: clip input, per-frame application, attention, temporal shift."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from vidseq.errors import ModelError


def as_clip(x: Tensor | Sequence[Tensor]) -> Tensor:
    """A clip batch as one `(B, T, C, H, W)` tensor.

    Takes that tensor, or the tuple of T `(B, C, H, W)` tensors that the fastai tutorial's DataLoaders yield.
    """
    if isinstance(x, (tuple, list)):
        if not x or not all(isinstance(f, Tensor) and f.ndim == 4 for f in x):
            raise ModelError("a clip given as a sequence must hold T tensors of shape (B, C, H, W)")
        x = torch.stack(list(x), dim=1)
    if not isinstance(x, Tensor) or x.ndim != 5:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ModelError(f"expected a clip batch of shape (B, T, C, H, W), got {shape}")
    return x


class PerFrame(nn.Module):
    """Apply `module` to every frame: `(B, T, ...) -> (B, T, ...)` through one `(B*T, ...)` batch.

    The role of fastai's `TimeDistributed`, without its need for contiguous input or its low-memory path's bug.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        y = self.module(rearrange(x, "b t ... -> (b t) ..."))
        return rearrange(y, "(b t) ... -> b t ...", b=b)


#: Sequences up to this length take `kernel="auto"`'s short-sequence path (e.g. attention over a clip's frames).
SHORT_SEQUENCE = 16
KERNELS = ("sdpa", "matmul", "pointwise", "auto")


def short_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v as three batched products, for short sequences; `(..., L, E)` layout."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # scaled after the product: no scaled copy of q kept
    return scores.softmax(dim=-1).to(v.dtype) @ v


def pointwise_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v over dim 1 of `(B, L, ..., E)` tensors, by broadcast products and sums.

    For the few frames of a clip: every (batch, position, head) has its own L x L problem, thousands of them.
    Fused attention kernels spend 64-128-query tiles on each (nearly all padding at L = 5) and batched matrix
    products of 5 x 64 matrices run far below the memory speed; written as products and sums the work is
    elementwise, needs no transposed copies (it works in the tokens' own layout), and `torch.compile` fuses
    it into a few kernels. The (B, L, L, ..., E) intermediates are L times the input: meant for short L.
    """
    scores = (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1) * q.shape[-1] ** -0.5  # (B, L, L, ...): [b, i, j, ...]
    weights = scores.softmax(dim=2).to(v.dtype)
    return (weights.unsqueeze(-1) * v.unsqueeze(1)).sum(2)


class Attention(nn.Module):
    """Multi-head self-attention: `(B, N, dim) -> (B, N, dim)`.

    Parameter names and layout follow timm's ViT (`qkv`, `proj`), so image-ViT weights load directly.
    `dropout` is applied to the output projection (lucidrains' `attn_dropout`). `kernel`: "sdpa"
    (`scaled_dot_product_attention`, fused), "matmul" (`short_attention`), "pointwise" (`pointwise_attention`)
    or "auto" (pointwise for sequences of at most `SHORT_SEQUENCE` tokens, sdpa otherwise).
    """

    def __init__(self, dim: int, *, heads: int = 8, dim_head: int = 64, qkv_bias: bool = True,
                 dropout: float = 0.0, kernel: str = "sdpa") -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ModelError(f"attention kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        self.heads = heads
        self.dim_head = dim_head
        self.kernel = kernel
        self.qkv = nn.Linear(dim, 3 * heads * dim_head, bias=qkv_bias)
        self.proj = nn.Linear(heads * dim_head, dim)
        self.proj_drop = nn.Dropout(dropout)

    def _kernel(self, length: int) -> str:
        if self.kernel == "auto":
            return "pointwise" if length <= SHORT_SEQUENCE else "sdpa"
        return self.kernel

    def forward(self, x: Tensor) -> Tensor:
        kernel = self._kernel(x.shape[1])
        if kernel == "pointwise":
            q, k, v = rearrange(self.qkv(x), "b n (three h e) -> three b n h e", three=3, h=self.heads)
            out = pointwise_attention(q, k, v)
        else:
            q, k, v = rearrange(self.qkv(x), "b n (three h e) -> three b h n e", three=3, h=self.heads)
            out = short_attention(q, k, v) if kernel == "matmul" else F.scaled_dot_product_attention(q, k, v)
            out = rearrange(out, "b h n e -> b n h e")
        return self.proj_drop(self.proj(out.flatten(-2)))


class TimeAttention(Attention):
    """Multi-head attention over dim 1 of `(B, T, M, dim)` tokens: each of the M positions attends over the T
    frames, in the tokens' own layout (no transposed copies on the default, pointwise, path).

    Same parameters as `Attention` (a ViT's spatial attention loads into it); kernel "auto" by default.
    """

    def __init__(self, dim: int, *, kernel: str = "auto", **kwargs) -> None:
        super().__init__(dim, kernel=kernel, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        b, t, m, _ = x.shape
        kernel = self._kernel(t)
        if kernel != "pointwise":
            flat = rearrange(x, "b t m d -> (b m) t d")
            return rearrange(super().forward(flat), "(b m) t d -> b t m d", b=b)
        q, k, v = rearrange(self.qkv(x), "b t m (three h e) -> three b t m h e", three=3, h=self.heads)
        return self.proj_drop(self.proj(pointwise_attention(q, k, v).flatten(-2)))


def _sobel(img: Tensor) -> tuple[Tensor, Tensor]:
    """Sobel derivatives d/dx, d/dy (divided by 8) of `(B, T, H, W)` images, edges replicated; by slicing, so
    no kernel tensor has to be made (or copied to the device) on each call."""
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")  # (..., H+2, W+2)
    dx = p[..., 2:] - p[..., :-2]  # (..., H+2, W)
    dy = p[..., 2:, :] - p[..., :-2, :]  # (..., H, W+2)
    return ((dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]) / 8,
            (dy[..., :-2] + 2 * dy[..., 1:-1] + dy[..., 2:]) / 8)


def normal_flow(x: Tensor, *, eps: float = 0.01, limit: float = 4.0) -> Tensor:
    """Normal flow of a clip: `(B, T, C, H, W) -> (B, T, 2, H, W)`, the motion along each frame's brightness
    gradient, in pixels per frame, from differences alone (no learned weights).

    With brightness I (the channels' mean), its spatial gradient g (Sobel) and time derivative I_t (central
    differences between neighbouring frames, one-sided at the ends), the flow is -I_t g / (|g|^2 + eps),
    clamped to +-`limit`. Rotation and whole-frame pans change no linear function of the frames on average,
    so a network fed only frames has no first-order signal for their direction and, from scratch, may never
    find one; in the flow they are first-order (its mean for a pan, its curl for a rotation). A clip of one
    frame has no motion: zeros.
    """
    b, t, _, h, w = x.shape
    if t < 2:
        return x.new_zeros(b, t, 2, h, w)
    grey = x.float().mean(dim=2)  # (B, T, H, W)
    (dt,) = torch.gradient(grey, dim=1)
    grad = torch.stack(_sobel(grey), dim=2)  # (B, T, 2, H, W)
    flow = -dt.unsqueeze(2) * grad / (grad.square().sum(dim=2, keepdim=True) + eps)
    return flow.clamp(-limit, limit).to(x.dtype)


#: Input channels `normal_flow` adds to every frame (its x and y components).
FLOW_CHANNELS = 2


def with_normal_flow(x: Tensor) -> Tensor:
    """The clip `(B, T, C, H, W)` with its normal flow appended: `(B, T, C + FLOW_CHANNELS, H, W)`."""
    return torch.cat([x, normal_flow(x)], dim=2)


def widen_input(module: nn.Module, extra: int, *, zero: bool = True) -> nn.Module:
    """Give `module`'s first convolution (the one that takes the 3 colour channels) `extra` more input channels.

    With `zero` their weights start at zero, so a pretrained network computes exactly what it did until
    training moves them; otherwise they get the He initialisation torchvision gives a ResNet's convolutions.
    """
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                wide = nn.Conv2d(3 + extra, child.out_channels, child.kernel_size, child.stride, child.padding,
                                 child.dilation, child.groups, child.bias is not None, child.padding_mode)
                with torch.no_grad():
                    if zero:
                        wide.weight.zero_()
                    else:
                        nn.init.kaiming_normal_(wide.weight, mode="fan_out", nonlinearity="relu")
                    wide.weight[:, :3] = child.weight
                    if child.bias is not None:
                        wide.bias.copy_(child.bias)
                setattr(parent, name, wide)
                return module
    raise ModelError(f"found no convolution taking 3 colour channels in {type(module).__name__} to widen")


def temporal_shift(x: Tensor, *, n_frames: int, shift_div: int = 8) -> Tensor:
    """Shift 1/`shift_div` of the channels one frame back in time and another 1/`shift_div` one frame forward.

    `x` is `((B T), C, H, W)`. Channels `[0, C/div)` of frame t take frame t+1's values, channels `[C/div, 2C/div)`
    take frame t-1's; the frames beyond the ends are zeros (TSM, Lin et al. 2019).
    """
    x = rearrange(x, "(b t) c h w -> b t c h w", t=n_frames)
    fold = x.shape[2] // shift_div
    back, fwd, rest = x.split([fold, fold, x.shape[2] - 2 * fold], dim=2)
    back = F.pad(back[:, 1:], (0, 0, 0, 0, 0, 0, 0, 1))  # frame t <- t+1, zeros after the last frame
    fwd = F.pad(fwd[:, :-1], (0, 0, 0, 0, 0, 0, 1, 0))  # frame t <- t-1, zeros before the first frame
    return rearrange(torch.cat([back, fwd, rest], dim=2), "b t c h w -> (b t) c h w")


class TemporalShift(nn.Module):
    """`temporal_shift` then `module` (placed on a residual block's first convolution: TSM's residual shift).

    `n_frames` is set by the owning model before each forward.
    """

    def __init__(self, module: nn.Module, *, shift_div: int = 8, n_frames: int = 1) -> None:
        super().__init__()
        self.module = module
        self.shift_div = shift_div
        self.n_frames = n_frames

    def forward(self, x: Tensor) -> Tensor:
        return self.module(temporal_shift(x, n_frames=self.n_frames, shift_div=self.shift_div))
