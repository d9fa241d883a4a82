"""Evaluating a trained 3D-GAN: the paper's classification protocol, generation metrics against a
dataset, and nearest training neighbours (memorisation).

Every evaluation is a plain function registered in :data:`EVALS` by :func:`register`; it returns a
JSON-able dict. :func:`append_result` adds one such result, with where it came from, as one line of
a results ``.jsonl`` file; :func:`read_results` reads such a file back.

Classification protocol (the paper's Table 1, :func:`classify`)
----------------------------------------------------------------
The paper trains a linear SVM on the discriminator's responses of its 2nd, 3rd and 4th convolution
layers at 64^3 -- spatial sizes 16^3, 8^3 and 4^3 -- each max-pooled (kernels 8, 4, 2) to a 2^3
grid and concatenated. gan3d generalises this as **the last three hidden blocks of D, each
max-pooled to 2^3**: for a 64^3 model these are blocks 1, 2, 3 (the paper's layers); for a 32^3
model, whose hidden blocks are at 16^3, 8^3 and 4^3, they are blocks 0, 1, 2 -- all its hidden
layers, at exactly the spatial sizes the paper used; a 16^3 model has only two hidden blocks
(8^3, 4^3) and uses both. Pass ``blocks=`` to choose others. A block of C channels gives
``C * pool^3`` features. Features are standardised with the mean and standard deviation of the
training split and classified by a linear SVM whose C is chosen from ``C_grid`` by stratified
k-fold cross-validation on the training split alone (``GridSearchCV``); the test split is used once,
for the reported accuracy (overall, per class) and the confusion matrix. The SVM is
``sklearn.svm.SVC`` on the precomputed linear kernel -- the same classifier as
``SVC(kernel="linear")`` (hinge loss, one-vs-one multiclass), computed once per feature set so a
whole C grid x 5 folds takes seconds; ``LinearSVC`` took 10-100 s per fit on ModelNet10's 3,991 x
1,792 standardised features on this project's machines (see :func:`svm_protocol`).

Baselines in the same call, on the same shapes and with the same SVM protocol:

* ``raw_voxels``: the occupancy grids themselves, max-pooled to at most ``raw_resolution``^3
  (default 16^3: a 32^3 grid gives 4,096 features instead of 32,768; a 16^3 grid is kept), flattened;
* ``random_D``: the same discriminator architecture at its random initialisation (seeded by
  ``seed``, :func:`gan3d.models.build`), same blocks and pooling.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from . import __version__
from .errors import Gan3dError
from .sampling import format_seeds

__all__ = [
    "EVALS",
    "register",
    "append_result",
    "read_results",
    "write_result",
    "resolve_checkpoint",
    "default_blocks",
    "feature_dims",
    "extract_features",
    "raw_features",
    "svm_protocol",
    "classify",
    "generation",
    "nearest_training",
    "neighbours",
]

EVALS: dict[str, Callable[..., dict]] = {}
"""Registered evaluations by name: ``EVALS["classify"](checkpoint, dataset, ...) -> dict``."""

DEFAULT_C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def register(name: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator adding an evaluation function to :data:`EVALS` under ``name``."""

    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        if name in EVALS and EVALS[name] is not fn:
            raise ValueError(f"an evaluation named {name!r} is already registered")
        EVALS[name] = fn
        fn.eval_name = name  # type: ignore[attr-defined]
        return fn

    return deco


# --- results files -------------------------------------------------------------------------------


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, tuples, paths and non-finite floats made JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().numpy())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def append_result(
    path: str | os.PathLike,
    record: dict,
    *,
    eval_name: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    step: int | None = None,
    args: Sequence[str] | dict | None = None,
) -> dict:
    """Append one evaluation result as one JSON line to the results file ``path``; returns the line's dict.

    The line is ``{"eval", "time" (UTC ISO 8601), "gan3d_version", "checkpoint", "step", "args",
    "result"}``; ``checkpoint``/``step`` default to the result's own ``checkpoint`` and
    ``checkpoint_step`` entries, ``args`` to ``sys.argv[1:]``.

    Durability: the file is opened in append mode and the whole line goes out in one ``write`` call,
    then is flushed and fsync'ed. Appending (rather than rewriting the file atomically) never loses
    another writer's line; the worst a crash can leave is one truncated last line, which
    :func:`read_results` skips -- and the next append starts on a fresh line.
    """
    path = Path(path)
    line = {
        "eval": eval_name or record.get("eval"),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "gan3d_version": __version__,
        "checkpoint": os.fspath(checkpoint) if checkpoint is not None else record.get("checkpoint"),
        "step": step if step is not None else record.get("checkpoint_step"),
        "args": list(sys.argv[1:]) if args is None else (dict(args) if isinstance(args, dict) else list(args)),
        "result": record,
    }
    line = jsonable(line)
    text = json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a previous writer died mid-line: start a new one
                text = "\n" + text
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    return line


