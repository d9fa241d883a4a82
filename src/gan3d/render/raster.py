"""Pictures of voxel shapes: a shaded 3/4 view per shape, tiled into one labelled PNG.

The renderer is a small vectorised rasteriser. It draws the exposed voxel faces that face the
camera (a filled voxel's face whose neighbour is empty) as exact parallelograms in an orthographic
view, keeps the nearest face per pixel with a depth buffer, shades each face orientation by a fixed
directional light (Lambert), darkens depth discontinuities into a soft outline and averages a 2x
supersampled image down to the output size.

The default view looks from the front-left and above (azimuth 45 degrees, elevation 30 degrees):
with the convention of :mod:`gan3d.voxels` (z up, objects facing -y) the camera sees the top
(+z), front (-y) and left (-x) faces; z is up on screen, +x goes to the right and down the screen a
little, +y goes to the left. The picture frames the grid's bounding cube, not the shape, so sizes
are comparable across shapes of the same resolution.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path
from gan3d.voxels import binarize

MAX_IMAGE_SIZE = 4096  # largest picture edge (pixels per shape) gan3d renders

DEFAULT_COLOR = (0.62, 0.72, 0.90)
"""Base colour (RGB in [0, 1]) of the voxels before shading."""


"""Base colour (RGB in [0, 1]) of the voxels before shading."""


BACKGROUND = 255


_LIGHT = np.array([-0.30, -0.55, 0.78])


_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)


_AMBIENT = 0.30


_DIFFUSE = 0.72


_OUTLINE_DARKEN = 0.45  # outline pixels keep this fraction of their colour (before downsampling)


_FILL = 0.96  # fraction of the picture's half-size the bounding cube's projection reaches


_CHUNK = 100_000  # faces rasterised at a time, bounds memory for noisy grids


def _camera(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, towards_camera) unit vectors for a camera at the given azimuth/elevation (degrees).

    Azimuth 0 looks at the object's front (from -y); positive azimuth moves the camera to -x.
    """
    az, el = math.radians(azimuth), math.radians(elevation)
    to_cam = np.array([-math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
    view = -to_cam
    right = np.cross(view, [0.0, 0.0, 1.0])
    n = np.linalg.norm(right)
    if n < 1e-9:
        raise ValueError("elevation must be strictly between -90 and 90 degrees")
    right /= n
    up = np.cross(right, view)
    return right, up, to_cam


def _as_grid(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid)
    if g.ndim == 4 and g.shape[0] == 1:
        g = g[0]
    if g.ndim != 3:
        raise ValueError(f"expected a 3D voxel grid, got shape {np.asarray(grid).shape}")
    return binarize(g)


def _visible_faces(filled: np.ndarray, to_cam: np.ndarray):
    """Yield (axis, sign, ijk) for each face orientation that faces the camera."""
    padded = np.pad(filled, 1)
    inner = (slice(1, -1),) * 3
    for axis in range(3):
        for sign in (-1, 1):
            if sign * to_cam[axis] <= 1e-6:
                continue  # back-facing (or edge-on) orientation, never visible on a closed surface
            neighbour = np.roll(padded, -sign, axis=axis)[inner]
            ijk = np.argwhere(filled & ~neighbour)
            if len(ijk):
                yield axis, sign, ijk


def _frame(shape: Sequence[int], size: int, azimuth: float, elevation: float):
    """Projection of world points to screen pixels framing the grid's bounding cube.

    Returns ``(proj (2, 3), offset (2,), scale)`` with ``(col, row) = proj @ p + offset`` in pixel
    units (pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``) and ``scale`` pixels per world unit.
    The cube's side is the grid's largest dimension and it is centred on the grid's box.
    """
    right, up, _ = _camera(azimuth, elevation)
    side = float(max(shape))
    centre = np.array(shape, dtype=np.float64) / 2.0
    rel = (np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) - 0.5) * side  # cube corners - centre
    half = max(np.abs(rel @ right).max(), np.abs(rel @ up).max())
    scale = (size / 2.0) * _FILL / half  # pixels per world unit
    proj = np.stack([right * scale, -up * scale], axis=0)
    offset = np.array([size / 2.0, size / 2.0]) - proj @ centre
    return proj, offset, scale


def project_points(
    points: np.ndarray,
    grid_shape: Sequence[int],
    *,
    size: int = 128,
    azimuth: float = 45.0,
    elevation: float = 30.0,
) -> np.ndarray:
    """Where world points land in a :func:`render_voxels` picture of a grid of ``grid_shape``:
    ``(N, 2)`` float ``(col, row)`` in output pixels (``row`` grows downwards)."""
    proj, offset, _ = _frame(tuple(grid_shape), size, azimuth, elevation)
    return np.asarray(points, dtype=np.float64).reshape(-1, 3) @ proj.T + offset


def _rasterize(filled: np.ndarray, size: int, azimuth: float, elevation: float, *, with_voxel: bool = False):
    """Depth buffer and per-pixel face orientation (index into 0..5, -1 = background) at ``size``.

    Pixels whose centre lies in a face's parallelogram are covered; in addition every face covers
    the pixel holding its centre, so faces smaller than a pixel (big grids, small pictures) still
    leave a mark and a non-empty grid never renders blank.

    With ``with_voxel`` a fourth value is returned: int64 ``(size, size)`` flat index (into
    ``filled.ravel()``) of the voxel whose face each pixel shows, -1 for background.
    """
    _, _, to_cam = _camera(azimuth, elevation)
    view = -to_cam
    npix = size * size
    depth = np.full(npix, np.inf)
    orient = np.full(npix, -1, dtype=np.int8)
    voxel = np.full(npix, -1, dtype=np.int64) if with_voxel else None
    proj, offset, scale = _frame(filled.shape, size, azimuth, elevation)

    for axis, sign, ijk in _visible_faces(filled, to_cam):
        b, c = (axis + 1) % 3, (axis + 2) % 3
        origin_off = np.zeros(3)
        origin_off[axis] = 1.0 if sign > 0 else 0.0
        e1 = np.zeros(3)
        e1[b] = 1.0
        e2 = np.zeros(3)
        e2[c] = 1.0
        a_vec, b_vec = proj @ e1, proj @ e2  # screen edge vectors (pixels)
        mat = np.stack([a_vec, b_vec], axis=1)  # screen = origin + mat @ (s, t)
        det = np.linalg.det(mat)
        if abs(det) < 1e-9:
            continue
        inv = np.linalg.inv(mat)
        d1, d2 = view @ e1, view @ e2  # depth change along the face edges
        lo = np.minimum(0, a_vec) + np.minimum(0, b_vec)
        ext = np.abs(a_vec) + np.abs(b_vec)
        kx, ky = int(math.ceil(ext[0])) + 1, int(math.ceil(ext[1])) + 1
        gx, gy = np.meshgrid(np.arange(kx), np.arange(ky), indexing="xy")
        gx, gy = gx.ravel(), gy.ravel()
        code = axis * 2 + (sign > 0)
        for start in range(0, len(ijk), _CHUNK):
            pts = ijk[start : start + _CHUNK].astype(np.float64) + origin_off  # face origins (n, 3)
            o_scr = pts @ proj.T + offset  # (n, 2)
            o_dep = pts @ view
            # pixel centres (col + 0.5, row + 0.5) inside the face's bounding box
            col0 = np.ceil(o_scr[:, 0] + lo[0] - 0.5).astype(np.int64)
            row0 = np.ceil(o_scr[:, 1] + lo[1] - 0.5).astype(np.int64)
            cols = col0[:, None] + gx[None, :]
            rows = row0[:, None] + gy[None, :]
            dx = cols + 0.5 - o_scr[:, 0:1]
            dy = rows + 0.5 - o_scr[:, 1:2]
            s = inv[0, 0] * dx + inv[0, 1] * dy
            t = inv[1, 0] * dx + inv[1, 1] * dy
            inside = (s >= 0) & (s < 1) & (t >= 0) & (t < 1)
            # the pixel holding the face centre is always covered (depth of the centre)
            cen = o_scr + 0.5 * (a_vec + b_vec)
            ccol = np.floor(cen[:, 0:1]).astype(np.int64)
            crow = np.floor(cen[:, 1:2]).astype(np.int64)
            cols = np.concatenate([cols, ccol], axis=1)
            rows = np.concatenate([rows, crow], axis=1)
            s = np.concatenate([s, np.full_like(ccol, 0.5, dtype=np.float64)], axis=1)
            t = np.concatenate([t, np.full_like(ccol, 0.5, dtype=np.float64)], axis=1)
            inside = np.concatenate([inside, np.ones_like(ccol, dtype=bool)], axis=1)
            inside &= (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
            key = (rows * size + cols)[inside]
            dep = (o_dep[:, None] + s * d1 + t * d2)[inside]
            # keep the nearest sample per pixel: sort by depth, first occurrence of each pixel
            order = np.argsort(dep, kind="stable")
            key, dep = key[order], dep[order]
            uniq, first = np.unique(key, return_index=True)
            dep = dep[first]
            closer = dep < depth[uniq]
            depth[uniq[closer]] = dep[closer]
            orient[uniq[closer]] = code
            if voxel is not None:
                ids = np.ravel_multi_index(ijk[start : start + _CHUNK].T, filled.shape)
                ids = np.broadcast_to(ids[:, None], inside.shape)[inside][order][first]
                voxel[uniq[closer]] = ids[closer]
    if voxel is not None:
        return depth.reshape(size, size), orient.reshape(size, size), scale, voxel.reshape(size, size)
    return depth.reshape(size, size), orient.reshape(size, size), scale


_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)


def render_voxels(
    grid: np.ndarray,
    *,
    size: int = 128,
    color: Sequence[float] | None = None,
    azimuth: float = 45.0,
    elevation: float = 30.0,
    outline: bool = True,
    supersample: int = 2,
    voxel_colors: np.ndarray | None = None,
) -> np.ndarray:
    """Shaded picture of a voxel grid: ``uint8 (size, size, 3)`` on a white background.

    ``grid`` is ``(X, Y, Z)`` occupancy (filled at ``>= 0.5``; a leading channel axis of 1 is
    accepted). ``color`` is RGB in ``[0, 1]`` (or ``0..255`` integers). The three visible face
    orientations get clearly different shades (top lightest, front middle, left side darkest), a
    mild depth cue darkens far surfaces, and with ``outline`` depth discontinuities and the
    silhouette are darkened. An empty grid gives a white tile.

    ``voxel_colors``, optional float ``(X, Y, Z, 3)`` RGB in ``[0, 1]``, gives every voxel its own
    base colour (``color`` is then unused); e.g. changed voxels in red over a blue shape.
    """
    filled = _as_grid(grid)
    size = int(size)
    if not 1 <= size <= MAX_IMAGE_SIZE:
        raise ValueError(f"size must be in 1..{MAX_IMAGE_SIZE}, got {size}")
    base = np.array(DEFAULT_COLOR if color is None else color, dtype=np.float64)
    if base.shape != (3,):
        raise ValueError(f"color must be three numbers (r, g, b), got {color!r}")
    if base.max() > 1.0:
        base = base / 255.0
    if voxel_colors is not None:
        voxel_colors = np.asarray(voxel_colors, dtype=np.float64)
        if voxel_colors.shape != (*filled.shape, 3):
            raise ValueError(f"voxel_colors must have shape {(*filled.shape, 3)}, got {voxel_colors.shape}")
    if not filled.any():
        return np.full((size, size, 3), BACKGROUND, dtype=np.uint8)

    ss = max(1, int(supersample))
    big = size * ss
    if voxel_colors is None:
        depth, orient, scale = _rasterize(filled, big, azimuth, elevation)
    else:
        depth, orient, scale, voxel = _rasterize(filled, big, azimuth, elevation, with_voxel=True)
    obj = orient >= 0

    _, _, to_cam = _camera(azimuth, elevation)
    lambert = _AMBIENT + _DIFFUSE * np.clip(_NORMALS @ _LIGHT, 0.0, None)
    # faces turned away from the light are only seen at unusual views; keep them distinguishable
    shade = np.where(obj, lambert[np.maximum(orient, 0)], 1.0)

    # depth cue: up to 15 % darker at the far side of the grid's bounding cube
    side = float(max(filled.shape))
    centre_depth = -(np.array(filled.shape) / 2.0) @ to_cam
    radius = side * math.sqrt(3) / 2
    rel = np.where(obj, (depth - centre_depth + radius) / (2 * radius), 0.0)
    shade = shade * (1.0 - 0.15 * np.clip(rel, 0.0, 1.0))

    if outline:
        # an object pixel is on an outline when a 4-neighbour is background or much farther away;
        # the threshold exceeds the depth change along a visible face and across a voxel step
        thresh = 2.5 + 2.0 / scale
        far = 1e30  # finite stand-in for the background's infinite depth
        d = np.where(obj, depth, far)
        pad = np.pad(d, 1, constant_values=far)
        edge = np.zeros_like(obj)
        for nb in (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]):
            edge |= nb - d > thresh
        edge &= obj
        shade = np.where(edge, shade * _OUTLINE_DARKEN, shade)

    if voxel_colors is not None:
        base = voxel_colors.reshape(-1, 3)[np.maximum(voxel, 0)]  # (big, big, 3) per-pixel base colour
    rgb = np.where(obj[..., None], shade[..., None] * base, 1.0)
    if ss > 1:
        rgb = rgb.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, *, size: int = 128, resolution: int = 64, **kwargs) -> np.ndarray:
    """Picture of a triangle mesh, by voxelizing it to ``resolution^3`` and :func:`render_voxels`.

    The mesh is scaled uniformly to fit the grid (longest side = ``resolution``) and is assumed to
    be z up already. Its surface is voxelized (and filled when it is closed).
    """
    import trimesh

    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float64), faces=np.asarray(faces), process=False)
    if len(mesh.faces) == 0:
        return render_voxels(np.zeros((resolution,) * 3, dtype=bool), size=size, **kwargs)
    lo, hi = mesh.bounds
    extent = float((hi - lo).max()) or 1.0
    pitch = extent / (resolution - 1)
    vox = mesh.voxelized(pitch)
    try:
        vox = vox.fill()
    except Exception:  # pragma: no cover - filling is best effort
        pass
    m = vox.matrix.astype(bool)
    grid = np.zeros((resolution,) * 3, dtype=bool)
    m = m[:resolution, :resolution, :resolution]
    starts = [(resolution - n) // 2 for n in m.shape]
    grid[tuple(slice(s, s + n) for s, n in zip(starts, m.shape))] = m
    return render_voxels(grid, size=size, **kwargs)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=10)
    except Exception:  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


