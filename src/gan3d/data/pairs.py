"""Images of voxel shapes paired with the shapes: training data for single-image reconstruction.

The 3D-VAE-GAN of Wu et al. (NIPS 2016) learns an image encoder from renderings of the training
shapes, 24 azimuths x 3 elevations = 72 views per shape (:data:`VIEWS_PAPER`). This module renders
such pictures (:func:`render_rgb`), writes whole paired datasets (:func:`render_dataset`), reads them
back memory-mapped (:class:`PairedData`) and turns user photographs into network input
(:func:`prepare_image`).

Camera
------
The renderer is the rasteriser of :mod:`gan3d.render` (exposed voxel faces drawn as exact
parallelograms with a depth buffer, supersampled 2x): an **orthographic** camera, framing the
grid's bounding cube (not the shape) so that every shape of a dataset appears at the same scale,
centred on the cube. Azimuth 0 looks at the object's front (from -y); positive azimuth moves the
camera towards -x (clockwise seen from above); elevation is the angle above the horizon, any value
in [-90, 90] (90 is the top view: +x right, +y up on screen; 0 at azimuth 0 is the front view: +x
right, z up). Faces are shaded by Lambert's law with a directional light fixed relative to the
camera (from the upper left behind the viewer by default) plus an ambient term.

:data:`VIEWS_PAPER` holds azimuths 0, 15, ..., 345 degrees at elevations 15, 30 and 45 degrees
(the paper does not give its three elevations; these span typical photographs of furniture).

Paired dataset folder (written by :func:`render_dataset`)
--------------------------------------------------------
=================  ===============================  =============================================
file / key         dtype, shape                     meaning
=================  ===============================  =============================================
``images.npy``     uint8, (N, S, S, 3)              RGB pictures, written with
                                                    ``np.lib.format.open_memmap``; read it with
                                                    ``np.load(path, mmap_mode="r")``
``pairs.npz``      (uncompressed ``np.savez``)
  ``shape_index``  int64, (N,)                      row of the shape in the source dataset file
                                                    (the numbering of ``VoxelDataset.indices``;
                                                    ``load(src).grids(row)`` is it)
  ``view``         int64, (N,)                      index of the view in ``meta["views"]``
  ``azimuth``      float32, (N,)                    degrees
  ``elevation``    float32, (N,)                    degrees
  ``label``        int64, (N,)                      class index into ``meta["class_names"]``
  ``split``        uint8, (N,)                      0 train, 1 test (of the source shape)
``meta.json``      JSON object                      ``format`` ("gan3d-paired-images"),
                                                    ``format_version`` (1), ``source`` (absolute
                                                    path of the voxel dataset), ``resolution``,
                                                    ``class_names``, ``size``, ``seed``, ``count``,
                                                    ``views`` (list of [azimuth, elevation]),
                                                    ``options`` (the rendering options)
=================  ===============================  =============================================

Image ``i`` shows shape ``shape_index[i]`` from ``views[view[i]]``. Rows are ordered shape by shape,
the views of a shape consecutive. The folder is written under a temporary name beside ``out_dir``
and renamed when complete, so a folder with the final name is always whole. Random colours and
backgrounds of image (shape row ``s``, view ``v``) come from ``np.random.default_rng([seed, s, v])``:
the same seed gives the same bytes whatever subset is rendered. So do the photo-like images of
``photo`` (:mod:`gan3d.render.photo`: a wall and floor behind the object, random light, colour,
framing, occluders and camera noise), which replace the plain render.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gan3d.data.images import MIN_IMAGE_SIDE
from gan3d.data.prepared import load
from gan3d.errors import Gan3dError
from gan3d.render.photo import render_photo
from gan3d.render.rgb import AMBIENT, DEFAULT_LIGHT, DIFFUSE, render_rgb
from gan3d.render.rgb import random_background as _random_background
from gan3d.render.rgb import random_color as _random_color

PAIRED_FORMAT = "gan3d-paired-images"


PAIRED_FORMAT_VERSION = 1


PAPER_AZIMUTHS = tuple(float(a) for a in range(0, 360, 15))


PAPER_ELEVATIONS = (15.0, 30.0, 45.0)


VIEWS_PAPER: tuple[tuple[float, float], ...] = tuple(
    (az, el) for el in PAPER_ELEVATIONS for az in PAPER_AZIMUTHS
)
"""The 72 (azimuth, elevation) pairs in degrees: 24 azimuths every 15 degrees at elevations 15, 30,
45 (elevation-major: views 0..23 at 15 degrees, 24..47 at 30, 48..71 at 45)."""


def _views_list(views: Any) -> tuple[list[tuple[float, float]], int | None]:
    """(view list, per-shape count or None when every shape gets every view)."""
    if isinstance(views, (int, np.integer)) and not isinstance(views, bool):
        n = int(views)
        if not 1 <= n <= len(VIEWS_PAPER):
            raise Gan3dError(f"views must be a count in 1..{len(VIEWS_PAPER)} or a list of (azimuth, elevation), got {n}")
        return [tuple(v) for v in VIEWS_PAPER], n
    try:
        out = [(float(a), float(e)) for a, e in views]
    except (TypeError, ValueError):
        raise Gan3dError(f"views must be a count or a list of (azimuth, elevation) pairs, got {views!r}") from None
    if not out:
        raise Gan3dError("views is empty")
    for a, e in out:
        if not (math.isfinite(a) and -90.0 <= e <= 90.0):
            raise Gan3dError(f"bad view (azimuth {a}, elevation {e}): elevation must be in [-90, 90]")
    return out, None


# long function: one pass that renders every (shape, view) into a temporary folder and renames it at the end; its state (arrays, rng streams, progress) is shared by every step
def render_dataset(
    dataset_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    views: Any = VIEWS_PAPER,
    size: int = 256,
    split: str | int | None = None,
    classes: Iterable[str | int] | str | None = None,
    random_background: bool = False,
    random_color: bool = False,
    photo: bool = False,
    seed: int = 0,
    progress: bool = True,
    limit: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render every selected shape of a prepared voxel dataset from every view into ``out_dir``.

    ``views``: a list of (azimuth, elevation) pairs (default :data:`VIEWS_PAPER`, 72 per shape), or
    a count ``n``: each shape gets ``n`` distinct views of :data:`VIEWS_PAPER` drawn by
    ``np.random.default_rng([seed, shape_row])``. ``split``/``classes`` select shapes (as
    :meth:`VoxelDataset.select`); ``limit`` keeps the first ``limit`` selected shapes.
    ``random_background``/``random_color``: procedural backgrounds and surface colours per image
    (else white background, :data:`DEFAULT_COLOR`). ``photo``: photo-like images instead
    (:func:`gan3d.render.photo.render_photo`), which draw their own colours and backgrounds, so it
    does not combine with the other two. Shapes are drawn at the dataset's resolution.
    An existing ``out_dir`` is an error unless ``overwrite``. The folder format is in the module
    docstring. Returns a summary: ``path``, ``count``, ``shapes``, ``views_per_shape``, ``size``,
    ``seconds``, ``images_per_second``, ``bytes``.
    """
    from gan3d.data.prepared import load

    t0 = time.perf_counter()
    src = Path(dataset_path).resolve()
    out = Path(out_dir)
    size = int(size)
    if size < MIN_IMAGE_SIDE:
        raise Gan3dError(f"image size must be >= {MIN_IMAGE_SIDE}, got {size}")
    if out.exists() and not overwrite:
        raise Gan3dError("output folder already exists (choose another or pass overwrite)", out)
    if photo and (random_background or random_color):
        raise Gan3dError("photo-like renders draw their own backgrounds and colours: do not combine photo with random_background or random_color")
    view_list, per_shape = _views_list(views)
    ds = load(src)
    if split is not None or classes is not None:
        ds = ds.select(split=split, classes=classes)
    if limit is not None:
        ds = ds.subset(slice(0, max(0, int(limit))))
    if len(ds) == 0:
        raise Gan3dError("no shapes to render", src)
    rows = ds.indices
    k = per_shape if per_shape is not None else len(view_list)
    n = len(ds) * k
    need = check_free_space(out, n, size, what="rendering", hint=" (use fewer views, a smaller size or limit)")

    options = {
        "random_background": bool(random_background),
        "random_color": bool(random_color),
        "photo": bool(photo),
        "views_per_shape": int(k),
        "view_choice": "random subset per shape" if per_shape is not None else "all",
        "split": split,
        "classes": None if classes is None else ([classes] if isinstance(classes, str) else [str(c) for c in classes]),
        "limit": limit,
        "camera": "orthographic, bounding cube framed",
        "supersample": 2,
        "light": list(DEFAULT_LIGHT),
        "ambient": AMBIENT,
        "diffuse": DIFFUSE,
    }
    with new_folder(out) as tmp:
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        shape_index = np.repeat(rows.astype(np.int64), k)
        view_idx = np.empty(n, dtype=np.int64)
        label = np.repeat(ds.labels.astype(np.int64), k)
        split_arr = np.repeat(ds.split.astype(np.uint8), k)
        bar = _progress(len(ds), progress, "rendering")
        for pos in range(len(ds)):
            row = int(rows[pos])
            grid = ds.grids(pos)[0]
            if per_shape is not None:
                chosen = np.sort(np.random.default_rng([int(seed), row]).choice(len(view_list), k, replace=False))
            else:
                chosen = np.arange(k)
            for j, v in enumerate(chosen):
                i = pos * k + j
                v = int(v)
                view_idx[i] = v
                rng = np.random.default_rng([int(seed), row, v])
                az, el = view_list[v]
                if photo:
                    images[i] = render_photo(grid, azimuth_deg=az, elevation_deg=el, size=size, rng=rng).image
                    continue
                col = _random_color(rng) if random_color else None
                bg = _random_background(rng, size) if random_background else None
                images[i] = render_rgb(grid, azimuth_deg=az, elevation_deg=el, size=size, color=col, background=bg)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        images.flush()
        del images
        az_arr = np.array([view_list[v][0] for v in view_idx], dtype=np.float32)
        el_arr = np.array([view_list[v][1] for v in view_idx], dtype=np.float32)
        np.savez(
            tmp / "pairs.npz",
            shape_index=shape_index,
            view=view_idx,
            azimuth=az_arr,
            elevation=el_arr,
            label=label,
            split=split_arr,
        )
        meta = {
            "format": PAIRED_FORMAT,
            "format_version": PAIRED_FORMAT_VERSION,
            "source": str(src),
            "resolution": int(ds.resolution),
            "class_names": list(ds.class_names),
            "size": size,
            "seed": int(seed),
            "count": int(n),
            "views": [[float(a), float(e)] for a, e in view_list],
            "options": options,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    seconds = time.perf_counter() - t0
    return {
        "path": str(out),
        "count": int(n),
        "shapes": len(ds),
        "views_per_shape": int(k),
        "size": size,
        "seconds": seconds,
        "images_per_second": n / seconds if seconds > 0 else float("inf"),
        "bytes": int(need),
    }


def check_free_space(out: Path, n: int, size: int, *, what: str, hint: str = "") -> int:
    """Bytes that ``n`` RGB images of ``size`` px take; a Gan3dError naming ``out``'s (created) parent
    when its disk has less free."""
    need = n * size * size * 3
    out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise Gan3dError(
            f"{what} {n} images of {size}x{size} needs {need / 2**30:.1f} GiB, only {free / 2**30:.1f} GiB free{hint}",
            out.parent,
        )
    return need


@contextlib.contextmanager
def new_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; when the block ends without an error its files become
    world-readable and it is renamed to ``out`` (an existing ``out`` is swapped out and removed), so a
    folder with the final name is always whole. On an error the temporary folder is removed."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)
        if out.exists():  # overwrite: move the old folder aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="shape")


_PAIR_KEYS = {
    "shape_index": np.int64,
    "view": np.int64,
    "azimuth": np.float32,
    "elevation": np.float32,
    "label": np.int64,
    "split": np.uint8,
}


def _read_meta(root: Path) -> dict:
    meta_p = root / "meta.json"
    try:
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Gan3dError(f"unreadable JSON ({e})", meta_p) from None
    if not isinstance(meta, dict) or meta.get("format") != PAIRED_FORMAT:
        raise Gan3dError(f"not a {PAIRED_FORMAT} meta file (no 'format: {PAIRED_FORMAT}')", meta_p)
    try:
        version = int(meta.get("format_version", 0))
    except (TypeError, ValueError):
        raise Gan3dError(f"bad format_version {meta.get('format_version')!r}", meta_p) from None
    if version > PAIRED_FORMAT_VERSION:
        raise Gan3dError(f"format version {version} is newer than this gan3d reads ({PAIRED_FORMAT_VERSION})", meta_p)
    return meta


def _read_arrays(root: Path, n: int) -> dict[str, np.ndarray]:
    pairs_p = root / "pairs.npz"
    arrays = {}
    try:
        with np.load(pairs_p, allow_pickle=False) as z:
            for key, dt in _PAIR_KEYS.items():
                if key not in z.files:
                    raise Gan3dError(f"missing key {key!r}", pairs_p)
                arrays[key] = np.asarray(z[key]).astype(dt, copy=False)
    except Gan3dError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise Gan3dError(f"corrupt pairs file ({type(e).__name__}: {e})", pairs_p) from None
    for key, a in arrays.items():
        if a.shape != (n,):
            raise Gan3dError(f"{key} has shape {a.shape}, expected ({n},) like images.npy", pairs_p)
    return arrays


class PairedData:
    """THE reader of a paired image/shape folder written by :func:`render_dataset` (see the module
    docstring), checked on opening: ``meta.json`` format and version, ``images.npy`` uint8
    (N, S, S, 3), every ``pairs.npz`` array (N,), ``shape_index`` within the voxel dataset; any
    problem is one Gan3dError naming the folder or file. Read lazily: ``images`` stays a memory map
    and the shapes bit-packed in ``dataset``; :meth:`batch` reads only one batch.

    Attributes: ``folder`` (= ``path``), ``meta`` (dict), ``images`` (memmap uint8 (N, S, S, 3)),
    ``shape_index``, ``view``, ``label`` (int64 (N,)), ``azimuth``, ``elevation`` (float32 (N,),
    degrees), ``split`` (uint8 (N,), 0 train / 1 test), ``dataset`` (the VoxelDataset of the shapes),
    ``dataset_path`` (its file), ``resolution`` (R), ``image_size`` (S), ``class_names``.
    """

    def __init__(self, folder: str | os.PathLike):
        root = Path(folder)
        if not root.is_dir():
            raise Gan3dError("not a paired image folder (no such directory)", root)
        for name in ("meta.json", "images.npy", "pairs.npz"):
            if not (root / name).is_file():
                raise Gan3dError("missing (not a complete paired image folder)", root / name)
        self.folder = self.path = root
        self.meta = _read_meta(root)
        img_p = root / "images.npy"
        try:
            self.images = np.load(img_p, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:
            raise Gan3dError(f"corrupt image array ({e})", img_p) from None
        im = self.images
        if im.dtype != np.uint8 or im.ndim != 4 or im.shape[3] != 3 or im.shape[1] != im.shape[2]:
            raise Gan3dError(f"expected uint8 (N, S, S, 3) images, got {im.dtype} {im.shape}", img_p)
        for key, a in _read_arrays(root, int(im.shape[0])).items():
            setattr(self, key, a)
        dpath = Path(self.meta.get("dataset") or self.meta.get("source") or "")  # absolute path of the voxel file
        if not dpath.is_file() and (root / dpath.name).is_file():
            dpath = root / dpath.name  # a moved folder that carries its dataset along
        self.dataset = load(dpath)
        self.dataset_path = dpath
        if len(self.shape_index) and (self.shape_index.min() < 0 or self.shape_index.max() >= len(self.dataset)):
            raise Gan3dError(f"shape_index out of range for the {len(self.dataset)} shapes of {dpath}", root)
        self._check_labels(root, dpath)
        self.resolution = self.dataset.resolution
        self.image_size = int(im.shape[1])

    def _check_labels(self, root: Path, dpath: Path) -> None:
        """The folder's own class names and labels must be its shapes' (when the voxel file has them), so
        that training, which filters on ``label``, and scoring, which reads the shapes, agree."""
        own, theirs = self.meta.get("class_names"), getattr(self.dataset, "class_names", None)
        if own and theirs and tuple(own) != tuple(theirs):
            raise Gan3dError(f"meta.json names classes {', '.join(own)} but {dpath} has {', '.join(theirs)}", root)
        labels = getattr(self.dataset, "labels", None)
        if labels is not None and len(self.shape_index):
            wrong = np.flatnonzero(self.label != np.asarray(labels)[self.shape_index])
            if len(wrong):
                raise Gan3dError(f"image {int(wrong[0])}'s label is not its shape's class in {dpath}", root / "pairs.npz")

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("class_names") or getattr(self.dataset, "class_names", ()))

    def __len__(self) -> int:
        return len(self.shape_index)

    def rows(self, split: int, classes: Sequence[str] | None = None) -> np.ndarray:
        """Row numbers (int64) of the images of ``split`` (0 train, 1 test), of ``classes`` only if
        given (Gan3dError naming the folder for a class it does not have)."""
        rows = np.flatnonzero(self.split == split)
        if not classes:
            return rows
        self.check_classes(classes)
        names = list(self.class_names)
        return rows[np.isin(self.label[rows], [names.index(c) for c in classes])]

    def check_classes(self, classes: Sequence[str]) -> None:
        """Gan3dError naming the folder for the first of ``classes`` it does not have."""
        names = list(self.class_names)
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise Gan3dError(f"no class {unknown[0]!r} in the paired folder (it has {', '.join(names)})", self.folder)

    def batch(self, rows: np.ndarray, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 images (B, 3, image_size, image_size) in [0, 1] and shapes (B, 1, R, R, R)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # read the memmap in file order
        raw = np.empty((len(rows), *self.images.shape[1:]), np.uint8)
        raw[order] = self.images[rows[order]]
        img = torch.from_numpy(raw).permute(0, 3, 1, 2).float().div_(255.0)
        if img.shape[-1] != image_size:
            img = F.interpolate(img, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
            img = img.clamp_(0.0, 1.0)
        shapes = torch.from_numpy(self.dataset.grids(self.shape_index[rows])).unsqueeze(1)
        return img.contiguous(), shapes


def spread(rows: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``rows`` (none for ``n`` <= 0), evenly spaced over them (all of them when there
    are fewer): a test split is ordered by class, so its first rows would all be one class."""
    rows = np.asarray(rows)
    if n <= 0:
        return rows[:0]
    if len(rows) <= n:
        return rows
    return rows[np.linspace(0, len(rows) - 1, n).round().astype(np.int64)]  # n < len: no two round alike
