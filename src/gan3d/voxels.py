"""The voxel convention, written down once, and the small grid operations every module shares.

Convention (every reader, writer, model, renderer and metric in gan3d follows it):

* A shape is a cubic grid ``grid[x, y, z]`` of shape ``(R, R, R)``: axis 0 is x (left to right),
  axis 1 is y (front to back), axis 2 is z, the **up** axis; index 0 is the bottom. The axes form a
  right-handed frame (x cross y = z) when read in this order.
* Objects face **-y**: a chair's back is at large y, its seat front at small y. This is how the
  ModelNet10 npz, binvox files of ShapeNet models and rotation 4 of the 3D ShapeNets release already
  lie; the readers turn every other source to match (see :mod:`gan3d.formats`).
* Occupancy is ``float32`` in ``[0, 1]``; a voxel is filled when its value is ``>= 0.5``
  (:data:`THRESHOLD`). Boolean and 0/1 integer grids mean the same thing.
* Batches are ``(N, R, R, R)``; the models take ``(N, 1, R, R, R)``.
* In world units voxel ``(i, j, k)`` is the unit cube ``[i, i+1] x [j, j+1] x [k, k+1]``; a mesh
  exported from a grid lives in those units.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
"""Occupancy at or above which a voxel counts as filled."""


UP_AXIS = 2
"""Index of the vertical axis in ``grid[x, y, z]``."""


def binarize(grid: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Boolean grid, True where ``grid >= threshold``. Any shape; returns the same shape."""
    return np.asarray(grid) >= threshold


def as_occupancy(grid: np.ndarray) -> np.ndarray:
    """float32 copy of a 0/1, boolean or [0, 1] grid."""
    return np.asarray(grid, dtype=np.float32)


def pad_to(grid: np.ndarray, size: int) -> np.ndarray:
    """Pad a cubic (R, R, R) grid with empty voxels, evenly on both sides, to (size, size, size).

    3D ShapeNets' 30^3 volumes become 32^3 with one empty voxel on every side.
    """
    r = grid.shape[0]
    if size < r:
        raise ValueError(f"cannot pad a {r}^3 grid down to {size}^3")
    before = (size - r) // 2
    after = size - r - before
    return np.pad(grid, [(before, after)] * 3)


def upsample_nearest(grid: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every voxel ``factor`` times along each axis: (R, R, R) -> (fR, fR, fR)."""
    g = np.asarray(grid)
    for axis in range(3):
        g = np.repeat(g, factor, axis=axis)
    return g


def resize(grid: np.ndarray, size: int) -> np.ndarray:
    """Bring a cubic binary grid to (size, size, size), keeping the object's framing.

    Growing: pad by at most 4 empty voxels to a size that divides ``size``, then repeat voxels
    (30 -> 32 pads by one voxel on each side, as 3D ShapeNets' users do; 32 -> 64 repeats 2x;
    30 -> 64 pads to 32, then repeats). Shrinking by an integer factor k takes the mean of each
    k^3 block and thresholds it at 0.5. Any other ratio resamples by trilinear interpolation of the
    occupancy and thresholds at 0.5. Returns a bool array.
    """
    g = np.asarray(grid) >= THRESHOLD
    r = g.shape[0]
    if g.ndim != 3 or g.shape != (r, r, r):
        raise ValueError(f"expected a cubic 3D grid, got shape {g.shape}")
    if r == size:
        return g
    if size > r:
        for factor in range(size, 0, -1):
            base = size // factor
            if size % factor == 0 and 0 <= base - r <= 4:
                g = pad_to(g, base)
                return upsample_nearest(g, factor) if factor > 1 else g
    if r % size == 0:
        k = r // size
        blocks = g.reshape(size, k, size, k, size, k).mean(axis=(1, 3, 5))
        return blocks >= THRESHOLD
    from scipy.ndimage import zoom

    return zoom(g.astype(np.float32), size / r, order=1, grid_mode=True, mode="grid-constant") >= THRESHOLD


def iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over union of filled voxels, per shape: THE IoU of gan3d.

    ``pred`` and ``truth`` are grids of equal shape ``(N, R, R, R)`` (or ``(R, R, R)``, or
    ``(N, 1, R, R, R)``): bool, 0/1 or occupancy in [0, 1], filled at >= 0.5. Returns float64 of
    shape ``pred.shape[:-3]`` (``(N,)`` for a batch, ``()`` for one grid) with values in [0, 1]:
    ``|pred and truth| / |pred or truth|``. **Two empty grids have IoU 1.0** (the prediction is
    exactly right); an empty and a non-empty grid have IoU 0.0. Training statistics, evaluation,
    IKEA and :func:`gan3d.eval.metrics.iou_distance_matrix` (``1 - iou``) all follow this rule.
    """
    p, t = np.asarray(pred), np.asarray(truth)
    if p.shape != t.shape or p.ndim < 3:
        raise ValueError(f"iou needs two grids of one shape (..., R, R, R), got {p.shape} and {t.shape}")
    p = p if p.dtype == bool else p >= THRESHOLD
    t = t if t.dtype == bool else t >= THRESHOLD
    lead = p.shape[:-3]
    p, t = p.reshape(lead + (-1,)), t.reshape(lead + (-1,))
    inter = np.logical_and(p, t).sum(-1, dtype=np.int64)
    union = np.logical_or(p, t).sum(-1, dtype=np.int64)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def iou_torch(pred, truth):
    """:func:`iou` for tensors (training statistics): ``pred``, ``truth`` of one shape
    ``(N, R, R, R)`` or ``(N, 1, R, R, R)``, any dtype (filled at >= 0.5), any device. Returns a
    float32 tensor ``(N,)`` on the same device, no gradient; both empty -> 1.0."""
    import torch

    with torch.no_grad():
        if pred.shape != truth.shape or pred.ndim < 4:
            raise ValueError(f"iou_torch needs two batches of one shape (N, ..., R, R, R), got {tuple(pred.shape)} and {tuple(truth.shape)}")
        p = pred.detach().flatten(1) >= THRESHOLD
        t = truth.detach().flatten(1) >= THRESHOLD
        inter = (p & t).sum(1).float()
        union = (p | t).sum(1).float()
        return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _check_3d(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid)
    if g.ndim != 3:
        raise ValueError(f"expected a 3D voxel grid, got shape {g.shape}")
    return g


def largest_component(grid: np.ndarray, *, connectivity: int = 26) -> np.ndarray:
    """Keep only the largest connected component of the filled voxels; returns a bool grid.

    ``connectivity`` is 26 (voxels touching by a face, an edge or a corner are connected, as in
    the 3D-GAN paper's post-processing) or 6 (faces only). An empty grid gives an empty grid.
    Ties between equally large components go to the one whose first voxel comes first in C
    (x-major) order, i.e. the lowest label of :func:`scipy.ndimage.label`.
    """
    from scipy import ndimage

    filled = binarize(_check_3d(grid))
    if connectivity == 26:
        structure = ndimage.generate_binary_structure(3, 3)
    elif connectivity == 6:
        structure = ndimage.generate_binary_structure(3, 1)
    else:
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity!r}")
    labels, n, keep = _pieces(filled, structure)
    return filled if n <= 1 else labels == keep


