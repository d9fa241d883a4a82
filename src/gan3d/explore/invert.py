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

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from gan3d.errors import Gan3dError
from gan3d.explore.common import check_out_dir, check_positive, fast, load_model, out_dir, read_target, save_json, save_npz
from gan3d.voxels import THRESHOLD


def _losses(p: torch.Tensor, t: torch.Tensor, z: torch.Tensor, dist: str, prior_weight: float) -> torch.Tensor:
    """(S,) loss per row: p (S, R^3) occupancy in (0, 1), t (1 or S, R^3) target in {0, 1}, z (S, z)."""
    p = p.clamp(1e-6, 1 - 1e-6)
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean(1)
    inter = (p * t).sum(1)
    soft_iou = inter / (p.sum(1) + t.sum(1) - inter).clamp_min(1e-6)
    loss = bce + (1 - soft_iou)
    if dist == "normal" and prior_weight > 0:
        loss = loss + prior_weight * (z**2).mean(1)
    return loss


def _hard_iou(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(S,) IoU at 0.5 between each row of p (S, R^3) and t (1 or S, R^3); 1 when both are empty."""
    a, b = p >= THRESHOLD, t >= THRESHOLD
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _search(F, t: torch.Tensor, z: torch.Tensor, dist: str, iters: int, prior_weight: float, lr: float,
            anchor: torch.Tensor | None = None, anchor_weight: float = 0.0):
    """Adam on the rows of ``z`` (M, z) against the targets ``t`` ((M, R^3), or (1, R^3) for all rows); rows are
    independent (Adam is elementwise). With ``anchor`` (M, z), ``anchor_weight * mean((z - anchor)^2)`` is added
    to each row's loss. Returns each row's best IoU at 0.5 (ties: lower loss), that loss and z."""
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    m = len(z)
    best_iou = torch.full((m,), -1.0, dtype=torch.float64)
    best_loss = torch.full((m,), float("inf"), dtype=torch.float64)
    best_z = z.detach().clone()
    for step in range(iters + 1):
        p = F(z).reshape(m, -1)
        loss = _losses(p, t, z, dist, prior_weight)
        if anchor is not None and anchor_weight > 0:
            loss = loss + anchor_weight * (z - anchor).pow(2).mean(1)
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
        loss.sum().backward()  # each row's gradient is its own
        opt.step()
        if dist == "uniform":
            with torch.no_grad():
                z.clamp_(0.0, 1.0)
    return best_iou, best_loss, best_z


@contextlib.contextmanager
def _fixed(G: nn.Module) -> Iterator[nn.Module]:
    """G in eval mode with no parameter gradients (restored on exit), as the fast function the search calls."""
    G.eval()
    was = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    try:
        yield fast(G)  # same function, faster; its weights are constants
    finally:
        for prm, w in zip(G.parameters(), was):
            prm.requires_grad_(w)


def _pick(best_iou: torch.Tensor, best_loss: torch.Tensor) -> int:
    return int(torch.argmax(best_iou - 1e-12 * best_loss.clamp(max=1e6)))  # best IoU, then lower loss


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
    t = torch.from_numpy((target >= THRESHOLD).astype(np.float32)).reshape(1, -1)
    z0 = latents(range(seed, seed + starts), int(G.cfg.z_dim), dist)
    with _fixed(G) as F:
        best_iou, best_loss, best_z = _search(F, t, z0, dist, iters, prior_weight, lr)
    k = _pick(best_iou, best_loss)
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


def invert_many(
    G: nn.Module,
    targets: np.ndarray,
    *,
    dist: str = "uniform",
    starts: int = 8,
    iters: int = 300,
    prior_weight: float = 1e-3,
    lr: float = 0.1,
    seed: int = 0,
    batch: int = 64,
    init: np.ndarray | None = None,
    anchor_weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`invert` each of ``targets`` (N, R, R, R), ``batch`` searches (shape and start) per forward pass:
    every shape gets the same starts and the same search as alone. With ``init`` (N, z), each shape's first
    start is its own row of it (projected onto [0, 1]^z for a uniform prior) and the other ``starts - 1`` are
    the prior's draws for seeds ``seed ..``, and ``anchor_weight`` W adds ``W * mean((z - init)^2)`` to every start's
    loss: the search keeps near where the encoder put the shape, and a dimension G ignores does not drift.
    Returns ``z`` float32 (N, z) and ``iou`` (N,)."""
    from gan3d.runtime import latents

    starts, iters = check_positive("--starts", starts), check_positive("--iters", iters, 0)
    z_dim = int(G.cfg.z_dim)
    if init is not None:
        init = torch.as_tensor(np.asarray(init, dtype=np.float32))
        if init.shape != (len(targets), z_dim):
            raise ValueError(f"init must be ({len(targets)}, {z_dim}), got {tuple(init.shape)}")
        init = init.clamp(0.0, 1.0) if dist == "uniform" else init
    drawn = starts - (init is not None)
    z0 = latents(range(seed, seed + drawn), z_dim, dist) if drawn else torch.zeros(0, z_dim)
    t_all = torch.from_numpy((np.asarray(targets) >= THRESHOLD).reshape(len(targets), -1).astype(np.float32))
    per = max(1, batch // starts)  # shapes per pass
    zs, ious = [], []
    with _fixed(G) as F:
        for a in range(0, len(t_all), per):
            t = t_all[a : a + per].repeat_interleave(starts, 0)
            n = len(t) // starts
            zi = z0.repeat(n, 1) if init is None else torch.cat([init[a : a + n, None], z0.expand(n, drawn, z_dim)], 1).reshape(-1, z_dim)
            anchor = None if init is None else init[a : a + n].repeat_interleave(starts, 0)
            bi, bl, bz = _search(F, t, zi, dist, iters, prior_weight, lr, anchor, anchor_weight)
            for j in range(n):
                k = j * starts + _pick(bi[j * starts : (j + 1) * starts], bl[j * starts : (j + 1) * starts])
                zs.append(bz[k].numpy().astype(np.float32))
                ious.append(float(bi[k]))
    return np.stack(zs) if zs else np.zeros((0, z_dim), np.float32), np.asarray(ious)


def encoder_codes(encoder: str | os.PathLike, pairs: str | os.PathLike, data_path: str | os.PathLike, rows: np.ndarray,
                  z_dim: int, *, batch: int = 64) -> np.ndarray:
    """(N, z) float32: for each of the dataset file's ``rows``, the mean of a 3D-VAE-GAN encoder's means over
    that shape's images in the paired folder ``pairs`` (rendered from ``data_path``): where the encoder puts
    the shape, a start for its inversion."""
    from gan3d.data.pairs import PairedData
    from gan3d.reconstruct import load_reconstructor

    pd = PairedData(pairs)
    if pd.dataset_path.resolve() != Path(data_path).resolve():
        raise Gan3dError(f"its images are of {pd.dataset_path}, not of --data {data_path}", pairs)
    E, _, _ = load_reconstructor(encoder)
    if int(E.cfg.z_dim) != z_dim:
        raise Gan3dError(f"the encoder's z has {E.cfg.z_dim} dimensions, the generator's {z_dim}", encoder)
    order = np.argsort(pd.shape_index, kind="stable")
    lo = np.searchsorted(pd.shape_index[order], rows, "left")
    hi = np.searchsorted(pd.shape_index[order], rows, "right")
    if (hi == lo).any():
        raise Gan3dError(f"has no image of the shape in row {int(rows[np.argmax(hi == lo)])} of {data_path}", pairs)
    images = np.concatenate([order[a:b] for a, b in zip(lo, hi)])
    owner = np.repeat(np.arange(len(rows)), hi - lo)
    sums = np.zeros((len(rows), z_dim), np.float64)
    with torch.no_grad():
        for a in range(0, len(images), batch):
            img, _ = pd.batch(images[a : a + batch], int(E.cfg.image_size))
            mu, _ = E(img)
            np.add.at(sums, owner[a : a + batch], mu.double().numpy())
    return (sums / (hi - lo)[:, None]).astype(np.float32)


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
    encoder: str | os.PathLike | None = None,
    pairs: str | os.PathLike | None = None,
    anchor_weight: float = 0.0,
) -> dict:
    """:func:`invert` the first ``limit`` shapes of each class of a prepared dataset's ``split``: how well
    G can draw shapes it was not trained on, whatever an encoder makes of their pictures (an upper bound
    on a 3D-VAE-GAN's reconstruction IoU with this G). Writes ``invert_set.json`` (IoU per shape, mean
    per class, mean over classes), ``invert_set.npz`` (``rows`` file rows, ``labels``, ``z`` (N, z),
    ``iou``) and ``invert_set.png`` (the first pairs, target beside G(z)). With ``encoder`` (a 3D-VAE-GAN) and
    ``pairs`` (images of these shapes), each shape's first start is the encoder's code for it
    (:func:`encoder_codes`), and ``anchor_weight`` holds the search near it (:func:`invert_many`). Returns the
    JSON dict."""
    from gan3d.data.prepared import load as load_dataset
    from gan3d.render.raster import render_voxels, save_png, tile

    limit = check_positive("--limit", limit)
    _check_search(lr, prior_weight)
    if anchor_weight < 0 or (anchor_weight and encoder is None):
        raise Gan3dError("--anchor-weight must be >= 0, and needs --encoder-checkpoint (the codes it anchors to)")
    G, dist, data = load_model(checkpoint)
    ds = load_dataset(data_path)
    if ds.resolution != int(G.cfg.resolution):
        raise Gan3dError(f"shapes are {ds.resolution}^3 but the generator makes {int(G.cfg.resolution)}^3 shapes", data_path)
    ds = ds.select(split=split, classes=classes or None)
    pos = np.concatenate([np.flatnonzero(ds.labels == k)[:limit] for k in np.unique(ds.labels)])
    check_out_dir(out)  # before the long search; the folder is made once there is something to write
    t0 = time.perf_counter()
    targets = ds.grids(pos) >= THRESHOLD
    init = None if encoder is None else encoder_codes(encoder, pairs, data_path, ds.indices[pos], int(G.cfg.z_dim))
    z, iou = invert_many(G, targets, dist=dist, starts=starts, iters=iters, prior_weight=prior_weight, lr=lr, seed=seed, init=init,
                      anchor_weight=anchor_weight)
    ious = [float(v) for v in iou]
    with torch.no_grad():
        recs = G.eval()(torch.from_numpy(z[:6])).reshape(-1, *targets.shape[1:]).numpy() >= THRESHOLD
    pics = [render_voxels(g, size=size) for pair in zip(targets[:6], recs) for g in pair]
    labels = ds.labels[pos]
    d = out_dir(out)
    per_class = {ds.class_names[k]: {"n": int((labels == k).sum()), "mean_iou": round(float(iou[labels == k].mean()), 4)}
                 for k in np.unique(labels)}
    save_npz(d / "invert_set.npz", rows=ds.indices[pos], labels=labels, z=z, iou=iou)
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
        "first_start": "the prior's draw" if encoder is None else f"the code of {encoder} (mean over the shape's images in {pairs})",
        "anchor_weight": anchor_weight,
        "seconds": round(time.perf_counter() - t0, 2),
        "files": ["invert_set.npz", "invert_set.json", "invert_set.png"],
    }
    save_json(d / "invert_set.json", summary)
    return summary
