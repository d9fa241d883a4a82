"""Latent inversion: the z whose shape G(z) best matches a given voxel grid.

Gradient descent (Adam) on z from several starts drawn from the prior, all starts in one batch.
The loss per start is

    mean BCE(G(z), target)  +  (1 - soft IoU(G(z), target))  +  W * prior(z)

Plain BCE is dominated by the empty voxels (a chair fills about 3% of its grid), so on its own it
favours thin or empty shapes; the soft IoU, ``sum(p * t) / sum(p + t - p * t)``, weighs the filled
voxels as the reported IoU does. The prior term keeps z where G was trained: for a normal prior it
is ``W * mean(z^2)`` (the negative log-density per dimension, up to a factor); for a uniform prior
z is projected back into [0, 1]^z after every step, which is the prior's support, and W is unused.
Every start keeps its iterate with the best IoU at 0.5 (ties: lower loss); the best start wins.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

from gan3d.errors import Gan3dError
from gan3d.explore.common import check_out_dir, check_positive, fast, load_model, out_dir, read_target, save_json, save_npz
from gan3d.voxels import THRESHOLD


def _losses(p: torch.Tensor, t: torch.Tensor, z: torch.Tensor, dist: str, prior_weight: float) -> torch.Tensor:
    """(S,) loss per start: p (S, R^3) occupancy in (0, 1), t (1, R^3) target in {0, 1}, z (S, z)."""
    p = p.clamp(1e-6, 1 - 1e-6)
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean(1)
    inter = (p * t).sum(1)
    soft_iou = inter / (p.sum(1) + t.sum(1) - inter).clamp_min(1e-6)
    loss = bce + (1 - soft_iou)
    if dist == "normal" and prior_weight > 0:
        loss = loss + prior_weight * (z**2).mean(1)
    return loss


def _hard_iou(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(S,) IoU at 0.5 between each row of p (S, R^3) and t (1, R^3); 1 when both are empty."""
    a, b = p >= THRESHOLD, t >= THRESHOLD
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def invert(
    G: nn.Module,
    target: np.ndarray,
    *,
    dist: str = "uniform",
    starts: int = 8,
    iters: int = 300,
    prior_weight: float = 1e-3,
    lr: float = 0.1,
    seed: int = 0,
) -> dict:
    """Fit z to ``target`` (bool or float (R, R, R), R = G's resolution) with G in eval mode.

    Returns ``z`` float32 (z_dim,), ``reconstruction`` bool (R, R, R) = G(z) >= 0.5, ``iou`` (at
    0.5), ``loss`` (of the kept iterate), ``start_ious`` (best IoU of each start) and ``best_start``.
    Starts are the prior's draws for seeds ``seed .. seed + starts - 1``.
    """
    from gan3d.runtime import latents

    r = int(G.cfg.resolution)
    target = np.asarray(target)
    if target.shape != (r, r, r):
        raise Gan3dError(f"target grid is {target.shape}, the generator makes ({r}, {r}, {r})")
    starts, iters = check_positive("--starts", starts), check_positive("--iters", iters, 0)
    G.eval()
    was = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    F = fast(G)  # same function, faster; its weights are constants
    t = torch.from_numpy((target >= THRESHOLD).astype(np.float32)).reshape(1, -1)
    z = latents(range(seed, seed + starts), int(G.cfg.z_dim), dist).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_iou = torch.full((starts,), -1.0, dtype=torch.float64)
    best_loss = torch.full((starts,), float("inf"), dtype=torch.float64)
    best_z = z.detach().clone()
    try:
        for step in range(iters + 1):
            p = F(z).reshape(starts, -1)
            loss = _losses(p, t, z, dist, prior_weight)
            with torch.no_grad():
                ious = _hard_iou(p, t)
                lo = loss.double()
                better = (ious > best_iou) | ((ious == best_iou) & (lo < best_loss))
                best_iou = torch.where(better, ious, best_iou)
                best_loss = torch.where(better, lo, best_loss)
                best_z[better] = z.detach()[better]
            if step == iters:
                break
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # starts are independent: each row's gradient is its own
            opt.step()
            if dist == "uniform":
                with torch.no_grad():
                    z.clamp_(0.0, 1.0)
    finally:
        for prm, w in zip(G.parameters(), was):
            prm.requires_grad_(w)
    k = int(torch.argmax(best_iou - 1e-12 * best_loss.clamp(max=1e6)))  # best IoU, then lower loss
    zk = best_z[k].numpy().astype(np.float32)
    with torch.no_grad():
        rec = G(torch.from_numpy(zk)[None]).reshape(r, r, r).numpy() >= THRESHOLD
    return {
        "z": zk,
        "reconstruction": rec,
        "iou": float(best_iou[k]),
        "loss": float(best_loss[k]),
        "start_ious": [float(v) for v in best_iou],
        "best_start": k,
    }


def _check_search(lr: float, prior_weight: float) -> None:
    if lr <= 0:
        raise Gan3dError(f"--lr must be positive, got {lr}")
    if prior_weight < 0:
        raise Gan3dError(f"--prior-weight must be >= 0, got {prior_weight}")


