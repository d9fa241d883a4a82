"""What each latent dimension controls (the paper's Fig. 5).

For a base latent and a dimension d, the dimension is swept over ``values`` evenly spaced points of
the prior's range (:data:`gan3d.explore.common.PRIOR_RANGE`: [0, 1] for a uniform prior, [-2, 2]
for a normal one) with the other coordinates fixed. A voxel is *changed* when its thresholded value
(G(z) >= 0.5, no component filtering) is not the same at the base latent and at every point of the
sweep. Dimensions are ranked by the changed-voxel count averaged over the base latents.

All ``z_dim * values`` latents of a base go through G in batches; that is ``bases * z_dim * values``
forward passes in all (8,000 for a cpu32 model with the defaults).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import torch

from gan3d.errors import Gan3dError
from gan3d.explore.common import PRIOR_RANGE, colored, fast, load_model, out_dir, save_json, save_npz
from gan3d.voxels import THRESHOLD


@torch.no_grad()
def dimension_changes(
    G, bases: np.ndarray, values: np.ndarray, dims: Sequence[int], *, batch_size: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Changed voxels per (base, dimension).

    ``bases`` float (B, z), ``values`` float (V,), ``dims`` the dimensions to sweep (n of them).
    Returns ``counts`` int64 (B, n), ``base_shape`` bool (R, R, R) of the first base, and
    ``changed`` bool (n, R, R, R) for the first base.
    """
    F = fast(G)
    r = int(G.cfg.resolution)
    dims = list(dims)
    values = np.asarray(values, np.float32)
    nv = len(values)
    per = max(1, batch_size // nv)  # dimensions per forward batch
    counts = np.zeros((len(bases), len(dims)), np.int64)
    changed0 = np.zeros((len(dims), r, r, r), bool)
    base0 = None
    for b, base in enumerate(np.asarray(bases, np.float32)):
        ref = (F(torch.from_numpy(base)[None]).reshape(-1) >= THRESHOLD).numpy()
        if b == 0:
            base0 = ref.reshape(r, r, r)
        for s in range(0, len(dims), per):
            chunk = dims[s : s + per]
            z = np.repeat(base[None], len(chunk) * nv, axis=0).reshape(len(chunk), nv, -1)
            z[np.arange(len(chunk)), :, chunk] = values[None, :]
            occ = F(torch.from_numpy(z.reshape(len(chunk) * nv, -1))).reshape(len(chunk), nv, -1) >= THRESHOLD
            ch = (occ.numpy() != ref[None, None, :]).any(axis=1)  # (chunk, R^3)
            counts[b, s : s + len(chunk)] = ch.sum(axis=1)
            if b == 0:
                changed0[s : s + len(chunk)] = ch.reshape(len(chunk), r, r, r)
    return counts, base0, changed0


def dimensions_to_dir(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    bases: int = 8,
    values: int = 5,
    top: int = 8,
    dims: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 100,
    size: int = 128,
) -> dict:
    """Sweep every dimension (or ``dims``) from base latents of seeds ``seed .. seed + bases - 1``.

    Writes ``dimensions.json`` (each swept dimension with its mean and max changed-voxel count,
    ranked), ``dimensions.npz`` (``base`` bool (R,R,R) of the first base, ``top`` int (k,), ``changed``
    bool (k,R,R,R) for the first base) and ``dimensions.png`` (the first base, then per top dimension
    the base shape with its changed voxels in red). Returns the JSON dict."""
    from gan3d.render.raster import render_voxels, save_png, tile
    from gan3d.runtime import latents

    for name, v, lo in (("--bases", bases, 1), ("--values", values, 2), ("--top", top, 1), ("--batch-size", batch_size, 1)):
        if int(v) < lo:
            raise Gan3dError(f"{name} must be at least {lo}, got {v}")
    G, dist, ck = load_model(checkpoint)
    z_dim = int(G.cfg.z_dim)
    dims = list(range(z_dim)) if dims is None else [int(d) for d in dims]
    bad = [d for d in dims if not 0 <= d < z_dim]
    if bad:
        raise Gan3dError(f"latent dimension {bad[0]} is out of range 0..{z_dim - 1}")
    if not dims:
        raise Gan3dError("no latent dimensions to sweep")
    if top > len(dims):
        raise Gan3dError(f"--top {top} is more than the {len(dims)} swept dimensions")
    lo, hi = PRIOR_RANGE[dist]
    grid = np.linspace(lo, hi, int(values))
    z = latents(range(seed, seed + int(bases)), z_dim, dist).numpy()
    t0 = time.perf_counter()
    counts, base, changed = dimension_changes(G, z, grid, dims, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    mean = counts.mean(axis=0)
    order = np.lexsort((np.asarray(dims), -mean))  # by mean count, descending; ties by dimension
    k = order[: int(top)]
    ranked = [
        {"rank": i + 1, "dim": int(dims[j]), "mean_changed": float(mean[j]), "max_changed": int(counts[:, j].max()),
         "first_base_changed": int(counts[0, j])}
        for i, j in enumerate(order)
    ]
    d = out_dir(out)
    top_dims = np.asarray([dims[j] for j in k], np.int64)
    save_npz(d / "dimensions.npz", base=base, top=top_dims, changed=changed[k])
    pics = [render_voxels(base, size=size)]
    labels = [f"base (seed {seed})"]
    for j in k:
        shown = base | changed[j]
        pics.append(render_voxels(shown, size=size, voxel_colors=colored(shown, changed[j])))
        labels.append(f"z[{dims[j]}]: {int(counts[0, j])} vox")
    save_png(tile(pics, ncols=min(len(pics), 5), labels=labels), d / "dimensions.png")
    summary = {
        "kind": "dimensions",
        "checkpoint": str(checkpoint),
        "step": int(ck.get("step", -1)),
        "z_dist": dist,
        "sweep_range": [float(lo), float(hi)],
        "values": [float(v) for v in grid],
        "bases": int(bases),
        "base_seeds": list(range(seed, seed + int(bases))),
        "forward_passes": int(bases) * (len(dims) * int(values) + 1),
        "seconds": round(seconds, 2),
        "base_voxels": int(base.sum()),
        "top": [int(v) for v in top_dims],
        "dimensions": ranked,
        "files": ["dimensions.json", "dimensions.npz", "dimensions.png"],
    }
    save_json(d / "dimensions.json", summary)
    return summary
