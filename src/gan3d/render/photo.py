"""Photo-like renders of voxel shapes, so that an image encoder trained on renders meets something
closer to photographs of furniture (``gan3d data render --photo``).

:func:`render_photo` draws every choice from one generator, in a fixed order, so the same generator
state always gives the same bytes:

* **object colour**: a free hue, a wood tone or a grey from near-white to near-black;
* **lighting**: a direction in camera coordinates, mostly from above (the up component is negative
  in one image of ten), 15 to 70 degrees off the view axis, with ambient and diffuse intensities
  drawn apart (``ambient`` 0.2-0.5, ``diffuse`` 0.45-0.85) and an exposure factor 0.8-1.2;
* **framing**: the object's longer projected side spans 45-95 % of the frame (the object is
  rendered at that scale, not resampled), placed anywhere it fits whole; in one image of five it
  is pushed past one edge by 3-12 % of its own extent there (:data:`CUT_SHARE`, :data:`MAX_CUT`);
* **background**: a wall and a floor split at a slightly tilted horizon, which lies above the
  object's lowest point; the wall a muted colour with a light fall-off, smooth texture and now and
  then stripes, a bright window-like panel or a skirting board; the floor wood planks, tiles or
  carpet-like noise, darker towards the back; a soft contact shadow under the object;
* **occlusion**: in a share :data:`OCCLUSION_SHARE` of the images a foreground shape (an ellipse, a
  box, a polygon or a pole through the frame) in its own colour covers part of the object (5-60 %
  of its pixels where a few tries allow);
* **camera**: sensor noise on the whole picture and, in half of the images, a slight blur.

Nothing is downloaded: every texture is procedural.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gan3d.render.raster import _as_grid, project_points
from gan3d.render.rgb import _MAX_ELEVATION, _smooth_noise, random_color, render_layer

OCCLUSION_SHARE = 0.3
"""Share of the photo-like images with a foreground occluder."""


CUT_SHARE = 0.2
"""Share of the images whose object reaches past one edge of the frame."""


MAX_CUT = 0.12
"""At most this fraction of the object's extent (along the cut axis) lies outside the frame."""


SPAN = (0.45, 0.95)
"""Range of the object's longer projected side as a fraction of the frame."""


@dataclass
class PhotoRender:
    """One photo-like picture and its layers: ``image`` uint8 (S, S, 3); ``object_alpha`` float
    (S, S), the object's coverage before occlusion; ``occluder_alpha`` float (S, S), zero when
    there is none; ``params``: the drawn choices (colour, light, scale, placement, ...)."""

    image: np.ndarray
    object_alpha: np.ndarray
    occluder_alpha: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def occluded(self) -> bool:
        return bool((self.object_alpha * self.occluder_alpha).sum() > 0)


def photo_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """An object colour: half free hues (:func:`random_color`), 30 % wood tones, 20 % greys."""
    u = rng.random()
    if u < 0.5:
        return random_color(rng)
    if u < 0.8:
        h, s, v = rng.uniform(0.04, 0.12), rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.85)
    else:
        h, s, v = rng.random(), rng.uniform(0.0, 0.08), rng.uniform(0.12, 0.95)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))


def _light(rng: np.random.Generator) -> dict[str, Any]:
    off = math.radians(rng.uniform(15, 70))  # angle from the view axis
    turn = rng.uniform(math.radians(20), math.radians(160))  # above the horizon of the picture
    if rng.random() < 0.1:
        turn = -turn
    direction = (math.cos(turn) * math.sin(off), math.sin(turn) * math.sin(off), math.cos(off))
    return dict(light=direction, ambient=float(rng.uniform(0.2, 0.5)), diffuse=float(rng.uniform(0.45, 0.85)),
                exposure=float(rng.uniform(0.8, 1.2)))


