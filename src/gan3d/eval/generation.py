"""Generation metrics of a generator's samples against held-out shapes, and each sample's nearest
training shapes (memorisation).
"""

from __future__ import annotations

import os
import time
from typing import Iterable, Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.eval.registry import _batches_of, _open, _select, _where, mean_and_sd, register
from gan3d.runtime import format_seeds


def _sample(G, seeds: Sequence[int], z_dist: str, batch_size: int, dev, truncation: float = 1.0) -> np.ndarray:
    from gan3d.runtime import latents
    from gan3d.sampling import generate

    return generate(G, latents(list(seeds), G.cfg.z_dim, z_dist, truncation), batch_size=batch_size, device=dev)


# long function: every row (samples, training set, shuffled, mean shape) scored by the same metric calls; most lines assemble the result
@register("generation")
def generation(
    checkpoint: str | os.PathLike,
    dataset,
    *,
    n_samples: int | None = None,
    max_samples: int = 500,
    split: str = "test",
    classes: Iterable[str] | None = None,
    keep_all: bool | None = None,
    seeds: Sequence[int] | None = None,
    distances: Sequence[str] = ("iou", "chamfer"),
    n_points: int = 2048,
    context_rows: bool = True,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 32,
    progress: bool = True,
    truncation: float = 1.0,
    latent_sets: int = 1,
) -> dict:
    """Generation metrics (:func:`gan3d.metrics.evaluate_generation`) of samples of ``checkpoint``
    against the ``split`` shapes (default test, ``classes`` filter) of ``dataset``.

    Samples: one per seed (``seeds``, default ``0 .. n_samples-1``; ``n_samples`` defaults to
    ``min(len(reference), max_samples)``), latents from :func:`gan3d.sampling.latents` with the
    checkpoint's prior (pulled towards its mean by ``truncation`` < 1), thresholded and post-processed. Rows: ``"samples (largest component)"``
    (the paper's post-processing) and ``"samples (all components)"`` (``keep_all=None``: both;
    ``False``: the first only; ``True``: the second only); with ``context_rows`` also the sets of
    :func:`gan3d.metrics.baseline_sets` built from the training split (a seeded random subset of
    ``n_samples`` training shapes, so every row has as many shapes as the samples), each scored
    against the same reference. Empty reference shapes (ModelNet10 has 34 at 32^3: thin objects
    lost in voxelization) are left out -- they have no surface, so every row's Chamfer MMD would be
    infinite -- and counted in ``n_reference_empty_dropped``. ``latent_sets`` > 1: the sample rows are
    also scored on that many disjoint latent sets of the same size (the seeds, then each seed plus
    ``len(seeds)``, plus ``2 * len(seeds)``, ...), under ``"latent_sets"`` with each set's numbers and
    their mean and standard deviation (:func:`_latent_set_spread`); the other keys are the first set's.
    Returns ``{"rows": {name: metrics dict}, "n_samples", "n_reference", "seeds", ...}``.
    """
    from gan3d import checkpoint as ckpt
    from gan3d.eval.metrics import baseline_sets, evaluate_generation
    from gan3d.runtime import pick_device

    t0 = time.perf_counter()
    dev = pick_device(device)
    path, ds, G, data, classes = _open(checkpoint, dataset, classes, ckpt.load_generator, dev)
    ref = _select(ds, split, classes, f"no reference shapes in {_where(ds)}")
    if seeds is None:
        n = min(len(ref), int(max_samples)) if n_samples is None else int(n_samples)
        seeds = list(range(n))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise Gan3dError("no samples asked for (n_samples or seeds is empty)")
    if int(latent_sets) < 1:
        raise Gan3dError(f"--latent-sets must be at least 1, got {latent_sets}")
    n = len(seeds)
    rng = np.random.default_rng(seed)
    refs = ref.grids(slice(None)) >= 0.5
    filled = refs.reshape(len(refs), -1).any(1)
    n_ref_empty = int((~filled).sum())
    if n_ref_empty:  # an empty shape has no surface: it would put Chamfer MMD at +inf for every row
        refs = refs[filled]
    if len(refs) == 0:
        raise Gan3dError(f"every reference shape in {_where(ds)} is empty")
    z_dist = data.get("train_config", {}).get("z_dist", "uniform")
    occ = _sample(G, seeds, z_dist, batch_size, dev, truncation)
    sets: dict[str, np.ndarray] = _sample_sets(occ, keep_all)
    sample_names = list(sets)
    context_names: list[str] = []
    if context_rows:
        train = _select(ds, "train", classes, f"no training shapes in {_where(ds)} for the context rows")
        pick = np.sort(rng.choice(len(train), size=min(n, len(train)), replace=False))
        tgrids = train.grids(pick) >= 0.5
        for name, g in baseline_sets(tgrids, rng=rng).items():
            g = np.asarray(g)
            if len(g) > n:
                g = g[np.sort(rng.choice(len(g), size=n, replace=False))]
            sets[str(name)] = g >= 0.5 if g.dtype != bool else g
            context_names.append(str(name))
    def evaluate(g: np.ndarray) -> dict:
        return evaluate_generation(g, refs, distances=tuple(distances), n_points=n_points, seed=seed, progress=progress)

    rows = {name: evaluate(g) for name, g in sets.items()}
    largest = sets.get("samples (largest component)", sets.get("samples (all components)"))
    spread = {}
    if int(latent_sets) > 1:
        def score(shifted: list[int]) -> tuple[dict, dict]:
            o = _sample(G, shifted, z_dist, batch_size, dev, truncation)
            return {name: evaluate(g) for name, g in _sample_sets(o, keep_all).items()}, outside_largest(o)
        first = ({name: rows[name] for name in sample_names}, outside_largest(occ))
        spread = {"latent_sets": _latent_set_spread(seeds, int(latent_sets), first, score)}
    return {
        **spread,
        "outside_largest": outside_largest(occ),
        "rows": rows,
        "row_sizes": {k: int(len(v)) for k, v in sets.items()},
        "context_rows": context_names,
        "n_samples": n,
        "n_reference": int(len(refs)),
        "n_reference_empty_dropped": n_ref_empty,
        "reference": {"split": split, "classes": classes or [ds.class_names[k] for k in sorted(set(ref.labels.tolist()))]},
        "seeds": format_seeds(seeds),
        "empty_samples": int((~largest.reshape(n, -1).any(1)).sum()),
        "distances": list(distances),
        "n_points": int(n_points),
        "z_dist": z_dist,
        "truncation": float(truncation),
        "checkpoint": str(path),
        "checkpoint_step": int(data.get("step", -1)),
        "dataset": str(ds.path) if ds.path else None,
        "seed": int(seed),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _sample_sets(occ: np.ndarray, keep_all: bool | None) -> dict[str, np.ndarray]:
    """The sample rows of raw occupancy ``occ``: largest component (``keep_all`` not True) and all
    components (``keep_all`` not False), each thresholded and post-processed."""
    from gan3d.sampling import postprocess

    sets = {}
    if keep_all is not True:
        sets["samples (largest component)"] = postprocess(occ, keep_all=False)
    if keep_all is not False:
        sets["samples (all components)"] = postprocess(occ, keep_all=True)
    return sets


def _numbers(d: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested metrics dict, keyed ``"iou/1nna"`` and so on (counts left out)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n" and not str(k).startswith("n_"):
            out[f"{prefix}{k}"] = float(v)
    return out


def _latent_set_spread(seeds: list[int], n_sets: int, first: tuple[dict, dict], score) -> dict:
    """Each of ``n_sets`` disjoint latent sets scored (``first`` is set 0's (rows, outside); ``score(seeds)``
    gives any other's), and per sample row and number the mean and the standard deviation over the sets
    (ddof 1): how far one set of samples is from another, which a single 100-sample score hides."""
    per_set, seed_lists = [], []
    for j in range(n_sets):
        shifted = [s + j * len(seeds) for s in seeds]
        rows, outside = first if j == 0 else score(shifted)
        seed_lists.append(format_seeds(shifted))
        per_set.append({**{name: _numbers(r) for name, r in rows.items()}, "outside_largest": _numbers(outside)})
    return {"n_sets": n_sets, "seeds": seed_lists, "per_set": per_set, **mean_and_sd(per_set)}


def outside_largest(occupancy: np.ndarray) -> dict:
    """How speckled the raw samples are: per sample, the fraction of its filled voxels (>= 0.5) that
    lie outside its largest 26-connected component, before that component is taken. Returns
    ``{"mean", "median", "max"}`` over the non-empty samples, ``"over_1pct"`` (the fraction of them
    above 1%), and ``"n"`` (how many were non-empty)."""
    from gan3d.voxels import largest_component_batch

    filled = np.asarray(occupancy) >= 0.5
    n_all = filled.reshape(len(filled), -1).sum(1)
    n_big = largest_component_batch(filled).reshape(len(filled), -1).sum(1)
    keep = n_all > 0
    frac = 1.0 - n_big[keep] / n_all[keep]
    if not len(frac):
        return {"mean": None, "median": None, "max": None, "over_1pct": None, "n": 0}
    return {"mean": round(float(frac.mean()), 5), "median": round(float(np.median(frac)), 5), "max": round(float(frac.max()), 5),
            "over_1pct": round(float((frac > 0.01).mean()), 4), "n": int(keep.sum())}


def nearest_training(samples: np.ndarray, train, k: int = 3, *, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` training shapes with the highest IoU to each sample.

    ``samples``: ``(n, R, R, R)`` grids (filled >= 0.5); ``train``: a VoxelDataset or an
    ``(m, R, R, R)`` array. Returns ``(index (n, k) int64`` positions in ``train``, ``iou (n, k)
    float32)``, best first (ties: lower position first). Uses
    :func:`gan3d.metrics.iou_distance_matrix` over chunks of ``chunk`` training shapes, so memory
    stays bounded for large training sets.
    """
    from gan3d.eval.metrics import iou_distance_matrix

    s = np.asarray(samples) >= 0.5
    n, m = s.shape[0], len(train)
    if m == 0:
        raise Gan3dError("no training shapes to compare with")
    k = max(1, min(int(k), m))
    best_i = np.zeros((n, 0), np.int64)
    best_v = np.zeros((n, 0), np.float32)
    for start, g in _batches_of(train, chunk):
        iou = 1.0 - np.asarray(iou_distance_matrix(s, g >= 0.5), dtype=np.float32)
        idx = np.broadcast_to(np.arange(start, start + g.shape[0]), iou.shape)
        vals = np.concatenate([best_v, iou], 1)
        ids = np.concatenate([best_i, idx], 1)
        # stable: among equal IoUs the earlier (lower) training position stays first
        order = np.argsort(-vals, axis=1, kind="stable")[:, :k]
        best_v = np.take_along_axis(vals, order, 1)
        best_i = np.take_along_axis(ids, order, 1)
    return best_i, best_v


@register("neighbours")
def neighbours(
    checkpoint: str | os.PathLike,
    dataset,
    *,
    seeds: Sequence[int] = tuple(range(16)),
    k: int = 3,
    split: str = "train",
    classes: Iterable[str] | None = None,
    out_png: str | os.PathLike | None = None,
    threshold: float = 0.9,
    size: int = 96,
    device: str = "auto",
    batch_size: int = 32,
    progress: bool = True,
) -> dict:
    """For each seed's sample (largest component), its ``k`` nearest ``split`` shapes by IoU.

    Writes ``out_png`` (when given): one row per sample -- the sample, then its neighbours labelled
    with their IoU. Returns ``{"samples": [{"seed", "neighbours": [{"index", "source_id", "class",
    "iou"}]}], "memorised_fraction"`` (fraction of samples whose nearest shape has IoU > ``threshold``),
    ``"nearest_iou"`` (mean/median/max of the best IoU), ...}.
    """
    from gan3d import checkpoint as ckpt
    from gan3d.runtime import pick_device
    from gan3d.sampling import postprocess

    t0 = time.perf_counter()
    dev = pick_device(device)
    path, ds, G, data, classes = _open(checkpoint, dataset, classes, ckpt.load_generator, dev)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise Gan3dError("no seeds given")
    pool = _select(ds, split, classes, f"no {split} shapes in {_where(ds)}")
    z_dist = data.get("train_config", {}).get("z_dist", "uniform")
    samples = postprocess(_sample(G, seeds, z_dist, batch_size, dev), keep_all=False)
    res = neighbours_of(samples, pool, k=k, threshold=threshold, labels=[f"seed {s}" for s in seeds], out_png=out_png, size=size)
    for rec, s in zip(res["samples"], seeds):
        rec["seed"] = s
    res.update(
        {
            "seeds": format_seeds(seeds),
            "split": split,
            "checkpoint": str(path),
            "checkpoint_step": int(data.get("step", -1)),
            "dataset": str(ds.path) if ds.path else None,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )
    return res


def neighbours_of(
    samples: np.ndarray,
    pool,
    *,
    k: int = 3,
    threshold: float = 0.9,
    labels: Sequence[str] | None = None,
    out_png: str | os.PathLike | None = None,
    size: int = 96,
) -> dict:
    """:func:`neighbours` for given sample grids and a VoxelDataset ``pool`` (no checkpoint needed)."""
    idx, iou = nearest_training(samples, pool, k)
    names = pool.class_names
    file_rows = pool.indices
    recs = []
    for i in range(len(samples)):
        recs.append(
            {
                "label": labels[i] if labels else str(i),
                "occupancy": int(np.count_nonzero(np.asarray(samples[i]) >= 0.5)),
                "neighbours": [
                    {
                        "index": int(file_rows[j]),
                        "source_id": str(pool.source_id[j]),
                        "class": names[int(pool.labels[j])],
                        "iou": float(v),
                    }
                    for j, v in zip(idx[i], iou[i])
                ],
            }
        )
    best = iou[:, 0]
    out = {
        "samples": recs,
        "k": int(idx.shape[1]),
        "threshold": float(threshold),
        "memorised_fraction": float((best > threshold).mean()),
        "nearest_iou": {"mean": float(best.mean()), "median": float(np.median(best)), "max": float(best.max()), "min": float(best.min())},
        "n_pool": len(pool),
        "png": None,
    }
    if out_png is not None:
        from gan3d.render.raster import render_voxels, save_png, tile

        images, texts = [], []
        for i in range(len(samples)):
            images.append(render_voxels(samples[i], size=size, color=(0.90, 0.62, 0.45)))
            texts.append(recs[i]["label"])
            nb = pool.grids(idx[i])
            for j in range(idx.shape[1]):
                images.append(render_voxels(nb[j], size=size))
                texts.append(f"IoU {iou[i, j]:.2f} {names[int(pool.labels[idx[i, j]])]}")
        save_png(tile(images, ncols=idx.shape[1] + 1, labels=texts), out_png)
        out["png"] = str(out_png)
    return out
