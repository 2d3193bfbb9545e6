"""A run's model as ONNX (PyTorch's dynamo exporter), with the preprocessing contract in the file's metadata, checked
in onnxruntime against PyTorch on real clips of the run's own data; and `OnnxModel`, which runs such a file where a
run's PyTorch model would (``vidseq predict/evaluate --onnx FILE``). Needs ``pip install 'vidseq[onnx]'``.

The contract (metadata key ``vidseq``, JSON): input ``clips``, float32 ``(B, T, 3, H, W)``, RGB scaled to [0, 1]
then normalised with ``mean``/``std``, ``frames`` frames sampled by ``sampler``, the centre ``crop_pct`` of the
short side resized to ``size``; output ``logits`` ``(B, C)`` over ``classes`` (softmax; sigmoid and ``threshold``
for a multi-label run). ``shape`` is the input's shape (``"batch"`` first where any batch size goes) and ``run``
what tells the run it was exported from apart from any other: its folder's ``name``, a digest of its model's
``weights`` and one of the ``config`` settings that shape the model's inputs and outputs; `with_onnx` refuses the file
for any other run.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidseq.errors import STORAGE_FAULTS, ModelError, VidseqError, note_space
from vidseq.files import hidden_sibling
from vidseq.models import unwrap
from vidseq.models.weights import one_line, state_bytes
from vidseq.runs import Run, load_run

log = logging.getLogger(__name__)
INSTALL = "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'vidseq[onnx]'"
METADATA_KEY = "vidseq"
#: what parity means: the largest difference of a logit between onnxruntime and PyTorch (float32)
TOLERANCE = 1e-4


def _need_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise VidseqError(INSTALL) from None
    return onnx, onnxruntime


@dataclass
class OnnxExport:
    """An exported file and its check: the largest logit difference and whether every top-1 agreed, on `clips`."""

    path: Path
    max_abs_diff: float
    same_top1: bool
    clips: int
    dynamic_batch: bool = True  # False: the file takes one clip a call


def contract(run: Run, *, dynamic_batch: bool = True) -> dict:
    """The preprocessing contract of `run`'s model, as written into the ONNX file's metadata."""
    c = run.config
    return {"input": "clips", "layout": "B,T,C,H,W", "frames": c.clip.frames, "size": c.clip.size,
            "shape": ["batch" if dynamic_batch else 1, c.clip.frames, 3, c.clip.size, c.clip.size],
            "sampler": c.clip.sampler, "pad": c.clip.pad, "crop_pct": c.clip.crop_pct, "scale": 1 / 255,
            "mean": list(c.clip.normalize.mean), "std": list(c.clip.normalize.std), "classes": list(c.classes),
            "multi_label": c.multi_label, "threshold": c.threshold, "model": c.model.get("name"),
            "run": run_identity(run)}


def run_identity(run: Run) -> dict:
    """What tells `run` apart from every other run: its folder's name, a digest of its model's weights (names,
    shapes and values; floats as float32, so the dtype they are held in does not count) and one of the settings in
    its config.json that make its model's inputs and outputs (model, classes, clip, multi_label; not the data it
    trained on, nor the schedule)."""
    weights = hashlib.sha256()
    for name, t in sorted(unwrap(run.model).state_dict().items()):
        t = t.detach().cpu()
        t = (t.float() if t.is_floating_point() else t).contiguous()
        weights.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        weights.update(memoryview(t.numpy()).cast("B"))
    c = run.config.to_dict()
    settings = json.dumps({k: c[k] for k in ("model", "classes", "clip", "multi_label")}, sort_keys=True)
    return {"name": Path(run.path).name, "weights": weights.hexdigest()[:32],
            "config": hashlib.sha256(settings.encode()).hexdigest()[:32]}


def _sample_clips(run: Run, n: int) -> torch.Tensor:
    """Up to `n` normalised clips of the run's own validation data (what parity is checked on)."""
    from vidseq.datasets import load_items
    from vidseq.evaluate import clip_indices, clip_tfm_for, normalize

    items = load_items(run.config.data.source, split=run.config.data.split, valid_pct=run.config.data.valid_pct,
                       seed=run.config.train.seed)
    tfm = clip_tfm_for(run.config)
    clips = []
    for it in items.valid_items() + items.train_items():
        try:
            clips.append(tfm.load(it.path, indices=clip_indices(tfm, it.path, 1)[0]).as_subclass(torch.Tensor))
        except (VidseqError, OSError):
            continue
        if len(clips) == n:
            break
    if not clips:
        raise VidseqError(path=run.config.data.source, reason="has no readable clip to check the export on")
    return normalize(torch.stack(clips), run.config)


