"""A run of a Hugging Face model (``hf:...``) as a folder `transformers` loads: weights (safetensors), config with
the run's classes as id2label, and the processor config with the run's frames, crop and normalisation."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from vidseq.errors import VidseqError, note_space
from vidseq.files import hidden_sibling
from vidseq.models.hf import HFVideo, save_hf
from vidseq.models.weights import state_bytes
from vidseq.runs import Run, load_run, safetensors_io


def export_hf(run: str | Path | Run, dest: str | Path, *, overwrite: bool = False) -> Path:
    """Write run `run` (trained from an ``hf:`` model) to folder `dest` for `transformers`'
    ``AutoModelForVideoClassification.from_pretrained(dest)``. The folder appears whole or not at all; an existing
    `dest` is replaced only with `overwrite`. A full disk is the OSError it is (`vidseq.errors.storage_fault`'s
    line: `dest`'s folder, the weights' size), with nothing left behind."""
    run = run if isinstance(run, Run) else load_run(run)
    dest = Path(dest)
    if not isinstance(run.model, HFVideo):
        raise VidseqError(path=run.path, reason=f"was trained from model {run.config.model['name']}; only runs of "
                          "Hugging Face models (hf:...) export to the Hugging Face format")
    if dest.exists() and not overwrite:
        raise VidseqError(path=dest, reason="exists; give a new folder, or {overwrite} to replace it",
                          params={"overwrite": True})
    if dest.exists() and not dest.is_dir():
        raise VidseqError(path=dest, reason="is a file, not a folder")
    model = run.config.model
    tmp = hidden_sibling(dest, f"tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        clip = run.config.clip
        with safetensors_io(tmp / "model.safetensors"):  # transformers writes the weights with safetensors
            save_hf(run.model, tmp, classes=run.classes, processor=model["hf_processor"],
                    processor_kind=model.get("processor_kind", "image"), frames=clip.frames, size=clip.size,
                    crop_pct=clip.crop_pct)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise VidseqError(path=dest, reason=f"cannot be written ({e.strerror or e})") from None
        e.filename, e.filename2 = str(dest), None  # a full disk: one line naming dest, not its temporary
        raise note_space(e, needed=state_bytes(run.model), what="the model's weights") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