def _object_box(filled: np.ndarray, az: float, el: float) -> np.ndarray:
    """(col0, row0, col1, row1) of the object in a cube-framed picture of side 1."""
    ijk = np.argwhere(filled).astype(np.float64)
    corners = (ijk[:, None, :] + np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64)[None]).reshape(-1, 3)
    el = max(-_MAX_ELEVATION, min(_MAX_ELEVATION, el))
    pts = project_points(corners, filled.shape, size=1, azimuth=az, elevation=el)
    return np.concatenate([pts.min(0), pts.max(0)])


def _placement(rng: np.random.Generator, box: np.ndarray, size: int) -> dict[str, Any]:
    """Render side ``m`` and paste offset of the object so that its box spans ``SPAN`` of the frame
    and fits whole, or, in :data:`CUT_SHARE` of the images, overhangs one edge by at most MAX_CUT."""
    ext = np.maximum(box[2:] - box[:2], 1e-6)  # (width, height) at side 1
    m = max(2, int(round(rng.uniform(*SPAN) * size / ext.max())))
    w, h = ext * m
    lo, hi = np.array([w, h]) / 2, size - np.array([w, h]) / 2
    centre = np.where(hi > lo, lo + rng.random(2) * np.maximum(hi - lo, 0), size / 2)
    cut = None
    if rng.random() < CUT_SHARE:
        axis, side, frac = int(rng.integers(2)), int(rng.integers(2)), float(rng.uniform(0.03, MAX_CUT))
        extent = (w, h)[axis]
        centre[axis] = extent / 2 - frac * extent if side == 0 else size - extent / 2 + frac * extent
        cut = dict(axis="xy"[axis], side=("low", "high")[side], fraction=frac)
    box_centre = (box[:2] + box[2:]) / 2 * m
    offset = np.rint(centre - box_centre).astype(int)  # where the m x m render's corner lands
    return dict(render_size=m, offset=(int(offset[0]), int(offset[1])), cut=cut)


def _paste(layer: np.ndarray, offset: tuple[int, int], size: int) -> np.ndarray:
    """``layer`` (m, m, ...) placed with its corner at (col, row) ``offset`` in a zero (size, size, ...) canvas."""
    out = np.zeros((size, size, *layer.shape[2:]), dtype=layer.dtype)
    m = layer.shape[0]
    c0, r0 = offset
    src_r, src_c = slice(max(0, -r0), min(m, size - r0)), slice(max(0, -c0), min(m, size - c0))
    dst_r, dst_c = slice(max(0, r0), min(size, r0 + m)), slice(max(0, c0), min(size, c0 + m))
    if src_r.start < src_r.stop and src_c.start < src_c.stop:
        out[dst_r, dst_c] = layer[src_r, src_c]
    return out


def _wall(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    base = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.55, 0.97)))
    ang = rng.uniform(0, 2 * math.pi)
    fall = 1.0 - rng.uniform(0.05, 0.3) * (0.5 + 0.5 * (np.cos(ang) * xx + np.sin(ang) * yy))  # light fall-off
    img = base[None, None] * fall[..., None]
    img = img * (1 + rng.uniform(0.02, 0.08) * (_smooth_noise(rng, size, int(rng.integers(3, 12))) - 0.5))
    kind = rng.random()
    if kind < 0.25:  # wallpaper stripes
        period = rng.uniform(0.03, 0.12)
        stripes = (np.floor(xx / period) % 2)[..., None]
        img = img * (1 - rng.uniform(0.03, 0.12) * stripes)
    elif kind < 0.4:  # a bright window-like panel
        x0, y0 = rng.uniform(0.0, 0.7), rng.uniform(0.0, 0.3)
        inside = (xx >= x0) & (xx < x0 + rng.uniform(0.15, 0.4)) & (yy >= y0) & (yy < y0 + rng.uniform(0.15, 0.4))
        img = np.where(inside[..., None], np.minimum(1.0, img * 0.3 + 0.75), img)
    return img


