"""The ``--device`` option every benchmark takes: parsing (through gan3d.runtime), a one-line error
with exit code 2 for a bad or missing device, a description for the output, and the CUDA
synchronisation that timed regions need (CUDA kernels run asynchronously: without a synchronize the
clock stops when the work is queued, not when it is done).
"""

from __future__ import annotations

import argparse
import sys

import torch

from gan3d.errors import Gan3dError
from gan3d.runtime import pick_device

HELP = "auto (CUDA if present, else CPU), cpu, cuda or cuda:N"


def add_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--device", default="auto", help=HELP + " (default: auto)")


def chosen(prog: str, name: str) -> torch.device:
    """The device ``name`` names, checked to exist here; on any problem one line on stderr and exit 2."""
    try:
        dev = pick_device(name)
        if dev.type not in ("cpu", "cuda"):
            raise Gan3dError(f"--device {name}: the benchmarks run on cpu or cuda only")
        if dev.type == "cuda":
            count = torch.cuda.device_count()
            index = torch.cuda.current_device() if dev.index is None else dev.index
            if index >= count:
                raise Gan3dError(f"--device {name}: this machine has {count} GPU{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
            dev = torch.device("cuda", index)
    except Gan3dError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    return dev


def describe(dev: torch.device) -> str:
    """``cpu`` or ``cuda:0 (GPU name)``, and whether TF32 is allowed for convolutions and matmuls (it changes fp32 speed)."""
    if dev.type != "cuda":
        return "device cpu"
    tf32 = f"TF32 cudnn {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}"
    return f"device {dev} ({torch.cuda.get_device_name(dev)}; {tf32})"


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU); call it on both sides of a timed region."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