LABEL_HEIGHT = 14
"""Pixel height of the strip under each tile that holds its label (when labels are given)."""


"""Pixel height of the strip under each tile that holds its label (when labels are given)."""


def tile(
    images: Sequence[np.ndarray],
    *,
    ncols: int | None = None,
    labels: Sequence[str] | None = None,
    pad: int = 2,
) -> np.ndarray:
    """Arrange images in a grid on a white background; ``uint8 (H, W, 3)``.

    Every cell is as large as the largest image (``h x w``), ``ncols`` defaults to
    ``ceil(sqrt(n))``, ``nrows = ceil(n / ncols)``. With ``labels`` each cell gets a strip of
    :data:`LABEL_HEIGHT` pixels under the image with its label (shortened to fit). The result is
    ``H = nrows * (h + label) + (nrows + 1) * pad`` by ``W = ncols * w + (ncols + 1) * pad``.
    """
    imgs = [_as_rgb(im) for im in images]
    n = len(imgs)
    if n == 0:
        raise ValueError("tile() needs at least one image")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} images")
    ncols = int(ncols) if ncols else int(math.ceil(math.sqrt(n)))
    ncols = max(1, min(ncols, n))
    nrows = int(math.ceil(n / ncols))
    h = max(im.shape[0] for im in imgs)
    w = max(im.shape[1] for im in imgs)
    lab = LABEL_HEIGHT if labels is not None else 0
    height = nrows * (h + lab) + (nrows + 1) * pad
    width = ncols * w + (ncols + 1) * pad
    out = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncols)
        y = pad + r * (h + lab + pad)
        x = pad + c * (w + pad)
        out[y : y + im.shape[0], x : x + im.shape[1]] = im
    if labels is not None:
        from PIL import Image, ImageDraw

        canvas = Image.fromarray(out)
        draw = ImageDraw.Draw(canvas)
        font = _font()
        for i, text in enumerate(labels):
            text = str(text)
            r, c = divmod(i, ncols)
            y = pad + r * (h + lab + pad) + h
            x = pad + c * (w + pad)
            text = _fit_text(draw, text, font, w)
            tw = draw.textlength(text, font=font)
            draw.text((x + max(0, (w - tw) / 2), y + 1), text, fill=(0, 0, 0), font=font)
        out = np.asarray(canvas, dtype=np.uint8).copy()
    return out


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 0 and draw.textlength(".." + text[-keep:], font=font) > width:
        keep -= 1
    return ".." + text[-keep:] if keep else ""


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W, 3)`` (or ``(H, W)``) image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    img = np.asarray(image)
    pil = Image.fromarray(img if img.ndim == 2 and img.dtype == np.uint8 else _as_rgb(img))
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return path


