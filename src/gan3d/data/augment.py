"""Training-time augmentation of voxel batches.
"""

from __future__ import annotations

import numpy as np


def augment_batch(grids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random exact symmetries of a batch ``(B, R, R, R)``: x mirror (p = 1/2), then k * 90 degrees
    about the up axis (k uniform 0..3), drawn per shape from ``rng``; returns a new array."""
    n = grids.shape[0]
    flips = rng.random(n) < 0.5
    turns = rng.integers(0, 4, size=n)
    out = np.empty_like(grids)
    for i in range(n):
        g = grids[i]
        if flips[i]:
            g = g[::-1]
        out[i] = np.rot90(g, int(turns[i]), axes=(0, 1))
    return out
