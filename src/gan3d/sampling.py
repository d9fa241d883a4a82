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
from gan3d.runtime import latents, pick_device
from gan3d.voxels import THRESHOLD


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, *, batch_size: int = 32, device: torch.device | str = "cpu") -> np.ndarray:
    """G in eval mode over ``z`` (N, z_dim) in batches -> float32 occupancy (N, R, R, R) in [0, 1]."""
    G.eval()
    out = []
    for i in range(0, len(z), batch_size):
        out.append(G(z[i : i + batch_size].to(device)).squeeze(1).float().cpu().numpy())
    r = G.cfg.resolution
    return np.concatenate(out) if out else np.zeros((0, r, r, r), np.float32)


def postprocess(occupancy: np.ndarray, *, keep_all: bool = False, threshold: float = THRESHOLD) -> np.ndarray:
    """Threshold (N,R,R,R) occupancies and keep each shape's largest 26-connected component (the
    paper's post-processing) unless ``keep_all``. Returns bool (N,R,R,R)."""
    grids = occupancy >= threshold
    if keep_all:
        return grids
    from gan3d.voxels import largest_component_batch

    return largest_component_batch(grids)


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
    G, data = ckpt.load_generator(checkpoint, device=dev)
    z_dist = data.get("train_config", {}).get("z_dist", "uniform")
    occ = generate(G, latents(seeds, G.cfg.z_dim, z_dist), batch_size=batch_size, device=dev)
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
        "mean_occupancy": float(grids.mean()),
        "empty_seeds": empty,
        "files": written,
    }