def read_results(path: str | os.PathLike) -> list[dict]:
    """Every complete JSON line of a results file (truncated or foreign lines are skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def write_result(path: str | os.PathLike, record: dict) -> Path:
    """Write one result dict as indented JSON, atomically."""
    from .fileio import atomic_open

    path = Path(path)
    with atomic_open(path, "w") as f:
        json.dump(jsonable(record), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


# --- shared helpers ------------------------------------------------------------------------------


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its ``snapshot.pt``, else ``checkpoint.pt``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("snapshot.pt", "checkpoint.pt"):
            if (p / name).is_file():
                return p / name
        raise Gan3dError("folder has no snapshot.pt or checkpoint.pt", p)
    return p


def _load_dataset(dataset):
    from .datasets import VoxelDataset, load

    if isinstance(dataset, VoxelDataset):
        return dataset
    return load(dataset)


def _where(dataset) -> str:
    return str(dataset.path) if getattr(dataset, "path", None) else "the dataset"


def _open(checkpoint, dataset, classes, loader, device):
    """Checkpoint path, dataset, model (via ``loader``), checkpoint dict and class list, checked:
    the model's resolution must be the dataset's and a class filter must name something."""
    path = resolve_checkpoint(checkpoint)
    ds = _load_dataset(dataset)
    model, data = loader(path, device=device)
    _check_resolution(model.cfg.resolution, path, ds)
    classes = None if classes is None else list(classes)
    if classes is not None and not classes:
        raise Gan3dError("empty class filter: name at least one class")
    return path, ds, model, data, classes


def _check_resolution(model_res: int, checkpoint: Path, dataset) -> None:
    if int(dataset.resolution) != int(model_res):
        raise Gan3dError(
            f"checkpoint {checkpoint} is a {model_res}^3 model but dataset {_where(dataset)} holds "
            f"{dataset.resolution}^3 shapes (prepare the data with --resolution {model_res})"
        )


def _select(dataset, split: str | None, classes, what: str):
    try:
        return dataset.select(split=split, classes=classes)
    except Gan3dError as e:
        raise Gan3dError(f"{what}: {e}") from None


def _progress(iterable, *, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, file=sys.stderr)


# --- features ------------------------------------------------------------------------------------


def default_blocks(n_blocks: int) -> tuple[int, ...]:
    """The last three hidden blocks of D (fewer when D has fewer): (1, 2, 3) at 64^3, (0, 1, 2) at 32^3."""
    return tuple(range(max(0, n_blocks - 3), n_blocks))


def _block_shapes(cfg) -> list[tuple[int, int]]:
    """(channels, spatial edge) of each hidden block of a discriminator for model config ``cfg``."""
    widths = list(reversed(cfg.channels))
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


def _batches_of(grids, batch_size: int):
    """(start, float32 (n,R,R,R) batch) from a VoxelDataset or an array of grids."""
    n = len(grids)
    for s in range(0, n, batch_size):
        if hasattr(grids, "grids"):
            yield s, grids.grids(slice(s, s + batch_size))
        else:
            yield s, np.asarray(grids[s : s + batch_size], dtype=np.float32)


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
) -> np.ndarray:
    """float32 ``(N, sum_b C_b * pool^3)`` discriminator features of ``grids`` (a VoxelDataset or
    an ``(N, R, R, R)`` array): each chosen block's response max-pooled to ``pool^3`` (adaptive max
    pooling; for a block at edge e it is max pooling with kernel e / pool), flattened and
    concatenated in block order. D runs in eval mode (BatchNorm with its running statistics)."""
    blocks = _check_blocks(D.cfg, blocks, pool)
    last = max(blocks)
    D.eval()
    n = len(grids)
    dim = sum(d["dim"] for d in feature_dims(D.cfg, blocks, pool))
    out = np.empty((n, dim), np.float32)
    it = _progress(_batches_of(grids, batch_size), total=math.ceil(n / batch_size), desc="features", enabled=progress)
    for s, g in it:
        x = torch.from_numpy(np.ascontiguousarray(g)).unsqueeze(1).to(device)
        parts = []
        for i, block in enumerate(D.blocks[: last + 1]):
            x = block(x)
            if i in blocks:
                parts.append((i, torch.nn.functional.adaptive_max_pool3d(x, pool).flatten(1)))
        parts.sort(key=lambda p: blocks.index(p[0]))
        out[s : s + g.shape[0]] = torch.cat([p for _, p in parts], 1).float().cpu().numpy()
    return out


@torch.no_grad()
def raw_features(grids, *, raw_resolution: int = 16, batch_size: int = 256) -> np.ndarray:
    """Occupancy grids max-pooled to ``raw_resolution``^3 (when larger), flattened: float32 (N, r^3)."""
    n = len(grids)
    r = int(grids.resolution if hasattr(grids, "resolution") else np.asarray(grids[:1]).shape[1])
    factor = max(1, r // int(raw_resolution)) if r > raw_resolution else 1
    edge = r // factor
    out = np.empty((n, edge**3), np.float32)
    for s, g in _batches_of(grids, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(g))
        if factor > 1:
            x = torch.nn.functional.max_pool3d(x.unsqueeze(1), factor).squeeze(1)
        out[s : s + g.shape[0]] = x.reshape(x.shape[0], -1).numpy()
    return out


# --- the SVM protocol ----------------------------------------------------------------------------


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
    ``solver``, ``convergence_warnings`` and ``seconds``.
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
    }


# --- classify ------------------------------------------------------------------------------------


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
) -> dict:
    """The paper's Table 1 protocol for the discriminator of ``checkpoint`` on a prepared ``dataset``
    (path or :class:`~gan3d.datasets.VoxelDataset`) -- see the module docstring.

    ``blocks``: D's hidden blocks to use (default: the last three; ``(1, 2, 3)`` at 64^3 as in the
    paper, ``(0, 1, 2)`` at 32^3); ``pool``: each block is max-pooled to ``pool^3``; ``classes``:
    restrict to these classes; ``C_grid``/``cv``: the SVM's C candidates and CV folds (training split
    only); ``baselines``: also run the raw-voxel and random-D baselines.

    Returns ``{"learned", "raw_voxels", "random_D"`` (each :func:`svm_protocol`'s dict plus
    ``feature_seconds``), ``"feature_dim", "blocks", "pool", "n_train", "n_test", "classes",
    "checkpoint", "checkpoint_step", "dataset", "protocol"}``.
    Raises Gan3dError when the checkpoint's resolution differs from the dataset's or a split/class
    filter selects nothing.
    """
    from . import checkpoint as ckpt
    from .models import build
    from .training import pick_device

    t_all = time.perf_counter()
    dev = pick_device(device)
    path, ds, D, data, classes = _open(checkpoint, dataset, classes, ckpt.load_discriminator, dev)
    train = _select(ds, "train", classes, f"no training shapes in {_where(ds)}")
    test = _select(ds, "test", classes, f"no test shapes in {_where(ds)}")
    blocks = _check_blocks(D.cfg, blocks, pool)
    dims = feature_dims(D.cfg, blocks, pool)
    names = list(ds.class_names)
    present = sorted(set(train.labels.tolist()) | set(test.labels.tolist()))

    def run(feats: Callable[[Any], np.ndarray]) -> dict:
        t0 = time.perf_counter()
        Xtr, Xte = feats(train), feats(test)
        fsec = time.perf_counter() - t0
        res = svm_protocol(Xtr, train.labels, Xte, test.labels, class_names=names, C_grid=C_grid, cv=cv, seed=seed, solver=solver)
        res["feature_seconds"] = round(fsec, 3)
        return res

    def d_feats(model):
        return lambda g: extract_features(model, g, blocks=blocks, pool=pool, batch_size=batch_size, device=dev, progress=progress)

    result: dict[str, Any] = {"learned": run(d_feats(D))}
    if baselines:
        result["raw_voxels"] = run(lambda g: raw_features(g, raw_resolution=raw_resolution))
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
            "protocol": (
                f"D blocks {list(blocks)} (edges {[d['edge'] for d in dims]}) each max-pooled to {pool}^3, "
                f"concatenated ({sum(d['dim'] for d in dims)} features); standardised (training-split mean/std); "
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
    return result


def _n_empty(ds) -> int:
    """Shapes of a VoxelDataset with no filled voxel."""
    return int((~ds.packed(slice(None)).any(axis=1)).sum()) if len(ds) else 0


# --- generation ----------------------------------------------------------------------------------


def _sample(G, seeds: Sequence[int], z_dist: str, batch_size: int, dev) -> np.ndarray:
    from .sampling import generate, latents

    return generate(G, latents(list(seeds), G.cfg.z_dim, z_dist), batch_size=batch_size, device=dev)


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
) -> dict:
    """Generation metrics (:func:`gan3d.metrics.evaluate_generation`) of samples of ``checkpoint``
    against the ``split`` shapes (default test, ``classes`` filter) of ``dataset``.

    Samples: one per seed (``seeds``, default ``0 .. n_samples-1``; ``n_samples`` defaults to
    ``min(len(reference), max_samples)``), latents from :func:`gan3d.sampling.latents` with the
    checkpoint's prior, thresholded and post-processed. Rows: ``"samples (largest component)"``
    (the paper's post-processing) and ``"samples (all components)"`` (``keep_all=None``: both;
    ``False``: the first only; ``True``: the second only); with ``context_rows`` also the sets of
    :func:`gan3d.metrics.baseline_sets` built from the training split (a seeded random subset of
    ``n_samples`` training shapes, so every row has as many shapes as the samples), each scored
    against the same reference. Empty reference shapes (ModelNet10 has 34 at 32^3: thin objects
    lost in voxelization) are left out -- they have no surface, so every row's Chamfer MMD would be
    infinite -- and counted in ``n_reference_empty_dropped``. Returns ``{"rows": {name: metrics dict}, "n_samples", "n_reference",
    "seeds", ...}``.
    """
    from . import checkpoint as ckpt
    from . import metrics
    from .sampling import postprocess
    from .training import pick_device

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
    occ = _sample(G, seeds, z_dist, batch_size, dev)
    sets: dict[str, np.ndarray] = {}
    if keep_all is not True:
        sets["samples (largest component)"] = postprocess(occ, keep_all=False)
    if keep_all is not False:
        sets["samples (all components)"] = postprocess(occ, keep_all=True)
    context_names: list[str] = []
    if context_rows:
        train = _select(ds, "train", classes, f"no training shapes in {_where(ds)} for the context rows")
        pick = np.sort(rng.choice(len(train), size=min(n, len(train)), replace=False))
        tgrids = train.grids(pick) >= 0.5
        for name, g in metrics.baseline_sets(tgrids, rng=rng).items():
            g = np.asarray(g)
            if len(g) > n:
                g = g[np.sort(rng.choice(len(g), size=n, replace=False))]
            sets[str(name)] = g >= 0.5 if g.dtype != bool else g
            context_names.append(str(name))
    rows = {}
    for name, g in sets.items():
        rows[name] = metrics.evaluate_generation(
            g, refs, distances=tuple(distances), n_points=n_points, seed=seed, progress=progress
        )
    largest = sets.get("samples (largest component)", sets.get("samples (all components)"))
    return {
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
        "checkpoint": str(path),
        "checkpoint_step": int(data.get("step", -1)),
        "dataset": str(ds.path) if ds.path else None,
        "seed": int(seed),
        "seconds": round(time.perf_counter() - t0, 3),
    }


# --- nearest neighbours --------------------------------------------------------------------------


def nearest_training(samples: np.ndarray, train, k: int = 3, *, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` training shapes with the highest IoU to each sample.

    ``samples``: ``(n, R, R, R)`` grids (filled >= 0.5); ``train``: a VoxelDataset or an
    ``(m, R, R, R)`` array. Returns ``(index (n, k) int64`` positions in ``train``, ``iou (n, k)
    float32)``, best first (ties: lower position first). Uses
    :func:`gan3d.metrics.iou_distance_matrix` over chunks of ``chunk`` training shapes, so memory
    stays bounded for large training sets.
    """
    from .metrics import iou_distance_matrix

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
    from . import checkpoint as ckpt
    from .sampling import postprocess
    from .training import pick_device

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
        from .render import render_voxels, save_png, tile

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


