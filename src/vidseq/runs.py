"""Run folders: what a training run leaves behind, saved and loaded without unpickling anything; the one
reader and writer of them. A run's settings are typed (`RunConfig`: `ClipConfig`, `DataConfig`,
`TrainSettings`) and versioned (`FORMAT`).

A run folder holds ``config.json`` (everything that rebuilds the model and its data transforms) and
``model.safetensors`` (the weights); training adds ``metrics.csv``, ``history.png`` and a
``checkpoint/`` folder (weights, optimiser state and progress after the last completed epoch).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import platform
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vidseq.clips import IMAGENET, Stats
from vidseq.errors import ModelError, VidseqError
from vidseq.files import atomic_path, atomic_write_text, save_figure, usual_mode
from vidseq.models import unwrap
from vidseq.sampling import DEFAULT_SAMPLER

CONFIG, WEIGHTS, CHECKPOINT, METRICS = "config.json", "model.safetensors", "checkpoint", "metrics.csv"
#: What `vidseq evaluate` writes into a run folder: a new training run in that folder removes them.
EVALUATION_FILES = ("confusion.png", "per_class.csv", "evaluation.json", "report.html")
#: the largest frame count or side (px) and class count a run's config may give: far above any real run, and small
#: enough that nothing absurd is allocated from a damaged or hostile config.json
MAX_CLIP_SIDE, MAX_CLASSES = 4096, 1_000_000
PICKLE_SUFFIXES = (".pkl", ".pth", ".pt", ".bin", ".ckpt", ".pickle")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on, for its config."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("vidseq", "torch", "torchvision", "fastai", "timm", "av"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Model weights as safetensors, written under a temporary name and renamed."""
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    # tensors that share storage (tied weights) must be saved apart
    seen: dict[int, str] = {}
    for k, v in list(state.items()):
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1:
            state[k] = v.clone()
        seen[ptr] = k
    save_safetensors(state, path)


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """Load safetensors weights into `model`; a mismatch is a ModelError naming the file."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelError(path=path,
                         reason="refusing to load a pickle-based file; vidseq loads only .safetensors weights")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ModelError(path=path, reason=f"not a readable safetensors file ({e})") from None
    target = unwrap(model)
    try:
        missing, unexpected = target.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = next((ln.strip() for ln in first if "size mismatch" in ln), first[0] if first else "")
        raise ModelError(path=path, reason=f"weights do not fit the model in config.json ({detail})") from None
    if missing or unexpected:
        raise ModelError(path=path, reason=f"weights do not fit the model in config.json "
                         f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. "
                         f"{(list(missing) + list(unexpected))[0]})")
    return model


def save_optimizer(opt, path: Path) -> None:
    """An optimiser's state (fastai's own or a wrapped PyTorch one): tensors in safetensors, the structure and
    every other value in the file's JSON metadata. Nothing is pickled."""
    tensors: dict[str, torch.Tensor] = {}

    def pack(v, key: str):
        if isinstance(v, torch.Tensor):
            tensors[key] = v.detach().contiguous().cpu()
            return {"tensor": key}
        if isinstance(v, dict):  # keys stay ints or strings (PyTorch's state is keyed by parameter index)
            return {"dict": [[k, pack(x, f"{key}.{k}")] for k, x in v.items()]}
        if isinstance(v, tuple):
            return {"tuple": [pack(x, f"{key}.{i}") for i, x in enumerate(v)]}
        if isinstance(v, list) or type(v).__name__ == "L":
            return [pack(x, f"{key}.{i}") for i, x in enumerate(v)]
        return v.item() if hasattr(v, "item") else v  # numbers, strings, bools, None, numpy scalars

    packed = pack(opt.state_dict(), "s")
    save_safetensors(tensors, path, metadata={"vidseq": json.dumps({"packed": packed})})


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """`tensors` as a safetensors file, written atomically; a failed write (a full disk) is the OSError it is, with
    the file's size, not safetensors' own error type."""
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    with atomic_path(path, size=size) as tmp, safetensors_io(tmp):
        save_file(tensors, str(tmp), metadata=metadata)
        usual_mode(tmp)


@contextlib.contextmanager
def safetensors_io(path: str | Path) -> Iterator[None]:
    """safetensors' I/O errors in the block (a full disk), also where another library writes with it, as the
    OSError they are, naming `path`: its own error type carries only the text of the OSError."""
    try:
        yield
    except SafetensorError as e:
        code = re.search(r"os error (\d+)", str(e))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None


