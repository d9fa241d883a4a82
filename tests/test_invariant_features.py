"""``gan3d eval classify --invariant``: features averaged over a grid and its transformed copies."""

import numpy as np
import pytest
import torch

from gan3d.errors import Gan3dError
from gan3d.eval.classify import extract_features, invariant_copies, raw_features
from gan3d.models.gan import ModelConfig, build


def _d():
    torch.manual_seed(0)
    _, d = build(ModelConfig(resolution=16, z_dim=8, channels=(16, 8)))
    return d.eval()


def _grids():
    g = np.zeros((3, 16, 16, 16), np.float32)
    g[0, 2:6, 4:12, 4:12] = 1  # off-centre along the first axis: its mirror differs
    g[1, 3:13, 3:13, 3:13] = 1
    g[2, 1:4, 1:15, 6:9] = 1
    return g


def test_flip_features_are_the_mean_over_the_grid_and_its_mirror():
    d, g = _d(), _grids()
    plain = extract_features(d, g)
    mirrored = extract_features(d, np.ascontiguousarray(g[:, ::-1]))
    assert not np.allclose(plain, mirrored, atol=1e-4)  # D alone is not mirror-invariant
    inv = extract_features(d, g, invariant=("flip",))
    np.testing.assert_allclose(inv, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    # and so a shape and its mirror get the same features
    np.testing.assert_allclose(extract_features(d, np.ascontiguousarray(g[:, ::-1]), invariant=("flip",)), inv, rtol=1e-5, atol=1e-6)


def test_copies_of_each_transformation():
    x = torch.from_numpy(_grids()).unsqueeze(1)
    copies = invariant_copies(x, ("flip", "scale", "morph", "flip"))  # repeated names count once
    assert len(copies) == 1 + 1 + 2 + 2
    sums = [float(c[1].sum()) for c in copies]  # the centred 10^3 cube
    assert sums[0] == sums[1] == 1000
    assert sums[2] < 1000 and sums[3] <= sums[2]  # shrunk to 0.875, then to 0.75
    assert sums[4] == 8**3 and sums[5] == 1000 + 6 * 100  # eroded, dilated by one voxel (6-neighbourhood)
    big = torch.zeros(1, 1, 32, 32, 32)
    big[0, 0, 8:24, 8:24, 8:24] = 1  # a centred 16^3 cube
    assert [float(c.sum()) for c in invariant_copies(big, ("scale",))] == [16**3, 14**3, 12**3]
    with pytest.raises(Gan3dError, match="rotate"):
        invariant_copies(x, ("rotate",))


def test_raw_features_average_the_same_copies():
    g = _grids()
    plain = raw_features(g, raw_resolution=8)
    inv = raw_features(g, raw_resolution=8, invariant=("flip",))
    np.testing.assert_allclose(inv, (plain + raw_features(np.ascontiguousarray(g[:, ::-1]), raw_resolution=8)) / 2)
    assert not np.allclose(inv, plain)
