"""Training throughput of each preset against this machine's fp32 matmul rate, measured in one run.

Prints, per preset: samples/s of a full training step (D phase + G phase, the code `gan3d train`
runs), the achieved GFLOP/s (convolution multiply-adds counted from the architecture), and the
ratio of that to the fp32 matmul GFLOP/s measured just before, with the same thread count.

    python benchmarks/bench_train.py [--device auto] [--threads 2] [--presets tiny cpu32 gpu64 paper64] [--seconds 20] [--steps 3]

On CUDA both the matmul baseline and the training steps run on the GPU, with
torch.cuda.synchronize() on both sides of every timed region; the header line names the device and
whether TF32 is allowed (cuDNN allows it for convolutions by default, matmuls not, which can put
the ratio above 1). Each preset is timed for --seconds and at least --steps steps after one warm-up
step, so ``--seconds 0 --steps 2`` is a quick look at the 64^3 presets on a CPU.

FLOPs per sample: G forward F_G, D forward F_D. One step runs G forward, D on real and fake
(forward + weight and input gradients, about 3 F_D each, less the unneeded input gradient of the
first layer, ignored), and the G phase's D forward + backward (3 F_D) and G backward (2 F_G):
3 F_G + 9 F_D. Both with and without channels_last_3d are timed; the ratio to matmul uses the faster.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from gan3d.models.gan import build, conv_flops
from gan3d.presets import PRESETS
from gan3d.runtime import draw_latents, step_generator
from gan3d.train.gan import gan_step

from _device import add_option, chosen, describe, sync


def matmul_gflops(device: torch.device, seconds: float = 3.0, n: int = 2048) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    sync(device)  # the clock stops when the last product is done, not queued
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def train_rate(preset: str, batch: int, channels_last: bool, seconds: float, device: torch.device, min_steps: int = 3) -> float:
    p = PRESETS[preset]
    torch.manual_seed(0)
    g, d = build(p.model)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    g.to(device, memory_format=fmt), d.to(device, memory_format=fmt)
    og = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999))
    r = p.model.resolution
    real = (torch.rand(batch, 1, r, r, r) > 0.95).float().to(device).contiguous(memory_format=fmt)
    step = 0

    rec = p.recipe
    sigma = float(rec.get("instance_noise", 0.0))

    def one():
        nonlocal step
        z = draw_latents(batch, p.model.z_dim, rec.get("z_dist", "uniform"), step_generator(0, step, 1)).to(device)
        noise = None
        if sigma > 0:  # drawn as training draws it, from the step's CPU generator, then moved
            gen = step_generator(0, step, 2)
            noise = tuple((sigma * torch.randn(real.shape, generator=gen)).to(device).contiguous(memory_format=fmt) for _ in range(2))
        gan_step(g, d, og, od, real, z, loss=rec.get("loss", "bce"), d_gate=1.0, noise=noise, mode_seeking=float(rec.get("mode_seeking", 0.0)))
        step += 1

    one()  # warm-up
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < min_steps:
        sync(device)
        t0 = time.perf_counter()
        one()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return batch / times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_option(ap)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu32", "gpu64", "paper64"], choices=list(PRESETS))
    ap.add_argument("--seconds", type=float, default=15.0, help="timing budget per preset and layout")
    ap.add_argument("--steps", type=int, default=3, help="timed steps at least, per preset and layout, whatever --seconds says")
    ap.add_argument("--paper-batch", type=int, default=0,
                    help="batch for paper64 (default: 8 on the CPU, where its recipe's 100 takes minutes per step; the recipe's on CUDA)")
    args = ap.parse_args()
    prog = Path(__file__).name
    device = chosen(prog, args.device)
    if args.steps < 1:
        print(f"{prog}: error: --steps {args.steps}: at least 1 timed step is needed", file=sys.stderr)
        raise SystemExit(2)
    torch.set_num_threads(args.threads)
    peak = matmul_gflops(device)
    print(f"torch {torch.__version__}, {describe(device)}, {args.threads} CPU threads; fp32 matmul 2048^2: {peak:.1f} GFLOP/s")
    print(f"{'preset':8s} {'batch':>5s} {'layout':>13s} {'samples/s':>10s} {'GFLOP/s':>8s} {'vs matmul':>9s}")
    for name in args.presets:
        p = PRESETS[name]
        batch = int(p.recipe.get("batch_size", 32))
        if name == "paper64":
            batch = args.paper_batch or (batch if device.type == "cuda" else 8)
        f = conv_flops(p.model)
        per_sample = 3 * f["G"] + 9 * f["D"]
        best = 0.0
        for cl in (False, True):
            rate = train_rate(name, batch, cl, args.seconds, device, args.steps)
            gf = rate * per_sample / 1e9
            best = max(best, gf)
            print(f"{name:8s} {batch:5d} {'channels_last' if cl else 'contiguous':>13s} {rate:10.2f} {gf:8.1f} {gf / peak:9.2f}")
        print(f"{name:8s} best achieved / matmul peak = {best / peak:.2f}")


if __name__ == "__main__":
    main()
