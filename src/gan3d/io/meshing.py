"""Geometry on voxel grids: cleaning (largest connected component) and meshes for export.

All functions follow the convention of :mod:`gan3d.voxels`: ``grid[x, y, z]``, z up, a voxel is
filled when its occupancy is ``>= 0.5`` and voxel ``(i, j, k)`` is the unit cube
``[i, i+1] x [j, j+1] x [k, k+1]``. Meshes are returned in those world units as
``(vertices float32 (V, 3), faces int64 (F, 3))`` with triangles wound counter-clockwise seen from
outside (outward normals, positive signed volume).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path
from gan3d.voxels import THRESHOLD, _check_3d, binarize

MESH_SUFFIXES = (".obj", ".stl", ".ply")
"""File types :func:`export_mesh` writes, chosen by the output file's suffix."""


def _empty_mesh() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 3), dtype=np.float32), np.zeros((0, 3), dtype=np.int64)


def smooth_mesh(grid: np.ndarray, *, level: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface of the occupancy at ``level``; ``(vertices, faces)``.

    The grid is padded by one empty voxel on every side so that shapes touching the border still
    give a closed surface. Occupancy values are used as they are (a soft generator output gives a
    smoother surface than its binarized version). Voxel centres sit at ``i + 0.5``; for a 0/1 grid
    at level 0.5 the flat parts of the surface lie exactly on the voxel faces, and edges and
    corners are bevelled (a solid block of ``k^3`` voxels encloses ``k^3 - 1.5 (k - 1) - 5/6``).
    An empty grid gives an empty mesh.
    """
    from skimage.measure import marching_cubes

    g = _check_3d(grid).astype(np.float32)
    if g.size == 0 or not (g.max() > level):
        return _empty_mesh()
    padded = np.pad(g, 1, mode="constant", constant_values=0.0)
    verts, faces, _normals, _values = marching_cubes(padded, level=level)
    # padded index p is voxel p - 1, whose centre is at (p - 1) + 0.5
    verts = (verts - 0.5).astype(np.float32)
    faces = faces.astype(np.int64)
    # skimage's winding depends on its gradient convention; make it outward (positive volume).
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1].copy()
    return verts, faces


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    v = vertices.astype(np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


# For axis a the in-plane axes (b, c) = (a+1, a+2) mod 3 satisfy e_b x e_c = e_a, so the quad
# corners (0,0), (1,0), (1,1), (0,1) in (b, c) are counter-clockwise seen from +a.
_QUAD_PLUS = np.array([(0, 0), (1, 0), (1, 1), (0, 1)])


_QUAD_MINUS = _QUAD_PLUS[::-1].copy()


def exposed_faces(grid: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Faces of filled voxels whose neighbour across the face is empty (or outside the grid).

    Returns a list of ``(axis, sign, ijk)`` with ``sign`` in ``{-1, +1}`` and ``ijk`` an
    ``(n, 3)`` int array of the filled voxels having an exposed face on that side; six entries,
    in the order (x-, x+, y-, y+, z-, z+).
    """
    filled = binarize(_check_3d(grid))
    padded = np.pad(filled, 1)
    inner = (slice(1, -1),) * 3
    out = []
    for axis in range(3):
        for sign in (-1, 1):
            neighbour = np.roll(padded, -sign, axis=axis)[inner]
            ijk = np.argwhere(filled & ~neighbour)
            out.append((axis, sign, ijk))
    return out


def blocky_mesh(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One unit cube per filled voxel, without the faces two filled voxels share; ``(vertices, faces)``.

    Every exposed voxel face becomes two triangles (so ``F = 2 * exposed faces``), wound outward.
    Vertices are the lattice points the faces use, each stored once. Voxels that touch only along
    an edge give a non-manifold edge (four faces meet there), as any cube mesh of them must.
    """
    g = _check_3d(grid)
    shape = np.array(g.shape) + 1  # lattice points per axis
    quads = []
    for axis, sign, ijk in exposed_faces(g):
        if len(ijk) == 0:
            continue
        b, c = (axis + 1) % 3, (axis + 2) % 3
        pattern = _QUAD_PLUS if sign > 0 else _QUAD_MINUS
        offsets = np.zeros((4, 3), dtype=np.int64)
        offsets[:, axis] = 1 if sign > 0 else 0
        offsets[:, b] = pattern[:, 0]
        offsets[:, c] = pattern[:, 1]
        corners = ijk[:, None, :] + offsets[None, :, :]  # (n, 4, 3)
        quads.append(np.ravel_multi_index(tuple(np.moveaxis(corners, -1, 0)), tuple(shape)))
    if not quads:
        return _empty_mesh()
    quads = np.concatenate(quads, axis=0)  # (Q, 4) lattice ids
    used, inverse = np.unique(quads, return_inverse=True)
    quads = inverse.reshape(quads.shape).astype(np.int64)
    vertices = np.stack(np.unravel_index(used, tuple(shape)), axis=1).astype(np.float32)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=1).reshape(-1, 3)
    return vertices, faces


def export_mesh(grid: np.ndarray, path: str | os.PathLike, *, style: str = "smooth") -> Path:
    """Write a mesh of the grid's filled voxels to ``path`` (.obj, .stl or .ply, chosen by suffix).

    ``style="smooth"`` is :func:`smooth_mesh` (marching cubes), ``"blocky"`` is :func:`blocky_mesh`.
    The file is written atomically. Raises :class:`Gan3dError` for an unknown suffix or an empty grid.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise Gan3dError(
            f"cannot write a mesh with suffix {path.suffix or '(none)'!r}; use one of {', '.join(MESH_SUFFIXES)}",
            path,
        )
    if style == "smooth":
        make = smooth_mesh
    elif style == "blocky":
        make = blocky_mesh
    else:
        raise ValueError(f"style must be 'smooth' or 'blocky', got {style!r}")
    g = _check_3d(grid)
    if not binarize(g).any():
        raise Gan3dError("no filled voxels to export (every occupancy is below 0.5)", path)
    vertices, faces = make(g)
    if len(faces) == 0:
        raise Gan3dError("no filled voxels to export", path)

    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=suffix[1:])
    return path