def check_parity(model: nn.Module, path: Path, clips: torch.Tensor) -> tuple[float, bool]:
    """(largest logit difference, every top-1 the same) of ONNX file `path` against `model` on `clips`."""
    _, ort = _need_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ours = model(clips).float().numpy()
    theirs = np.concatenate([session.run(None, {"clips": clips[i:i + 1].numpy()})[0] for i in range(len(clips))])
    return float(np.abs(ours - theirs).max()), bool((ours.argmax(1) == theirs.argmax(1)).all())


def export_onnx(run: str | Path | Run, dest: str | Path, *, dynamic_batch: bool = True, opset: int | None = None,
                check: int = 8) -> OnnxExport:
    """Write run `run`'s model to ONNX file `dest` (a new file appears whole or not at all), then check it in
    onnxruntime against PyTorch on `check` clips of the run's own data: a difference over `TOLERANCE` or another
    top-1 is a `ModelError` and leaves no file. With `dynamic_batch` the file takes any batch size."""
    onnx, _ = _need_onnx()
    run = run if isinstance(run, Run) else load_run(run)
    dest = Path(dest)
    model = run.model.float().eval()
    c = run.config.clip
    name = run.config.model.get("name")
    tmp = hidden_sibling(dest, f"tmp-{os.getpid()}")
    try:
        dynamic_batch = export_model(model, tmp, frames=c.frames, size=c.size, dynamic_batch=dynamic_batch,
                                     opset=opset, name=name)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(contract(run, dynamic_batch=dynamic_batch))
        onnx.save(proto, str(tmp))
        clips = _sample_clips(run, check) if check else None
        diff, same = check_parity(model, tmp, clips) if clips is not None else (0.0, True)
        if diff > TOLERANCE or not same:
            raise ModelError(f"the ONNX export of {name} does not match PyTorch on the run's clips (largest logit "
                             f"difference {diff:.2e}, top-1 {'the same' if same else 'differs'}); not written")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return OnnxExport(dest, diff, same, 0 if clips is None else len(clips), dynamic_batch)


def export_model(model: nn.Module, path: Path, *, frames: int, size: int, dynamic_batch: bool = True,
                 opset: int | None = None, name: str = "the model") -> bool:
    """Export `model` (clips of `frames` x `size` px) to ONNX file `path` as is (no contract, no check); return
    whether the file takes any batch size. A graph that fixes its batch size is exported for one clip a call."""
    _export(model, path, frames=frames, size=size, dynamic_batch=dynamic_batch, opset=opset, name=name)
    if dynamic_batch and not _batch_is_dynamic(_need_onnx()[0].load(str(path))):
        log.warning("%s: the exported graph has a fixed batch size; exporting for one clip a call", name)
        _export(model, path, frames=frames, size=size, dynamic_batch=False, opset=opset, name=name)
        return False
    return dynamic_batch


