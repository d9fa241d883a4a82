"""Data-parallel training throughput: one process with N threads against N processes of 1 thread
under DistributedDataParallel (torchrun, gloo on the CPU), measured in the same run.

Both runs are the real command line, `gan3d train --preset P` on the same prepared built-in shapes
for the same steps; only the launch differs:

    (a) OMP_NUM_THREADS=N gan3d train ...
    (b) OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=N -m gan3d train ...
    (c) OMP_NUM_THREADS=1 gan3d train ...            (reference: what one of (b)'s processes has)

samples/s is read from each run's stats.jsonl (the global batch over the wall time of each
--log-every window, as training reports it); the first window is dropped as warm-up and the median
of the rest is printed, with the ratios (b) / (a) and (b) / (c). The load average printed first
says whether other work shared the cores: N OpenMP threads on cores that are already busy wait
for each other and can run many times slower than one thread, which makes (a) look bad.

    python benchmarks/bench_ddp.py [--procs 2] [--preset cpu32] [--steps 24] [--log-every 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan3d.data.prepare import prepare


def run_rates(cmd: list[str], threads: int, run: Path) -> list[float]:
    """Run ``cmd`` with ``threads`` OpenMP threads per process; samples/s of each stats window after the first."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return [r["samples_per_s"] for r in rows[1:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=2, help="N: threads of (a), processes of (b)")
    ap.add_argument("--preset", default="cpu32")
    ap.add_argument("--steps", type=int, default=24, help="training steps per run")
    ap.add_argument("--log-every", type=int, default=4, help="steps per timing window")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "builtin32.npz"
        prepare("builtin", data, resolution=32, per_class=(40, 8), progress=False)
        train = ["train", "--preset", args.preset, "--data", str(data), "--steps", str(args.steps), "--log-every", str(args.log_every),
                 "--snapshot-every", str(10 * args.steps), "--out", tmp, "--quiet"]
        gan3d = [sys.executable, "-m", "gan3d"]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.procs}", "-m", "gan3d"]
        load = os.getloadavg()
        t0 = time.perf_counter()
        one = run_rates(gan3d + train + ["--run-name", "one"], args.procs, Path(tmp) / "one")
        ddp = run_rates(torchrun + train + ["--run-name", "ddp"], 1, Path(tmp) / "ddp")
        single = run_rates(gan3d + train + ["--run-name", "single"], 1, Path(tmp) / "single")
        wall = time.perf_counter() - t0

    a, b, c = statistics.median(one), statistics.median(ddp), statistics.median(single)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average before the runs {load[0]:.2f}; "
          f"preset {args.preset}, {args.steps} steps per run, samples/s per {args.log_every}-step window (first dropped)")
    print(f"(a) 1 process x {args.procs} threads           median {a:7.2f} samples/s   windows {one}")
    print(f"(b) {args.procs} processes x 1 thread (DDP, gloo) median {b:7.2f} samples/s   windows {ddp}")
    print(f"(c) 1 process x 1 thread            median {c:7.2f} samples/s   windows {single}")
    print(f"ratio (b) / (a) = {b / a:.2f}; (b) / (c) = {b / c:.2f}   ({wall:.0f} s for the three runs, load average after {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
