"""What every file reader shares: the suffixes gan3d reads, the checks that a file exists, is
not empty and is readable, and the conversion of a read array to a grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.voxels import THRESHOLD

VOXEL_SUFFIXES = (".mat", ".binvox", ".npy", ".npz")
"""Suffixes of files that hold voxel grids (lower case)."""


MESH_SUFFIXES = (".off", ".obj", ".stl", ".ply")
"""Suffixes of mesh files that :func:`read_voxels` voxelizes (lower case)."""


DEFAULT_MESH_RESOLUTION = 64
"""Grid size meshes are voxelized at when no resolution is given."""


MAX_GRID_EDGE = 512
"""Largest grid edge gan3d reads, voxelizes or prepares (512^3 = 134M voxels); larger grids are
refused from their header, before any memory is allocated."""


_PathLike = str | os.PathLike


def _check_file(path: _PathLike) -> Path:
    """Path of an existing, non-empty regular file, or a Gan3dError naming it."""
    p = Path(path)
    if not p.exists():
        raise Gan3dError("file not found", p)
    if not p.is_file():
        raise Gan3dError("not a regular file", p)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise Gan3dError(f"cannot read file ({e.strerror or e})", p) from e
    if size == 0:
        raise Gan3dError("file is empty", p)
    return p


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise Gan3dError(f"cannot read file ({e.strerror or e})", p) from e


def _to_grid(arr: np.ndarray, path: _PathLike, what: str) -> np.ndarray:
    """Check that ``arr`` is a cubic 3D numeric occupancy grid in [0, 1]; return it as bool."""
    a = np.asarray(arr)
    if a.ndim != 3 or not (a.shape[0] == a.shape[1] == a.shape[2]) or a.shape[0] == 0:
        raise Gan3dError(f"{what} is not a cubic 3D grid (shape {a.shape}, expected (R, R, R))", path)
    if a.dtype == bool:
        return a.copy()
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise Gan3dError(f"{what} has non-numeric dtype {a.dtype}", path)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise Gan3dError(f"{what} contains NaN or infinite values", path)
    if a.size and (a.min() < 0 or a.max() > 1):
        raise Gan3dError(
            f"{what} has values outside [0, 1] (min {a.min()}, max {a.max()}); expected occupancy", path
        )
    return a >= THRESHOLD
