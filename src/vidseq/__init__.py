"""vidseq: action recognition in video as sequences of images, on fastai and PyTorch.

The tutorial's names are importable from here (loaded on first use, so `import vidseq` stays light)::

    from vidseq import get_action_dataloaders, ImageTuple, SimpleModel, RNNModel, create_model, list_models
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "get_action_dataloaders": "vidseq.clips",
    "ImageTuple": "vidseq.clips",
    "ClipBlock": "vidseq.clips",
    "ClipTfm": "vidseq.clips",
    "create_model": "vidseq.models",
    "list_models": "vidseq.models",
    "SimpleModel": "vidseq.models",
    "RNNModel": "vidseq.models",
    "load_items": "vidseq.datasets",
    "probe": "vidseq.io",
    "read_frames": "vidseq.io",
    "extract_dataset": "vidseq.extract",
    "train": "vidseq.train",
    "TrainConfig": "vidseq.train",
    "evaluate_run": "vidseq.evaluate",
    "predict_files": "vidseq.predict",
    "load_run": "vidseq.runs",
    "VidseqError": "vidseq.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidseq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
