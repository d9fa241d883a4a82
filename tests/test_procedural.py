"""The built-in procedural furniture: determinism, framing, orientation, connectivity, variety."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gan3d.data.procedural import CLASS_NAMES, make_dataset, make_shape
from gan3d.errors import Gan3dError


@pytest.fixture(scope="module")
def shapes32():
    return make_dataset(140, 32, seed=11)  # 20 of each class


def test_required_classes_present():
    for c in ("chair", "table", "stool", "bed", "bookshelf", "sofa"):
        assert c in CLASS_NAMES


def test_deterministic_and_independent_of_count():
    g_small, l_small = make_dataset(9, 24, seed=5)
    g_big, l_big = make_dataset(23, 24, seed=5)
    assert g_small.dtype == bool and g_small.shape == (9, 24, 24, 24)
    assert l_small.dtype == np.int64
    np.testing.assert_array_equal(g_small, g_big[:9])
    np.testing.assert_array_equal(l_small, l_big[:9])
    # shape i is made from default_rng([seed, i]); its class is classes[i % len(classes)]
    for i in (0, 4, 8):
        kind = CLASS_NAMES[i % len(CLASS_NAMES)]
        np.testing.assert_array_equal(g_small[i], make_shape(kind, np.random.default_rng([5, i]), 24))
    # start offsets index the same sequence
    g_off, _ = make_dataset(5, 24, seed=5, start=4)
    np.testing.assert_array_equal(g_off, g_big[4:9])
    g_other, _ = make_dataset(9, 24, seed=6)
    assert not np.array_equal(g_small, g_other)


def test_class_subset_labels():
    g, lab = make_dataset(6, 16, seed=2, classes=["bed", "chair"])
    np.testing.assert_array_equal(lab, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(g[3], make_shape("chair", np.random.default_rng([2, 3]), 16))
    g2, lab2 = make_dataset(2, 16, seed=2, classes=[CLASS_NAMES.index("bed")])
    np.testing.assert_array_equal(lab2, [0, 0])
    with pytest.raises(Gan3dError, match="unknown built-in class"):
        make_dataset(2, 16, classes=["spaceship"])


def test_standing_on_floor_and_framed(shapes32):
    grids, labels = shapes32
    r = 32
    for g, lab in zip(grids, labels):
        idx = np.argwhere(g)
        lo, hi = idx.min(axis=0), idx.max(axis=0)
        assert lo[2] == 0, CLASS_NAMES[lab]  # stands on the bottom of the grid
        extent = hi - lo + 1
        assert extent.max() >= r - 1  # binvox -cb framing: longest side spans the grid
        for axis in (0, 1):  # centred in x and y
            assert abs((lo[axis] + hi[axis]) / 2 - (r - 1) / 2) <= 1.0


def test_chair_back_at_large_y(shapes32):
    grids, labels = shapes32
    chairs = grids[labels == CLASS_NAMES.index("chair")]
    assert len(chairs) == 20
    for g in chairs:
        idx = np.argwhere(g)
        top = idx[idx[:, 2] >= idx[:, 2].max() - 1]  # the top of a chair is its back
        assert top[:, 1].mean() > 16 + 4
        # nothing above the seat's front edge: the front top corner is empty
        assert not g[:, :6, -3:].any()


def test_backs_of_sofas_and_beds_at_large_y(shapes32):
    grids, labels = shapes32
    for name in ("sofa", "bed"):
        for g in grids[labels == CLASS_NAMES.index(name)]:
            idx = np.argwhere(g)
            top = idx[idx[:, 2] >= idx[:, 2].max() * 0.9]
            assert top[:, 1].mean() > 16, name


@pytest.mark.parametrize("resolution,n", [(8, 70), (16, 140), (32, 140), (64, 21)])
def test_each_shape_is_one_connected_piece(resolution, n):
    grids, labels = make_dataset(n, resolution, seed=3)
    for g, lab in zip(grids, labels):
        _, count = ndimage.label(g)  # 6-connectivity, stricter than 26
        assert count == 1, f"{CLASS_NAMES[lab]} at {resolution}^3 has {count} pieces"


def test_variety_within_each_class(shapes32):
    grids, labels = shapes32
    for k, name in enumerate(CLASS_NAMES):
        g = grids[labels == k][:10].reshape(10, -1)
        inter = (g[:, None] & g[None]).sum(-1)
        union = (g[:, None] | g[None]).sum(-1)
        iou = inter / union
        off = iou[~np.eye(10, dtype=bool)]
        assert off.max() < 0.97, name
        assert off.mean() < 0.85, name
        # and the classes differ from each other in occupancy or shape
    occ = grids.reshape(len(grids), -1).mean(1)
    assert occ[labels == CLASS_NAMES.index("cabinet")].mean() > 3 * occ[labels == CLASS_NAMES.index("chair")].mean()


def test_same_proportions_at_every_resolution():
    rng_state = [4, 10]
    g16 = make_shape("table", np.random.default_rng(rng_state), 16)
    g64 = make_shape("table", np.random.default_rng(rng_state), 64)
    e16 = np.ptp(np.argwhere(g16), axis=0) + 1
    e64 = np.ptp(np.argwhere(g64), axis=0) + 1
    np.testing.assert_allclose(e64 / 64, e16 / 16, atol=2 / 16)


def test_bad_resolution():
    with pytest.raises(Gan3dError):
        make_shape("chair", np.random.default_rng(0), 4)


def test_cb_framing_centres_z_like_binvox_cb():
    """framing="cb" centres every axis, as ModelNet10's -cb grids are; "floor" stands on z = 0. The
    footprint is the same either way; tall shapes (height the longest side) are identical."""
    r, wide, tall = 32, 0, 0
    for i in range(60):
        floor = make_shape("bookshelf", np.random.default_rng([0, i]), r)
        cb = make_shape("bookshelf", np.random.default_rng([0, i]), r, framing="cb")
        ext = [np.flatnonzero(floor.any(axis=tuple(k for k in range(3) if k != a))) for a in range(3)]
        z_cb = np.flatnonzero(cb.any(axis=(0, 1)))
        assert ext[2][0] == 0 and np.array_equal(floor.any(axis=2), cb.any(axis=2))
        assert abs((z_cb[0] + z_cb[-1] + 1) / 2 - r / 2) <= 1.0  # centred in z
        if len(ext[2]) <= r - 3:  # clearly wider than tall
            wide += 1
            assert z_cb[0] > 0  # floats half way up, as -cb leaves it
        elif len(ext[2]) == max(len(e) for e in ext):
            tall += 1
            assert np.array_equal(floor, cb)
    assert wide > 0 and tall > 0
    with pytest.raises(Gan3dError, match="framing"):
        make_shape("bookshelf", np.random.default_rng(0), r, framing="middle")
