"""What a model keeps for its backward pass: bytes of the tensors autograd saves in one training forward.

    python benchmarks/activation_memory.py timesformer "timesformer[recompute_attention=true]" timesformer_lucidrains

A device-free proxy for the activation part of a GPU's peak training memory (parameters, gradients, optimiser
state and workspace come on top): random clips (bs 8, 5 frames, 128 px by default) through the model under
bf16 autocast on the CPU, every saved tensor's storage counted once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]


def saved_bytes(spec: str, *, bs: int, frames: int, size: int) -> int:
    import torch

    from models import N_CLASSES, model_spec  # this folder's model benchmark
    from vidseq.models import create_model

    name, options = model_spec(spec)
    torch.manual_seed(0)
    model = create_model(name, N_CLASSES, seq_len=frames, image_size=size, **options).train()
    x = torch.randn(bs, frames, 3, size, size)
    storages: dict[int, int] = {}

    def keep(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        model(x).float().sum()
    return sum(storages.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="registry names, or name[key=value;...] with model options")
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args(argv)
    rows = [(m, saved_bytes(m, bs=args.bs, frames=args.frames, size=args.size)) for m in args.models]
    base = rows[-1][1]
    print(f"bs {args.bs}, {args.frames} frames, {args.size} px, bf16 autocast on the CPU\n")
    print(f"| model | saved for backward (MiB) | vs {rows[-1][0]} |\n|---|---:|---:|")
    for name, n in rows:
        print(f"| {name} | {n / 2**20:,.0f} | {n / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
