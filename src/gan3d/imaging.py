"""Images of voxel shapes paired with the shapes: training data for single-image reconstruction.

The 3D-VAE-GAN of Wu et al. (NIPS 2016) learns an image encoder from renderings of the training
shapes, 24 azimuths x 3 elevations = 72 views per shape (:data:`VIEWS_PAPER`). This module renders
such pictures (:func:`render_rgb`), writes whole paired datasets (:func:`render_dataset`), reads them
back memory-mapped (:func:`load_pairs`) and turns user photographs into network input
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
                                                    ``datasets.load(src).grids(row)`` is it)
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
the same seed gives the same bytes whatever subset is rendered.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import Gan3dError
from .render import _as_grid, _camera, _rasterize

__all__ = [
    "VIEWS_PAPER",
    "PAIRED_FORMAT",
    "render_rgb",
    "random_background",
    "random_color",
    "render_dataset",
    "load_pairs",
    "PairedImages",
    "prepare_image",
    "MIN_IMAGE_SIDE",
]

PAIRED_FORMAT = "gan3d-paired-images"
PAIRED_FORMAT_VERSION = 1

PAPER_AZIMUTHS = tuple(float(a) for a in range(0, 360, 15))
PAPER_ELEVATIONS = (15.0, 30.0, 45.0)
VIEWS_PAPER: tuple[tuple[float, float], ...] = tuple(
    (az, el) for el in PAPER_ELEVATIONS for az in PAPER_AZIMUTHS
)
"""The 72 (azimuth, elevation) pairs in degrees: 24 azimuths every 15 degrees at elevations 15, 30,
45 (elevation-major: views 0..23 at 15 degrees, 24..47 at 30, 48..71 at 45)."""

DEFAULT_COLOR = (0.62, 0.72, 0.90)
DEFAULT_LIGHT = (-0.25, 0.35, 0.90)
"""Light direction in camera coordinates (right, up, towards the viewer)."""
AMBIENT = 0.35
DIFFUSE = 0.65

MIN_IMAGE_SIDE = 16
"""Images smaller than this on either side are rejected by :func:`prepare_image`."""

_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)
_MAX_ELEVATION = 89.99  # the rasteriser's camera needs a horizontal "right" vector


# ----------------------------------------------------------------------------------------------
# rendering


def _color(color: Sequence[float] | None) -> np.ndarray:
    base = np.array(DEFAULT_COLOR if color is None else color, dtype=np.float64)
    if base.shape != (3,):
        raise ValueError(f"color must be three numbers (r, g, b), got {color!r}")
    if base.max() > 1.0:
        base = base / 255.0
    return np.clip(base, 0.0, 1.0)


def _background(background: np.ndarray | None, size: int) -> np.ndarray:
    """float (size, size, 3) in [0, 1]."""
    if background is None:
        return np.ones((size, size, 3))
    bg = np.asarray(background)
    if bg.ndim == 2:
        bg = np.repeat(bg[..., None], 3, axis=2)
    if bg.ndim != 3 or bg.shape[2] not in (3, 4):
        raise ValueError(f"background must be an (H, W, 3) image, got shape {bg.shape}")
    bg = bg[..., :3]
    if bg.shape[:2] != (size, size):
        from PIL import Image

        bg = np.asarray(
            Image.fromarray(np.asarray(bg, dtype=np.uint8)).resize((size, size), Image.BILINEAR)
        )
    if bg.dtype == np.uint8:
        return bg.astype(np.float64) / 255.0
    return np.clip(bg.astype(np.float64), 0.0, 1.0)


def render_rgb(
    grid: np.ndarray,
    *,
    azimuth_deg: float,
    elevation_deg: float,
    size: int = 256,
    color: Sequence[float] | None = None,
    background: np.ndarray | None = None,
    light: Sequence[float] = DEFAULT_LIGHT,
    supersample: int = 2,
) -> np.ndarray:
    """Shaded orthographic picture of a voxel grid: ``uint8 (size, size, 3)``.

    ``grid``: ``(X, Y, Z)`` occupancy (filled at ``>= 0.5``). The view frames the grid's bounding
    cube (see the module docstring for the camera). ``color``: RGB of the surface in ``[0, 1]`` (or
    ``0..255``). ``background``: ``None`` (white) or an ``(H, W, 3)`` image (resized to ``size`` if
    needed). ``light``: direction towards the light in camera coordinates (right, up, towards the
    viewer); each face gets ``color * (AMBIENT + DIFFUSE * max(0, n . light))``. Edges are
    anti-aliased by ``supersample`` x ``supersample`` sampling; the object is blended over the
    background by its pixel coverage.
    """
    filled = _as_grid(grid)
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    el = float(elevation_deg)
    if not -90.0 <= el <= 90.0:
        raise ValueError(f"elevation must be in [-90, 90] degrees, got {el}")
    el = max(-_MAX_ELEVATION, min(_MAX_ELEVATION, el))
    az = float(azimuth_deg)
    base = _color(color)
    bg = _background(background, size)
    if not filled.any():
        return np.clip(np.rint(bg * 255.0), 0, 255).astype(np.uint8)

    ss = max(1, int(supersample))
    big = size * ss
    _, orient, _ = _rasterize(filled, big, az, el)
    right, up, to_cam = _camera(az, el)
    lvec = np.asarray(light, dtype=np.float64)
    if lvec.shape != (3,) or not np.linalg.norm(lvec) > 0:
        raise ValueError(f"light must be a non-zero 3-vector, got {light!r}")
    lvec = lvec / np.linalg.norm(lvec)
    world_light = lvec[0] * right + lvec[1] * up + lvec[2] * to_cam
    shade6 = AMBIENT + DIFFUSE * np.clip(_NORMALS @ world_light, 0.0, None)
    table = np.concatenate([shade6, [0.0]])  # index -1 (background) -> last entry
    obj = orient >= 0
    shade = table[orient.astype(np.int64)]  # -1 picks the last entry
    if ss > 1:
        alpha = obj.reshape(size, ss, size, ss).mean(axis=(1, 3))
        shade_sum = np.where(obj, shade, 0.0).reshape(size, ss, size, ss).sum(axis=(1, 3))
        shade = np.where(alpha > 0, shade_sum / np.maximum(alpha * ss * ss, 1e-12), 0.0)
    else:
        alpha = obj.astype(np.float64)
    fg = np.clip(shade[..., None] * base[None, None, :], 0.0, 1.0)
    rgb = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """A random surface colour (RGB in [0, 1]): any hue, moderate saturation, not too dark."""
    import colorsys

    h = rng.random()
    s = rng.uniform(0.0, 0.8)
    v = rng.uniform(0.55, 1.0)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 3) -> np.ndarray:
    from PIL import Image

    small = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(small if channels == 3 else small[..., 0]).resize((size, size), Image.BICUBIC)
    out = np.asarray(img, dtype=np.float64) / 255.0
    return out if channels == 3 else out[..., None]


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A procedural background ``uint8 (size, size, 3)``: a linear colour gradient, smooth value
    noise or a base colour with random rectangles, with optional fine grain, drawn from ``rng``."""
    size = int(size)
    kind = int(rng.integers(3))
    c0, c1 = rng.random(3), rng.random(3)
    if kind == 0:  # linear gradient at a random angle
        ang = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
        t = np.clip(xx * math.cos(ang) + yy * math.sin(ang) + 0.5, 0.0, 1.0)[..., None]
        img = (1 - t) * c0 + t * c1
    elif kind == 1:  # smooth value noise between two colours, plus a coloured noise layer
        t = _smooth_noise(rng, size, int(rng.integers(2, 9)), 1)
        img = (1 - t) * c0 + t * c1
        img = 0.75 * img + 0.25 * _smooth_noise(rng, size, int(rng.integers(4, 17)))
    else:  # random rectangles over a base colour
        img = np.empty((size, size, 3))
        img[:] = c0
        for _ in range(int(rng.integers(3, 12))):
            x0, x1 = np.sort(rng.integers(0, size + 1, 2))
            y0, y1 = np.sort(rng.integers(0, size + 1, 2))
            img[y0:y1, x0:x1] = rng.random(3)
    if rng.random() < 0.5:  # fine grain
        img = img + rng.normal(0.0, rng.uniform(0.01, 0.06), (size, size, 1))
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# paired datasets


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
    (else white background, :data:`DEFAULT_COLOR`). Shapes are drawn at the dataset's resolution.
    An existing ``out_dir`` is an error unless ``overwrite``. The folder format is in the module
    docstring. Returns a summary: ``path``, ``count``, ``shapes``, ``views_per_shape``, ``size``,
    ``seconds``, ``images_per_second``, ``bytes``.
    """
    from . import datasets

    t0 = time.perf_counter()
    src = Path(dataset_path).resolve()
    out = Path(out_dir)
    size = int(size)
    if size < MIN_IMAGE_SIDE:
        raise Gan3dError(f"image size must be >= {MIN_IMAGE_SIDE}, got {size}")
    if out.exists() and not overwrite:
        raise Gan3dError("output folder already exists (choose another or pass overwrite)", out)
    view_list, per_shape = _views_list(views)
    ds = datasets.load(src)
    if split is not None or classes is not None:
        ds = ds.select(split=split, classes=classes)
    if limit is not None:
        ds = ds.subset(slice(0, max(0, int(limit))))
    if len(ds) == 0:
        raise Gan3dError("no shapes to render", src)
    rows = ds.indices
    k = per_shape if per_shape is not None else len(view_list)
    n = len(ds) * k
    need = n * size * size * 3
    out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise Gan3dError(
            f"rendering {n} images of {size}x{size} needs {need / 2**30:.1f} GiB, only "
            f"{free / 2**30:.1f} GiB free (use fewer views, a smaller size or limit)",
            out.parent,
        )

    options = {
        "random_background": bool(random_background),
        "random_color": bool(random_color),
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
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
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
                col = _random_color(rng) if random_color else None
                bg = _random_background(rng, size) if random_background else None
                az, el = view_list[v]
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


# module-level names shadowed by render_dataset's keyword arguments
_random_color = random_color
_random_background = random_background


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="shape")


@dataclass
class PairedImages:
    """A paired image dataset folder (see the module docstring); ``images`` is memory-mapped."""

    path: Path
    images: np.ndarray
    shape_index: np.ndarray
    view: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray
    label: np.ndarray
    split: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("class_names", ()))


_PAIR_KEYS = {
    "shape_index": np.int64,
    "view": np.int64,
    "azimuth": np.float32,
    "elevation": np.float32,
    "label": np.int64,
    "split": np.uint8,
}


def load_pairs(out_dir: str | os.PathLike) -> PairedImages:
    """Open a folder written by :func:`render_dataset`. Raises Gan3dError naming the missing or
    corrupt file."""
    root = Path(out_dir)
    if not root.is_dir():
        raise Gan3dError("not a paired image folder (no such directory)", root)
    meta_p, img_p, pairs_p = root / "meta.json", root / "images.npy", root / "pairs.npz"
    for p in (meta_p, img_p, pairs_p):
        if not p.is_file():
            raise Gan3dError("missing (not a complete paired image folder)", p)
    try:
        meta = json.loads(meta_p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Gan3dError(f"unreadable JSON ({e})", meta_p) from None
    if not isinstance(meta, dict) or meta.get("format") != PAIRED_FORMAT:
        raise Gan3dError(f"not a {PAIRED_FORMAT} meta file", meta_p)
    if int(meta.get("format_version", 0)) > PAIRED_FORMAT_VERSION:
        raise Gan3dError(f"format version {meta.get('format_version')} is newer than this gan3d reads", meta_p)
    try:
        images = np.load(img_p, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:
        raise Gan3dError(f"corrupt image array ({e})", img_p) from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise Gan3dError(f"expected uint8 (N, S, S, 3) images, got {images.dtype} {images.shape}", img_p)
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
        raise Gan3dError(f"corrupt pairs file ({e})", pairs_p) from None
    n = images.shape[0]
    for key, a in arrays.items():
        if a.shape != (n,):
            raise Gan3dError(f"{key} has shape {a.shape}, expected ({n},) like images.npy", pairs_p)
    return PairedImages(path=root, images=images, meta=meta, **arrays)


# ----------------------------------------------------------------------------------------------
# user images


def prepare_image(path_or_array: Any, *, size: int = 256) -> np.ndarray:
    """A photograph as network input: ``float32 (3, size, size)`` in ``[0, 1]``.

    Reads any image PIL reads (JPEG, PNG, ...), applies its EXIF orientation, converts grayscale,
    palette, CMYK and 16-bit images to RGB and composites transparency over white, scales the short
    side to ``size`` (bicubic) and crops the centre square. Also takes an ``(H, W)``, ``(H, W, 3)``
    or ``(H, W, 4)`` array (uint8, or float in [0, 1]). An unreadable, empty or truncated file, or
    an image smaller than :data:`MIN_IMAGE_SIDE` pixels on a side, raises Gan3dError naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = int(size)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    where = None
    if isinstance(path_or_array, (str, os.PathLike)):
        where = Path(path_or_array)
        if not where.is_file():
            raise Gan3dError("no such image file", where)
        try:
            with Image.open(where) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                img = _to_rgb(im)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            what = "empty file" if where.stat().st_size == 0 else f"unreadable image ({type(e).__name__}: {e})"
            raise Gan3dError(what, where) from None
    else:
        img = _array_to_pil(path_or_array)
    w, h = img.size
    if min(w, h) < MIN_IMAGE_SIDE:
        raise Gan3dError(f"image too small ({w}x{h}; at least {MIN_IMAGE_SIDE} px on each side)", where)
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _to_rgb(im):
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a * 255.0 if a.max() <= 1.0 else a
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _array_to_pil(a: Any):
    from PIL import Image

    arr = np.asarray(a)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # channels-first input
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise Gan3dError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {arr.shape}")
    if arr.size == 0:
        raise Gan3dError(f"image too small ({arr.shape}; at least {MIN_IMAGE_SIDE} px on each side)")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if np.issubdtype(np.asarray(a).dtype, np.floating) and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        im = Image.fromarray(arr, "L")
    elif arr.shape[2] == 3:
        im = Image.fromarray(arr, "RGB")
    else:
        im = Image.fromarray(arr, "RGBA")
    return _to_rgb(im)