def render_grid_png(
    grids,
    path: str | os.PathLike,
    *,
    size: int = 128,
    ncols: int | None = None,
    labels: Sequence[str] | None = None,
    **render_kwargs,
) -> np.ndarray:
    """Render each grid of ``grids`` (a batch ``(N, R, R, R)``, ``(N, 1, R, R, R)`` or a list),
    tile them and save the PNG at ``path``. Returns the tiled image."""
    arr = grids if isinstance(grids, (list, tuple)) else list(np.asarray(grids))
    images = [render_voxels(g, size=size, **render_kwargs) for g in arr]
    image = tile(images, ncols=ncols, labels=labels)
    save_png(image, path)
    return image


def render_files(
    paths: Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    *,
    resolution: int = 64,
    size: int = 128,
    ncols: int | None = None,
    mesh_up: str = "z",
) -> np.ndarray:
    """Read each shape file (any format :func:`gan3d.io.voxelfiles.read_voxels` reads), render it, tile
    them labelled with the file names and save the PNG at ``out_png``. Returns the tiled image.

    Mesh files are voxelized at ``resolution`` with ``mesh_up`` as their vertical axis; voxel files
    are drawn at their own resolution (each picture frames its grid's bounding cube, so a shape
    looks the same size at 32^3 and 64^3). Unreadable files raise :class:`gan3d.errors.Gan3dError`.
    """
    from gan3d.io.files import MAX_GRID_EDGE
    from gan3d.io.files import MESH_SUFFIXES as mesh_suffixes
    from gan3d.io.voxelfiles import read_voxels

    if int(size) != size or not 8 <= size <= MAX_IMAGE_SIZE:
        raise Gan3dError(f"--size must be an integer in 8..{MAX_IMAGE_SIZE} pixels, got {size!r}")
    if int(resolution) != resolution or not 1 <= resolution <= MAX_GRID_EDGE:
        raise Gan3dError(f"--resolution must be an integer in 1..{MAX_GRID_EDGE}, got {resolution!r}")
    paths = [Path(p) for p in paths]
    grids = []
    for p in paths:
        if p.suffix.lower() in mesh_suffixes:
            grids.append(read_voxels(p, resolution=resolution, mesh_up=mesh_up))
        else:
            grids.append(read_voxels(p))
    return render_grid_png(grids, out_png, size=size, ncols=ncols, labels=[p.name for p in paths])
