"""Sampling from a trained generator: one random generator per seed, so shape 17 is the same shape
whatever the batch size or the other seeds asked for. Needs nothing but a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.io.writer import FORMATS, check_formats, write_grids  # noqa: F401  (FORMATS: the one format table)
from gan3d.models.gan import Generator
from gan3d.runtime import fixed_cudnn_algorithms, latents, pick_device
from gan3d.voxels import THRESHOLD


CHUNK = 8
"""Latents per forward pass of G when sampling, whatever the batch size asked for (see :func:`generate`)."""


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, *, batch_size: int = 32, device: torch.device | str = "cpu") -> np.ndarray:
    """G in eval mode over ``z`` (N, z_dim) -> float32 occupancy (N, R, R, R) in [0, 1].

    G always runs on exactly :data:`CHUNK` latents at a time, the last chunk padded with copies of
    its last latent: a batched convolution may sum in a different order for a different batch size
    (a one-voxel difference was seen between batch sizes 1 and 32), so fixing the pass size makes
    row i's arithmetic independent of ``batch_size`` and of the other latents. The result is
    bit-identical for any ``batch_size`` on one device with one thread count (float results can
    differ between devices, torch builds and thread counts); on CUDA, cuDNN is held to
    deterministic algorithms while G runs, so repeated calls agree too. ``batch_size`` (>= 1) only sets how
    many shapes are gathered per copy back from the device (memory); it does not change the output.
    """
    if int(batch_size) < 1:
        raise Gan3dError(f"batch size must be at least 1, got {batch_size}")
    G.eval()
    r = G.cfg.resolution
    if len(z) == 0:
        return np.zeros((0, r, r, r), np.float32)
    group = max(CHUNK, -(-int(batch_size) // CHUNK) * CHUNK)
    out = []
    with fixed_cudnn_algorithms(device):  # on CUDA: the same algorithms on every call
        for i in range(0, len(z), group):
            zg = z[i : i + group].to(device)
            parts = []
            for j in range(0, len(zg), CHUNK):
                c = zg[j : j + CHUNK]
                k = len(c)
                if k < CHUNK:
                    c = torch.cat([c, c[-1:].expand(CHUNK - k, -1)])
                parts.append(G(c)[:k])
            out.append(torch.cat(parts).squeeze(1).float().cpu().numpy())
    return np.concatenate(out)


def postprocess(occupancy: np.ndarray, *, keep_all: bool = False, threshold: float = THRESHOLD) -> np.ndarray:
    """Threshold (N,R,R,R) occupancies and keep each shape's largest 26-connected component (the
    paper's post-processing) unless ``keep_all``. Returns bool (N,R,R,R)."""
    grids = occupancy >= threshold
    if keep_all:
        return grids
    from gan3d.voxels import largest_component_batch

    return largest_component_batch(grids)


def sample_occupancy(
    G: Generator, seeds: Sequence[int], *, z_dist: str = "uniform", batch_size: int = 32, device: torch.device | str = "cpu",
    truncation: float = 1.0,
) -> np.ndarray:
    """G's float32 occupancy (N, R, R, R) for one latent per seed (drawn from ``z_dist`` by a
    generator seeded with that seed alone and pulled towards the prior's mean by ``truncation``,
    :func:`gan3d.runtime.latents`), via :func:`generate`. What ``gan3d sample`` and
    :func:`gan3d.sample` both compute."""
    return generate(G, latents(list(seeds), G.cfg.z_dim, z_dist, truncation), batch_size=batch_size, device=device)


def sample_to_dir(
    checkpoint: str | os.PathLike,
    seeds: Sequence[int],
    out: str | os.PathLike,
    *,
    formats: Sequence[str] = ("npz",),
    mesh_style: str = "smooth",
    keep_all: bool = False,
    threshold: float = THRESHOLD,
    batch_size: int = 32,
    device: str = "auto",
    picture: bool = True,
    truncation: float = 1.0,
) -> dict:
    """Generate one shape per seed and write them to ``out``.

    Writes ``samples.npz`` (``grids`` bool (N,R,R,R), ``occupancy`` float16, ``seeds``) when
    ``npz`` is asked for, ``seed<NNNN>.<fmt>`` for every other format, and ``grid.png`` (all
    samples, labelled by seed). Returns a summary dict.
    """
    check_formats(formats)
    if not seeds:
        raise Gan3dError("no seeds given")
    dev = pick_device(device)
    G, data = ckpt.load_generator(ckpt.resolve(checkpoint), device=dev)
    occ = sample_occupancy(G, seeds, z_dist=ckpt.z_prior(data), batch_size=batch_size, device=dev, truncation=truncation)
    grids = postprocess(occ, keep_all=keep_all, threshold=threshold)
    out = Path(out)
    written = write_grids(
        grids, out, stems=[f"seed{s:04d}" for s in seeds], formats=formats, occupancy=occ,
        mesh_style=mesh_style, seeds=seeds, npz_file="samples.npz",
    )
    if picture:
        from gan3d.render.raster import render_grid_png

        render_grid_png(grids.astype(np.float32), out / "grid.png", labels=[str(s) for s in seeds])
        written.append("grid.png")
    empty = [int(s) for s, g in zip(seeds, grids) if not g.any()]
    return {
        "out": str(out),
        "n": len(seeds),
        "resolution": int(G.cfg.resolution),
        "step": int(data.get("step", -1)),
        "truncation": float(truncation),
        "mean_occupancy": float(grids.mean()),
        "empty_seeds": empty,
        "files": written,
    }
