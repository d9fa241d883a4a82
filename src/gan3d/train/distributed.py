"""Multi-process data-parallel training under ``torchrun``: the process group, the device, and a few
collective helpers. Single-process runs never touch any of this.

``torchrun --nproc_per_node=N -m gan3d train ...`` starts N processes and gives each the environment
variables ``RANK`` (0..N-1 over all machines), ``LOCAL_RANK`` (0..n-1 on this machine),
``WORLD_SIZE`` (N) and the rendezvous address. :func:`init` reads them, starts the default process
group (``nccl`` for CUDA, one GPU per process as ``cuda:LOCAL_RANK``; ``gloo`` for the CPU) and
returns this process's device. Without ``torchrun``, or with ``WORLD_SIZE=1``, :func:`launched`
is false and the training loop takes its single-process path unchanged.

Every helper works before :func:`init` and after :func:`cleanup` too: it then describes the process
as ``torchrun`` launched it (the environment), or a single process when there is no such environment.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from gan3d.errors import Gan3dError


def env_world() -> int:
    """``WORLD_SIZE`` as ``torchrun`` set it (1 without ``torchrun``)."""
    return _env_int("WORLD_SIZE", 1)


def env_rank() -> int:
    """``RANK`` as ``torchrun`` set it (0 without ``torchrun``)."""
    return _env_int("RANK", 0)


def env_local_rank() -> int:
    """``LOCAL_RANK`` as ``torchrun`` set it: the process's index on its machine (0 without ``torchrun``)."""
    return _env_int("LOCAL_RANK", 0)


def launched() -> bool:
    """True when this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    return env_world() > 1


def initialized() -> bool:
    """True when the default process group is up."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: from the process group when it is up, else from the environment."""
    return dist.get_rank() if initialized() else env_rank()


def world() -> int:
    """Number of processes: from the process group when it is up, else from the environment."""
    return dist.get_world_size() if initialized() else env_world()


def is_main() -> bool:
    """True on rank 0, the one process that writes files, logs and shows progress."""
    return rank() == 0


def init(device: str = "auto") -> torch.device:
    """Start the default process group from ``torchrun``'s environment (unless it is already up) and
    return this process's device.

    ``device``: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``. On CUDA every process
    uses ``cuda:LOCAL_RANK`` and the ``nccl`` backend; on the CPU the ``gloo`` backend. A numbered
    device (``cuda:1``) is refused: with several processes each one picks its own.
    """
    if not dist.is_available():
        raise Gan3dError("torch.distributed is not available in this PyTorch build; run without torchrun")
    name = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    dev = torch.device(name)
    if dev.index is not None:
        raise Gan3dError(f"--device {device}: under torchrun each process uses cuda:LOCAL_RANK; use --device cuda or auto")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise Gan3dError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
        if env_local_rank() >= torch.cuda.device_count():
            raise Gan3dError(
                f"LOCAL_RANK {env_local_rank()} has no GPU: this machine has {torch.cuda.device_count()}; "
                "start at most that many processes per node"
            )
        dev = torch.device("cuda", env_local_rank())
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise Gan3dError(f"--device {device}: multi-process training runs on cpu or cuda only")
    if not initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return dev


def cleanup() -> None:
    """Shut the default process group down (no-op when it is not up)."""
    if initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (no-op for a single process)."""
    if initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of the small tensor ``x`` (any shape, on any device) over all processes;
    returned as a float64 CPU tensor, the same on every process. ``x`` itself for a single process."""
    x = x.detach().to(torch.float64)
    if not initialized() or dist.get_world_size() == 1:
        return x.cpu()
    buf = x.to(_collective_device()).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.cpu()


def all_mean(x: torch.Tensor) -> torch.Tensor:
    """Elementwise mean of the small tensor ``x`` over all processes (float64, CPU); for statistics."""
    return all_sum(x) / world()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable value) on every process; ``obj`` for a single process."""
    if not initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def _collective_device() -> torch.device:
    """Where collective buffers must live: the current GPU for nccl, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise Gan3dError(f"environment variable {name}={text!r} is not an integer (it is set by torchrun)") from None


def data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` wrapped for data-parallel training: backward averages its gradients over the ranks.
    BatchNorm running statistics are not synchronised in the forward pass; each rank keeps its own
    and rank 0's are saved. The module must already be on this process's device."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)


def plain(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (``module`` itself when not wrapped)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module
