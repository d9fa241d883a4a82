"""Validation splits carved from a training split: settings are chosen on them, so that the test split
gives the final number only."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gan3d.errors import Gan3dError


def validation_mask(labels: np.ndarray, fraction: float, seed: int, groups: Sequence | None = None) -> np.ndarray:
    """Boolean mask of the held-out part of a training split with class ``labels``: ``fraction`` of each
    class, at least one of a class with two or more, chosen by ``seed``. With ``groups`` (one key per
    shape, e.g. its source model), the draw is over groups and a group is held out whole, so that the
    rotations of one model never sit on both sides."""
    if not 0 < fraction < 1:
        raise Gan3dError(f"validation share must be between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    if groups is None:  # every shape its own group
        keys = np.arange(len(labels))
    else:
        _, keys = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    rng = np.random.default_rng([seed, 41])
    held = np.zeros(len(labels), bool)
    for lab in np.unique(labels):
        pos = np.flatnonzero(labels == lab)
        units = np.unique(keys[pos])
        k = min(len(units) - 1, max(1, int(round(fraction * len(units))))) if len(units) > 1 else 0
        held[pos[np.isin(keys[pos], rng.choice(units, size=k, replace=False))]] = True
    if not held.any():
        raise Gan3dError("no shapes left for a validation split (every class has one training shape)")
    return held
