"""THE writer of voxel grids to files: one format table, used by ``gan3d sample``,
``gan3d reconstruct`` and :func:`gan3d.export`.

Formats (:data:`FORMATS`), per shape ``<stem>`` unless said otherwise:

* ``npz``: either one file holding the whole batch (``npz_file="samples.npz"``: ``grids`` bool
  (N, R, R, R), ``occupancy`` float16 (N, R, R, R) when given, ``seeds`` int64 (N,) when given), or
  one ``<stem>.npz`` per shape (``grid`` bool (R, R, R), ``occupancy`` float16 (R, R, R) when given,
  and any per-shape ``extra`` arrays);
* ``binvox``: ``<stem>.binvox`` (:func:`gan3d.io.voxelfiles.write_binvox`);
* ``obj``, ``stl``, ``ply``: a mesh ``<stem>.<fmt>`` (:func:`gan3d.io.meshing.export_mesh`, smooth
  or blocky); an empty grid has no surface, so it gets no mesh file (callers list empty shapes).

Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path
from gan3d.voxels import THRESHOLD

FORMATS = ("npz", "binvox", "obj", "stl", "ply")
"""Every file format :func:`write_grids` writes."""

MESH_FORMATS = ("obj", "stl", "ply")
"""The mesh formats among :data:`FORMATS` (skipped for empty grids)."""


def check_formats(formats: Sequence[str]) -> list[str]:
    """``formats`` as a list; a Gan3dError naming the unknown ones."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise Gan3dError(f"unknown output format(s) {bad}; choose from {', '.join(FORMATS)}")
    return list(formats)


def output_dir(out_dir: str | os.PathLike) -> Path:
    """Create the output folder ``out_dir`` (and its parents); a Gan3dError if it is a file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise Gan3dError("output folder is an existing file", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Gan3dError(f"cannot create the output folder ({e.strerror or e})", out) from None
    return out


def write_grids(
    grids: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    stems: Sequence[str],
    formats: Sequence[str],
    occupancy: np.ndarray | None = None,
    mesh_style: str = "smooth",
    seeds: Sequence[int] | None = None,
    npz_file: str | None = None,
    extra: Mapping[str, Sequence[Any]] | None = None,
) -> list[str]:
    """Write each grid of ``grids`` (bool or [0, 1] occupancy, (N, R, R, R); filled at >= 0.5) in
    every format of ``formats`` to ``out_dir``, named by ``stems`` (N names).

    ``occupancy`` (float (N, R, R, R), optional) is stored as float16 beside the grids in npz files.
    ``npz_file`` puts the whole batch (and ``seeds``) in that one npz file; without it every shape
    gets ``<stem>.npz``, which also holds ``extra[key][i]`` for each key of ``extra``.
    Returns the names of the files written, relative to ``out_dir``, in writing order: the batch
    npz first, then for each shape npz, binvox, obj, stl, ply.
    """
    formats = check_formats(formats)
    g = np.asarray(grids)
    g = g if g.dtype == bool else g >= THRESHOLD
    if g.ndim != 4:
        raise ValueError(f"write_grids needs a batch of grids (N, R, R, R), got shape {g.shape}")
    if len(stems) != len(g):
        raise ValueError(f"{len(stems)} stems for {len(g)} grids")
    out = output_dir(out_dir)
    written: list[str] = []
    occ16 = None if occupancy is None else np.asarray(occupancy).astype(np.float16)
    if "npz" in formats and npz_file is not None:
        arrays: dict[str, np.ndarray] = {"grids": g}
        if occ16 is not None:
            arrays["occupancy"] = occ16
        if seeds is not None:
            arrays["seeds"] = np.asarray(seeds, np.int64)
        with atomic_path(out / npz_file) as tmp:
            np.savez_compressed(tmp, **arrays)
        written.append(npz_file)
    from gan3d.io.meshing import export_mesh
    from gan3d.io.voxelfiles import write_binvox

    for i, (stem, grid) in enumerate(zip(stems, g)):
        if "npz" in formats and npz_file is None:
            arrays = {"grid": grid}
            if occ16 is not None:
                arrays["occupancy"] = occ16[i]
            for key, values in (extra or {}).items():
                arrays[key] = np.asarray(values[i])
            with atomic_path(out / f"{stem}.npz") as tmp:
                np.savez_compressed(tmp, **arrays)
            written.append(f"{stem}.npz")
        if "binvox" in formats:
            write_binvox(out / f"{stem}.binvox", grid)
            written.append(f"{stem}.binvox")
        if grid.any():
            for fmt in MESH_FORMATS:
                if fmt in formats:
                    export_mesh(grid, out / f"{stem}.{fmt}", style=mesh_style)
                    written.append(f"{stem}.{fmt}")
    return written
