"""Interpolation between two latents (the paper's Fig. 4): shapes along the path from A to B.

Methods:

* ``linear``: ``z(t) = (1 - t) a + t b``.
* ``slerp``: spherical interpolation. For a normal prior this is the usual choice: a linear path
  between two draws passes through latents of smaller norm than the prior ever gives
  (the midpoint's norm is about 1/sqrt(2) of the ends'), slerp keeps the norm.
  For a uniform prior (the paper's U[0,1]^z) the default is ``linear``: the cube is convex, so
  every point of the line lies in the prior's support, and it is what the paper did. Slerp there is
  done about the cube's centre (on ``z - 0.5``) and the result clipped to [0, 1]; the JSON records
  how many coordinates were clipped.
"""

from __future__ import annotations

import os
import time

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.explore.common import load_model, out_dir, save_json, save_npz, shapes
from gan3d.explore.operands import resolve_operand

METHODS = ("linear", "slerp")


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of vectors a, b (z,) at t (S,) -> (S, z); linear when they are
    (anti)parallel within 1e-7 rad or one is zero. Norms are interpolated linearly."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    t = np.asarray(t, np.float64)[:, None]
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    if omega < 1e-7 or np.pi - omega < 1e-7:
        return (1 - t) * a + t * b
    s = np.sin(omega)
    direction = (np.sin((1 - t) * omega) / s) * ua + (np.sin(t * omega) / s) * ub
    return direction * ((1 - t) * na + t * nb)


def path(a: np.ndarray, b: np.ndarray, steps: int, method: str, dist: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(latents float32 (S, z), t float64 (S,), clipped coordinates); S = ``steps`` frames with the
    ends exactly a and b."""
    t = np.linspace(0.0, 1.0, steps)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    clipped = 0
    if method == "linear":
        z = (1 - t)[:, None] * a64 + t[:, None] * b64
    elif dist == "uniform":
        z = slerp(a64 - 0.5, b64 - 0.5, t) + 0.5
        clipped = int(((z < 0) | (z > 1)).sum())
        z = np.clip(z, 0.0, 1.0)
    else:
        z = slerp(a64, b64, t)
    z = z.astype(np.float32)
    z[0], z[-1] = a, b  # the ends are exactly the operands, whatever the rounding
    return z, t, clipped


def interpolate_to_dir(
    checkpoint: str | os.PathLike,
    start: str,
    end: str,
    out: str | os.PathLike,
    *,
    steps: int = 8,
    method: str | None = None,
    data: str | None = None,
    meshes: bool = False,
    keep_all: bool = False,
    size: int = 112,
    invert_options: dict | None = None,
) -> dict:
    """Shapes along the path from ``start`` to ``end`` (each a seed, latent .npy, voxel file).

    Writes ``interpolation.npz`` (``frames`` bool (S,R,R,R), ``latents`` float32 (S,z), ``t``
    float64 (S,)), ``interpolation.json`` (``consecutive_iou`` (S-1), with ``data`` also
    ``nearest_train_iou`` (S): each frame's best IoU to a training shape of that dataset),
    ``interpolation.png`` (a strip), ``interpolation.gif`` and, with ``meshes``, ``frame_XX.obj``.
    Frames are G(z) at 0.5, cut to their largest component unless ``keep_all``.
    """
    if int(steps) < 2:
        raise Gan3dError(f"--steps must be at least 2 (the two ends), got {steps}")
    if method is not None and method not in METHODS:
        raise Gan3dError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    G, dist, ck = load_model(checkpoint)
    method = method or ("linear" if dist == "uniform" else "slerp")
    train = _train_shapes(data, int(G.cfg.resolution)) if data else None
    za, da = resolve_operand(start, G, dist, what="--from", invert_options=invert_options)
    zb, db = resolve_operand(end, G, dist, what="--to", invert_options=invert_options)
    t0 = time.perf_counter()
    z, t, clipped = path(za, zb, int(steps), method, dist)
    frames = shapes(G, z, keep_all=keep_all)
    from gan3d.eval.metrics import iou_distance_matrix

    consecutive = [1.0 - float(iou_distance_matrix(frames[i : i + 1], frames[i + 1 : i + 2])[0, 0]) for i in range(len(frames) - 1)]
    summary = {
        "kind": "interpolation",
        "checkpoint": str(checkpoint),
        "step": int(ck.get("step", -1)),
        "z_dist": dist,
        "method": method,
        "method_note": _NOTES[(method, dist)],
        "steps": int(steps),
        "from": da,
        "to": db,
        "keep_all": bool(keep_all),
        "t": [float(v) for v in t],
        "voxels": [int(f.sum()) for f in frames],
        "consecutive_iou": consecutive,
        "mean_consecutive_iou": float(np.mean(consecutive)),
        "min_consecutive_iou": float(np.min(consecutive)),
        "end_iou": 1.0 - float(iou_distance_matrix(frames[:1], frames[-1:])[0, 0]),
    }
    if method == "slerp" and dist == "uniform":
        summary["clipped_coordinates"] = clipped
    if train is not None:
        near = 1.0 - iou_distance_matrix(frames, train).min(axis=1)
        summary["data"] = str(data)
        summary["nearest_train_iou"] = [float(v) for v in near]
        summary["mean_nearest_train_iou"] = float(near.mean())
    d = out_dir(out)
    save_npz(d / "interpolation.npz", frames=frames.astype(bool), latents=z, t=t.astype(np.float64))
    files = ["interpolation.npz", "interpolation.json", "interpolation.png", "interpolation.gif"]
    _pictures(frames, t, d, size)
    if meshes:
        from gan3d.io.meshing import export_mesh

        for i, f in enumerate(frames):
            if f.any():
                export_mesh(f, d / f"frame_{i:02d}.obj")
                files.append(f"frame_{i:02d}.obj")
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["files"] = files
    save_json(d / "interpolation.json", summary)
    return summary


_NOTES = {
    ("linear", "uniform"): "linear: the prior's cube is convex, so every frame is a latent the prior can draw (the paper's choice)",
    ("linear", "normal"): "linear: note that the middle frames have a smaller norm than typical draws of the prior",
    ("slerp", "normal"): "slerp: keeps the latent's norm in the range of the normal prior's draws",
    ("slerp", "uniform"): "slerp about the cube's centre 0.5, clipped to [0, 1]",
}


def _train_shapes(path: str, resolution: int):
    from gan3d.data import prepared as datasets

    ds = datasets.load(path)
    if ds.resolution != resolution:
        raise Gan3dError(f"dataset is {ds.resolution}^3 but the generator makes {resolution}^3 shapes", path)
    try:
        return ds.select(split="train")
    except Gan3dError:
        return ds


def _pictures(frames: np.ndarray, t: np.ndarray, d, size: int) -> None:
    from PIL import Image

    from gan3d.fileio import atomic_path
    from gan3d.render.raster import render_voxels, save_png, tile

    images = [render_voxels(f, size=size) for f in frames]
    save_png(tile(images, ncols=len(images), labels=[f"t={v:.2f}" for v in t]), d / "interpolation.png")
    pils = [Image.fromarray(im) for im in images]
    pils = pils + pils[-2:0:-1]  # there and back again
    with atomic_path(d / "interpolation.gif") as tmp:
        pils[0].save(tmp, format="GIF", save_all=True, append_images=pils[1:], duration=250, loop=0)