def invert_to_dir(
    checkpoint: str | os.PathLike,
    target_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    starts: int = 8,
    iters: int = 300,
    prior_weight: float = 1e-3,
    lr: float = 0.1,
    seed: int = 0,
    size: int = 160,
) -> dict:
    """:func:`invert` a voxel file and write ``invert.npz`` (``z`` float32 (z,), ``target`` bool
    (R,R,R), ``reconstruction`` bool (R,R,R)), ``invert.json``, ``invert.png`` (target beside
    reconstruction) and ``z.npy`` (an operand for interpolate/arithmetic). Returns the JSON dict."""
    from gan3d.render.raster import render_voxels, save_png, tile

    _check_search(lr, prior_weight)
    G, dist, data = load_model(checkpoint)
    target = read_target(target_path, int(G.cfg.resolution))
    t0 = time.perf_counter()
    res = invert(G, target, dist=dist, starts=starts, iters=iters, prior_weight=prior_weight, lr=lr, seed=seed)
    seconds = time.perf_counter() - t0
    d = out_dir(out)
    save_npz(d / "invert.npz", z=res["z"], target=target.astype(bool), reconstruction=res["reconstruction"])
    from gan3d.fileio import atomic_path

    with atomic_path(d / "z.npy") as tmp:
        np.save(tmp, res["z"])
    pic = tile([render_voxels(target, size=size), render_voxels(res["reconstruction"], size=size)], ncols=2,
               labels=["target", f"G(z), IoU {res['iou']:.3f}"])
    save_png(pic, d / "invert.png")
    summary = {
        "kind": "invert",
        "checkpoint": str(checkpoint),
        "step": int(data.get("step", -1)),
        "target": str(target_path),
        "z_dist": dist,
        "iou": res["iou"],
        "loss": res["loss"],
        "start_ious": res["start_ious"],
        "best_start": res["best_start"],
        "starts": starts,
        "iters": iters,
        "prior_weight": prior_weight,
        "prior": "projection onto [0,1]^z" if dist == "uniform" else "W * mean(z^2)",
        "loss_terms": "mean BCE + (1 - soft IoU) + prior",
        "lr": lr,
        "seed": seed,
        "target_voxels": int(target.sum()),
        "reconstruction_voxels": int(res["reconstruction"].sum()),
        "seconds": round(seconds, 2),
        "files": ["invert.npz", "invert.json", "invert.png", "z.npy"],
    }
    save_json(d / "invert.json", summary)
    return summary


def invert_set_to_dir(
    checkpoint: str | os.PathLike,
    data_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "test",
    classes: list[str] | None = None,
    limit: int = 10,
    starts: int = 8,
    iters: int = 300,
    prior_weight: float = 1e-3,
    lr: float = 0.1,
    seed: int = 0,
    size: int = 96,
) -> dict:
    """:func:`invert` the first ``limit`` shapes of each class of a prepared dataset's ``split``: how well
    G can draw shapes it was not trained on, whatever an encoder makes of their pictures (an upper bound
    on a 3D-VAE-GAN's reconstruction IoU with this G). Writes ``invert_set.json`` (IoU per shape, mean
    per class, mean over classes), ``invert_set.npz`` (``rows`` file rows, ``labels``, ``z`` (N, z),
    ``iou``) and ``invert_set.png`` (the first pairs, target beside G(z)). Returns the JSON dict."""
    from gan3d.data.prepared import load as load_dataset
    from gan3d.render.raster import render_voxels, save_png, tile

    limit = check_positive("--limit", limit)
    _check_search(lr, prior_weight)
    G, dist, data = load_model(checkpoint)
    ds = load_dataset(data_path)
    if ds.resolution != int(G.cfg.resolution):
        raise Gan3dError(f"shapes are {ds.resolution}^3 but the generator makes {int(G.cfg.resolution)}^3 shapes", data_path)
    ds = ds.select(split=split, classes=classes or None)
    pos = np.concatenate([np.flatnonzero(ds.labels == k)[:limit] for k in np.unique(ds.labels)])
    check_out_dir(out)  # before the long search; the folder is made once there is something to write
    t0 = time.perf_counter()
    zs, ious, pics = [], [], []
    for i, p in enumerate(pos):
        target = ds.grids(int(p))[0] >= THRESHOLD
        res = invert(G, target, dist=dist, starts=starts, iters=iters, prior_weight=prior_weight, lr=lr, seed=seed)
        zs.append(res["z"])
        ious.append(res["iou"])
        if i < 6:
            pics += [render_voxels(target, size=size), render_voxels(res["reconstruction"], size=size)]
    labels, iou = ds.labels[pos], np.asarray(ious)
    d = out_dir(out)
    per_class = {ds.class_names[k]: {"n": int((labels == k).sum()), "mean_iou": round(float(iou[labels == k].mean()), 4)}
                 for k in np.unique(labels)}
    save_npz(d / "invert_set.npz", rows=ds.indices[pos], labels=labels, z=np.stack(zs).astype(np.float32), iou=iou)
    save_png(tile(pics, ncols=4, labels=[t for j in range(len(pics) // 2) for t in ("target", f"G(z) {ious[j]:.2f}")]), d / "invert_set.png")
    summary = {
        "kind": "invert-set",
        "checkpoint": str(checkpoint),
        "step": int(data.get("step", -1)),
        "data": str(data_path),
        "split": split,
        "limit_per_class": limit,
        "per_class": per_class,
        "mean_iou": round(float(np.mean([v["mean_iou"] for v in per_class.values()])), 4),
        "ious": [round(float(v), 4) for v in ious],
        "z_dist": dist,
        "starts": starts,
        "iters": iters,
        "prior_weight": prior_weight,
        "lr": lr,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 2),
        "files": ["invert_set.npz", "invert_set.json", "invert_set.png"],
    }
    save_json(d / "invert_set.json", summary)
    return summary
