"""Run-time basics every layer shares: the device, seeding and determinism, per-step random
generators, latent draws and seed lists.

Every random draw of training step ``s`` comes from :func:`step_generator` seeded by ``(seed, s,
stream)``; sampling draws one latent per seed (:func:`latents`), so sample 17 is the same shape at
any batch size.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch

from gan3d.errors import Gan3dError


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present and ``name`` is auto, else CPU; an explicit name is checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = device_problem(name)
    if problem:
        raise Gan3dError(f"--device {name}: {problem}")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Gan3dError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return dev


def device_problem(name: str) -> str | None:
    """Why ``name`` is not a device name (auto, cpu, cuda, cuda:N, mps, ...), or None if it is one.
    Only the spelling is checked, not whether this machine has the device."""
    if name == "auto":
        return None
    try:
        torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        return "not a device name (use auto, cpu, cuda or cuda:N)"
    return None


def set_determinism(deterministic: bool) -> None:
    """The one place that sets determinism flags."""
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextmanager
def fixed_cudnn_algorithms(device: torch.device | str) -> Iterator[None]:
    """Within the block, cuDNN uses deterministic convolution algorithms and no benchmark mode when
    ``device`` is a CUDA device (nothing changes on the CPU); the previous flags come back after it.

    In benchmark mode (which :func:`set_determinism` turns on for runs without ``--deterministic``)
    cuDNN may time and pick a different algorithm on another call, and some of its algorithms add
    in a varying order, so the same latent could give a different grid on the next call."""
    cudnn = torch.backends.cudnn
    if torch.device(device).type != "cuda":
        yield
        return
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A CPU torch generator for one step's draws, independent of every other step and stream."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0]))


def draw_latents(n: int, z_dim: int, dist: str, generator: torch.Generator) -> torch.Tensor:
    """(n, z_dim) float32 latents on the CPU: U[0,1] (the paper) or N(0, 1)."""
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=generator)
    return torch.randn(n, z_dim, generator=generator)


MAX_SEED = 2**31 - 1  # seeds are in [0, MAX_SEED]
MAX_SEEDS = 100_000  # seeds per call, counted before a range is expanded


def parse_seeds(text: str) -> list[int]:
    """``"0-3,10,12-13"`` -> ``[0, 1, 2, 3, 10, 12, 13]``; order kept, duplicates dropped.

    Every seed is in [0, MAX_SEED] and a list holds at most MAX_SEEDS seeds; both are checked
    before any range is expanded, so ``0-5000000`` is refused at once."""
    seeds: list[int] = []
    total = 0
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad seed list {text!r}: use forms like 0-63 or 1,5,9-12")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad seed range {part!r}: the end is before the start")
        if hi > MAX_SEED:
            raise ValueError(f"bad seed {hi}: seeds must be in 0..{MAX_SEED} (2**31 - 1)")
        total += hi - lo + 1
        if total > MAX_SEEDS:
            raise ValueError(f"too many seeds in {text!r}: at most {MAX_SEEDS:,} per call")
        seeds.extend(range(lo, hi + 1))
    return list(dict.fromkeys(seeds))


def format_seeds(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``, consecutive runs in the given order: the inverse of
    :func:`parse_seeds` for duplicate-free lists."""
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


PRIOR_MEAN = {"uniform": 0.5, "normal": 0.0}
"""The mean of each latent prior, the point that truncation pulls latents towards."""


def latents(seeds: Sequence[int], z_dim: int, dist: str = "uniform", truncation: float = 1.0) -> torch.Tensor:
    """(len(seeds), z_dim) float32 on the CPU; row i depends only on seeds[i].

    ``truncation`` psi in (0, 1] (the truncation trick of BigGAN and StyleGAN, applied to z): each
    latent is pulled towards the prior's mean, ``mean + psi * (z - mean)``; 1 (default) leaves the
    prior as trained. Lower psi trades variety for typical, cleaner shapes; seed s stays the same
    direction from the mean at every psi."""
    psi = float(truncation)
    if not 0.0 < psi <= 1.0:
        raise ValueError(f"truncation must be in (0, 1], got {truncation}")
    if len(seeds) == 0:
        return torch.empty(0, z_dim)
    z = torch.cat([draw_latents(1, z_dim, dist, torch.Generator().manual_seed(int(s))) for s in seeds])
    if psi == 1.0:
        return z
    mean = PRIOR_MEAN[dist]
    return mean + psi * (z - mean)
