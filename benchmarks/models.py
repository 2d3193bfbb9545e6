"""Training-step speed and peak memory of every vidseq model, and vidseq's timesformer against lucidrains'
timesformer-pytorch 0.4.1 (the tutorial's model) at the tutorial's configuration, in the same run.

Random clips (5 frames, 128 px, 101 classes), AdamW, cross-entropy; bf16 autocast on a GPU, float32 on CPU.
Each model runs in its own process so that peak memory is its own: on a GPU torch's peak allocated memory,
on CPU the growth of the process's peak resident memory over the training steps. Speed is the batch size over
the fastest step time: with --repeats R every model runs R times and keeps its fastest step (other work on
a shared machine only ever adds time). vidseq's timesformer and lucidrains' are also timed together in one
process, taking their steps in turn, so that both see the same machine: their speed ratio comes from there.

    python benchmarks/models.py                       # GPU: bs 32, eager and torch.compile'd
    python benchmarks/models.py --device cpu          # CPU: bs 8, fewer steps (a few minutes on 2 cores)
    python benchmarks/models.py --models timesformer,timesformer_lucidrains --compile
    python benchmarks/models.py --models "timesformer,timesformer[recompute_mlp=true;time_kernel=sdpa]"
    python benchmarks/models.py --device cpu --native --bs 2 --models r3d_18,mc3_18,r2plus1d_18,s3d,swin3d_t
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_MODELS = ["frame_avg", "cnn_lstm", "tsm", "r2plus1d_18", "timesformer", "timesformer_lucidrains"]
N_CLASSES = 101


def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}"
    if device == "cuda":
        text = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); {text}"
    return text


def model_spec(spec: str) -> tuple[str, dict]:
    """`name` or `name[key=value;key=value]` (a model with options) -> (name, options), values read as
    `vidseq train -o KEY=VALUE` reads them."""
    from vidseq.cli import _model_options

    name, _, rest = spec.partition("[")
    return name.strip(), _model_options([p for p in rest.rstrip("]").split(";") if p])


def split_models(text: str) -> list[str]:
    """Comma-separated model specs; commas inside brackets stay with their model."""
    return [m.strip() for m in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", text) if m.strip()]


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def training_step(spec: str, x, y, *, compiled: bool = False, mode: str | None = None):
    """One training step (forward, cross-entropy, backward, AdamW) of model `spec` on clips `x` with labels `y`:
    bf16 autocast on a GPU, float32 on CPU; each step waits for the device. `compiled` wraps the model in
    `torch.compile` (with `mode`, e.g. "reduce-overhead" for CUDA graphs). Returns (parameters, step)."""
    import torch
    import torch.nn.functional as F

    from vidseq.models import create_model, param_count

    device = x.device
    gpu = device.type == "cuda"
    torch.manual_seed(0)
    base, options = model_spec(spec)
    model = create_model(base, N_CLASSES, seq_len=x.shape[1], image_size=x.shape[-1], **options).to(device)
    step_model = torch.compile(model, mode=mode) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
            loss = F.cross_entropy(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if gpu:
            torch.cuda.synchronize()

    return param_count(model), step


def clip_shape(spec: str, args: argparse.Namespace) -> tuple[int, int]:
    """(frames, size) of the clips model `spec` is timed on: its checkpoint's own with --native (where it has
    one), else --frames and --size."""
    from vidseq.models import model_recipe

    recipe = model_recipe(model_spec(spec)[0])
    if args.native and recipe.frames and recipe.size:
        return recipe.frames, recipe.size
    return args.frames, args.size


def worker(args: argparse.Namespace) -> list[dict]:
    """Time training steps of the models named in `args.worker` (comma-separated) in this process.

    Several models take their timed steps in turn (A, B, A, B, ...), so that other work on the machine slows
    them alike; peak memory is measured only for a single model.
    """
    import torch

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    y = torch.randint(0, N_CLASSES, (args.bs,), device=device)

    names = split_models(args.worker)
    shapes = {n: clip_shape(n, args) for n in names}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = _rss_bytes()
    steps, params, warmup_s, times = {}, {}, {}, {n: [] for n in names}
    for name in names:
        t, size = shapes[name]
        x = torch.randn(args.bs, t, 3, size, size, device=device)
        params[name], steps[name] = training_step(name, x, y, compiled=args.compiled, mode=args.compile_mode)
        t0 = time.perf_counter()
        for _ in range(max(args.warmup, 3) if args.compiled else args.warmup):  # compile, einops' recompile, graphs
            steps[name]()
        warmup_s[name] = time.perf_counter() - t0
    for _ in range(args.steps):
        for name in names:
            t0 = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - t0)
    peak = None
    if len(names) == 1:
        peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base) / 2**20
    return [{"model": n, "compiled": args.compiled, "params": params[n], "bs": args.bs, "clip": list(shapes[n]),
             "step_s": min(times[n]),
             "median_step_s": statistics.median(times[n]), "clips_per_s": args.bs / min(times[n]),
             "peak_mib": peak, "warmup_s": warmup_s[n], "steps": args.steps} for n in names]


def run_worker(names: list[str], compiled: bool, args: argparse.Namespace) -> list[dict]:
    cmd = ([sys.executable, __file__, "--worker", ",".join(names), "--device", args.device, "--bs", str(args.bs),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--frames", str(args.frames),
           "--size", str(args.size), "--threads", str(args.threads), "--compile-mode", args.compile_mode]
           + (["--compiled"] if compiled else []) + (["--native"] if args.native else []))
    label = " / ".join(names) + (" (compiled)" if compiled else "")
    print(f"  {label} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {label}: failed ({tail})", file=sys.stderr)
        return []
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in rows:  # as they come: a run stopped part-way still shows what it measured
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} MiB"
        print(f"  {r['model']}{' (compiled)' if r['compiled'] else ''}: {r['step_s'] * 1000:.1f} ms "
              f"(median {r['median_step_s'] * 1000:.1f}), {r['clips_per_s']:.1f} clips/s, peak {peak}",
              file=sys.stderr, flush=True)
    return rows


def precompile(names: list[str], args: argparse.Namespace) -> None:
    """Compile every model once, all at the same time, each in its own process, before anything is timed:
    this fills torch.compile's on-disk caches (Inductor's FX graph and AOTAutograd caches), so the timed runs
    load the compiled code instead of building it, and the slow compiles (lucidrains' model: minutes) overlap."""
    t0 = time.perf_counter()
    procs = []
    for name in names:
        cmd = ([sys.executable, __file__, "--worker", name, "--device", args.device, "--bs", str(args.bs),
               "--steps", "1", "--warmup", "1", "--frames", str(args.frames), "--size", str(args.size),
               "--threads", str(args.threads), "--compile-mode", args.compile_mode, "--compiled"]
               + (["--native"] if args.native else []))
        procs.append((name, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    for name, proc in procs:
        err = proc.communicate()[1]
        if proc.returncode != 0:
            tail = (err.strip().splitlines() or ["no output"])[-1]
            print(f"  precompile {name}: failed ({tail})", file=sys.stderr)
    print(f"  precompiled {len(names)} models in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def table(results: list[dict]) -> str:
    lines = ["| model | mode | clip (frames x px) | params (M) | step (ms) | clips/s | peak memory (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        t, size = r["clip"]
        lines.append(f"| {r['model']} | {'compiled' if r['compiled'] else 'eager'} | {t} x {size} | "
                     f"{r['params'] / 1e6:.1f} | {r['step_s'] * 1000:.0f} | {r['clips_per_s']:.2f} | "
                     f"{r['peak_mib']:.0f} |")
    return "\n".join(lines)


def duel_table(duels: dict[bool, list[dict]], single: dict[tuple[str, bool], dict]) -> str:
    lines = ["| mode | timesformer step (ms) | lucidrains step (ms) | speed: timesformer / lucidrains | "
             "peak memory: timesformer / lucidrains |", "|---|---|---|---|---|"]
    for compiled, (ours, theirs) in duels.items():
        a, b = single.get((ours["model"], compiled)), single.get((theirs["model"], compiled))
        memory = f"{a['peak_mib'] / b['peak_mib']:.2f}x" if a and b and b["peak_mib"] > 0 else "-"
        lines.append(f"| {'compiled' if compiled else 'eager'} | {ours['median_step_s'] * 1000:.0f} "
                     f"(fastest {ours['step_s'] * 1000:.0f}) | {theirs['median_step_s'] * 1000:.0f} "
                     f"(fastest {theirs['step_s'] * 1000:.0f}) | "
                     f"**{theirs['median_step_s'] / ours['median_step_s']:.2f}x** "
                     f"(fastest: {theirs['step_s'] / ours['step_s']:.2f}x) | **{memory}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when available)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--bs", type=int, default=None, help="clips per batch (default 32 on GPU, 8 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on GPU, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 5 GPU, 1 CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each model, alternating; the "
                        "fastest step counts (default 1 on GPU, 2 on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per process (default 1 on CPU: "
                        "on a shared machine a second thread waits on whichever core another job holds)")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--native", action="store_true", help="each model at its checkpoint's own clip shape "
                        "(torchvision's video networks: 16 x 112 px, 32 x 224 px, ...) instead of --frames/--size")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models (default on GPU)")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--compile-only", action="store_true", help="torch.compile'd only")
    parser.add_argument("--compile-mode", default="default", help="torch.compile's mode: default, "
                        "reduce-overhead (CUDA graphs), max-autotune, max-autotune-no-cudagraphs")
    parser.add_argument("--duel", choices=["both", "eager", "compiled", "none"], default="both",
                        help="in which modes the two TimeSformers also run in one process, in turn")
    parser.add_argument("--no-duel", action="store_true", help="the same as --duel none")
    parser.add_argument("--precompile", action="store_true", help="first compile every model at the same time, "
                        "in parallel processes (fills torch.compile's caches; the timed runs then start fast)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = args.device == "cuda"
    args.bs = args.bs or (32 if gpu else 8)
    args.steps = args.steps or (20 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    args.repeats = args.repeats or (1 if gpu else 2)
    args.threads = args.threads if args.threads is not None else (0 if gpu else 1)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    modes = [False] + ([True] if (args.compile or gpu) and not args.no_compile else [])
    if args.compile_only:
        modes = [True]
    names = split_models(args.models)
    print(f"machine: {machine(args.device)}", file=sys.stderr)
    if args.precompile and True in modes:
        precompile(names, args)
    best: dict[tuple[str, bool], dict] = {}
    for _ in range(args.repeats):  # each model alone in a process: its speed and its own peak memory
        for compiled in modes:
            for name in names:
                for r in run_worker([name], compiled, args):
                    key = (name, compiled)
                    if key not in best or r["step_s"] < best[key]["step_s"]:
                        best[key] = r
    results = [best[(n, c)] for c in modes for n in names if (n, c) in best]
    duels: dict[bool, list[dict]] = {}
    duel_modes = [] if args.no_duel or args.duel == "none" else [m for m in modes if args.duel in
                                                                 ("both", "compiled" if m else "eager")]
    if {"timesformer", "timesformer_lucidrains"} <= set(names):  # in one process, in turn
        duel_args = argparse.Namespace(**{**vars(args), "steps": args.steps * args.repeats * 2})
        for compiled in duel_modes:
            pair = run_worker(["timesformer", "timesformer_lucidrains"], compiled, duel_args)
            if pair:
                duels[compiled] = pair
    given = argv if argv is not None else sys.argv[1:]
    header = (f"`python benchmarks/models.py{''.join(' ' + a for a in given)}`\n\nMachine: {machine(args.device)}. "
              "Training steps of random clips: "
              f"bs {args.bs}, {'each model at its own clip shape' if args.native else ''}"
              f"{'' if args.native else f'{args.frames} frames, {args.size} px'}, {N_CLASSES} classes, AdamW, "
              f"{'bf16 autocast' if gpu else 'float32'}; fastest of {args.repeats} x {args.steps} steps after "
              f"{args.warmup} warm-up (3 when compiled; compile mode {args.compile_mode})"
              f"{'' if gpu else f', {args.threads} CPU thread(s)'}; "
              f"peak memory = {'torch.cuda.max_memory_allocated' if gpu else 'growth of peak RSS over the steps'}.\n")
    print(header)
    print(table(results))
    if duels:
        print(f"\nvidseq's timesformer against lucidrains' timesformer-pytorch 0.4.1 (the tutorial's configuration), "
              f"both in one process taking {args.steps * args.repeats * 2} timed steps in turn; median step times "
              "(fastest in brackets); peak memory from the runs above:\n")
        print(duel_table(duels, best))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args.device), "results": results,
                                         "duels": {str(k): v for k, v in duels.items()}}, indent=1))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
