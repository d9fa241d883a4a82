"""Data-parallel training throughput: one process against N processes under
DistributedDataParallel (torchrun), measured in the same run.

All runs are the real command line, `gan3d train --preset P --device D` on the same prepared
built-in shapes (at the preset's resolution) for the same steps; only the launch differs. On the
CPU (gloo, the backend gan3d.train.distributed picks there):

    (a) OMP_NUM_THREADS=N gan3d train ...
    (b) OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=N -m gan3d train ...
    (c) OMP_NUM_THREADS=1 gan3d train ...            (reference: what one of (b)'s processes has)

With ``--device cuda`` (nccl, one GPU per process as cuda:LOCAL_RANK; N GPUs are needed), every
process has one CPU thread:

    (a) gan3d train --device cuda:K ...              (one GPU; K from --device, default 0)
    (b) torchrun --nproc_per_node=N -m gan3d train --device cuda ...

The backend printed is the one the DDP run's log.txt records. Training reads its losses back
(``.item()``) every step, which waits for the GPU, so the windows' wall times are real on CUDA too.

samples/s is read from each run's stats.jsonl (the global batch over the wall time of each
--log-every window, as training reports it); the first window is dropped as warm-up and the median
of the rest is printed, with the ratios (b) / (a) and (on the CPU) (b) / (c). The load average printed first
says whether other work shared the cores: N OpenMP threads on cores that are already busy wait
for each other and can run many times slower than one thread, which makes (a) look bad.

    python benchmarks/bench_ddp.py [--device auto] [--procs 2] [--preset cpu32] [--steps 24] [--log-every 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan3d.data.prepare import prepare
from gan3d.presets import PRESETS

from _device import add_option, chosen, describe


def run_rates(cmd: list[str], threads: int, run: Path) -> list[float]:
    """Run ``cmd`` with ``threads`` OpenMP threads per process; samples/s of each stats window after the first."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return [r["samples_per_s"] for r in rows[1:]]


def backend_of(run: Path) -> str:
    """The process-group backend the run's log.txt names ("data-parallel: N processes (nccl), ...")."""
    m = re.search(r"data-parallel: \d+ processes \((\w+)\)", (run / "log.txt").read_text())
    return m.group(1) if m else "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_option(ap)
    ap.add_argument("--procs", type=int, default=2, help="N: processes of (b); on the CPU also the threads of (a)")
    ap.add_argument("--preset", default="cpu32", choices=list(PRESETS))
    ap.add_argument("--steps", type=int, default=24, help="training steps per run")
    ap.add_argument("--log-every", type=int, default=4, help="steps per timing window")
    args = ap.parse_args()
    prog = Path(__file__).name
    device = chosen(prog, args.device)
    cuda = device.type == "cuda"
    if args.procs < 2:
        print(f"{prog}: error: --procs {args.procs}: data-parallel needs at least 2 processes", file=sys.stderr)
        sys.exit(2)
    if cuda and torch.cuda.device_count() < args.procs:
        n = torch.cuda.device_count()
        print(f"{prog}: error: --procs {args.procs} with --device {args.device}: one GPU per process is needed and this machine has {n}", file=sys.stderr)
        sys.exit(2)
    if args.steps < 2 * args.log_every:
        print(f"{prog}: error: --steps {args.steps}: at least two --log-every windows ({2 * args.log_every} steps) are needed, the first is dropped",
              file=sys.stderr)
        sys.exit(2)

    with tempfile.TemporaryDirectory() as tmp:
        res = PRESETS[args.preset].model.resolution
        data = Path(tmp) / f"builtin{res}.npz"
        prepare("builtin", data, resolution=res, per_class=(40, 8), progress=False)
        train = ["train", "--preset", args.preset, "--data", str(data), "--steps", str(args.steps), "--log-every", str(args.log_every),
                 "--snapshot-every", str(10 * args.steps), "--out", tmp, "--quiet"]
        gan3d = [sys.executable, "-m", "gan3d"]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.procs}", "-m", "gan3d"]
        one_dev, ddp_dev = (str(device), "cuda") if cuda else ("cpu", "cpu")
        load = os.getloadavg()
        t0 = time.perf_counter()
        one = run_rates(gan3d + train + ["--device", one_dev, "--run-name", "one"], 1 if cuda else args.procs, Path(tmp) / "one")
        ddp = run_rates(torchrun + train + ["--device", ddp_dev, "--run-name", "ddp"], 1, Path(tmp) / "ddp")
        backend = backend_of(Path(tmp) / "ddp")
        single = None if cuda else run_rates(gan3d + train + ["--device", "cpu", "--run-name", "single"], 1, Path(tmp) / "single")
        wall = time.perf_counter() - t0

    a, b = statistics.median(one), statistics.median(ddp)
    print(f"torch {torch.__version__}, {describe(device)}, {os.cpu_count()} CPUs, load average before the runs {load[0]:.2f}; "
          f"preset {args.preset}, {args.steps} steps per run, samples/s per {args.log_every}-step window (first dropped)")
    n = args.procs
    if cuda:
        print(f"(a) 1 process, 1 GPU ({one_dev})            median {a:7.2f} samples/s   windows {one}")
        print(f"(b) {n} processes x 1 GPU (DDP, {backend})   median {b:7.2f} samples/s   windows {ddp}")
        print(f"ratio (b) / (a) = {b / a:.2f}   ({wall:.0f} s for the two runs, load average after {os.getloadavg()[0]:.2f})")
        return
    c = statistics.median(single)
    print(f"(a) 1 process x {n} threads           median {a:7.2f} samples/s   windows {one}")
    print(f"(b) {n} processes x 1 thread (DDP, {backend}) median {b:7.2f} samples/s   windows {ddp}")
    print(f"(c) 1 process x 1 thread            median {c:7.2f} samples/s   windows {single}")
    print(f"ratio (b) / (a) = {b / a:.2f}; (b) / (c) = {b / c:.2f}   ({wall:.0f} s for the three runs, load average after {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