def _score_reconstructions(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Per class: mean IoU at 0.5 over images and AP (%) over all voxels of the class's images, for
    float predictions (N, R, R, R) against boolean truth; and the means over classes."""
    from sklearn.metrics import average_precision_score

    per_class: dict[str, dict[str, float]] = {}
    for k in np.unique(labels):
        m = labels == k
        p, t = pred[m], truth[m]
        hard = p >= 0.5
        inter = (hard & t).reshape(len(p), -1).sum(1)
        union = (hard | t).reshape(len(p), -1).sum(1)
        iou = float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))
        ap = float(average_precision_score(t.reshape(-1), p.reshape(-1))) if t.any() else float("nan")
        per_class[names[int(k)]] = {"n": int(m.sum()), "iou": round(iou, 4), "ap": round(100 * ap, 2)}
    return {
        "per_class": per_class,
        "mean_iou": round(float(np.mean([v["iou"] for v in per_class.values()])), 4),
        "mean_ap": round(float(np.nanmean([v["ap"] for v in per_class.values()])), 2),
    }


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


@register("reconstruction")
def reconstruction(
    checkpoint: str | os.PathLike,
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
) -> dict[str, Any]:
    """Single-image reconstruction quality of a 3D-VAE-GAN on held-out renders, and on an IKEA folder.

    Each image's prediction is G(mean of q(z | image)), a float occupancy grid. Per class of the
    paired folder's ``split``: voxel IoU at 0.5 (mean over images) and average precision
    (scikit-learn ``average_precision_score`` of the occupancy against the binary truth, over all
    voxels of the class's images). ``max_pairs`` caps the images (a seeded subset). With ``ikea``,
    also :func:`gan3d.ikea.evaluate_ikea` beside the paper's numbers. ``baselines``: also score the
    class-mean oracle, which predicts for every image the mean training occupancy of its class; a
    model that beats it has learned more from the image than the class.
    """
    import torch

    from .reconstruct import load_reconstructor
    from .training import pick_device
    from .vaegan import PairedData

    dev = pick_device(device)
    E, G, meta = load_reconstructor(checkpoint, device=dev)
    data = PairedData(Path(pairs))
    if data.resolution != G.cfg.resolution:
        raise Gan3dError(f"pairs are {data.resolution}^3 but the checkpoint's generator makes {G.cfg.resolution}^3", pairs)
    rows = data.rows(0 if split == "train" else 1)
    if len(rows) == 0:
        raise Gan3dError(f"no {split} images in the paired folder", pairs)
    if len(rows) > max_pairs:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_pairs, replace=False))
    preds, truths = [], []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            images, shapes = data.batch(rows[i : i + batch_size], E.cfg.image_size)
            mu, _ = E(images.to(dev))
            preds.append(G(mu).squeeze(1).float().cpu().numpy())
            truths.append(shapes.squeeze(1).numpy() >= 0.5)
    pred, truth = np.concatenate(preds), np.concatenate(truths)
    labels = data.dataset.labels[data.shape_index[rows]] if hasattr(data.dataset, "labels") else np.zeros(len(rows), int)
    names = list(data.dataset.class_names)
    out: dict[str, Any] = {"split": split, "n_images": int(len(rows)), "checkpoint_step": meta.get("step")}
    out.update(_score_reconstructions(pred, truth, labels, names))
    if baselines:
        # an oracle that knows each image's class but not the image: the mean training shape of the class
        means = _class_mean_shapes(data.dataset, np.unique(labels))
        out["baselines"] = {"class_mean": _score_reconstructions(np.stack([means[int(k)] for k in labels]), truth, labels, names)}
    if ikea is not None:
        from .ikea import evaluate_ikea

        def predict(image_chw: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(image_chw, dtype=np.float32))[None].to(dev)
            if x.shape[-1] != E.cfg.image_size:
                x = torch.nn.functional.interpolate(x, size=E.cfg.image_size, mode="bilinear", align_corners=False)
            with torch.no_grad():
                return G(E(x)[0]).squeeze().float().cpu().numpy()

        out["ikea"] = evaluate_ikea(ikea, predict, progress=progress, image_size=E.cfg.image_size)
    return out
