"""onnxruntime against PyTorch eager: inference clips/s of each model on the CPU, the same clips, in one run.

Each model is built with random weights at the given clip shape, exported with `vidseq.export.onnx.export_model`
(PyTorch's dynamo exporter, dynamic batch), and timed on batches of `--bs` clips: the fastest of `--repeat` calls
after one warm-up, PyTorch under `torch.no_grad` with `--threads` threads, onnxruntime with as many intra-op threads.

    .venv/bin/python benchmarks/onnx_speed.py [--bs 4] [--threads 2] [--repeat 5]

(Not named onnx.py: a script of that name would stand in for the onnx package on its own path.)
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
import warnings
from pathlib import Path

import torch

MODELS = {  # name: (options, frames, size)
    "frame_avg": ({"backbone": "resnet18"}, 8, 112),
    "cnn_lstm": ({"backbone": "resnet18"}, 8, 112),
    "tsm": ({"backbone": "resnet18"}, 8, 112),
    "timesformer": ({}, 5, 128),
    "r2plus1d_18": ({}, 16, 112),
    "swin3d_t": ({}, 16, 112),
}


def fastest(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import onnxruntime as ort

    from vidseq.export.onnx import export_model
    from vidseq.models import create_model

    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    print(f"bs {args.bs}, {args.threads} threads, fastest of {args.repeat}; onnxruntime {ort.__version__}, "
          f"torch {torch.__version__}")
    print("| model | clip | PyTorch eager clips/s | onnxruntime clips/s | onnxruntime / PyTorch |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            options, frames, size = MODELS[name]
            torch.manual_seed(0)
            model = create_model(name, 101, seq_len=frames, image_size=size, **options).eval()
            path = Path(tmp) / f"{name}.onnx"
            dynamic = export_model(model, path, frames=frames, size=size, name=name)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            x = torch.randn(args.bs, frames, 3, size, size)
            with torch.no_grad():
                t_torch = fastest(functools.partial(model, x), args.repeat)
            feeds = [{"clips": x.numpy()}] if dynamic else [{"clips": x[i:i + 1].numpy()} for i in range(args.bs)]
            t_ort = fastest(lambda s=session, feeds=feeds: [s.run(None, f) for f in feeds], args.repeat)
            note = "" if dynamic else " (one clip a call)"
            print(f"| {name} | {frames} x {size} px | {args.bs / t_torch:.1f} | {args.bs / t_ort:.1f}{note} | "
                  f"{t_torch / t_ort:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
