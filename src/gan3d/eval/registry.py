"""Evaluating a trained 3D-GAN: the paper's classification protocol, generation metrics against a
dataset, and nearest training neighbours (memorisation).

Every evaluation is a plain function registered in :data:`EVALS` by :func:`register`; it returns a
JSON-able dict. :func:`calc` (``calc("classify", checkpoint, dataset, results="x.jsonl")``) is how
every caller runs one. :func:`append_result` adds one such result, with where it came from, as one line of
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
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from gan3d import __version__
from gan3d.errors import Gan3dError

EVALS: dict[str, Callable[..., dict]] = {}
"""Registered evaluations by name: ``EVALS["classify"](checkpoint, dataset, ...) -> dict``."""


def register(name: str, *, command: bool = True) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator adding an evaluation function to :data:`EVALS` under ``name``. ``command=False``:
    an evaluation of in-memory models (training calls it), with no ``gan3d eval`` command."""

    def deco(fn: Callable[..., dict]) -> Callable[..., dict]:
        if name in EVALS and EVALS[name] is not fn:
            raise ValueError(f"an evaluation named {name!r} is already registered")
        EVALS[name] = fn
        fn.eval_name = name  # type: ignore[attr-defined]
        fn.eval_command = command  # type: ignore[attr-defined]
        return fn

    return deco


def calc(
    name: str,
    /,
    *args: Any,
    out: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    argv: Sequence[str] | dict | None = None,
    **kwargs: Any,
) -> dict:
    """Run the registered evaluation ``name`` -- ``EVALS[name](*args, **kwargs)`` -- and return its
    result dict: the one entry point of every caller (``gan3d eval``, training, notebooks).

    ``out``: also write the result as indented JSON to that file (atomic); ``results``: then append
    it as one line to that ``.jsonl`` (:func:`append_result`, with ``argv`` as the line's ``args``,
    default ``sys.argv[1:]``). An unknown name is a Gan3dError listing the registered ones.
    """
    # every evaluation is registered: importing this module ran gan3d/eval/__init__.py, which imports them all

    fn = EVALS.get(name)
    if fn is None:
        raise Gan3dError(f"unknown evaluation {name!r}; registered: {', '.join(sorted(EVALS))}")
    result = fn(*args, **kwargs)
    if out is not None:
        write_result(out, result)
    if results is not None:
        append_result(results, result, eval_name=name, args=argv)
    return result


def mean_and_sd(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{"mean": ..., "sd": ...}`` of runs that each hold the same two-level dict of numbers: per outer and
    inner key the mean and the standard deviation (ddof 1) over the runs, rounded to 5 decimals."""
    summary: dict[str, dict[str, dict[str, float]]] = {"mean": {}, "sd": {}}
    for outer in runs[0]:
        for inner in runs[0][outer]:
            vals = np.array([r[outer][inner] for r in runs], dtype=np.float64)
            summary["mean"].setdefault(outer, {})[inner] = round(float(vals.mean()), 5)
            summary["sd"].setdefault(outer, {})[inner] = round(float(vals.std(ddof=1)), 5)
    return summary


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
    from gan3d.fileio import atomic_open

    path = Path(path)
    with atomic_open(path, "w") as f:
        json.dump(jsonable(record), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


def _load_dataset(dataset):
    from gan3d.data.prepared import VoxelDataset, load

    if isinstance(dataset, VoxelDataset):
        return dataset
    return load(dataset)


def _where(dataset) -> str:
    return str(dataset.path) if getattr(dataset, "path", None) else "the dataset"


def _open(checkpoint, dataset, classes, loader, device):
    """Checkpoint path, dataset, model (via ``loader``), checkpoint dict and class list, checked:
    the model's resolution must be the dataset's and a class filter must name something."""
    from gan3d.checkpoint import resolve

    path = resolve(checkpoint)
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


def _n_empty(ds) -> int:
    """Shapes of a VoxelDataset with no filled voxel."""
    return int((~ds.packed(slice(None)).any(axis=1)).sum()) if len(ds) else 0


def _batches_of(grids, batch_size: int):
    """(start, float32 (n,R,R,R) batch) from a VoxelDataset or an array of grids."""
    n = len(grids)
    for s in range(0, n, batch_size):
        if hasattr(grids, "grids"):
            yield s, grids.grids(slice(s, s + batch_size))
        else:
            yield s, np.asarray(grids[s : s + batch_size], dtype=np.float32)
