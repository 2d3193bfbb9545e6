"""Pretrained weights: torchvision downloads, local files (.safetensors or a .pth state dict), clear failures.

Pretrained weights that were asked for and cannot be had end in a `ModelError` suggesting `pretrained=False`
or a local file: a model is never silently trained from random weights instead.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from vidseq.errors import ModelError

Pretrained = bool | str | Path | None


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = " ".join(str(exc).split())
    text = text[:limit] + ("..." if len(text) > limit else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def state_bytes(model: nn.Module) -> int:
    """The bytes of `model`'s state (parameters and buffers): about the size of its weights file."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def weights_path(pretrained: Pretrained) -> Path | None:
    """The local weights file that `pretrained` names (checked to exist), or None for True/False."""
    if pretrained is None or isinstance(pretrained, bool):
        return None
    if not isinstance(pretrained, (str, Path)):
        raise ModelError(f"pretrained must be True, False or a weights file path, got {pretrained!r}")
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ModelError(f"weights file {path} not found: give an existing .safetensors or .pth file, "
                         "or pretrained=False")
    return path


def no_weights_error(what: str, exc: BaseException, *, hint: str) -> ModelError:
    """The one-line error for pretrained weights of `what` that could not be had."""
    return ModelError(f"cannot get pretrained weights for {what} ({one_line(exc)}): train with {{pretrained}} "
                      f"to start from random weights, or give a local weights file (pretrained='path/to/"
                      f"weights.safetensors': {hint})", params={"pretrained": False})


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from a .safetensors file or a torch file (loaded with `weights_only=True`, never unpickled).

    A checkpoint that nests its weights under "state_dict", "model" or "module" is unwrapped, and a
    "module." prefix (DistributedDataParallel) is dropped.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError) as e:
        raise ModelError(f"weights file {path} cannot be read ({one_line(e)}): give a .safetensors file or a "
                         "torch state dict") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ModelError(f"weights file {path} holds no state dict (a mapping of names to tensors)")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def fit_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], *, source: str, what: str,
                 skip: Iterable[str] = ()) -> None:
    """Load `state_dict` into `module`, ignoring keys under the `skip` prefixes (a classifier to be replaced).

    Any other missing or unexpected key, or a shape that differs, is a `ModelError` naming `source`.
    """
    skip = tuple(skip)
    keep = {k: v for k, v in state_dict.items() if not k.startswith(skip)}
    own = module.state_dict()
    missing = [k for k in own if k not in keep and not k.startswith(skip)]
    unexpected = [k for k in keep if k not in own]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in keep.items()
             if k in own and v.shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}"
                        f"{', ...' if len(unexpected) > 3 else ''})")
    if wrong:
        problems.append(f"{len(wrong)} of another shape ({', '.join(wrong[:2])}{', ...' if len(wrong) > 2 else ''})")
    if problems:
        raise ModelError(f"weights {source} do not fit {what}: keys {'; '.join(problems)}")
    module.load_state_dict(keep, strict=False)


def torchvision_state_dict(name: str) -> dict[str, Tensor]:
    """The default pretrained weights of torchvision model `name`, downloaded (or from torch's hub cache)."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError) as e:
        raise ModelError(f"torchvision has no pretrained weights for {name} ({one_line(e)}): pass "
                         "pretrained=False") from None
    try:
        return torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except Exception as e:  # offline, proxy, truncated or corrupt download: all end the same way
        raise no_weights_error(f"torchvision {name} ({weights})", e,
                               hint=f"a state dict of torchvision's {name}") from None
