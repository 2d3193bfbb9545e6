"""Where a model's training step spends its time: torch.profiler over a few steps of random clips.

    python benchmarks/profile_step.py timesformer                 # GPU: bs 32, 5 frames, 128 px, bf16
    python benchmarks/profile_step.py timesformer_lucidrains --rows 15
    python benchmarks/profile_step.py "timesformer[time_kernel=sdpa]"
    python benchmarks/profile_step.py tsm --device cpu --bs 4

Prints the operators with the most device time (CPU time on CPU), the step time and the peak memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from models import N_CLASSES, training_step  # this folder's model benchmark: the step it times

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a registry name, or name[key=value;...] with model options")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                    help="profile the torch.compile'd step (mode: default, reduce-overhead, ...)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    x = torch.randn(args.bs, args.frames, 3, args.size, args.size, device=device)
    y = torch.randint(0, N_CLASSES, (args.bs,), device=device)
    _, step = training_step(args.model, x, y, compiled=args.compile is not None, mode=args.compile)
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    step_ms = (time.perf_counter() - t0) / args.steps * 1000
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
    key = "self_cuda_time_total" if gpu else "self_cpu_time_total"
    events = prof.key_averages()
    busy_ms = sum(e.self_device_time_total for e in events if not e.is_user_annotation and "#" not in e.key
                  ) / 1000 / args.steps if gpu else 0.0
    label = args.model + (f" compiled ({args.compile})" if args.compile else "")
    print(f"{label}: bs {args.bs}, {args.frames} frames, {args.size} px on {device}: {step_ms:.1f} ms a step"
          + (f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if gpu else "")
          + f"; {args.steps} profiled steps"
          + (f"; the GPU is busy {busy_ms:.1f} ms a step (the rest is waiting for launches)" if gpu else ""))
    print(events.table(sort_by=key, row_limit=args.rows, max_name_column_width=90))
    if gpu:
        print(kinds_table(prof, args.steps))
    return 0


KINDS = (("attention", ("flash", "fmha", "attention", "sdpa", "cudnn")),  # before products: cuDNN's say sm90
         ("matrix products", ("gemm", "cutlass", "nvjet", "sm90_", "sm80_", "cublas")),
         ("optimizer", ("multi_tensor", "foreach", "adam")),
         ("fused by Inductor (triton)", ("triton",)),
         ("copies and casts", ("copy", "memcpy", "memset", "cast")),
         ("elementwise and reductions (eager)", ("elementwise", "reduce", "vectorized", "softmax", "norm",
                                                 "dropout", "gelu")))


def kinds_table(prof, steps: int) -> str:
    """GPU kernel time a step by kind of kernel (from the kernels' names)."""
    totals: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type.name != "CUDA" or e.device_time_total <= 0 or e.is_user_annotation or "#" in e.name:
            continue  # ranges such as the optimizer's "Optimizer.step#AdamW.step" span kernels, they are not ones
        name = e.name.lower()
        kind = next((k for k, words in KINDS if any(w in name for w in words)), "other")
        t = totals.setdefault(kind, [0.0, 0])
        t[0] += e.device_time_total / 1000 / steps
        t[1] += 1 / steps
    lines = ["| kernels | ms a step | launches a step |", "|---|---:|---:|"]
    for kind, (ms, n) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {kind} | {ms:.2f} | {n:.0f} |")
    lines.append(f"| all | {sum(t[0] for t in totals.values()):.2f} | {sum(t[1] for t in totals.values()):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
