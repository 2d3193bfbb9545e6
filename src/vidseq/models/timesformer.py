"""`timesformer`: divided space-time attention (Bertasius, Wang & Torresani, 2021) on `scaled_dot_product_attention`.

Each block attends over time for every token position, then over space within every frame, then applies an
MLP. Every frame carries its own copy of the class token: it attends over space with its frame's patches and
over time with the other frames' class tokens, and the frames' class tokens are averaged at the end (the
image ViT's readout, per frame, then averaged). Defaults are the fastai tutorial's configuration
(lucidrains' TimeSformer with dim 128, depth 12, 8 heads of 64, patch 16, dropout 0.1). Parameter names
follow timm's ViT, so a timm `vit_*` state dict gives the patch embedding, spatial attention, MLPs, norms
and position embeddings; the time attention of each block then starts as a copy of the spatial one with a
zero output projection, so every block initially passes its input through it and the network starts as the
image ViT applied to each frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import Tensor, nn

from vidseq.errors import ModelError
from vidseq.models._registry import Recipe, register_model
from vidseq.models.layers import FLOW_CHANNELS, Attention, TimeAttention, as_clip, with_normal_flow
from vidseq.models.weights import Pretrained, no_weights_error, one_line, read_state_dict, weights_path

LN_EPS = 1e-6  # timm's ViT


class DividedBlock(nn.Module):
    """Time attention (each token position over the frames), space attention (each frame's tokens), MLP.

    Works on one `(B, T, 1 + N, dim)` token tensor: slot 0 of every frame is that frame's class token, the
    N others its patches. The time attention reads the tensor across dim 1 and the space attention reads its
    `(B*T, 1 + N, dim)` view, so no token is copied or transposed between the three parts.
    """

    def __init__(self, dim: int, *, heads: int, dim_head: int, mlp_ratio: float, qkv_bias: bool,
                 attn_dropout: float, ff_dropout: float, time_kernel: str = "auto", recompute_mlp: bool = False,
                 recompute_attention: bool = False) -> None:
        from timm.layers import Mlp

        super().__init__()
        attn = dict(heads=heads, dim_head=dim_head, qkv_bias=qkv_bias, dropout=attn_dropout)
        self.time_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.time_attn = TimeAttention(dim, kernel=time_kernel, **attn)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, **attn)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=ff_dropout)
        self.recompute_mlp = recompute_mlp
        self.recompute_attention = recompute_attention

    def _norm_mlp(self, x: Tensor) -> Tensor:
        return self.mlp(self.norm2(x))

    def _time_branch(self, z: Tensor) -> Tensor:
        return self.time_attn(self.time_norm(z))

    def _space_branch(self, zs: Tensor) -> Tensor:
        return self.attn(self.norm1(zs))

    def _branch(self, fn, x: Tensor, recompute: bool) -> Tensor:
        """`fn(x)`; with `recompute` while training, nothing inside is kept for the backward pass (the branch's
        input is kept anyway) and it is computed again there, dropout masks included."""
        if not (recompute and self.training and torch.is_grad_enabled()):
            return fn(x)
        from torch.utils.checkpoint import checkpoint

        return checkpoint(fn, x, use_reentrant=False)

    def forward(self, z: Tensor) -> Tensor:
        b, t, m, d = z.shape
        z = z + self._branch(self._time_branch, z, self.recompute_attention)
        zs = z.view(b * t, m, d)
        zs = zs + self._branch(self._space_branch, zs, self.recompute_attention)
        zs = zs + self._branch(self._norm_mlp, zs, self.recompute_mlp)
        return zs.view(b, t, m, d)


class TimeSformer(nn.Module):
    """TimeSformer with divided space-time attention: `(B, T, C, H, W) -> (B, n_classes)`.

    Takes any frame count and any image size that `patch_size` divides: the learned space and time position
    embeddings are interpolated from the `seq_len` x `image_size` they were built for.
    """

    def __init__(self, n_classes: int, *, seq_len: int = 5, image_size: tuple[int, int] = (128, 128),
                 patch_size: int = 16, dim: int = 128, depth: int = 12, heads: int = 8, dim_head: int = 64,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, attn_dropout: float = 0.1, ff_dropout: float = 0.1,
                 channels: int = 3, time_kernel: str = "auto", recompute_mlp: bool = False,
                 recompute_attention: bool = False, motion: bool = False) -> None:
        super().__init__()
        if image_size[0] % patch_size or image_size[1] % patch_size:
            raise ModelError(f"timesformer: patch_size {patch_size} must divide image_size {image_size[0]}x"
                             f"{image_size[1]}")
        self.patch_size = patch_size
        self.grid = (image_size[0] // patch_size, image_size[1] // patch_size)
        self.channels = channels
        self.motion = motion  # each frame also carries the clip's normal flow (FLOW_CHANNELS more channels)
        self.patch_embed = nn.Linear((channels + FLOW_CHANNELS * motion) * patch_size * patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.time_embed = nn.Parameter(torch.zeros(1, seq_len, dim))
        self.blocks = nn.ModuleList([
            DividedBlock(dim, heads=heads, dim_head=dim_head, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         attn_dropout=attn_dropout, ff_dropout=ff_dropout, time_kernel=time_kernel,
                         recompute_mlp=recompute_mlp, recompute_attention=recompute_attention)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, n_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.cls_token, self.pos_embed, self.time_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _positions(self, t: int, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Space (1 + gh*gw, dim) and time (t, dim) position embeddings, interpolated where sizes differ."""
        from timm.layers import resample_abs_pos_embed

        pos = self.pos_embed
        if grid != self.grid:
            pos = resample_abs_pos_embed(pos, new_size=list(grid), old_size=list(self.grid), num_prefix_tokens=1)
        time = self.time_embed
        if t != time.shape[1]:
            time = rearrange(F.interpolate(rearrange(time, "1 t d -> 1 d t"), size=t, mode="linear"),
                             "1 d t -> 1 t d")
        return pos[0], time[0]

    def forward_features(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        """The normalised class token `(B, dim)` after all blocks."""
        x = as_clip(x)
        b, t, _, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ModelError(f"timesformer: patch_size {p} must divide the frame size {h}x{w}")
        grid = (h // p, w // p)
        pos, time = self._positions(t, grid)
        if self.motion:
            x = with_normal_flow(x)
        x = self.patch_embed(rearrange(x, "b t c (gh p1) (gw p2) -> b t (gh gw) (c p1 p2)", p1=p, p2=p))
        cls = repeat(self.cls_token, "1 1 d -> b t 1 d", b=b, t=t)
        z = torch.cat([cls, x], dim=2) + pos + rearrange(time, "t d -> t 1 d")  # (B, T, 1 + N, dim)
        for block in self.blocks:
            z = block(z)
        return self.norm(reduce(z[:, :, 0], "b t d -> b d", "mean"))

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        return self.head(self.forward_features(x))

    def param_groups(self) -> list[list[nn.Parameter]]:
        head = {id(p) for p in self.head.parameters()}
        return [[p for p in self.parameters() if id(p) not in head], list(self.head.parameters())]


# ---- starting from an image ViT (timm's vit_* state dicts) ----

_VIT_BLOCK_KEYS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                   "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                   "mlp.fc2.weight", "mlp.fc2.bias")
_VIT_TOP_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
                 "norm.bias")


def load_vit_state_dict(model: TimeSformer, state_dict: Mapping[str, Tensor], *, source: str = "ViT") -> None:
    """Start `model` from an image ViT's state dict (timm `vit_*` layout; its classifier `head.*` is ignored).

    Patch embedding, class token, space position embedding (resampled to the model's grid), spatial attention,
    MLPs and norms are copied; each time attention is a copy of its block's spatial attention with a zero output
    projection (so it passes its input through at first), and the time position embedding is zero.
    """
    sd = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
    depth = len(model.blocks)
    expected = set(_VIT_TOP_KEYS) | {f"blocks.{i}.{k}" for i in range(depth) for k in _VIT_BLOCK_KEYS}
    if model.blocks[0].attn.qkv.bias is None:
        expected -= {f"blocks.{i}.attn.qkv.bias" for i in range(depth)}
    unknown, missing = sorted(set(sd) - expected), sorted(expected - set(sd))
    if unknown or missing:
        detail = (f"unsupported ViT parts {', '.join(unknown[:4])}" if unknown else
                  f"missing {', '.join(missing[:4])}")
        raise ModelError(f"{source} is not a plain timm ViT state dict with {depth} blocks ({detail}): "
                         "use a vit_* model with a class token, no register tokens and no layer scale")
    own = model.state_dict()
    new = {k: v for k, v in sd.items() if k.startswith("blocks.") or k in ("cls_token", "norm.weight", "norm.bias")}
    patch = sd["patch_embed.proj.weight"]
    if model.motion:  # the normal-flow channels' weights start at zero: the image ViT on every frame, as without
        patch = torch.cat([patch, patch.new_zeros(patch.shape[0], FLOW_CHANNELS, *patch.shape[2:])], dim=1)
    new["patch_embed.weight"] = rearrange(patch, "d c p1 p2 -> d (c p1 p2)")
    new["patch_embed.bias"] = sd["patch_embed.proj.bias"]
    from timm.layers import resample_abs_pos_embed

    pos = sd["pos_embed"]
    side = math.isqrt(pos.shape[1] - 1)
    if side * side != pos.shape[1] - 1:
        raise ModelError(path=source,
                         reason=f"its position embedding of {pos.shape[1] - 1} patches is not a square grid")
    new["pos_embed"] = resample_abs_pos_embed(pos.float(), new_size=list(model.grid), old_size=[side, side],
                                              num_prefix_tokens=1).to(pos.dtype)
    new["time_embed"] = torch.zeros_like(own["time_embed"])
    for i in range(depth):
        b = f"blocks.{i}."
        for part in ("weight", "bias"):
            new[f"{b}time_norm.{part}"] = sd[f"{b}norm1.{part}"]
            new[f"{b}time_attn.proj.{part}"] = torch.zeros_like(own[f"{b}time_attn.proj.{part}"])
            if f"{b}attn.qkv.{part}" in sd:
                new[f"{b}time_attn.qkv.{part}"] = sd[f"{b}attn.qkv.{part}"]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in new.items() if v.shape != own[k].shape]
    if wrong:
        raise ModelError(f"{source} does not fit this timesformer: {', '.join(wrong[:2])}")
    missing = model.load_state_dict(new, strict=False).missing_keys
    if sorted(missing) != ["head.bias", "head.weight"]:
        raise ModelError(f"{source} left parts of the timesformer unset: {', '.join(missing[:4])}")


def vit_state_dict(model: TimeSformer) -> dict[str, Tensor]:
    """The image-ViT part of `model` as a timm `vit_*` state dict (without classifier): the inverse of
    `load_vit_state_dict` at the model's own grid.
    """
    sd = model.state_dict()
    p = model.patch_size
    out = {"cls_token": sd["cls_token"], "pos_embed": sd["pos_embed"],
           "patch_embed.proj.weight": rearrange(sd["patch_embed.weight"], "d (c p1 p2) -> d c p1 p2", p1=p,
                                                p2=p)[:, :model.channels],
           "patch_embed.proj.bias": sd["patch_embed.bias"], "norm.weight": sd["norm.weight"],
           "norm.bias": sd["norm.bias"]}
    for i in range(len(model.blocks)):
        for k in _VIT_BLOCK_KEYS:
            if f"blocks.{i}.{k}" in sd:
                out[f"blocks.{i}.{k}"] = sd[f"blocks.{i}.{k}"]
    return out


def vit_architecture(name: str, *, image_size: tuple[int, int]) -> dict[str, Any]:
    """Dimensions of timm ViT `name` as TimeSformer arguments (built on the meta device: nothing allocated)."""
    import timm
    from timm.layers import Mlp

    base = name.removeprefix("timm/")
    if not base.startswith("vit_") or not timm.is_model(base.split(".")[0]):
        raise ModelError(f"timesformer can start only from a timm ViT such as vit_base_patch16_224, not {name!r}")
    try:
        with torch.device("meta"):
            vit = timm.create_model(base, pretrained=False, img_size=image_size)
    except (RuntimeError, ValueError, AssertionError, TypeError) as e:
        raise ModelError(f"timm cannot build {base} for {image_size[0]}x{image_size[1]} frames ({one_line(e)})") \
            from None
    block = vit.blocks[0]
    if not isinstance(block.mlp, Mlp) or not isinstance(block.mlp.act, nn.GELU) or vit.cls_token is None:
        raise ModelError(f"{base} is not a plain ViT (GELU MLP and a class token): timesformer cannot start from it")
    patch = vit.patch_embed.patch_size
    dim = vit.embed_dim
    return {"dim": dim, "depth": len(vit.blocks), "heads": block.attn.num_heads,
            "dim_head": dim // block.attn.num_heads, "patch_size": patch[0],
            "mlp_ratio": block.mlp.fc1.out_features / dim, "qkv_bias": block.attn.qkv.bias is not None}


def _vit_weights(name: str, pretrained: Pretrained) -> tuple[dict[str, Tensor], str]:
    path = weights_path(pretrained)
    if path is not None:
        return read_state_dict(path), str(path)
    import timm

    base = name.removeprefix("timm/")
    try:
        return timm.create_model(base, pretrained=True).state_dict(), f"timm {base}"
    except Exception as e:  # network and hub errors
        raise no_weights_error(f"timm {base}", e, hint=f"a state dict of timm's {base}") from None


@register_model(recipe=Recipe(lr=5e-4, epochs=12, freeze_epochs=0))
def timesformer(n_classes: int, *, seq_len: int, image_size: tuple[int, int], backbone: str | None,
                pretrained: Pretrained, patch_size: int | None = None, dim: int | None = None,
                depth: int | None = None, heads: int | None = None, dim_head: int | None = None,
                mlp_ratio: float | None = None, qkv_bias: bool | None = None, attn_dropout: float = 0.1,
                ff_dropout: float = 0.1, time_kernel: str = "auto", recompute_mlp: bool = False,
                recompute_attention: bool = False, motion: bool = False) -> TimeSformer:
    """Divided space-time attention TimeSformer; the tutorial's configuration by default, from scratch.

    `backbone="vit_base_patch16_224"` (any plain timm ViT) takes that ViT's dimensions, and with `pretrained`
    (True: timm's download; or a local state dict file) starts from its weights. `time_kernel` computes the
    attention over frames with "pointwise", "matmul", "sdpa" or "auto" (pointwise up to 16 frames);
    `recompute_mlp` and `recompute_attention` trade compute for memory: each block's MLP, or its two attention
    branches (norm, projections, attention), are computed again in the backward pass instead of kept.
    `motion` adds the clip's normal flow to every frame (`vidseq.models.layers.normal_flow`; from a ViT, its
    patch weights start at zero).
    """
    given = {"patch_size": patch_size, "dim": dim, "depth": depth, "heads": heads, "dim_head": dim_head,
             "mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias}
    given = {k: v for k, v in given.items() if v is not None}
    if backbone is None:
        if pretrained is not False and pretrained is not None:
            raise ModelError("timesformer has no weights of its own: name the image ViT to start from with "
                             "backbone='vit_base_patch16_224' (timm), or pass pretrained=False")
        arch = {"patch_size": 16, "dim": 128, "depth": 12, "heads": 8, "dim_head": 64, "mlp_ratio": 4.0,
                "qkv_bias": True} | given
    else:
        arch = vit_architecture(backbone, image_size=image_size)
        clash = {k: v for k, v in given.items() if arch[k] != v}
        if clash:
            raise ModelError(f"timesformer: {', '.join(f'{k}={v}' for k, v in clash.items())} disagree with "
                             f"{backbone} ({', '.join(f'{k}={arch[k]}' for k in clash)}): drop them")
    model = TimeSformer(n_classes, seq_len=seq_len, image_size=image_size, attn_dropout=attn_dropout,
                        ff_dropout=ff_dropout, time_kernel=time_kernel, recompute_mlp=recompute_mlp,
                        recompute_attention=recompute_attention, motion=motion, **arch)
    if backbone is not None and pretrained:
        sd, source = _vit_weights(backbone, pretrained)
        load_vit_state_dict(model, sd, source=source)
    model.backbone_name = backbone
    return model
