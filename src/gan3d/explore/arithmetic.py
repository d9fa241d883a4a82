"""Shape arithmetic in latent space (the paper's Fig. 7): G(z_A - z_B + z_C).

Each operand is a seed, a latent ``.npy``, a voxel file (inverted, :mod:`gan3d.explore.invert`) or
an image (the mean of a 3D-VAE-GAN encoder's q(z | image)). The result is not clipped: with a
uniform prior ``A - B + C`` can leave [0, 1]^z, and the JSON says how many coordinates did.
"""

from __future__ import annotations

import os
import time

import numpy as np

from gan3d.explore.common import load_model, out_dir, save_json, save_npz, shapes
from gan3d.explore.operands import resolve_operand


def arithmetic_to_dir(
    checkpoint: str | os.PathLike,
    a: str,
    b: str,
    c: str,
    out: str | os.PathLike,
    *,
    encoder: str | None = None,
    keep_all: bool = False,
    size: int = 128,
    invert_options: dict | None = None,
) -> dict:
    """Write ``arithmetic.npz`` (``operands`` bool (3,R,R,R) = G of each operand's latent,
    ``result`` bool (R,R,R), ``latents`` float32 (4, z): a, b, c, a - b + c), ``arithmetic.json``
    and ``arithmetic.png`` (A - B + C = result). Returns the JSON dict."""
    from gan3d.render.raster import render_voxels, save_png, tile

    G, dist, ck = load_model(checkpoint)
    ops = [resolve_operand(s, G, dist, what=w, encoder=encoder, invert_options=invert_options) for s, w in ((a, "--a"), (b, "--b"), (c, "--c"))]
    t0 = time.perf_counter()
    za, zb, zc = (o[0] for o in ops)
    zr = (za.astype(np.float64) - zb + zc).astype(np.float32)
    z = np.stack([za, zb, zc, zr]).astype(np.float32)
    grids = shapes(G, z, keep_all=keep_all)
    d = out_dir(out)
    save_npz(d / "arithmetic.npz", operands=grids[:3].astype(bool), result=grids[3].astype(bool), latents=z)
    pics = [render_voxels(g, size=size) for g in grids]
    save_png(tile(pics, ncols=4, labels=["A", "- B", "+ C", "= A - B + C"]), d / "arithmetic.png")
    summary = {
        "kind": "arithmetic",
        "checkpoint": str(checkpoint),
        "step": int(ck.get("step", -1)),
        "z_dist": dist,
        "a": ops[0][1],
        "b": ops[1][1],
        "c": ops[2][1],
        "keep_all": bool(keep_all),
        "voxels": {"a": int(grids[0].sum()), "b": int(grids[1].sum()), "c": int(grids[2].sum()), "result": int(grids[3].sum())},
        "result_outside_prior_support": int(((zr < 0) | (zr > 1)).sum()) if dist == "uniform" else None,
        "result_norm": float(np.linalg.norm(zr)),
        "seconds": round(time.perf_counter() - t0, 2),
        "files": ["arithmetic.npz", "arithmetic.json", "arithmetic.png"],
    }
    save_json(d / "arithmetic.json", summary)
    return summary