def _export(model: nn.Module, path: Path, *, frames: int, size: int, dynamic_batch: bool, opset: int | None,
            name: str) -> None:
    example = torch.zeros(2 if dynamic_batch else 1, frames, 3, size, size)
    arg = next(iter(inspect.signature(model.forward).parameters))
    shapes = {arg: {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["clips"],
                              output_names=["logits"], dynamic_shapes=shapes, opset_version=opset,
                              external_data=False)
    except OSError as e:
        if e.errno not in STORAGE_FAULTS:
            raise ModelError(f"model {name} cannot be exported to ONNX ({one_line(e)})") from None
        e.filename = e.filename or str(path)  # the destination's fault (full, read-only): the run's, one line
        raise note_space(e, needed=state_bytes(model), what="the model's weights") from None
    except Exception as e:  # the exporter's failures come as many types; each is the same one line here
        raise ModelError(f"model {name} cannot be exported to ONNX ({one_line(e)})") from None


def _batch_is_dynamic(proto) -> bool:
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    return bool(dim.dim_param) or not dim.HasField("dim_value")


class OnnxModel(nn.Module):
    """An exported ONNX file run by onnxruntime (CPU) in place of a run's PyTorch model: (B, T, C, H, W) -> logits."""

    def __init__(self, path: str | Path):
        super().__init__()
        _, ort = _need_onnx()
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ModelError(path=self.path, reason=f"not a readable ONNX file ({one_line(e)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise ModelError(path=self.path, reason="has no vidseq contract in its metadata; export it with "
                             "'vidseq export RUN FILE --format onnx'")
        try:
            self.contract = json.loads(meta)
        except ValueError:
            self.contract = None
        if not isinstance(self.contract, dict):
            raise ModelError(path=self.path, reason="has a damaged vidseq contract in its metadata; export it again "
                             "with 'vidseq export RUN FILE --format onnx'")

    def clip_shape(self) -> tuple:
        """(T, C, H, W) of the clips the graph takes: each an int, or a name where the graph leaves it open."""
        return tuple(self.session.get_inputs()[0].shape[1:5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().cpu().numpy()
        batch = self.session.get_inputs()[0].shape[0]
        if isinstance(batch, int) and batch != len(x):  # a fixed batch (of one): one clip a call
            out = np.concatenate([self.session.run(None, {"clips": x[i:i + 1]})[0] for i in range(len(x))])
        else:
            out = self.session.run(None, {"clips": x})[0]
        return torch.from_numpy(out)


def with_onnx(run: Run, path: str | Path) -> Run:
    """`run` with its model replaced by ONNX file `path`, which must have been exported from `run`: a file from
    another run (other classes, another clip shape, other weights or settings) is a `ModelError`. A file from before
    the contract recorded its run is checked as far as it can be (classes, clip shape), with a warning."""
    model = OnnxModel(path)
    exported = model.contract.get("run")
    exported = exported if isinstance(exported, dict) else None
    redo = f"export this run's model with 'vidseq export {run.path} FILE --format onnx'"
    problem = _mismatch(model, run, exported)
    if problem:
        origin = "another run" if exported is None else f"run {exported.get('name')!r}"
        raise ModelError(path=model.path, reason=f"was exported from {origin}, not from {run.path} ({problem}); "
                         f"{redo}")
    if exported is None:
        log.warning("%s: exported by an older vidseq, which did not record the run: it fits %s's classes and clips "
                    "but cannot be checked to be its export; to be sure, %s", model.path, run.path, redo)
    return Run(run.path, run.config, model)


def _mismatch(model: OnnxModel, run: Run, exported: dict | None) -> str | None:
    """What shows that `model` is not an export of `run` (its classes, the clips its graph takes, the run it
    recorded), or None."""
    if model.contract.get("classes") != list(run.classes):
        return "other classes"
    takes, makes = model.clip_shape(), (run.config.clip.frames, 3, run.config.clip.size, run.config.clip.size)
    if any(isinstance(a, int) and a != b for a, b in zip(takes, makes)):
        return f"it takes clips of {_shape(takes)}, the run makes clips of {_shape(makes)}"
    if exported is not None:
        ours = run_identity(run)
        differ = [what for what, key in (("weights", "weights"), ("settings", "config"))
                  if exported.get(key) != ours[key]]
        if differ:
            return f"other {' and '.join(differ)}"
    return None


def _shape(dims: tuple) -> str:
    """``3 frames of 32 px`` for a clip's (T, C, H, W)."""
    t, _, h, w = dims
    return f"{t} frames of {h} px" if h == w else f"{t} frames of {h} x {w} px"
