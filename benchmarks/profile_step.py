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
    busy_ms = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1000 / args.steps if gpu else 0.0
    label = args.model + (f" compiled ({args.compile})" if args.compile else "")
    print(f"{label}: bs {args.bs}, {args.frames} frames, {args.size} px on {device}: {step_ms:.1f} ms a step"
          + (f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if gpu else "")
          + f"; {args.steps} profiled steps"
          + (f"; the GPU is busy {busy_ms:.1f} ms a step (the rest is waiting for launches)" if gpu else ""))
    print(events.table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
