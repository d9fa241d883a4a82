"""Resume state: opening a run's training checkpoint, RNG states, and plain (contiguous) weights.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError


def open_resume(resume: str | os.PathLike, cfg: Any, *, kind: str, config_key: str, what: str) -> tuple[dict, Path, Any]:
    """Load the training checkpoint of a run folder (or the file itself), check its ``kind``, and
    return it with its path and the run's saved config; ``cfg.steps`` may extend the run."""
    ckpt_path = ckpt.resolve(resume, prefer="checkpoint.pt")
    state = ckpt.load(ckpt_path)
    if state.get("kind") != kind:
        raise Gan3dError(what, ckpt_path)
    saved = type(cfg).from_dict(state[config_key])
    return state, ckpt_path, dataclasses.replace(saved, steps=max(cfg.steps, saved.steps))


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
