"""The paper's classification protocol (its Table 1): D's hidden responses, max-pooled, as features
for a linear SVM, beside a randomly initialised D and raw voxels.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from gan3d.errors import Gan3dError
from gan3d.eval.registry import (
    _batches_of,
    _n_empty,
    _open,
    _progress,
    _select,
    _where,
    mean_and_sd,
    register,
)
from gan3d.models.gan import default_blocks

DEFAULT_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
INVARIANCES = ("flip", "scale", "morph")
SCALE_COPIES = (0.875, 0.75)  # the range of DiffAugment's default ``scale`` (factors 0.75..1)


def check_invariant(invariant: Sequence[str]) -> tuple[str, ...]:
    """The named invariances once each, in order; one Gan3dError for a name not in :data:`INVARIANCES`."""
    bad = [o for o in invariant if o not in INVARIANCES]
    if bad:
        raise Gan3dError(f"unknown --invariant {bad[0]!r}: choose from {', '.join(INVARIANCES)}")
    return tuple(dict.fromkeys(invariant))


def invariant_copies(x: torch.Tensor, invariant: Sequence[str]) -> list[torch.Tensor]:
    """``x`` (n, 1, R, R, R) and its transformed copies for feature pooling: ``flip`` adds the mirror
    of the first axis (the one DiffAugment's flip mirrors); ``scale`` the grid shrunk about its centre
    to each of :data:`SCALE_COPIES`; ``morph`` the grid eroded and the grid dilated by one voxel.
    Several named: the copies of each, added one after another (not their products)."""
    from gan3d.train import diffaug

    out = [x]
    n = x.shape[0]
    for op in check_invariant(invariant):
        if op == "flip":
            out.append(x.flip(2))
        elif op == "scale":
            out.extend(diffaug.shrink(x, torch.full((n,), f)) for f in SCALE_COPIES)
        else:
            out.extend(diffaug.morph(x, torch.full((n,), w, dtype=torch.long)) for w in (1, 2))
    return out


def _mean_over_copies(features: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, invariant: Sequence[str]) -> torch.Tensor:
    """``features`` of ``x`` averaged over ``x`` and its :func:`invariant_copies` (just ``features(x)``
    when ``invariant`` is empty)."""
    copies = invariant_copies(x, invariant)
    return sum(features(c) for c in copies) / len(copies)


def _block_shapes(cfg) -> list[tuple[int, int]]:
    """(channels, spatial edge) of each hidden block of a discriminator for model config ``cfg``."""
    widths = list(reversed(cfg.d_widths))
    return [(c, cfg.resolution // 2 ** (i + 1)) for i, c in enumerate(widths)]


def _check_blocks(cfg, blocks: Sequence[int] | None, pool: int) -> tuple[int, ...]:
    shapes = _block_shapes(cfg)
    blocks = default_blocks(len(shapes)) if blocks is None else tuple(int(b) for b in blocks)
    if not blocks:
        raise Gan3dError("no discriminator blocks chosen for features")
    for b in blocks:
        if not 0 <= b < len(shapes):
            raise Gan3dError(f"discriminator block {b} does not exist (a {cfg.resolution}^3 D has blocks 0..{len(shapes) - 1})")
        if pool < 1 or pool > shapes[b][1]:
            raise Gan3dError(f"cannot max-pool block {b} ({shapes[b][1]}^3) to {pool}^3; use --pool 1..{shapes[b][1]}")
    return blocks


def feature_dims(cfg, blocks: Sequence[int] | None = None, pool: int = 2) -> list[dict]:
    """Per chosen block: ``{"block", "channels", "edge", "pooled_to", "dim"}``; ``dim = channels * pool^3``."""
    blocks = _check_blocks(cfg, blocks, pool)
    shapes = _block_shapes(cfg)
    return [
        {"block": b, "channels": shapes[b][0], "edge": shapes[b][1], "pooled_to": pool, "dim": shapes[b][0] * pool**3}
        for b in blocks
    ]


@torch.no_grad()
def extract_features(
    D,
    grids,
    *,
    blocks: Sequence[int] | None = None,
    pool: int = 2,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
    invariant: Sequence[str] = (),
) -> np.ndarray:
    """float32 ``(N, sum_b C_b * pool^3)`` discriminator features of ``grids`` (a VoxelDataset or
    an ``(N, R, R, R)`` array): each chosen block's response max-pooled to ``pool^3`` (adaptive max
    pooling; for a block at edge e it is max pooling with kernel e / pool), flattened and
    concatenated in block order. D runs in eval mode (BatchNorm with its running statistics).
    ``invariant``: average these features over the grid and its copies under each named
    transformation (:func:`invariant_copies`), features that vary less under those changes."""
    blocks = _check_blocks(D.cfg, blocks, pool)
    D.eval()
    n = len(grids)
    dim = sum(d["dim"] for d in feature_dims(D.cfg, blocks, pool))
    out = np.empty((n, dim), np.float32)
    it = _progress(_batches_of(grids, batch_size), total=math.ceil(n / batch_size), desc="features", enabled=progress)

    def features(x: torch.Tensor) -> torch.Tensor:
        return D.pooled_features(x, blocks, pool).float()

    for s, g in it:
        x = torch.from_numpy(np.ascontiguousarray(g)).unsqueeze(1).to(device).float()
        out[s : s + g.shape[0]] = _mean_over_copies(features, x, invariant).cpu().numpy()
    return out


@torch.no_grad()
def raw_features(grids, *, raw_resolution: int = 16, batch_size: int = 256, invariant: Sequence[str] = ()) -> np.ndarray:
    """Occupancy grids max-pooled to ``raw_resolution``^3 (when larger), flattened: float32 (N, r^3);
    ``invariant`` averages them over the copies of :func:`invariant_copies`, as for D's features."""
    n = len(grids)
    r = int(grids.resolution if hasattr(grids, "resolution") else np.asarray(grids[:1]).shape[1])
    factor = max(1, r // int(raw_resolution)) if r > raw_resolution else 1
    edge = r // factor
    out = np.empty((n, edge**3), np.float32)

    def features(x: torch.Tensor) -> torch.Tensor:
        if factor > 1:
            x = torch.nn.functional.max_pool3d(x, factor)
        return x.reshape(x.shape[0], -1)

    for s, g in _batches_of(grids, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(g)).unsqueeze(1).float()
        out[s : s + g.shape[0]] = _mean_over_copies(features, x, invariant).numpy()
    return out


# long function: the paper's protocol in order (standardise, C by 5-fold CV on train only, fit, score, confusion); splitting it would scatter one recipe
def svm_protocol(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    class_names: Sequence[str],
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    cv: int = 5,
    seed: int = 0,
    solver: str = "auto",
    extra_tests: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict:
    """Standardise (mean/std of the training split) + linear SVM with C picked by stratified
    ``cv``-fold CV on the training split (``GridSearchCV``), then scored once on the test split.
    ``y`` are label indices into ``class_names``.

    ``solver``: ``"svc"`` is ``sklearn.svm.SVC`` on the precomputed linear kernel ``X X^T`` --
    exactly ``SVC(kernel="linear")`` (hinge loss, one-vs-one), and fast: the kernel is computed once
    and every fold and C reuse it (well under a second per fit for ModelNet10's 3,991 training
    shapes, against 10-100 s per fit for ``LinearSVC`` on 1,792 dense features); it needs
    ``n_train^2`` doubles of memory. ``"linearsvc"`` is ``sklearn.svm.LinearSVC`` (squared hinge,
    one-vs-rest), for training splits too large for a kernel matrix. ``"auto"``: svc up to 12,000
    training shapes.

    Returns ``accuracy``, ``per_class`` ({name: accuracy or None}), ``confusion`` ({"labels",
    "matrix"} rows = true class, columns = predicted), ``C`` (chosen), ``cv_accuracy`` (mean CV
    accuracy of the chosen C), ``cv_scores`` ({C: mean CV accuracy}), ``cv_folds``, ``dim``,
    ``solver``, ``convergence_warnings`` and ``seconds``. ``extra_tests`` (name -> (X, y)): more test
    sets scored by the same fitted SVM; their ``accuracy``, ``per_class`` and ``n`` are under
    ``"shifted"``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC, LinearSVC

    t0 = time.perf_counter()
    y_train = np.asarray(y_train)
    y_test = np.asarray(y_test)
    if len(y_test) == 0:
        raise Gan3dError("classification needs test shapes")
    labels = np.unique(np.concatenate([y_train, y_test]))
    _, counts = np.unique(y_train, return_counts=True)
    if len(counts) < 2:
        raise Gan3dError("classification needs training shapes of at least two classes")
    folds = min(int(cv), int(counts.min()))
    if folds < 2:
        raise Gan3dError(f"cross-validation needs at least 2 training shapes per class (smallest class has {counts.min()})")
    if not C_grid or min(C_grid) <= 0:
        raise Gan3dError(f"C grid must be positive numbers, got {list(C_grid)}")
    if solver == "auto":
        solver = "svc" if len(y_train) <= 12000 else "linearsvc"
    if solver not in ("svc", "linearsvc"):
        raise Gan3dError(f"unknown SVM solver {solver!r} (auto, svc, linearsvc)")

    # standardise with the training split's statistics (constant features are left at 0)
    mean = X_train.mean(0, dtype=np.float64)
    std = X_train.std(0, dtype=np.float64)
    std[std == 0] = 1.0
    Ztr = ((X_train - mean) / std).astype(np.float32)
    Zte = ((X_test - mean) / std).astype(np.float32)
    if solver == "svc":
        Ftr = (Ztr @ Ztr.T).astype(np.float64)  # linear kernel; GridSearchCV slices it per fold
        Fte = (Zte @ Ztr.T).astype(np.float64)
        est, key = SVC(kernel="precomputed"), "C"
    else:
        Ftr, Fte = Ztr, Zte
        est, key = LinearSVC(dual="auto", max_iter=5000, random_state=seed), "C"
    search = GridSearchCV(
        est,
        {key: [float(c) for c in C_grid]},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="accuracy",
        n_jobs=1,
        refit=True,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        search.fit(Ftr, y_train)
        pred = search.predict(Fte)
        shifted = {}
        for name, (X, y) in (extra_tests or {}).items():
            Z = ((X - mean) / std).astype(np.float32)
            p_x = search.predict((Z @ Ztr.T).astype(np.float64) if solver == "svc" else Z)
            y = np.asarray(y)
            shifted[name] = {
                "accuracy": float((p_x == y).mean()),
                "per_class": {class_names[lab]: float((p_x[y == lab] == lab).mean()) for lab in np.unique(y)},
                "n": int(len(y)),
            }
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    cm = confusion_matrix(y_test, pred, labels=labels)
    per_class = {}
    for k, lab in enumerate(labels):
        tot = int(cm[k].sum())
        per_class[class_names[lab]] = (float(cm[k, k]) / tot) if tot else None
    means = search.cv_results_["mean_test_score"]
    return {
        "accuracy": float((pred == y_test).mean()),
        "per_class": per_class,
        "confusion": {"labels": [class_names[lab] for lab in labels], "matrix": cm.astype(int).tolist()},
        "C": float(search.best_params_[key]),
        "cv_accuracy": float(search.best_score_),
        "cv_scores": {repr(float(c)): float(m) for c, m in zip(search.cv_results_[f"param_{key}"], means)},
        "cv_folds": folds,
        "dim": int(X_train.shape[1]),
        "solver": solver,
        "convergence_warnings": int(n_conv),
        "seconds": round(time.perf_counter() - t0, 3),
        **({"shifted": shifted} if extra_tests else {}),
    }


# long function: learned D, random D and raw voxels scored the same way side by side; most lines build the result dict
@register("classify")
def classify(
    checkpoint: str | os.PathLike,
    dataset,
    *,
    classes: Iterable[str] | None = None,
    blocks: Sequence[int] | None = None,
    pool: int = 2,
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    cv: int = 5,
    seed: int = 0,
    baselines: bool = True,
    raw_resolution: int = 16,
    solver: str = "auto",
    device: str = "auto",
    batch_size: int = 64,
    progress: bool = True,
    shifts: Sequence[str] = (),
    also_test: Sequence[str | os.PathLike] = (),
    validation: float = 0.0,
    invariant: Sequence[str] = (),
    repeats: int = 1,
    _features_cache: dict | None = None,
) -> dict:
    """The paper's Table 1 protocol for the discriminator of ``checkpoint`` on a prepared ``dataset``
    (path or :class:`~gan3d.datasets.VoxelDataset`) -- see the module docstring.

    ``blocks``: D's hidden blocks to use (default: the last three; ``(1, 2, 3)`` at 64^3 as in the
    paper, ``(0, 1, 2)`` at 32^3); ``pool``: each block is max-pooled to ``pool^3``; ``classes``:
    restrict to these classes; ``C_grid``/``cv``: the SVM's C candidates and CV folds (training split
    only); ``baselines``: also run the raw-voxel and random-D baselines. ``shifts``: the test split
    again, changed by each of :data:`gan3d.eval.shifts.SHIFTS` named; ``also_test``: the test splits
    of other prepared datasets at the same resolution whose classes are among the training classes
    (another voxelization of the same models, say). Each is scored by the same fitted SVMs, learned
    D, random D and raw voxels alike, under each one's ``"shifted"``. ``validation`` (0 < v < 1):
    the test split is not used at all; a stratified, seeded ``validation`` share of the training split
    is held out and plays its part, so that settings can be chosen without looking at the test split.
    ``invariant``: every feature extractor (learned D, random D, raw voxels) averages its features
    over the copies of :func:`invariant_copies` (default: none, the paper's protocol). ``repeats`` > 1:
    the whole protocol again with seeds ``seed + 1`` ... ``seed + repeats - 1`` (folds, random D and any
    validation split drawn anew), under ``"repeats"`` each seed's accuracies and margins and their mean
    and standard deviation (:func:`_repeat_spread`); the other keys are the first seed's. The learned
    D's and the raw voxels' features do not depend on the seed: they are extracted once (for the whole
    training split, a validation split being carved from them) and reused by every repeat; only the
    shifted copies of a validation split, which differ per seed, are extracted again.

    Returns ``{"learned", "raw_voxels", "random_D"`` (each :func:`svm_protocol`'s dict plus
    ``feature_seconds``), ``"feature_dim", "blocks", "pool", "n_train", "n_test", "classes",
    "checkpoint", "checkpoint_step", "dataset", "protocol"}``.
    Raises Gan3dError when the checkpoint's resolution differs from the dataset's or a split/class
    filter selects nothing.
    """
    from gan3d import checkpoint as ckpt
    from gan3d.models.gan import build
    from gan3d.runtime import pick_device

    if int(repeats) < 1:
        raise Gan3dError(f"--repeats must be at least 1, got {repeats}")
    t_all = time.perf_counter()
    dev = pick_device(device)
    path, ds, D, data, classes = _open(checkpoint, dataset, classes, ckpt.load_discriminator, dev)
    full_train = _select(ds, "train", classes, f"no training shapes in {_where(ds)}")
    if validation:
        held = _validation_mask(full_train, float(validation), seed)
        train, test = full_train.subset(~held), full_train.subset(held)
    else:
        held = None
        train, test = full_train, _select(ds, "test", classes, f"no test shapes in {_where(ds)}")
    blocks = _check_blocks(D.cfg, blocks, pool)
    invariant = check_invariant(invariant)  # one clear error before any work
    dims = feature_dims(D.cfg, blocks, pool)
    names = list(ds.class_names)
    present = sorted(set(train.labels.tolist()) | set(test.labels.tolist()))
    extra = _extra_test_sets(test, shifts, also_test, names, set(train.labels.tolist()), ds.resolution)

    # Features of one shape do not depend on the seed for the learned D and raw voxels, so repeats
    # (and any validation split, carved from the training split's features) reuse them.
    cache: dict[str, dict[str, np.ndarray]] = _features_cache if _features_cache is not None else {}
    carved = set(shifts) if held is not None else set()  # shifted copies of a seed's own held-out part

    def run(feats: Callable[[Any], np.ndarray], key: str | None = None) -> dict:
        t0 = time.perf_counter()
        kept = cache.setdefault(key, {}) if key else {}

        def get(name: str, grids) -> np.ndarray:
            if name not in kept:
                kept[name] = feats(grids)
            return kept[name]

        Xfull = get("train", full_train)
        Xtr, Xte = (Xfull[~held], Xfull[held]) if held is not None else (Xfull, get("test", test))
        ext = {name: (get(f"shifted:{name}" + (f":seed {seed}" if name in carved else ""), g), y) for name, (g, y) in extra.items()}
        fsec = time.perf_counter() - t0
        res = svm_protocol(Xtr, train.labels, Xte, test.labels, class_names=names, C_grid=C_grid, cv=cv, seed=seed, solver=solver,
                           extra_tests=ext)
        res["feature_seconds"] = round(fsec, 3)
        return res

    def d_feats(model):
        return lambda g: extract_features(model, g, blocks=blocks, pool=pool, batch_size=batch_size, device=dev, progress=progress,
                                           invariant=invariant)

    result: dict[str, Any] = {"learned": run(d_feats(D), "learned")}
    if baselines:
        result["raw_voxels"] = run(lambda g: raw_features(g, raw_resolution=raw_resolution, invariant=invariant), "raw_voxels")
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(seed)
            _, D0 = build(D.cfg)
        result["random_D"] = run(d_feats(D0.to(dev).eval()))
    raw_edge = ds.resolution // max(1, ds.resolution // raw_resolution) if ds.resolution > raw_resolution else ds.resolution
    result.update(
        {
            "feature_dim": int(sum(d["dim"] for d in dims)),
            "blocks": [dict(d) for d in dims],
            "pool": int(pool),
            "invariant": list(invariant),
            "n_train": len(train),
            "n_test": len(test),
            "empty_shapes": {"train": _n_empty(train), "test": _n_empty(test)},
            "classes": [names[k] for k in present],
            "chance": 1.0 / len(present),
            "checkpoint": str(path),
            "checkpoint_step": int(data.get("step", -1)),
            "model_resolution": int(D.cfg.resolution),
            "dataset": str(ds.path) if ds.path else None,
            "seed": int(seed),
            **({"shifted_tests": {name: len(y) for name, (_, y) in extra.items()}} if extra else {}),
            "scored_on": f"validation: {validation:g} of the training split (seed {seed}); the test split unused" if validation else "test split",
            "protocol": (
                f"D blocks {list(blocks)} (edges {[d['edge'] for d in dims]}) each max-pooled to {pool}^3, "
                f"concatenated ({sum(d['dim'] for d in dims)} features)"
                + (f", averaged over the grid and its {'/'.join(invariant)} copies" if invariant else "")
                + "; standardised (training-split mean/std); "
                f"linear SVM ({result['learned']['solver']}), C from {[float(c) for c in C_grid]} by stratified "
                f"{result['learned']['cv_folds']}-fold CV on the training split; accuracy on the test split."
                + (
                    f" Baselines, same SVM protocol: raw voxels max-pooled to {raw_edge}^3 ({raw_edge**3} features); "
                    f"the same D at random initialisation (seed {seed})."
                    if baselines
                    else ""
                )
            ),
            "seconds": round(time.perf_counter() - t_all, 3),
        }
    )
    if int(repeats) > 1:
        again = dict(classes=classes, blocks=blocks, pool=pool, C_grid=C_grid, cv=cv, baselines=baselines, raw_resolution=raw_resolution,
                     solver=solver, device=device, batch_size=batch_size, progress=progress, shifts=shifts, also_test=also_test,
                     validation=validation, invariant=invariant, _features_cache=cache)
        runs = [result] + [classify(checkpoint, ds, seed=seed + k, **again) for k in range(1, int(repeats))]
        result["repeats"] = _repeat_spread(runs)
        result["seconds"] = round(time.perf_counter() - t_all, 3)
    return result


def _repeat_spread(runs: list[dict]) -> dict:
    """Accuracy per test set (``"test"`` or ``"validation"``, then the shifted sets) of each feature
    extractor, and the learned D's margins over the baselines, for each run (one seed each), with their
    mean and standard deviation over the runs (ddof 1): how far one seed's score is from another's."""
    first = runs[0]
    main_set = "validation" if first.get("scored_on", "test split") != "test split" else "test"
    sets = [main_set, *first.get("shifted_tests", {})]
    extractors = [k for k in ("learned", "random_D", "raw_voxels") if k in first]

    def accuracy(run: dict, extractor: str, name: str) -> float:
        e = run[extractor]
        return float(e["accuracy"] if name == main_set else e["shifted"][name]["accuracy"])

    per_seed = []
    for run in runs:
        row = {ex: {name: accuracy(run, ex, name) for name in sets} for ex in extractors}
        for base in extractors[1:]:
            row[f"learned_minus_{base}"] = {name: row["learned"][name] - row[base][name] for name in sets}
        per_seed.append(row)
    return {"n": len(runs), "seeds": [int(r["seed"]) for r in runs], "sets": sets,
            "per_seed": [{k: {n: round(v, 5) for n, v in d.items()} for k, d in r.items()} for r in per_seed], **mean_and_sd(per_seed)}


def _extra_test_sets(test, shifts, also_test, names, train_labels, resolution) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (grids, labels into ``names``) of the shifted test splits and the other datasets' test
    splits (see :func:`classify`); one Gan3dError for an unknown shift, a missing file, another
    resolution, or a class the training split does not have."""
    from gan3d.data.prepared import load
    from gan3d.eval import shifts as shift_ops

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if shifts:
        bad = [s for s in shifts if s not in shift_ops.SHIFTS]
        if bad:
            raise Gan3dError(f"unknown test shift {bad[0]!r}: choose from {', '.join(shift_ops.SHIFTS)}")
        grids = test.grids(slice(None))
        for name in dict.fromkeys(shifts):
            out[name] = (shift_ops.apply(name, grids), np.asarray(test.labels))
    for path in also_test:
        other = load(path)
        if int(other.resolution) != int(resolution):
            raise Gan3dError(f"holds {other.resolution}^3 shapes, not {resolution}^3 like the classification data", path)
        part = _select(other, "test", None, f"no test shapes in {path}")
        unknown = sorted({other.class_names[k] for k in set(part.labels.tolist())} - {names[k] for k in train_labels})
        if unknown:
            raise Gan3dError(f"has classes the training split does not: {', '.join(unknown)}", path)
        labels = np.array([names.index(other.class_names[k]) for k in part.labels], np.int64)
        out[f"{os.path.basename(str(path))}"] = (part.grids(slice(None)), labels)
    return out


def _validation_mask(train, fraction: float, seed: int) -> np.ndarray:
    """Which shapes of the training split are held out: ``fraction`` of each class, at least one
    shape of a class with two or more, chosen by ``seed`` (:func:`gan3d.data.holdout.validation_mask`)."""
    from gan3d.data.holdout import validation_mask

    return np.asarray(validation_mask(train.labels, fraction, seed), bool)
