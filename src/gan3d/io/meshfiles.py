"""Mesh files (OFF, OBJ, STL, PLY): reading them, and voxelizing a mesh as a solid at a given
resolution in gan3d's voxel convention.
"""

from __future__ import annotations

import io
import re

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.io.files import MESH_SUFFIXES, _check_file, _PathLike, _read_bytes

_GLUED_OFF = re.compile(rb"^(\s*)OFF(?=[-+.\d])")


def _fix_off_header(raw: bytes) -> bytes:
    """Split ModelNet's defective first line ``OFF<nv> <nf> <ne>`` into ``OFF`` and the counts."""
    return _GLUED_OFF.sub(rb"\1OFF\n", raw, count=1)


def read_mesh(path: _PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh from ``.off``, ``.obj``, ``.stl`` or ``.ply`` with trimesh.

    Returns ``(vertices, faces)``: float64 ``(V, 3)`` and int64 ``(F, 3)`` (polygons triangulated,
    scenes concatenated, vertices not merged or reordered). ModelNet's glued first line
    ``OFF<nv> <nf> <ne>`` is repaired in memory. Raises Gan3dError for a missing, empty or unreadable
    file, a mesh without vertices or faces, face indices out of range, or non-finite vertices.
    """
    import trimesh

    p = _check_file(path)
    suffix = p.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise Gan3dError(f"unknown mesh suffix {p.suffix!r} (expected one of {', '.join(MESH_SUFFIXES)})", p)
    raw = _read_bytes(p)
    if suffix == ".off":
        raw = _fix_off_header(raw)
    try:
        mesh = trimesh.load(io.BytesIO(raw), file_type=suffix[1:], force="mesh", process=False)
        vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))))
    except Gan3dError:
        raise
    except Exception as e:
        raise Gan3dError(f"cannot read mesh ({type(e).__name__}: {e})", p) from e
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
        raise Gan3dError("mesh has no vertices or faces (nothing could be read)", p)
    if faces.size == 0:
        raise Gan3dError("mesh has no faces", p)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise Gan3dError(f"mesh faces have shape {faces.shape}, expected (F, 3) triangles", p)
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= vertices.shape[0]:
        raise Gan3dError(f"mesh face indices out of range (mesh has {vertices.shape[0]} vertices)", p)
    if not np.isfinite(vertices).all():
        raise Gan3dError("mesh has NaN or infinite vertex coordinates", p)
    return vertices, faces


# Proper rotations taking the named up axis to +z, applied as ``vertices @ R.T``.
_UP_ROTATIONS = {
    "z": np.eye(3),
    # (x, y, z) -> (-x, z, y): +y goes to +z, +z to +y, x flips (det +1). ShapeNet models (up +y,
    # back at +z) end up upright with the back at +y, facing -y as gan3d's convention wants.
    "y": np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
}


_SAMPLE_SPACING = 0.35  # voxels between samples along a triangle's edges; below half a voxel


_POINT_BUDGET = 1 << 20  # sample points held at once


_TIE_BREAK = 1e-6  # voxels


def _barycentric_template(n: int) -> np.ndarray:
    """(P, 2) weights (u, v) with u, v on the grid k/n, u + v <= 1; P = (n + 1)(n + 2) / 2."""
    i, j = np.triu_indices(n + 1)  # j >= i
    # u = i/n, v = (n - j)/n -> u + v = (n - j + i)/n <= 1 since j >= i
    return np.stack([i, n - j], axis=1).astype(np.float64) / n


def voxelize_mesh(
    vertices: np.ndarray, faces: np.ndarray, resolution: int, *, up: str = "z"
) -> np.ndarray:
    """Solid voxelization of a triangle mesh: bool ``(R, R, R)`` grid in gan3d's convention.

    ``vertices`` (V, 3) float, ``faces`` (F, 3) int. ``up`` names the mesh's vertical axis: ``"z"``
    (ModelNet OFF; vertices used as they are) or ``"y"`` (ShapeNet OBJ; the proper rotation
    ``(x, y, z) -> (-x, z, y)`` takes +y to +z and the mesh's +z to +y, so a ShapeNet chair, whose
    back is at +z, ends up facing -y with x mirrored relative to the file).

    Like ``binvox -cb``, the model (the vertices its faces use) is centred and scaled uniformly so
    that the longest side of its bounding box spans the whole grid. Every voxel a triangle passes
    through is marked (triangles are sampled on a barycentric lattice finer than half a voxel), then
    the enclosed interior is filled with ``scipy.ndimage.binary_fill_holes``. A point exactly on a
    voxel boundary counts for the voxel on the side of the grid centre, so an axis-aligned box that
    spans ``[a, b]`` in voxel units fills exactly voxels ``a .. b-1``. A mesh that is not
    watertight gets the fill its marked surface encloses (binvox-like approximation).
    """
    from scipy.ndimage import binary_fill_holes

    r = int(resolution)
    if r != resolution or r < 1:
        raise Gan3dError(f"resolution must be a positive integer, got {resolution!r}")
    if up not in _UP_ROTATIONS:
        raise Gan3dError(f"unknown up axis {up!r} (expected 'z' or 'y')")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise Gan3dError(f"mesh vertices must be (V, 3) with V > 0, got shape {v.shape}")
    if f.size == 0:
        raise Gan3dError("mesh has no faces")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise Gan3dError(f"mesh faces must be (F, 3) integers, got shape {f.shape} {f.dtype}")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise Gan3dError("mesh face indices out of range")
    if not np.isfinite(v).all():
        raise Gan3dError("mesh has NaN or infinite vertex coordinates")

    v = v @ _UP_ROTATIONS[up].T
    used = v[np.unique(f)]
    lo, hi = used.min(axis=0), used.max(axis=0)
    extent = hi - lo
    longest = float(extent.max())
    if longest <= 0:
        raise Gan3dError("mesh is degenerate (all its vertices coincide)")
    # grid coordinates: longest side -> [0, r], other axes centred
    s = r / longest
    offset = (r - extent * s) / 2.0
    g = (v - lo) * s + offset  # voxel units
    # Tie-break for points exactly on a voxel boundary (axis-aligned faces of CAD models): nudge
    # every point a hair toward the model's centre, so a face at x = k marks the voxel on the
    # model's side and a box spanning [a, b] fills voxels a..b-1 on both sides alike.
    g -= _TIE_BREAK * np.sign(g - r / 2.0)
    tri = g[f]  # (F, 3, 3)

    edges = np.stack([tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], tri[:, 2] - tri[:, 1]], axis=1)
    longest_edge = np.sqrt((edges**2).sum(axis=2)).max(axis=1)
    n_sub = np.maximum(1, np.ceil(longest_edge / _SAMPLE_SPACING)).astype(np.int64)

    surface = np.zeros(r**3, dtype=bool)
    order = np.argsort(n_sub, kind="stable")
    n_sorted = n_sub[order]
    bounds = np.flatnonzero(np.diff(n_sorted)) + 1
    for group in np.split(order, bounds):
        n = int(n_sub[group[0]])
        w = _barycentric_template(n)  # (P, 2)
        per_chunk = max(1, _POINT_BUDGET // w.shape[0])
        for start in range(0, group.size, per_chunk):
            t = tri[group[start : start + per_chunk]]  # (T, 3, 3)
            a = t[:, 0]
            pts = a[:, None, :] + w[None, :, 0:1] * (t[:, 1] - a)[:, None, :] + w[None, :, 1:2] * (
                t[:, 2] - a
            )[:, None, :]
            idx = np.clip(np.floor(pts.reshape(-1, 3)).astype(np.int64), 0, r - 1)
            surface[(idx[:, 0] * r + idx[:, 1]) * r + idx[:, 2]] = True
    return binary_fill_holes(surface.reshape(r, r, r))