def _floor(rng: np.random.Generator, size: int, depth: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Floor colour over ``depth`` (0 at the horizon, 1 at the picture's bottom edge)."""
    u = rng.random()
    if u < 0.5:
        base = np.array(colorsys.hsv_to_rgb(rng.uniform(0.04, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.8)))
    else:
        base = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.9)))
    img = base[None, None] * (0.75 + 0.25 * depth)[..., None]  # darker towards the back
    img = img * (1 + rng.uniform(0.04, 0.15) * (_smooth_noise(rng, size, int(rng.integers(4, 20))) - 0.5))
    kind = rng.random()
    persp = np.log1p(8 * np.maximum(depth, 0)) / math.log(9)  # lines crowd towards the horizon
    if kind < 0.45:  # planks: lines across, spaced wider towards the viewer
        n = rng.uniform(5, 14)
        line = np.abs(((persp * n) % 1.0) - 0.5) > 0.45
        img = img * (1 - rng.uniform(0.1, 0.3) * line[..., None])
    elif kind < 0.65:  # tiles: lines across and lines converging to a vanishing point
        n = rng.uniform(3, 8)
        across = np.abs(((persp * n) % 1.0) - 0.5) > 0.46
        along = np.abs((((xx - 0.5) / np.maximum(depth, 0.05) * n / 4) % 1.0) - 0.5) > 0.46
        img = img * (1 - rng.uniform(0.15, 0.35) * (across | along)[..., None])
    return img


def photo_background(rng: np.random.Generator, size: int, horizon: float) -> np.ndarray:
    """A wall above a floor, float (size, size, 3) in [0, 1]; ``horizon``: the split's mean row as a
    fraction of the height (the line is tilted by up to 3 degrees)."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    tilt = math.tan(math.radians(rng.uniform(-3, 3)))
    line = horizon + (xx - 0.5) * tilt
    wall, floor = _wall(rng, size, yy, xx), _floor(rng, size, np.clip((yy - line) / np.maximum(1 - line, 1e-3), 0, 1), xx)
    img = np.where((yy < line)[..., None], wall, floor)
    if rng.random() < 0.4:  # a skirting board along the horizon
        band = (yy >= line - rng.uniform(0.01, 0.04)) & (yy < line)
        shade = np.array([0.95] * 3) if rng.random() < 0.5 else floor.mean((0, 1)) * 0.7
        img = np.where(band[..., None], shade[None, None], img)
    return np.clip(img, 0.0, 1.0)


def _soft(mask: np.ndarray, radius: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.clip(np.rint(mask * 255), 0, 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64) / 255.0


def _occluder(rng: np.random.Generator, size: int, box_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour (size, size, 3), coverage (size, size)) of one foreground shape over the object's box."""
    from PIL import Image, ImageDraw

    ss = 4  # drawn 4x larger and averaged: anti-aliased edges
    c0, r0, c1, r1 = box_px
    w, h = max(c1 - c0, 2.0), max(r1 - r0, 2.0)
    cx, cy = rng.uniform(c0, c1), rng.uniform(r0, r1)
    kind = int(rng.integers(4))
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    rw, rh = rng.uniform(0.15, 0.35) * w, rng.uniform(0.15, 0.35) * h
    if kind == 0:
        draw.ellipse([ss * (cx - rw), ss * (cy - rh), ss * (cx + rw), ss * (cy + rh)], fill=255)
    elif kind == 1:
        draw.rectangle([ss * (cx - rw), ss * (cy - rh), ss * (cx + rw), ss * (cy + rh)], fill=255)
    elif kind == 2:
        k = int(rng.integers(3, 7))
        ang = np.sort(rng.uniform(0, 2 * math.pi, k))
        rad = rng.uniform(0.5, 1.0, k)
        draw.polygon([(ss * (cx + rw * r * math.cos(a)), ss * (cy + rh * r * math.sin(a))) for a, r in zip(ang, rad)], fill=255)
    else:  # a pole or a chair leg in front: a thin bar through the whole frame
        half = rng.uniform(0.04, 0.12) * w
        lean = rng.uniform(-0.15, 0.15) * size
        draw.polygon([(ss * (cx - half - lean), 0), (ss * (cx + half - lean), 0), (ss * (cx + half + lean), ss * size),
                      (ss * (cx - half + lean), ss * size)], fill=255)
    alpha = np.asarray(canvas, dtype=np.float64).reshape(size, ss, size, ss).mean(axis=(1, 3)) / 255.0
    base = np.array(photo_color(rng))
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    ramp = 0.75 + 0.35 * (0.5 + 0.5 * (np.cos(ang) * xx + np.sin(ang) * yy))
    colour = np.clip(base[None, None] * ramp[..., None] * (1 + 0.1 * (_smooth_noise(rng, size, 6) - 0.5)), 0, 1)
    return colour, alpha


