"""Single-image reconstruction: IoU and AP per class of a 3D-VAE-GAN on held-out renders, beside a
class-mean oracle; the paper's IKEA protocol on request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.eval.registry import register
from gan3d.voxels import SMALL, occupancy_check
from gan3d.voxels import iou as voxel_iou


def _score_reconstructions(
    pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, names: list[str], *, ap: bool = True
) -> dict[str, Any]:
    """Per class: mean IoU at 0.5 over images (:func:`gan3d.voxels.iou`), AP (%) over all voxels of the class's
    images, and :func:`gan3d.voxels.occupancy_check`, for float predictions (N, R, R, R) against boolean truth; and the
    means over classes. ``ap=False`` leaves AP out (for boolean predictions, already thresholded)."""
    from sklearn.metrics import average_precision_score

    per_class: dict[str, dict[str, float]] = {}
    for k in np.unique(labels):
        m = labels == k
        p, t = pred[m], truth[m]
        row = {"n": int(m.sum()), "iou": round(float(np.mean(voxel_iou(p, t))), 4)}
        if ap:
            row["ap"] = round(100 * float(average_precision_score(t.reshape(-1), p.reshape(-1))), 2) if t.any() else float("nan")
        per_class[names[int(k)]] = {**row, **occupancy_check(p, t)}
    out = {"per_class": per_class, "mean_iou": round(float(np.mean([v["iou"] for v in per_class.values()])), 4)}
    if ap:
        out["mean_ap"] = round(float(np.nanmean([v["ap"] for v in per_class.values()])), 2)
    out["small"] = round(float(np.nanmean([v["small"] for v in per_class.values()])), 3)
    return out


def _score_thresholds(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, names: list[str], thresholds: Iterable[float]) -> dict[str, Any]:
    """For each threshold t, keyed by ``f"{t:g}"``: :func:`_score_reconstructions` of ``pred >= t`` without AP
    (AP is free of thresholds). How much of a reconstruction's shape sits just under 0.5: a model that ranks
    voxels well (AP) but outputs fragments at 0.5 fills out at a lower t."""
    return {f"{t:g}": _score_reconstructions(pred >= t, truth, labels, names, ap=False) for t in thresholds}


def _class_mean_shapes(dataset, classes, chunk: int = 256) -> dict[int, np.ndarray]:
    """Mean training-split occupancy (float32 (R, R, R)) of each class, read in chunks."""
    out = {}
    train = np.flatnonzero(dataset.split == 0)
    for k in classes:
        idx = train[dataset.labels[train] == k]
        total = np.zeros((dataset.resolution,) * 3, np.float64)
        for i in range(0, len(idx), chunk):
            total += dataset.grids(idx[i : i + chunk]).sum(0, dtype=np.float64)
        out[int(k)] = (total / max(1, len(idx))).astype(np.float32)
    return out


def _predict(
    models: dict, owner: np.ndarray, data, rows: np.ndarray, batch_size: int, dev, samples: int = 1, prior_weight: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """G(mean of q(z | image)) (float32 (N, R, R, R)) and the boolean truth for each of ``rows``, the
    image of row i scored by ``models[owner[i]]`` (a list of ``(E, G, meta)``, their occupancies averaged;
    ``samples`` > 1: each model's mean over posterior draws; ``prior_weight``: each blended with its prior
    shape; :func:`gan3d.reconstruct.average_occupancy`)."""
    import torch

    from gan3d.reconstruct import average_occupancy

    pred = np.empty((len(rows),) + (data.resolution,) * 3, np.float32)
    truth = np.empty(pred.shape, bool)
    with torch.no_grad():
        for key, members in models.items():
            mine = np.flatnonzero([o == key for o in owner])
            for i in range(0, len(mine), batch_size):
                at = mine[i : i + batch_size]
                images, shapes = data.batch(rows[at], members[0][0].cfg.image_size)
                images = images.to(dev)
                pred[at] = average_occupancy(members, images, samples=samples, prior_weight=prior_weight).squeeze(1).float().cpu().numpy()
                truth[at] = shapes.squeeze(1).numpy() >= 0.5
    return pred, truth


def _members(models: list) -> list[dict]:
    """The checkpoints and steps of averaged models (``"A+B"``), for the JSON."""
    return [{"checkpoint": meta["path"], "step": meta.get("step")} for _, _, meta in models]


@register("reconstruction")
def reconstruction(
    checkpoint: str | os.PathLike | None,
    pairs: str | os.PathLike,
    *,
    split: str = "test",
    max_pairs: int = 2000,
    ikea: str | os.PathLike | None = None,
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    baselines: bool = True,
    classes: Iterable[str] | None = None,
    thresholds: Iterable[float] = (),
    per_class: Mapping[str, str | os.PathLike] | None = None,
    samples: int = 1,
    prior_weight: float = 0.0,
) -> dict[str, Any]:
    """Single-image reconstruction quality of a 3D-VAE-GAN on held-out renders, and on an IKEA folder.

    Each image's prediction is G(mean of q(z | image)), a float occupancy grid. Per class of the
    paired folder's ``split``: voxel IoU at 0.5 (mean over images) and average precision
    (scikit-learn ``average_precision_score`` of the occupancy against the binary truth, over all
    voxels of the class's images). ``max_pairs`` caps the images (a seeded subset). With ``ikea``,
    also :func:`gan3d.ikea.evaluate_ikea` beside the paper's numbers, each IKEA class read by its
    ``per_class`` model if it has one (:func:`_ikea`). ``baselines``: also score the
    class-mean oracle, which predicts for every image the mean training occupancy of its class; a
    model that beats it has learned more from the image than the class. ``classes``: score only the
    images of these classes (a model trained on fewer classes than the folder holds, say).
    ``thresholds``: also report IoU and the occupancy check with voxels filled at each of these
    (:func:`_score_thresholds`), under ``"thresholds"``; the headline numbers stay at 0.5.
    ``per_class`` ``{class: checkpoint}``: that class's images are scored by its own model, as the
    paper's separately trained 3D-VAE-GANs; ``checkpoint`` (may be None when every class scored has
    one) scores the rest. The checkpoints and steps used are under ``"per_class_checkpoints"``.
    ``samples`` K > 1: each prediction is the mean of G over K draws from q(z | image) instead of G at its
    mean, as ``gan3d reconstruct --samples K`` (on the IKEA photographs too). ``prior_weight`` L > 0: each
    model's prediction is blended with its prior shape, as ``gan3d reconstruct --prior-weight L`` (the
    IKEA photographs too).
    """
    import torch

    if int(samples) < 1:
        raise Gan3dError(f"--samples must be at least 1, got {samples}")
    from gan3d.reconstruct import check_prior_weight, load_reconstructors

    prior_weight = check_prior_weight(prior_weight)
    thresholds = [float(t) for t in thresholds]
    bad = [t for t in thresholds if not 0.0 < t < 1.0]
    if bad:
        raise Gan3dError(f"--thresholds: {bad[0]:g} is not strictly between 0 and 1")

    from gan3d.data.pairs import PairedData
    from gan3d.runtime import pick_device

    dev = pick_device(device)
    per_class = dict(per_class or {})
    data = PairedData(Path(pairs))
    data.check_classes(list(per_class))
    models = {c: load_reconstructors(ck, device=dev) for c, ck in per_class.items()}
    if checkpoint is not None:
        models[None] = load_reconstructors(checkpoint, device=dev)
    for members in models.values():
        E, G, meta = members[0]
        if data.resolution != G.cfg.resolution:
            raise Gan3dError(f"pairs are {data.resolution}^3 but the checkpoint's generator makes {G.cfg.resolution}^3", meta["path"])
    rows = data.rows(0 if split == "train" else 1, classes)
    if len(rows) == 0:
        raise Gan3dError(f"no {split} images in the paired folder" + (f" of classes {', '.join(classes)}" if classes else ""), pairs)
    if len(rows) > max_pairs:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_pairs, replace=False))
    labels, names = data.label[rows], list(data.class_names)  # the labels the training filters on
    owner = np.array([names[int(k)] if names[int(k)] in per_class else None for k in labels], dtype=object)
    if None in set(owner) and None not in models:
        missing = sorted({names[int(k)] for k, o in zip(labels, owner) if o is None})
        raise Gan3dError(f"no model for class {missing[0]!r}: give --checkpoint, or --per-class for every class scored")
    pred, truth = _predict(models, owner, data, rows, batch_size, dev, int(samples), prior_weight)
    out: dict[str, Any] = {"split": split, "n_images": int(len(rows)), "checkpoint_step": models[None][0][2].get("step") if None in models else None}
    if samples > 1:
        out["samples"] = int(samples)
    if prior_weight:
        out["prior_weight"] = prior_weight
    if None in models and len(models[None]) > 1:
        out["averaged"] = _members(models[None])
    if per_class:
        out["per_class_checkpoints"] = {c: {"checkpoint": m[0][2]["path"], "step": m[0][2].get("step"), **({"averaged": _members(m)} if len(m) > 1 else {})}
                                        for c, m in models.items() if c is not None}
    out.update(_score_reconstructions(pred, truth, labels, names))
    if thresholds:
        out["thresholds"] = _score_thresholds(pred, truth, labels, names, thresholds)
    if baselines:
        # an oracle that knows each image's class but not the image: the mean training shape of the class
        means = _class_mean_shapes(data.dataset, np.unique(labels))
        out["baselines"] = {"class_mean": _score_reconstructions(np.stack([means[int(k)] for k in labels]), truth, labels, names)}
    if ikea is not None:
        out["ikea"] = _ikea(ikea, models, dev, progress, int(samples), prior_weight)
    return out


def _ikea(root, models: dict, dev, progress: bool, samples: int = 1, prior_weight: float = 0.0) -> dict[str, Any]:
    """The IKEA protocol (:func:`gan3d.eval.ikea.evaluate_ikea`), each IKEA class's images read by its own
    model where ``--per-class`` names one, else by ``--checkpoint``'s; classes with neither are left out
    and named under ``"no_model"``."""
    import torch

    from gan3d.eval.ikea import CLASSES, evaluate_ikea
    from gan3d.reconstruct import average_occupancy

    def predictor(members: list):
        size = members[0][0].cfg.image_size

        def predict(image_chw: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(image_chw, dtype=np.float32))[None].to(dev)
            if x.shape[-1] != size:
                x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
            with torch.no_grad():
                return average_occupancy(members, x, samples=samples, prior_weight=prior_weight).squeeze().float().cpu().numpy()

        return predict

    chosen = {c: models.get(c, models.get(None)) for c in CLASSES}
    chosen = {c: m for c, m in chosen.items() if m is not None}
    if not chosen:
        raise Gan3dError(f"--ikea: no model for any IKEA class ({', '.join(CLASSES)}); give --checkpoint", root)
    size = max(m[0][0].cfg.image_size for m in chosen.values())  # each predictor resizes to its own model's
    res = evaluate_ikea(root, {c: predictor(m) for c, m in chosen.items()}, classes=list(chosen), progress=progress, image_size=size)
    res["no_model"] = [c for c in CLASSES if c not in chosen]
    return res

