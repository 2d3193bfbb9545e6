"""A small timm-style registry: `@register_model` builders, `create_model`, `list_models`, `splitter`."""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vidseq.clips.clip import IMAGENET, Stats
from vidseq.errors import ModelError


@dataclass(frozen=True)
class Recipe:
    """How a model trains without tuning, and what its input is normalised with.

    Pretrained backbones are fine-tuned (`freeze_epochs` frozen, then `epochs` unfrozen); models from scratch
    run one cycle of `epochs`. `stats` are the per-channel statistics of the model's input. A model made for one
    clip shape (a checkpoint's) gives its `frames` per clip and its `size` (square crop), and `crop_pct`, the
    crop's share of the short side at evaluation (e.g. 112 / 128 for torchvision's Kinetics weights); training
    takes them as defaults. With `bs`, `lr` is for that batch size and scales with the batch (the linear scaling
    rule); with `layer_decay`, the unfrozen phase gives the model's parameter groups (input side first, one per
    block, the head last) rates falling by that factor from the head down, as BEiT and VideoMAE fine-tune.
    """

    lr: float = 1e-3
    epochs: int = 8
    freeze_epochs: int = 1
    stats: Stats = IMAGENET
    frames: int | None = None
    size: int | None = None
    crop_pct: float = 1.0
    bs: int | None = None  # the batch size `lr` is meant for: another batch scales it linearly (Goyal et al.)
    layer_decay: float | None = None  # after the frozen epochs, each block's rate is this x the next one's

    def lr_for(self, bs: int) -> float:
        """The learning rate for batches of `bs` clips."""
        return self.lr * bs / self.bs if self.bs else self.lr


_MODELS: dict[str, Callable[..., nn.Module]] = {}
_RECIPES: dict[str, Recipe] = {}
_UNAVAILABLE: dict[str, str] = {}  # optional models whose extra is not installed: name -> what to do
_COMMON = ("n_classes", "seq_len", "image_size", "backbone", "pretrained")


@dataclass(frozen=True)
class Family:
    """Models named ``<prefix>:<ref>`` (e.g. ``hf:MCG-NJU/videomae-base``): one builder taking the `ref`, and the
    recipe of each checkpoint, read from the checkpoint itself."""

    builder: Callable[..., nn.Module]
    recipe: Callable[[str], Recipe]
    pattern: str  # how `vidseq models` shows the names, e.g. "hf:<hub id or folder>"


_FAMILIES: dict[str, Family] = {}


def register_family(prefix: str, builder: Callable[..., nn.Module], recipe: Callable[[str], Recipe], *,
                    pattern: str) -> None:
    """Register the models named ``prefix:<ref>``: `builder(n_classes, *, ref, seq_len, ...)` builds one, and
    `recipe(ref)` gives its training recipe and input (read from the checkpoint)."""
    _FAMILIES[prefix] = Family(builder, recipe, pattern)


def model_families() -> dict[str, str]:
    """The registered families of names: prefix -> how their names look."""
    return {k: f.pattern for k, f in _FAMILIES.items()}


def _family(name: str) -> tuple[Family, str] | None:
    """The family of `name` and its ref, for a name ``prefix:ref``; None for a registered model's name."""
    prefix, sep, ref = name.partition(":")
    if not sep or prefix not in _FAMILIES:
        return None
    if not ref:
        raise ModelError(f"model {name!r} names no checkpoint: give {_FAMILIES[prefix].pattern}")
    return _FAMILIES[prefix], ref


def _patterns() -> list[str]:
    return [f.pattern for f in _FAMILIES.values()]


def is_model(name: str) -> bool:
    """Whether `name` is a registered model or a name of a registered family (``hf:...``)."""
    return name in _MODELS or _family(name) is not None


def register_model(fn: Callable[..., nn.Module] | None = None, *, recipe: Recipe | None = None):
    """Register a model builder under its function name, with its training `recipe` (`@register_model` or
    `@register_model(recipe=Recipe(lr=5e-4, epochs=12, freeze_epochs=0))`).

    A builder takes `(n_classes, *, seq_len, image_size, backbone, pretrained, **options)` and returns
    an `nn.Module` mapping a `(B, T, C, H, W)` clip batch (or a tuple of T `(B, C, H, W)` tensors) to
    `(B, n_classes)` logits, with a `param_groups()` method (body first, head last). Options are checked
    against their annotations (bool, int, float, str, None); numbers must be positive, except options
    named `*dropout`, which are probabilities in [0, 1).
    """
    if fn is None:
        return functools.partial(register_model, recipe=recipe)
    params = inspect.signature(fn).parameters
    missing = [p for p in _COMMON if p not in params]
    if missing:
        raise TypeError(f"model builder {fn.__name__} lacks the parameters {missing}")
    _MODELS[fn.__name__] = fn
    _RECIPES[fn.__name__] = recipe or Recipe()
    return fn


def model_recipe(name: str) -> Recipe:
    """The training recipe and input normalisation model `name` registered (for a family's name, its
    checkpoint's)."""
    family = _family(name)
    if family is not None:
        return family[0].recipe(family[1])
    _builder(name)
    return _RECIPES[name]


def input_stats(name: str, backbone: str | None = None) -> Stats:
    """The statistics model `name`'s input is normalised with: a timm backbone's own where it has one (its
    weights' mean and std), else the model's recipe's."""
    from vidseq.models.backbones import backbone_stats

    return backbone_stats(backbone) or model_recipe(name).stats


def register_unavailable(name: str, hint: str) -> None:
    """Note an optional model whose dependencies are missing; asking for it says `hint` (what to install)."""
    _UNAVAILABLE[name] = hint


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_MODELS)