def _pieces(filled: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(labels, number of pieces, label of the largest): ties go to the lowest label, the piece whose
    first voxel comes first in C order."""
    from scipy import ndimage

    labels, n = ndimage.label(filled, structure=structure)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    counts[0] = 0
    return labels, n, int(np.argmax(counts))  # argmax returns the first (lowest) label among ties


def largest_component_batch(grids: np.ndarray, *, connectivity: int = 26) -> np.ndarray:
    """:func:`largest_component` of every grid in a batch ``(N, R, R, R)`` (or ``(N, 1, R, R, R)``)."""
    g = np.asarray(grids)
    shape = g.shape
    if g.ndim == 5 and shape[1] == 1:
        g = g[:, 0]
    if g.ndim != 4:
        raise ValueError(f"expected a batch of 3D grids (N, R, R, R), got shape {shape}")
    out = np.empty(g.shape, dtype=bool)
    for i in range(g.shape[0]):
        out[i] = largest_component(g[i], connectivity=connectivity)
    return out.reshape(shape)


def fragment_masks(filled: np.ndarray, join: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the fragment term acts on, for a batch of bool grids ``(N, R, R, R)``: (outside, drop,
    bridge), ``outside`` being every filled voxel outside the largest component.

    Every piece outside a grid's largest 26-connected component is either dropped or joined. With
    ``join`` = 0 all are dropped (``drop`` holds their voxels, ``bridge`` is empty). With ``join`` =
    k > 0, a piece whose nearest voxel is separated from the largest component by at most k empty
    voxels (Euclidean distance <= k + 1) is joined instead: ``bridge`` holds the empty voxels on the
    straight line from that nearest voxel to the nearest voxel of the largest component; pieces
    farther away are dropped. Ties and the component order are those of :func:`largest_component`."""
    from scipy import ndimage

    g = np.asarray(filled, dtype=bool)
    outside, drop, bridge = np.zeros_like(g), np.zeros_like(g), np.zeros_like(g)
    structure = ndimage.generate_binary_structure(3, 3)
    for i in range(g.shape[0]):
        labels, n, keep = _pieces(g[i], structure)
        if n <= 1:
            continue
        outside[i] = (labels != keep) & (labels > 0)
        if join <= 0:
            drop[i] = outside[i]
            continue
        dist, nearest = ndimage.distance_transform_edt(labels != keep, return_indices=True)
        for piece in range(1, n + 1):
            if piece == keep:
                continue
            mask = labels == piece
            where = np.flatnonzero(mask.ravel())
            p = np.unravel_index(where[np.argmin(dist.ravel()[where])], labels.shape)
            if dist[p] > join + 1:
                drop[i] |= mask
                continue
            q = nearest[(slice(None), *p)]
            line = np.rint(np.linspace(p, q, int(np.ceil(2 * dist[p])) + 2)).astype(np.int64)
            bridge[i][tuple(line.T)] = True
        bridge[i] &= ~g[i]
    return outside, drop, bridge


SMALL = 0.25  # a reconstruction with under this share of its class's typical filled voxels counts as "small"


def occupancy_check(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """Filled voxels of the thresholded predictions ``p`` (>= 0.5) against the class's typical count, the
    median over its true shapes ``t``: the median ratio, and the share of predictions under ``SMALL``
    of it (a fragment of a few dozen voxels where a chair should be). Cheap, and blind to where the
    voxels are: a check beside AP, not a score."""
    filled = (p >= THRESHOLD).reshape(len(p), -1).sum(1)
    typical = float(np.median(t.reshape(len(t), -1).sum(1)))
    if typical <= 0:
        return {"occupancy_ratio": float("nan"), "small": float("nan")}
    return {"occupancy_ratio": round(float(np.median(filled)) / typical, 3), "small": round(float(np.mean(filled < SMALL * typical)), 3)}
