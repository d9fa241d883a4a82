"""Test sets that differ from the training data the way other voxelizations do, for the
classification protocol: does a classifier on D's features still work when the voxels change?

* ``reframe``: each grid scaled about its centre by ``scale`` (nearest voxel), so that an object
  spanning the whole grid (``binvox -cb``, the shared ModelNet10 data) spans 24 of 32 voxels, as in
  the 3D ShapeNets release;
* ``erode`` / ``dilate``: one voxel taken off or added to every surface (6-neighbourhood), the
  difference between a thin and a thick voxelizer.

A whole other voxelization of the same models is a dataset of its own (``also_test`` of
:func:`gan3d.eval.classify.classify`), for example the 3D ShapeNets chairs.
"""

from __future__ import annotations

import numpy as np

SHIFTS = ("reframe", "erode", "dilate")
REFRAME_SCALE = 0.75  # 24 of 32 voxels, the 3D ShapeNets framing (objects span about 24 of 30, padded to 32)


def reframe(grids: np.ndarray, scale: float = REFRAME_SCALE) -> np.ndarray:
    """(N, R, R, R) grids scaled about the grid centre by ``scale``: output voxel i takes input voxel
    ``floor((i + 0.5 - R/2) / scale + R/2)`` (nearest), empty where that falls outside."""
    g = np.asarray(grids)
    r = g.shape[1]
    src = np.floor((np.arange(r) + 0.5 - r / 2) / float(scale) + r / 2).astype(np.int64)
    ok = (src >= 0) & (src < r)
    idx = np.clip(src, 0, r - 1)
    out = g[:, idx][:, :, idx][:, :, :, idx]
    mask = ok[:, None, None] & ok[None, :, None] & ok[None, None, :]
    return (out * mask).astype(g.dtype)


def _neighbourhood_op(grids: np.ndarray, erode: bool) -> np.ndarray:
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 1)  # the 6-neighbourhood
    op = ndimage.binary_erosion if erode else ndimage.binary_dilation
    g = np.asarray(grids) >= 0.5
    return np.stack([op(x, structure=structure, border_value=0) for x in g]).astype(np.asarray(grids).dtype)


def erode(grids: np.ndarray) -> np.ndarray:
    """Every filled voxel with an empty 6-neighbour (or on the border) emptied."""
    return _neighbourhood_op(grids, True)


def dilate(grids: np.ndarray) -> np.ndarray:
    """Every empty voxel with a filled 6-neighbour filled."""
    return _neighbourhood_op(grids, False)


def apply(name: str, grids: np.ndarray) -> np.ndarray:
    """The shift ``name`` (one of :data:`SHIFTS`) of a batch of grids."""
    if name == "reframe":
        return reframe(grids)
    if name == "erode":
        return erode(grids)
    if name == "dilate":
        return dilate(grids)
    raise ValueError(f"unknown test shift {name!r}: choose from {', '.join(SHIFTS)}")