def load_optimizer(opt, path: Path, device) -> None:
    """Restore what `save_optimizer` wrote into `opt` (built the same way, over the same parameters)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = json.loads(f.metadata()["vidseq"])
        tensors = {k: f.get_tensor(k).to(device) for k in f.keys()}
    if "packed" not in meta:
        raise VidseqError(path=path, reason="optimiser state from an older vidseq; train again with {resume}",
                          params={"resume": False})

    def unpack(v):
        if isinstance(v, list):
            return [unpack(x) for x in v]
        if isinstance(v, dict):
            if "tensor" in v:
                return tensors[v["tensor"]]
            if "tuple" in v:
                return tuple(unpack(x) for x in v["tuple"])
            return {k: unpack(x) for k, x in v["dict"]}
        return v

    opt.load_state_dict(unpack(meta["packed"]))


#: Version of the config.json layout. 1: the first layout (runs before the version was written read as 1).
FORMAT = 3  # 2: ClipConfig.crop_pct, multi_label and threshold, torchvision's video networks as they are;
#            3: DataConfig.valid_pct


@dataclass
class ClipConfig:
    """How clips were made: frames per clip, square size, sampler, padding, the input normalisation and the
    share of the short side an evaluation crop takes (the centre square of `crop_pct` x short side)."""

    frames: int
    size: int
    sampler: str = DEFAULT_SAMPLER
    pad: str = "repeat"
    normalize: Stats = IMAGENET
    crop_pct: float = 1.0


@dataclass
class DataConfig:
    """The data a run trained on: its source (absolute path or dataset name), root, kind and split (with the share of
    each class a group or random split validates on)."""

    source: str
    root: str = ""
    kind: str = ""
    split: str = "auto"
    train: int = 0
    valid: int = 0
    valid_pct: float = 0.2


@dataclass
class TrainSettings:
    """The schedule and options the run trained with (after the recipe filled in what was not given)."""

    bs: int = 32
    epochs: int = 0
    freeze_epochs: int = 0
    lr: float = 1e-3
    precision: str = "fp32"
    pretrained: bool = False
    augment: bool = True
    flip: bool = False
    seed: int = 0
    compile: bool = False


@dataclass
class RunConfig:
    """Everything that rebuilds a run's model and its data transforms."""

    model: dict[str, Any]  #: `create_model(**model)` rebuilds the architecture (the model's `vidseq_config`)
    classes: list[str]
    data: DataConfig
    clip: ClipConfig
    train: TrainSettings
    versions: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT
    multi_label: bool = False  # sigmoid outputs, several classes per item
    threshold: float | None = None  # multi-label: a class is predicted above it (chosen on the validation set)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["clip"]["normalize"] = {"mean": list(self.clip.normalize.mean), "std": list(self.clip.normalize.std)}
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "config.json") -> RunConfig:
        """Read a config.json document; ModelError naming `source` when it cannot rebuild a run."""
        if not isinstance(d, dict):
            raise ModelError(path=source, reason="not a vidseq run config (expected a JSON object)")
        missing = [k for k in ("model", "classes", "data", "clip") if not isinstance(d.get(k), dict | list)]
        if missing:
            raise ModelError(path=source, reason=f"missing '{missing[0]}'; is this a vidseq run?")
        version = d.get("format", 1)
        if not isinstance(version, int) or version > FORMAT:
            raise ModelError(path=source, reason=f"written by a newer vidseq (format {version}; this one reads up "
                             f"to {FORMAT}); upgrade vidseq")
        try:
            clip = dict(d["clip"])
            stats = clip.pop("normalize", None)
            if stats is not None:
                clip["normalize"] = Stats(tuple(stats["mean"]), tuple(stats["std"]))
            train = d.get("train") or {}
            config = cls(model=dict(d["model"]), classes=list(d["classes"]), data=DataConfig(**d["data"]),
                         clip=ClipConfig(**clip), train=TrainSettings(**train), versions=dict(d.get("versions", {})),
                         format=FORMAT, multi_label=bool(d.get("multi_label", False)), threshold=d.get("threshold"))
        except (TypeError, KeyError, ValueError) as e:
            raise ModelError(path=source, reason=f"settings that vidseq does not know or lacks ({e})") from None
        config.check_sizes(source)
        return config

    def check_sizes(self, source: str = "config.json") -> None:
        """Refuse sizes no run has (a damaged or hostile config.json) before anything is built or allocated."""
        size = self.model.get("image_size")
        sizes = {"clip.frames": self.clip.frames, "clip.size": self.clip.size, "model.seq_len":
                 self.model.get("seq_len", self.clip.frames), "model.n_classes": self.model.get("n_classes", 1),
                 **{f"model.image_size[{i}]": v for i, v in enumerate(size if isinstance(size, list) else [size])
                    if v is not None}}
        for name, value in sizes.items():
            top = MAX_CLASSES if name == "model.n_classes" else MAX_CLIP_SIDE
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ModelError(path=source, reason=f"{name} is {value!r}, not a whole number from 1 to {top}; the "
                                 "file is damaged")