# long function: the fixed order of draws that makes the bytes reproducible reads best in one place
def render_photo(
    grid: np.ndarray,
    *,
    azimuth_deg: float,
    elevation_deg: float,
    size: int,
    rng: np.random.Generator,
    occlusion: float = OCCLUSION_SHARE,
    supersample: int = 2,
) -> PhotoRender:
    """A photo-like picture of ``grid`` seen from (``azimuth_deg``, ``elevation_deg``), every random
    choice drawn from ``rng`` (see the module docstring). ``occlusion``: the chance of a foreground
    occluder; its shape is drawn whatever the chance, so 0 gives the same picture without it."""
    filled = _as_grid(grid)
    size = int(size)
    color = photo_color(rng)
    lit = _light(rng)
    if filled.any():
        box = _object_box(filled, float(azimuth_deg), float(elevation_deg))
    else:
        box = np.array([0.25, 0.25, 0.75, 0.75])
    place = _placement(rng, box, size)
    m, offset = place["render_size"], place["offset"]
    fg, alpha = render_layer(filled, azimuth_deg=azimuth_deg, elevation_deg=elevation_deg, size=m, color=color,
                             light=lit["light"], ambient=lit["ambient"], diffuse=lit["diffuse"], supersample=supersample)
    fg, alpha = _paste(fg * lit["exposure"], offset, size), _paste(alpha, offset, size)
    box_px = np.array([box[0] * m + offset[0], box[1] * m + offset[1], box[2] * m + offset[0], box[3] * m + offset[1]])
    horizon = min(rng.uniform(0.2, 0.6), box_px[3] / size - 0.12 * (box_px[3] - box_px[1]) / size)
    bg = photo_background(rng, size, horizon)
    # a contact shadow: the object's lowest third, dropped a little and blurred
    rows = (np.arange(size) + 0.5)[:, None]
    near_floor = np.clip(1 - (box_px[3] - rows) / (0.35 * max(box_px[3] - box_px[1], 1.0)), 0, 1)
    shadow = _soft(_paste(alpha * near_floor, (0, int(round(0.02 * size))), size), 0.03 * size + 0.5)
    bg = bg * (1 - rng.uniform(0.25, 0.55) * shadow[..., None])
    img = alpha[..., None] * np.clip(fg, 0, 1) + (1 - alpha[..., None]) * bg
    wants = rng.random() < occlusion
    occ_alpha = np.zeros((size, size))
    tries = 0
    for tries in range(1, 6):  # a shape that covers a sensible part of the object, if a few tries find one
        occ_colour, cand = _occluder(rng, size, box_px)
        part = (alpha * cand).sum() / max(alpha.sum(), 1e-9)
        if 0.05 <= part <= 0.6:
            break
    if wants:
        occ_alpha = cand
        img = occ_alpha[..., None] * occ_colour + (1 - occ_alpha[..., None]) * img
    noise = rng.normal(0.0, rng.uniform(0.004, 0.025), (size, size, 1))
    blur = rng.uniform(0.3, 0.9) if rng.random() < 0.5 else 0.0
    img = np.clip(img + noise, 0, 1)
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if blur > 0:
        from PIL import Image, ImageFilter

        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(blur)))
    params = dict(color=color, **lit, **place, horizon=float(horizon), occluder=bool(wants), occluder_tries=tries, blur=float(blur))
    return PhotoRender(image=out, object_alpha=alpha, occluder_alpha=occ_alpha, params=params)
