"""RGB renders of voxel shapes for the 3D-VAE-GAN's image/shape pairs: a coloured, lit view from
any azimuth and elevation over a plain or random background.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from gan3d.render.raster import _as_grid, _camera, _rasterize

DEFAULT_COLOR = (0.62, 0.72, 0.90)


DEFAULT_LIGHT = (-0.25, 0.35, 0.90)
"""Light direction in camera coordinates (right, up, towards the viewer)."""


AMBIENT = 0.35


DIFFUSE = 0.65


_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)


_MAX_ELEVATION = 89.99  # the rasteriser's camera needs a horizontal "right" vector


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
    ambient: float = AMBIENT,
    diffuse: float = DIFFUSE,
) -> np.ndarray:
    """Shaded orthographic picture of a voxel grid: ``uint8 (size, size, 3)``.

    ``grid``: ``(X, Y, Z)`` occupancy (filled at ``>= 0.5``). The view frames the grid's bounding
    cube (see the module docstring for the camera). ``color``: RGB of the surface in ``[0, 1]`` (or
    ``0..255``). ``background``: ``None`` (white) or an ``(H, W, 3)`` image (resized to ``size`` if
    needed). ``light``: direction towards the light in camera coordinates (right, up, towards the
    viewer); each face gets ``color * (ambient + diffuse * max(0, n . light))``. Edges are
    anti-aliased by ``supersample`` x ``supersample`` sampling; the object is blended over the
    background by its pixel coverage.
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    bg = _background(background, size)
    fg, alpha = render_layer(grid, azimuth_deg=azimuth_deg, elevation_deg=elevation_deg, size=size, color=color, light=light,
                             supersample=supersample, ambient=ambient, diffuse=diffuse)
    rgb = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def render_layer(
    grid: np.ndarray,
    *,
    azimuth_deg: float,
    elevation_deg: float,
    size: int = 256,
    color: Sequence[float] | None = None,
    light: Sequence[float] = DEFAULT_LIGHT,
    supersample: int = 2,
    ambient: float = AMBIENT,
    diffuse: float = DIFFUSE,
) -> tuple[np.ndarray, np.ndarray]:
    """The object of :func:`render_rgb` before it is laid over a background: ``(colour float
    (size, size, 3) in [0, 1], coverage float (size, size) in [0, 1])``."""
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
    if not filled.any():
        return np.zeros((size, size, 3)), np.zeros((size, size))

    ss = max(1, int(supersample))
    big = size * ss
    _, orient, _ = _rasterize(filled, big, az, el)
    right, up, to_cam = _camera(az, el)
    lvec = np.asarray(light, dtype=np.float64)
    if lvec.shape != (3,) or not np.linalg.norm(lvec) > 0:
        raise ValueError(f"light must be a non-zero 3-vector, got {light!r}")
    lvec = lvec / np.linalg.norm(lvec)
    world_light = lvec[0] * right + lvec[1] * up + lvec[2] * to_cam
    shade6 = ambient + diffuse * np.clip(_NORMALS @ world_light, 0.0, None)
    table = np.concatenate([shade6, [0.0]])  # index -1 (background) -> last entry
    obj = orient >= 0
    shade = table[orient.astype(np.int64)]  # -1 picks the last entry
    if ss > 1:
        alpha = obj.reshape(size, ss, size, ss).mean(axis=(1, 3))
        shade_sum = np.where(obj, shade, 0.0).reshape(size, ss, size, ss).sum(axis=(1, 3))
        shade = np.where(alpha > 0, shade_sum / np.maximum(alpha * ss * ss, 1e-12), 0.0)
    else:
        alpha = obj.astype(np.float64)
    return np.clip(shade[..., None] * base[None, None, :], 0.0, 1.0), alpha


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