def model_options(name: str) -> dict[str, Any]:
    """The options (keyword arguments past the common ones) of model `name`, with their defaults."""
    fn = _builder(name)
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.name not in (*_COMMON, "ref")}


def _option_hints(fn: Callable[..., nn.Module]) -> dict[str, Any]:
    """The evaluated annotations of builder `fn`'s parameters; none when they cannot be evaluated here."""
    try:
        return typing.get_type_hints(fn)
    except (NameError, TypeError):
        return {}


def _check_option(model: str, key: str, value: Any, hint: Any) -> None:
    """Refuse a value of the wrong type for option `key` (from its annotation `hint`: bool, int, float, str
    and unions of them with None) or out of range, in one line; other annotations are not checked."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    simple = {bool: "true or false", int: "a whole number", float: "a number", str: "text", type(None): "null"}
    if not all(t in simple for t in allowed):
        return
    ok = any(value is None if t is type(None) else
             isinstance(value, bool) if t is bool else
             isinstance(value, int) and not isinstance(value, bool) if t is int else
             isinstance(value, (int, float)) and not isinstance(value, bool) if t is float else
             isinstance(value, t) for t in allowed)
    if not ok:
        raise ModelError(f"model {model}: option {key} must be {' or '.join(simple[t] for t in allowed)}, "
                         f"got {value!r}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and key.endswith("dropout") and not 0 <= value < 1:
        raise ModelError(f"model {model}: option {key} is a probability, from 0 up to (not including) 1; got {value}")
    if number and not key.endswith("dropout") and not 0 < value < float("inf"):
        raise ModelError(f"model {model}: option {key} must be positive, got {value}")


def _builder(name: str) -> Callable[..., nn.Module]:
    family = _family(name)
    if family is not None:
        return family[0].builder
    if name not in _MODELS and name in _UNAVAILABLE:
        raise ModelError(f"model {name} is not available here: {_UNAVAILABLE[name]}")
    if name not in _MODELS:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(list_models() + list(_patterns()))}")
    return _MODELS[name]


def create_model(
    name: str,
    n_classes: int,
    *,
    seq_len: int = 5,
    image_size: int | tuple[int, int] = 64,
    backbone: str | None = None,
    pretrained: bool | str = False,
    **kwargs: Any,
) -> nn.Module:
    """Build model `name` for `n_classes` classes, clips of `seq_len` frames of `image_size` pixels.

    `backbone` picks the per-frame network where the model has one (a torchvision name such as "resnet34",
    or "timm/<name>"; for timesformer a timm ViT to start from); None takes the model's default.
    `pretrained` is False (random weights), True (torchvision or timm weights, downloaded when online) or
    the path of a local weights file (.safetensors, or a .pth state dict) for the backbone.
    Other keyword arguments are the model's options (see `model_options(name)`).

    The result carries `vidseq_config`, a JSON-serialisable dict such that
    `create_model(**model.vidseq_config)` rebuilds the same architecture with random weights.

    >>> model = create_model("frame_avg", 101, backbone="resnet18", image_size=64)
    >>> import torch
    >>> model(torch.randn(2, 5, 3, 64, 64)).shape
    torch.Size([2, 101])
    """
    fn = _builder(name)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ModelError(f"model {name}: n_classes must be a positive integer, got {n_classes!r}")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ModelError(f"model {name}: seq_len must be a positive integer, got {seq_len!r}")
    size = image_size if isinstance(image_size, (tuple, list)) else (image_size, image_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ModelError(f"model {name}: image_size must be a positive integer or (height, width), got {image_size!r}")
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        known = ", ".join(options) or "none"
        raise ModelError(f"model {name} has no option {', '.join(unknown)} (its options: {known})")
    config = {"name": name, "n_classes": n_classes, "seq_len": seq_len,
              "image_size": image_size if isinstance(image_size, int) else list(size), "backbone": backbone,
              **kwargs}
    try:
        json.dumps(config)
    except (TypeError, ValueError):
        raise ModelError(f"model {name}: options must be plain values (numbers, strings, lists), got {kwargs!r}") \
            from None
    hints = _option_hints(fn)
    for key, value in kwargs.items():
        _check_option(name, key, value, hints.get(key))
    family = _family(name)
    extra = {"ref": family[1]} if family is not None else {}
    model = fn(n_classes, seq_len=seq_len, image_size=tuple(size), backbone=backbone, pretrained=pretrained,
               **extra, **kwargs)
    config["backbone"] = getattr(model, "backbone_name", backbone)
    config.update(getattr(model, "rebuild_options", {}))  # what rebuilds it without its source (e.g. a config)
    model.vidseq_config = config
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside torch.compile's OptimizedModule or a DistributedDataParallel/DataParallel wrapper."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups of a vidseq model, body first and head last: fastai's `Learner(splitter=...)`.

    `Learner.freeze()` then trains only the head; `fine_tune` unfreezes the body after the frozen epochs.
    """
    inner = unwrap(model)
    if hasattr(inner, "param_groups"):
        groups = [list(g) for g in inner.param_groups()]
    elif hasattr(inner, "body") and hasattr(inner, "head"):
        groups = [list(inner.body.parameters()), list(inner.head.parameters())]
    else:
        raise ModelError(f"{type(inner).__name__} has neither param_groups() nor body/head attributes to split")
    seen = {id(p) for g in groups for p in g}
    rest = [p for p in inner.parameters() if id(p) not in seen]
    if rest:  # parameters a model forgot to place train with the head rather than being lost to the optimiser
        groups[-1] = groups[-1] + rest
    return groups


def param_count(model: nn.Module) -> int:
    """Number of parameters of `model`."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["Family", "Recipe", "create_model", "input_stats", "is_model", "list_models", "model_families",
           "model_options", "model_recipe", "param_count", "register_family", "register_model",
           "register_unavailable", "splitter", "unwrap"]