@dataclass
class Run:
    """A loaded run: its folder, config and model (in eval mode)."""

    path: Path
    config: RunConfig
    model: torch.nn.Module

    @property
    def classes(self) -> list[str]:
        return self.config.classes


def write_config(run: str | Path, config: RunConfig) -> None:
    """Write a run's ``config.json`` (atomically)."""
    atomic_write_text(Path(run) / CONFIG, json.dumps(config.to_dict(), indent=2) + "\n")


def read_config(run: str | Path) -> RunConfig:
    """A run folder's ``config.json``; ModelError in one line for a missing or damaged one."""
    run = Path(run)
    cfg_path = run / CONFIG
    if not run.is_dir():
        raise ModelError(path=run, reason="no such run folder")
    if not cfg_path.is_file():
        raise ModelError(path=run, reason=f"not a vidseq run (no {CONFIG}); train one with 'vidseq train'")
    try:
        doc = json.loads(cfg_path.read_text())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ModelError(path=cfg_path, reason=f"not valid JSON ({e})") from None
    return RunConfig.from_dict(doc, source=str(cfg_path))


def load_run(run: str | Path, *, weights: str | Path | None = None, device: str | torch.device = "cpu") -> Run:
    """Rebuild a run's model from ``config.json`` and load ``model.safetensors`` (or `weights`)."""
    from vidseq.models import create_model

    run = Path(run)
    cfg = read_config(run)
    weights = Path(weights) if weights else run / WEIGHTS
    if not weights.is_file():
        raise ModelError(path=run, reason=f"no {weights.name}; the run did not finish an epoch")
    model_cfg = dict(cfg.model)
    model_cfg["pretrained"] = False
    try:
        model = create_model(**model_cfg)
    except TypeError as e:
        raise ModelError(f"{run / CONFIG}: model settings do not fit vidseq's models ({e})") from None
    except ModelError as e:
        if e.path is not None:
            raise
        raise ModelError(path=run / CONFIG, reason=f"its model cannot be rebuilt here: {e.render()}") from None
    load_weights(model, weights)
    return Run(run, cfg, model.to(device).eval())


def data_source(data: str | Path) -> str:
    """How a run records its data: an absolute path (so the run can be evaluated from anywhere), or the
    dataset's name (ucf101, hmdb51)."""
    return str(Path(data).resolve()) if Path(data).exists() else str(data)


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Add (or replace) the row of `row["epoch"]` in a run's ``metrics.csv``, dropping rows of later epochs
    (a resumed run redoes them)."""
    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < int(row["epoch"])]
    rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_metrics(run: str | Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` (none before the first epoch)."""
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_history(run: str | Path) -> Path | None:
    """``history.png``: train and validation loss, and accuracy (mAP for multi-label runs), per epoch (None before
    the first epoch)."""
    from matplotlib.figure import Figure

    rows = read_metrics(run)
    if not rows:
        return None
    ep = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(10, 3.6))
    a, b = fig.subplots(1, 2)
    for key, style in (("train_loss", "-o"), ("valid_loss", "-s")):
        if key in rows[0]:
            a.plot(ep, [float(r[key]) if r[key] not in ("", "None") else math.nan for r in rows], style, label=key)
    a.set_xlabel("epoch")
    a.set_title("loss")
    a.legend()
    scores = [k for k in ("accuracy", "top5", "mAP", "accuracy_multi") if k in rows[0]]
    for key in scores:
        b.plot(ep, [float(r[key]) for r in rows], "-o", label=key)
    b.set_xlabel("epoch")
    b.set_ylim(0, 1.02)
    b.set_title("validation mAP" if "mAP" in scores else "validation accuracy")
    b.legend()
    fig.tight_layout()
    out = Path(run) / "history.png"
    save_figure(fig, out, dpi=90)
    return out
