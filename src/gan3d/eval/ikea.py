"""The IKEA single-image reconstruction benchmark, evaluated as Wu et al. (NIPS 2016) did, following
Girdhar et al. (ECCV 2016, "Learning a predictable and generative vector representation").

Independent of any model: :func:`evaluate_ikea` takes a ``predict(image) -> occupancy`` callable
that maps a ``float32 (3, S, S)`` image in [0, 1] (:func:`gan3d.imaging.prepare_image`) to an
``(R, R, R)`` occupancy grid in [0, 1] (gan3d's voxel convention).

Dataset layout (the release of Girdhar et al.)
----------------------------------------------
::

    root/Images/<name>                  the photographs (any format PIL reads)
    root/Lists/Images.txt               one image file name per line (in root/Images/)
    root/Lists/ModelID.txt              for each image, a 1-based index into all_obj_clean.txt
    root/Lists/all_obj_clean.txt        object names, one per line
    root/Lists/all_obj_class.txt        the class of each object, same order
    root/Voxels/<index>.mat             MATLAB file with key ``grid``: the object's 20^3 uint8 grid

Blank lines are ignored. :func:`make_fixture` writes a tiny dataset in this layout.

Protocol
--------
1. The prediction is brought to 20^3 by :func:`to_resolution`: exact area (box) averaging, each
   output voxel the overlap-weighted mean of the input voxels it covers (32 -> 20 included).
2. :func:`align` searches all 48 signed axis permutations (the 24 rotations of the cube and their
   mirror images) and every integer translation of at most ``max_shift`` = 2 voxels (10 % of the
   grid) along each axis (5^3 = 125), applied to the prediction (values shifted out are dropped,
   empty voxels shifted in), and keeps the transform with the highest IoU of the prediction
   thresholded at 0.5 against the truth (ties: the first in the search order, identity first).
   The IKEA ground truth is not in gan3d's convention, so this search also absorbs the axis
   convention.
3. :func:`average_precision` of the aligned real-valued prediction against the binary truth.
   Per class, AP is computed over the voxels of all images of that class pooled together
   (``ap="pooled"``, the default) or as the mean of per-image APs (``ap="per_image"``); the mean is
   the mean over classes. Numbers are reported in percent like :data:`PAPER_AP`.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.voxels import iou as voxel_iou
from gan3d.voxels import occupancy_check

__all__ = [
    "CLASSES",
    "PAPER_AP",
    "GRID",
    "IkeaItem",
    "Transform",
    "TRANSFORMS",
    "read_ikea",
    "load_voxels",
    "to_resolution",
    "apply_transform",
    "align",
    "average_precision",
    "evaluate_ikea",
    "make_fixture",
]


GRID = 20
"""Resolution of the IKEA ground-truth voxels."""


"""Resolution of the IKEA ground-truth voxels."""


CLASSES = ("bed", "bookcase", "chair", "desk", "sofa", "table")


PAPER_AP = {"bed": 63.2, "bookcase": 46.3, "chair": 47.2, "desk": 40.7, "sofa": 78.8, "table": 42.3, "mean": 53.1}
"""Average precision (%) of the 3D-VAE-GAN trained separately per class, Wu et al. 2016, Table 2."""


"""Average precision (%) of the 3D-VAE-GAN trained separately per class, Wu et al. 2016, Table 2."""


@dataclass(frozen=True)
class IkeaItem:
    """One test image: its file, the 1-based object index, object name and class, voxel file."""

    image: Path
    model_index: int
    object_name: str
    class_name: str
    voxels: Path


@dataclass(frozen=True)
class Transform:
    """``out = shift(flip(transpose(grid, perm), flips), shift)``: ``perm`` a permutation of
    (0, 1, 2), ``flips`` per output axis, ``shift`` voxels added to every index (zero fill)."""

    perm: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)
    shift: tuple[int, int, int] = (0, 0, 0)


TRANSFORMS: tuple[tuple[tuple[int, int, int], tuple[bool, bool, bool]], ...] = tuple(
    (perm, flips)
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((False, True), repeat=3)
)
"""The 48 (perm, flips) pairs :func:`align` searches, identity first."""


"""The 48 (perm, flips) pairs :func:`align` searches, identity first."""


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise Gan3dError("missing list file", path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise Gan3dError(f"cannot read ({e.strerror or e})", path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_ikea(root: str | os.PathLike) -> list[IkeaItem]:
    """The images of an IKEA dataset folder (layout in the module docstring), in list order.

    Checks that the lists exist and agree in length, that every ModelID is an integer in range and
    that every image and referenced voxel file exists; raises Gan3dError naming the file otherwise.
    """
    root = Path(root)
    if not root.is_dir():
        raise Gan3dError("IKEA dataset folder not found", root)
    lists = root / "Lists"
    images = _read_list(lists / "Images.txt")
    ids = _read_list(lists / "ModelID.txt")
    names = _read_list(lists / "all_obj_clean.txt")
    classes = _read_list(lists / "all_obj_class.txt")
    if not images:
        raise Gan3dError("no images listed", lists / "Images.txt")
    if len(ids) != len(images):
        raise Gan3dError(
            f"{len(ids)} model ids for {len(images)} images in Images.txt (one per image expected)",
            lists / "ModelID.txt",
        )
    if len(classes) != len(names):
        raise Gan3dError(
            f"{len(classes)} classes for {len(names)} objects in all_obj_clean.txt (one per object expected)",
            lists / "all_obj_class.txt",
        )
    items = []
    for line, (img, sid) in enumerate(zip(images, ids), start=1):
        try:
            k = int(sid)
        except ValueError:
            raise Gan3dError(f"entry {line}: {sid!r} is not an integer object index", lists / "ModelID.txt") from None
        if not 1 <= k <= len(names):
            raise Gan3dError(
                f"entry {line}: object index {k} out of range 1..{len(names)} (all_obj_clean.txt)",
                lists / "ModelID.txt",
            )
        ip = root / "Images" / img
        if not ip.is_file():
            raise Gan3dError(f"image listed in Images.txt (entry {line}) not found", ip)
        vp = root / "Voxels" / f"{k}.mat"
        if not vp.is_file():
            raise Gan3dError(f"voxel file of object {k} ({names[k - 1]}) not found", vp)
        items.append(IkeaItem(ip, k, names[k - 1], classes[k - 1], vp))
    return items


def load_voxels(path: str | os.PathLike) -> np.ndarray:
    """The bool ``(20, 20, 20)`` grid of an IKEA voxel ``.mat`` file (key ``grid``)."""
    import scipy.io

    path = Path(path)
    try:
        m = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for corrupt files
        raise Gan3dError(f"unreadable MATLAB file ({type(e).__name__}: {e})", path) from None
    if "grid" not in m:
        keys = ", ".join(k for k in m if not k.startswith("__")) or "none"
        raise Gan3dError(f"no key 'grid' (keys: {keys})", path)
    g = np.asarray(m["grid"])
    if g.shape != (GRID,) * 3:
        raise Gan3dError(f"grid has shape {g.shape}, expected {(GRID,) * 3}", path)
    return g > 0.5 if np.issubdtype(g.dtype, np.floating) else g != 0


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: output cell i is the mean of the input cells it overlaps, by overlap."""
    edges_out = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges_out[:-1, None], edges_out[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def to_resolution(occ: np.ndarray, size: int = GRID) -> np.ndarray:
    """Resample an ``(R, R, R)`` occupancy (float, [0, 1]) to ``(size, size, size)`` float32 by exact
    area averaging (box filter with fractional overlaps; for integer ratios, average pooling; when
    growing, each output voxel takes the value of the input voxel(s) it lies in)."""
    g = np.asarray(occ, dtype=np.float64)
    if g.ndim == 4 and g.shape[0] == 1:
        g = g[0]
    if g.ndim != 3 or len(set(g.shape)) != 1 or g.shape[0] == 0:
        raise Gan3dError(f"prediction must be a cubic (R, R, R) grid, got shape {np.asarray(occ).shape}")
    r, size = g.shape[0], int(size)
    if r == size:
        return g.astype(np.float32)
    a = _area_matrix(r, size)
    return np.einsum("ai,bj,ck,ijk->abc", a, a, a, g, optimize=True).astype(np.float32)


def _shift(g: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    out = np.zeros_like(g)
    src, dst = [], []
    for d, n in zip(shift, g.shape):
        d = int(d)
        if abs(d) >= n:
            return out
        src.append(slice(max(0, -d), n - max(0, d)))
        dst.append(slice(max(0, d), n - max(0, -d)))
    out[tuple(dst)] = g[tuple(src)]
    return out


def _orient(g: np.ndarray, perm: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    out = np.transpose(g, tuple(perm))
    axes = tuple(i for i, f in enumerate(flips) if f)
    return np.flip(out, axis=axes) if axes else out


def apply_transform(grid: np.ndarray, t: Transform) -> np.ndarray:
    """``grid`` transformed by ``t`` (same shape and dtype; cubic grids)."""
    g = np.asarray(grid)
    return _shift(np.ascontiguousarray(_orient(g, t.perm, t.flips)), t.shift)


def align(
    pred20: np.ndarray, truth20: np.ndarray, *, max_shift: int = 2, threshold: float = 0.5
) -> tuple[np.ndarray, Transform, float]:
    """Best alignment of a prediction to the truth (see the module docstring):
    ``(transformed prediction (float32), Transform, IoU at threshold)``.

    Searches the 48 signed axis permutations x integer shifts in ``[-max_shift, max_shift]^3`` and
    maximises the IoU of ``pred20 >= threshold`` with ``truth20 >= 0.5``. An empty thresholded
    prediction keeps the identity.
    """
    pred = np.asarray(pred20, dtype=np.float32)
    truth = np.asarray(truth20) >= 0.5
    if pred.shape != truth.shape or pred.ndim != 3 or len(set(pred.shape)) != 1:
        raise Gan3dError(f"prediction {pred.shape} and truth {truth.shape} must be equal cubic grids")
    m = int(max_shift)
    if m < 0:
        raise ValueError("max_shift must be >= 0")
    pbin = pred >= threshold
    nt = int(truth.sum())
    best = (-1.0, (0, 1, 2), (False, False, False), (0, 0, 0))
    if pbin.any():
        from numpy.lib.stride_tricks import sliding_window_view

        n = pred.shape[0]
        t32 = truth.astype(np.float32)
        for perm, flips in TRANSFORMS:
            p = np.ascontiguousarray(_orient(pbin, perm, flips)).astype(np.float32)
            pad = np.pad(p, m)
            win = sliding_window_view(pad, (n, n, n))  # (2m+1,)*3 + (n,)*3; win[o] = P shifted by m - o
            inter = np.einsum("abcijk,ijk->abc", win, t32, optimize=True)
            count = win.sum(axis=(3, 4, 5))
            union = count + nt - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 1.0)  # both empty: 1, as gan3d.voxels.iou
            # search order: shifts in increasing |shift| first, so ties prefer small shifts
            o = np.array(np.unravel_index(np.argmax(_tiebreak(iou, m)), iou.shape))
            val = float(iou[tuple(o)])
            if val > best[0] + 1e-9:
                best = (val, tuple(perm), tuple(flips), tuple(int(m - x) for x in o))
    t = Transform(best[1], best[2], best[3])
    out = apply_transform(pred, t)
    iou = best[0] if best[0] >= 0 else voxel_iou(out >= threshold, truth)
    return out.astype(np.float32), t, float(iou)


def _tiebreak(iou: np.ndarray, m: int) -> np.ndarray:
    """IoU minus a tiny penalty growing with the shift length (prefers the smallest shift on ties)."""
    r = np.arange(-m, m + 1, dtype=np.float64)
    d = np.abs(r)[:, None, None] + np.abs(r)[None, :, None] + np.abs(r)[None, None, :]
    return iou - 1e-9 * d


def average_precision(pred: np.ndarray, truth: np.ndarray) -> float:
    """Average precision (scikit-learn's ``average_precision_score``, in [0, 1]) of the real-valued
    prediction against the binary truth, over all voxels flattened. NaN when the truth is empty."""
    from sklearn.metrics import average_precision_score

    y = (np.asarray(truth) >= 0.5).ravel()
    s = np.asarray(pred, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise Gan3dError(f"prediction has {s.size} voxels, truth {y.size}")
    if not y.any():
        return float("nan")
    return float(average_precision_score(y, s))


def _predictors(predict, classes: list[str]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``{class: predictor}`` from one predictor for all ``classes`` or a mapping that covers them."""
    if not isinstance(predict, Mapping):
        return {c: predict for c in classes}
    if set(classes) - set(predict):
        raise ValueError(f"no predictor for {sorted(set(classes) - set(predict))}")
    return dict(predict)


def evaluate_ikea(
    root: str | os.PathLike,
    predict: Callable[[np.ndarray], np.ndarray] | Mapping[str, Callable[[np.ndarray], np.ndarray]],
    *,
    classes: Iterable[str] = CLASSES,
    progress: bool = True,
    image_size: int = 256,
    max_shift: int = 2,
    ap: str = "pooled",
) -> dict[str, Any]:
    """Average precision (%) per class and their mean on an IKEA dataset folder.

    Each image of the selected ``classes`` goes through :func:`gan3d.imaging.prepare_image` at
    ``image_size`` into ``predict``; its output is brought to 20^3 (:func:`to_resolution`), aligned
    (:func:`align`) and scored (see the module docstring for ``ap``). Returns ``{"ap": {class: %,
    ..., "mean": %}, "paper": PAPER_AP, "count": {class: images}, "iou": {class: mean aligned IoU},
    "occupancy": {class: :func:`gan3d.voxels.occupancy_check` of the aligned 20^3 predictions},
    "ap_mode": ap, "transforms": [...]}``; classes without images are left out (and named in
    ``"missing"``). ``predict`` may be a mapping from class to its own predictor (the paper's separately
    trained models: each class's images go to its own model); it must then cover ``classes``.
    """
    from gan3d.data.images import prepare_image

    if ap not in ("pooled", "per_image"):
        raise ValueError(f"ap must be 'pooled' or 'per_image', got {ap!r}")
    classes = [str(c) for c in classes]
    by_class = _predictors(predict, classes)
    items = [it for it in read_ikea(root) if it.class_name in classes]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc="IKEA", unit="image")
        except ImportError:  # pragma: no cover
            bar = None
    scores: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    truths: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    ious: dict[str, list[float]] = {c: [] for c in classes}
    transforms = []
    cache: dict[Path, np.ndarray] = {}
    for it in items:
        if it.voxels not in cache:
            cache[it.voxels] = load_voxels(it.voxels)
        truth = cache[it.voxels]
        img = prepare_image(it.image, size=image_size)
        out = np.asarray(by_class[it.class_name](img), dtype=np.float32)
        if out.ndim == 4 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 3 or len(set(out.shape)) != 1:
            raise Gan3dError(f"predict returned shape {out.shape} for this image, expected (R, R, R)", it.image)
        p20 = np.clip(to_resolution(out, GRID), 0.0, 1.0)
        aligned, t, iou = align(p20, truth, max_shift=max_shift)
        scores[it.class_name].append(aligned)
        truths[it.class_name].append(truth)
        ious[it.class_name].append(iou)
        transforms.append({"image": it.image.name, "class": it.class_name, "perm": list(t.perm),
                           "flips": list(t.flips), "shift": list(t.shift), "iou": iou})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    result_ap: dict[str, float] = {}
    counts, mean_iou, occupancy, missing = {}, {}, {}, []
    for c in classes:
        if not scores[c]:
            missing.append(c)
            continue
        if ap == "pooled":
            v = average_precision(np.stack(scores[c]), np.stack(truths[c]))
        else:
            per = [average_precision(s, t) for s, t in zip(scores[c], truths[c])]
            per = [x for x in per if np.isfinite(x)]
            v = float(np.mean(per)) if per else float("nan")
        result_ap[c] = 100.0 * v
        counts[c] = len(scores[c])
        mean_iou[c] = float(np.mean(ious[c]))
        occupancy[c] = occupancy_check(np.stack(scores[c]), np.stack(truths[c]))
    vals = [v for v in result_ap.values() if np.isfinite(v)]
    result_ap["mean"] = float(np.mean(vals)) if vals else float("nan")
    return {
        "ap": result_ap,
        "paper": dict(PAPER_AP),
        "count": counts,
        "iou": mean_iou,
        "occupancy": occupancy,
        "missing": missing,
        "ap_mode": ap,
        "transforms": transforms,
    }


_FIXTURE_KINDS = {"bed": "bed", "bookcase": "bookshelf", "chair": "chair", "desk": "table", "sofa": "sofa", "table": "table"}


def make_fixture(root: str | os.PathLike, n_per_class: int = 2, seed: int = 0, *, image_size: int = 64) -> list[IkeaItem]:
    """Write a tiny IKEA-layout dataset under ``root``: for each of :data:`CLASSES`, ``n_per_class``
    procedural objects (:mod:`gan3d.procedural`; desks are built as tables) voxelized at 20^3 into
    ``Voxels/<k>.mat`` (key ``grid``, uint8) and one PNG picture of each (random view, colour and
    background, :func:`gan3d.imaging.render_rgb`), plus one extra picture of the first object of each
    class, listed in shuffled order. Returns :func:`read_ikea` of the result.
    """
    import scipy.io
    from PIL import Image

    from gan3d.data.procedural import make_shape
    from gan3d.render.rgb import random_background, random_color, render_rgb

    root = Path(root)
    n = int(n_per_class)
    if n < 1:
        raise Gan3dError(f"n_per_class must be >= 1, got {n_per_class}")
    (root / "Lists").mkdir(parents=True, exist_ok=True)
    (root / "Images").mkdir(parents=True, exist_ok=True)
    (root / "Voxels").mkdir(parents=True, exist_ok=True)
    names, classes, grids = [], [], []
    for ci, cls in enumerate(CLASSES):
        for j in range(n):
            g = make_shape(_FIXTURE_KINDS[cls], np.random.default_rng([int(seed), ci, j]), GRID)
            names.append(f"{cls}_{j:03d}")
            classes.append(cls)
            grids.append(g)
    for k, g in enumerate(grids, start=1):
        scipy.io.savemat(root / "Voxels" / f"{k}.mat", {"grid": g.astype(np.uint8)}, do_compression=True)
    shots = [(k, 0) for k in range(1, len(grids) + 1)] + [(1 + ci * n, 1) for ci in range(len(CLASSES))]
    order = np.random.default_rng([int(seed), 999]).permutation(len(shots))
    image_names, ids = [], []
    for s in order:
        k, extra = shots[s]
        rng = np.random.default_rng([int(seed), k, extra, 7])
        img = render_rgb(
            grids[k - 1],
            azimuth_deg=float(rng.uniform(0, 360)),
            elevation_deg=float(rng.uniform(10, 40)),
            size=image_size,
            color=random_color(rng),
            background=random_background(rng, image_size),
        )
        fname = f"{names[k - 1]}_{extra}.png"
        Image.fromarray(img).save(root / "Images" / fname)
        image_names.append(fname)
        ids.append(str(k))
    (root / "Lists" / "Images.txt").write_text("\n".join(image_names) + "\n")
    (root / "Lists" / "ModelID.txt").write_text("\n".join(ids) + "\n")
    (root / "Lists" / "all_obj_clean.txt").write_text("\n".join(names) + "\n")
    (root / "Lists" / "all_obj_class.txt").write_text("\n".join(classes) + "\n")
    return read_ikea(root)
