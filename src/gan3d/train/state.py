"""Resume state: RNG states and plain (contiguous) weights.
"""

from __future__ import annotations

from typing import Any

import torch


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
