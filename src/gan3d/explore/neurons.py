"""What the discriminator's units respond to (the paper's Fig. 6).

A *unit* is one channel of a block of D (``D.blocks[layer]``, Conv3d + norm + LeakyReLU; default the
second-to-last block, as the paper). Its activation on a shape is the channel's maximum over
positions (D in eval mode). The training shapes are ranked per unit by that activation and the
top m kept; for each, the channel's activation map is upsampled (trilinear) to R^3 and min-max
scaled to [0, 1], and the shape's voxels where it is >= 0.5 are its region of strongest response.

Selectivity: the mean pairwise IoU of a unit's top-m shapes, against that of random sets of m
training shapes (seeded). A unit that responds to a part or a style picks shapes more alike than
chance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.explore.common import checkpoint_path, colored, out_dir, save_json, save_npz

REGION = 0.5  # scaled response at or above which a voxel is in the highlighted region


def block_index(D, layer: int) -> int:
    """``layer`` (negative counts from the end) as an index into ``D.blocks``; Gan3dError if out of range."""
    n = len(D.blocks)
    if not -n <= int(layer) < n:
        raise Gan3dError(f"--layer {layer} is out of range: D has {n} blocks (-{n}..{n - 1})")
    return int(layer) % n


@torch.no_grad()
def activations(D, grids, layer: int, *, batch_size: int = 64) -> np.ndarray:
    """float32 (N, C): each unit's maximum activation of ``D.blocks[layer]`` on each shape of
    ``grids`` (a VoxelDataset or an (N, R, R, R) array)."""
    from gan3d.eval.registry import _batches_of

    D.eval()
    out = np.empty((len(grids), D.blocks[layer][0].out_channels), np.float32)
    for s, g in _batches_of(grids, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32)).unsqueeze(1)
        for block in D.blocks[: layer + 1]:
            x = block(x)
        out[s : s + len(g)] = x.amax(dim=(2, 3, 4)).numpy()
    return out


def rank(acts: np.ndarray, units: Sequence[int], m: int) -> np.ndarray:
    """int64 (U, m): per unit the m shapes of highest activation, highest first (ties: lower index)."""
    n = acts.shape[0]
    return np.stack([np.lexsort((np.arange(n), -acts[:, u]))[:m] for u in units]).astype(np.int64)


@torch.no_grad()
def response_maps(D, grids: np.ndarray, layer: int, unit: int) -> np.ndarray:
    """float32 (n, R, R, R) in [0, 1]: unit's activation map on each grid, trilinearly upsampled to
    R^3 and min-max scaled per shape (a constant map gives 0)."""
    x = torch.from_numpy(np.ascontiguousarray(grids, dtype=np.float32)).unsqueeze(1)
    for block in D.blocks[: layer + 1]:
        x = block(x)
    a = F.interpolate(x[:, unit : unit + 1], size=grids.shape[1:], mode="trilinear", align_corners=False)[:, 0]
    lo = a.amin(dim=(1, 2, 3), keepdim=True)
    span = a.amax(dim=(1, 2, 3), keepdim=True) - lo
    return torch.where(span > 0, (a - lo) / span.clamp_min(1e-12), torch.zeros_like(a)).numpy()


def mean_pairwise_iou(grids: np.ndarray) -> float:
    """Mean IoU over the m(m-1)/2 pairs of (m, R, R, R) grids."""
    from gan3d.eval.metrics import iou_distance_matrix

    m = len(grids)
    sim = 1.0 - iou_distance_matrix(grids, grids).astype(np.float64)
    return float(sim[np.triu_indices(m, 1)].mean())


# long function: activations, ranking, selectivity against random sets and the picture, written in one pass over the dataset
def neurons_to_dir(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    layer: int = -2,
    units: int = 8,
    unit_ids: Sequence[int] | None = None,
    top: int = 6,
    random_sets: int = 200,
    seed: int = 0,
    split: str = "train",
    size: int = 96,
) -> dict:
    """Rank the ``split`` shapes of ``data`` per unit; write ``neurons.json``, ``neurons.npz``
    (``units`` int (U,), ``top_index`` int (U, m) rows of the split, ``top_shapes`` bool
    (U, m, R, R, R), ``response`` float16 (U, m, R, R, R) in [0, 1]) and ``neurons.png`` (a row per
    unit, the strongest-response region in red).

    Units are ``unit_ids``, or else the ``units`` channels whose maximum activation varies most
    across the shapes (the most shape-dependent ones). Returns the JSON dict."""
    from gan3d.data import prepared as datasets
    from gan3d.render.raster import render_voxels, save_png, tile

    if int(top) < 2:
        raise Gan3dError(f"--top must be at least 2 (pairwise IoU needs two shapes), got {top}")
    if int(units) < 1 or int(random_sets) < 1:
        raise Gan3dError("--units and --random-sets must be at least 1")
    path = checkpoint_path(checkpoint)
    D, ck = ckpt.load_discriminator(path)
    li = block_index(D, layer)
    channels = int(D.blocks[li][0].out_channels)
    ds = datasets.load(data)
    if ds.resolution != D.cfg.resolution:
        raise Gan3dError(f"dataset is {ds.resolution}^3 but the discriminator reads {D.cfg.resolution}^3", data)
    ds = ds.select(split=split)
    if len(ds) < top:
        raise Gan3dError(f"--top {top} is more than the {len(ds)} {split} shapes", data)
    if unit_ids is not None:
        bad = [u for u in unit_ids if not 0 <= int(u) < channels]
        if bad:
            raise Gan3dError(f"unit {bad[0]} is out of range: block {li} has {channels} channels (0..{channels - 1})")
    t0 = time.perf_counter()
    acts = activations(D, ds, li)
    if unit_ids is None:
        spread = acts.std(axis=0)
        chosen = list(np.lexsort((np.arange(channels), -spread))[: min(int(units), channels)])
    else:
        chosen = [int(u) for u in unit_ids]
    idx = rank(acts, chosen, int(top))
    r = ds.resolution
    top_shapes = np.zeros((len(chosen), top, r, r, r), bool)
    response = np.zeros((len(chosen), top, r, r, r), np.float16)
    rng = np.random.default_rng(seed)
    rand_sets = [rng.choice(len(ds), size=top, replace=False) for _ in range(int(random_sets))]
    rand_iou = float(np.mean([mean_pairwise_iou(ds.grids(np.sort(s)) >= 0.5) for s in rand_sets]))
    per_unit, rows, labels = [], [], []
    for i, u in enumerate(chosen):
        g = ds.grids(idx[i])
        top_shapes[i] = g >= 0.5
        resp = response_maps(D, g, li, u)
        response[i] = resp.astype(np.float16)
        sel = mean_pairwise_iou(top_shapes[i])
        per_unit.append({"unit": int(u), "top_index": [int(v) for v in idx[i]], "top_activation": [float(acts[j, u]) for j in idx[i]],
                         "mean_pairwise_iou": sel, "ratio_to_random": sel / rand_iou if rand_iou > 0 else None})
        for j in range(top):
            shape = top_shapes[i, j]
            red = shape & (resp[j] >= REGION)
            rows.append(render_voxels(shape, size=size, voxel_colors=colored(shape, red)))
            labels.append(f"unit {u} #{j + 1}" if j == 0 else f"#{j + 1} ({acts[idx[i, j], u]:.2f})")
    seconds = time.perf_counter() - t0
    d = out_dir(out)
    save_npz(d / "neurons.npz", units=np.asarray(chosen, np.int64), top_index=idx, top_shapes=top_shapes, response=response)
    save_png(tile(rows, ncols=top, labels=labels), d / "neurons.png")
    overall = float(np.mean([p["mean_pairwise_iou"] for p in per_unit]))
    summary = {
        "kind": "neurons",
        "checkpoint": str(checkpoint),
        "step": int(ck.get("step", -1)),
        "data": str(data),
        "split": split,
        "n_shapes": len(ds),
        "layer": li,
        "layer_shape": [channels] + [r // 2 ** (li + 1)] * 3,
        "unit_choice": "given" if unit_ids is not None else "largest spread of max activation over the shapes",
        "top": int(top),
        "region_threshold": REGION,
        "random_sets": int(random_sets),
        "random_seed": int(seed),
        "random_mean_pairwise_iou": rand_iou,
        "top_mean_pairwise_iou": overall,
        "selectivity_ratio": overall / rand_iou if rand_iou > 0 else None,
        "units": per_unit,
        "seconds": round(seconds, 2),
        "files": ["neurons.json", "neurons.npz", "neurons.png"],
    }
    save_json(d / "neurons.json", summary)
    return summary
