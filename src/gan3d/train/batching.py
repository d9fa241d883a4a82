"""Batches: the training data, each step's seeded batch of shapes, latents and instance noise, and
the share of it that one process of a data-parallel run trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan3d.data.augment import augment_batch
from gan3d.data.prepared import from_arrays, load
from gan3d.errors import Gan3dError
from gan3d.runtime import draw_latents, step_generator
from gan3d.train.config import TrainConfig
from gan3d.train.losses import draw_instance_noise


def load_training_data(cfg: TrainConfig, model_resolution: int, full=None):
    """The training split as a VoxelDataset; builtin shapes are made at ``model_resolution``,
    a prepared file keeps its own resolution. ``full``: the prepared file, if already loaded."""
    from gan3d.data.procedural import CLASS_NAMES, make_dataset

    if cfg.data == "builtin":
        grids, labels = make_dataset(cfg.builtin_count, model_resolution, seed=cfg.seed)
        ds = from_arrays(grids, labels, list(CLASS_NAMES))
    else:
        ds = (full if full is not None else load(cfg.data)).select(split="train")
    if cfg.classes:
        ds = ds.select(classes=list(cfg.classes))
    if len(ds) < cfg.batch_size:
        raise Gan3dError(f"the training data has {len(ds)} shapes, fewer than one batch of {cfg.batch_size}", cfg.data)
    return ds


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> tuple[np.ndarray, int]:
    """Indices of step ``step``'s batch: epochs are seeded permutations cut into whole batches."""
    per_epoch = n // batch_size
    epoch, pos = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch, 7]).permutation(n)
    return perm[pos * batch_size : (pos + 1) * batch_size], epoch


def balanced_indices(labels: np.ndarray, batch_size: int, seed: int, step: int) -> tuple[np.ndarray, int]:
    """Positions into ``labels`` of step ``step``'s class-balanced batch, and its epoch: each slot
    of the batch picks one of the classes present uniformly, then one row of that class uniformly
    (with replacement), all from ``np.random.default_rng([seed, step, 8])``, so the batch depends on
    ``(seed, step)`` alone and a resumed run draws what an uninterrupted one would. The epoch is
    the number of rows drawn before this step over the number of rows."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise Gan3dError("no rows to draw a class-balanced batch from")
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    by_class = np.argsort(inverse, kind="stable")  # rows grouped by class, each group in row order
    starts = np.cumsum(counts) - counts
    rng = np.random.default_rng([seed, step, 8])
    cls = rng.integers(len(classes), size=batch_size)
    within = rng.integers(0, counts[cls])
    return by_class[starts[cls] + within], (step * batch_size) // len(labels)


def mean_occupancy(dataset, rows: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean filled fraction of the shapes at positions ``rows`` of ``dataset`` (a VoxelDataset;
    repeated rows count again), weighted by ``weights``; counted from the packed bits."""
    uniq, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    filled = np.empty(len(uniq))
    for s in range(0, len(uniq), 512):
        filled[s : s + 512] = np.unpackbits(dataset.packed(uniq[s : s + 512]), axis=1).sum(axis=1)
    return float(np.average(filled[inverse] / dataset.resolution**3, weights=weights))


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Weight of each row that makes every class weigh the same in total (1 / its class's count)."""
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


@dataclass
class Batch:
    """One step's inputs for one process, on the CPU."""

    real: np.ndarray  # float32 (b, R, R, R), occupancy 0/1 (augmented if the run augments)
    z: torch.Tensor  # float32 (b, z_dim) latents
    noise: tuple[torch.Tensor, torch.Tensor] | None  # instance noise for D's real and fake inputs, each float32 (b, 1, R, R, R); None when off
    epoch: int  # the epoch this step belongs to


def draw_batch(cfg: TrainConfig, data, z_dim: int, step: int, shard: slice = slice(None)) -> Batch:
    """Step ``step``'s batch of ``cfg.batch_size`` shapes, latents and noise, or the rows ``shard`` of it.

    Every draw is made for the whole batch from the step's own generators and then cut, so the
    shards of :func:`shard_of` for ranks 0..W-1, put together, are exactly the single-process batch.
    ``data``: the training VoxelDataset; only the shard's shapes are unpacked (all of the
    batch when augmenting, since augmentation draws per shape).
    """
    idx, epoch = batch_indices(len(data), cfg.batch_size, cfg.seed, step)
    if cfg.augment:
        real = augment_batch(data.grids(idx), np.random.default_rng([cfg.seed, step, 3]))[shard]
    else:
        real = data.grids(idx[shard])
    z = draw_latents(cfg.batch_size, z_dim, cfg.z_dist, step_generator(cfg.seed, step, 1))[shard]
    noise = draw_instance_noise(cfg, step, (cfg.batch_size, 1, *real.shape[1:]), stream=2)
    if noise is not None:
        noise = tuple(n[shard] for n in noise)
    return Batch(real=real, z=z, noise=noise, epoch=epoch)


def shard_of(batch_size: int, rank: int, world: int) -> slice:
    """Rows of the batch that process ``rank`` of ``world`` trains on: a contiguous ``batch_size / world``."""
    if batch_size % world:
        raise Gan3dError(
            f"batch size {batch_size} does not split evenly over {world} processes; use a multiple of {world} (--batch-size)"
        )
    b = batch_size // world
    return slice(rank * b, (rank + 1) * b)


def eval_reference(cfg: "TrainConfig", train_data, n: int, full=None) -> tuple[np.ndarray, str]:
    """Reference shapes for in-training evaluation: the held-out test split of the prepared file
    ``full`` when it has at least 32 shapes, else training shapes. At most ``n``, a fixed seeded subset."""
    ref, name = train_data, "train"
    if full is not None:
        try:
            test = full.select(split="test")
            if cfg.classes:
                test = test.select(classes=list(cfg.classes))
            if len(test) >= 32:
                ref, name = test, "test"
        except Gan3dError:
            pass
    idx = np.sort(np.random.default_rng([cfg.seed, 11]).choice(len(ref), size=min(n, len(ref)), replace=False))
    return ref.grids(idx) >= 0.5, name
