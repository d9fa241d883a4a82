"""Resume state: RNG states and plain (contiguous) weights.
"""

from __future__ import annotations

from typing import Any

import errno
from pathlib import Path

import torch

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _plain_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with contiguous tensors, so checkpoints do not depend on the memory format."""
    return {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def save_checkpoint(path: Path, payload: dict) -> None:
    """:func:`gan3d.checkpoint.save`, with a failed write (full disk, read-only folder) turned into one
    Gan3dError; the file at ``path`` is then the one from before (the write goes to a temporary file)."""
    try:
        ckpt.save(path, payload)
    except Gan3dError as e:  # gan3d.fileio already named the path and the reason
        raise Gan3dError(f"{e}; the previous one is kept") from None
    except OSError as e:
        why = "no space left on the device (disk full)" if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else (e.strerror or str(e))
        raise Gan3dError(f"could not write {path.name}: {why}; the previous one is kept", path) from None
    except RuntimeError as e:  # torch's own writer reports a full disk as e.g. "basic_ios::clear"
        raise Gan3dError(f"could not write {path.name} ({str(e).splitlines()[0][:100]}; is the disk full?); the previous one is kept", path) from None
