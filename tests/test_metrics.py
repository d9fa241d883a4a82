import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from gan3d.errors import Gan3dError
from gan3d.eval import metrics


def _random_grids(rng, n, r, *, n_empty=0):
    density = rng.uniform(0.02, 0.6, size=(n, 1, 1, 1))
    g = rng.random((n, r, r, r)) < density
    g[:n_empty] = False
    return g


def _slow_iou_distance(A, B):
    out = np.empty((len(A), len(B)), dtype=np.float32)
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            union = np.logical_or(a, b).sum()
            inter = np.logical_and(a, b).sum()
            out[i, j] = 0.0 if union == 0 else 1.0 - inter / union
    return out


@pytest.mark.parametrize("r", [8, 5])  # 5^3 = 125 bits: rows padded to whole uint64 words
def test_iou_matches_slow_reference(r):
    rng = np.random.default_rng(1)
    A = _random_grids(rng, 11, r, n_empty=2)
    B = _random_grids(rng, 7, r, n_empty=1)
    B[3] = A[5]  # an identical pair
    D = metrics.iou_distance_matrix(A.astype(np.float32), B)  # float and bool inputs
    assert D.dtype == np.float32 and D.shape == (11, 7)
    np.testing.assert_array_equal(D, _slow_iou_distance(A, B))
    assert D[0, 0] == 0.0  # two empty grids
    assert D[0, 1] == 1.0  # empty vs non-empty
    assert D[5, 3] == 0.0


def test_iou_block_boundaries(monkeypatch):
    monkeypatch.setattr(metrics, "_BLOCK_BYTES", 3 * 5 * 8 * 8)  # 3 rows per block, 11 rows
    rng = np.random.default_rng(2)
    A, B = _random_grids(rng, 11, 8), _random_grids(rng, 5, 8)
    np.testing.assert_array_equal(metrics.iou_distance_matrix(A, B), _slow_iou_distance(A, B))


def test_iou_resolution_mismatch_names_both():
    with pytest.raises(Gan3dError, match=r"8\^3.*16\^3"):
        metrics.iou_distance_matrix(np.zeros((1, 8, 8, 8)), np.zeros((1, 16, 16, 16)))


def _brute_chamfer(P, Q):
    out = np.empty((len(P), len(Q)))
    for i, p in enumerate(P.astype(np.float64)):
        for j, q in enumerate(Q.astype(np.float64)):
            d = np.array([[np.sum((a - b) ** 2) for b in q] for a in p])
            out[i, j] = d.min(axis=1).mean() + d.min(axis=0).mean()
    return out


def test_chamfer_matches_brute_force():
    rng = np.random.default_rng(3)
    P = rng.random((5, 40, 3)).astype(np.float32)
    Q = (rng.random((3, 27, 3)) * 0.5 + 0.2).astype(np.float32)
    ref = _brute_chamfer(P, Q)
    for batch, tile in [(2, 16), (4, 64), (1, 7)]:  # uneven blocks and tiles
        D = metrics.chamfer_distance_matrix(P, Q, batch=batch, tile=tile)
        assert D.dtype == np.float32 and D.shape == (5, 3)
        np.testing.assert_allclose(D, ref, rtol=1e-4, atol=1e-7)
    S = metrics.chamfer_distance_matrix(P, None, batch=2, tile=16)  # symmetric mode
    np.testing.assert_allclose(S, _brute_chamfer(P, P), rtol=1e-4, atol=1e-7)
    assert np.all(np.diag(S) == 0) and np.array_equal(S, S.T)


def test_chamfer_empty_clouds():
    rng = np.random.default_rng(4)
    P = rng.random((3, 10, 3)).astype(np.float32)
    P[1] = np.nan
    Q = rng.random((2, 10, 3)).astype(np.float32)
    Q[0] = np.nan
    D = metrics.chamfer_distance_matrix(P, Q)
    assert D[1, 0] == 0.0  # two empty shapes
    assert np.isinf(D[1, 1]) and np.isinf(D[0, 0]) and np.isinf(D[2, 0])
    assert np.isfinite(D[0, 1]) and np.isfinite(D[2, 1])


def test_set_metrics_by_hand():
    D = np.array([[0.1, 0.5], [0.3, 0.2], [0.4, 0.9]])
    assert metrics.mmd(D) == pytest.approx(0.15)
    assert metrics.coverage(D) == 1.0
    assert metrics.coverage(np.array([[0.1, 0.5, 0.6], [0.2, 0.7, 0.8]])) == pytest.approx(1 / 3)
    assert metrics.coverage(np.array([[np.inf, np.inf], [0.3, 0.1]])) == 0.5  # inf row covers nothing
    # samples {0, 1}, references {2}: 0's nearest is 1 (same set), 1's nearest ties between 0 and 2,
    # 2's nearest is 1 (other set): scores 1, 1/2, 0
    ss = np.array([[0, 1.0], [1.0, 0]])
    sr = np.array([[3.0], [1.0]])
    rr = np.zeros((1, 1))
    assert metrics.one_nna(ss, rr, sr) == pytest.approx(0.5)


def test_identical_sets_give_zero_mmd_full_coverage_and_zero_1nna():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 4))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    assert metrics.mmd(D) == 0.0
    assert metrics.coverage(D) == 1.0
    # every shape's nearest other shape is its twin (distance 0) in the other set: all misclassified
    assert metrics.one_nna(D, D, D) == 0.0
    # independent draws from one distribution: near the ideal 50%
    Y = rng.normal(size=(200, 2))
    Z = rng.normal(size=(200, 2))
    d = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)  # noqa: E731
    assert 0.4 < metrics.one_nna(d(Y, Y), d(Z, Z), d(Y, Z)) < 0.6


def _cubes(rng, n, corner, r=16):
    """n distinct small cubes near the (0, 0, 0) corner (corner=0) or the opposite one."""
    choices = [(s, o) for s in (3, 4) for o in np.ndindex(2, 2, 2)]
    g = np.zeros((n, r, r, r), dtype=bool)
    for i, k in enumerate(rng.permutation(len(choices))[:n]):
        s, o = choices[k]
        o = np.array(o) + (0 if corner == 0 else r - 6)
        g[i, o[0] : o[0] + s, o[1] : o[1] + s, o[2] : o[2] + s] = True
    return g


def test_separated_clusters_give_full_1nna():
    rng = np.random.default_rng(6)
    A, B = _cubes(rng, 6, 0), _cubes(rng, 5, 1)
    res = metrics.evaluate_generation(A, B, n_points=256, progress=False)
    assert res["iou"]["1nna"] == 1.0
    assert res["chamfer"]["1nna"] == 1.0
    assert res["iou"]["mmd"] == 1.0  # no shared voxel at all
    assert res["jsd"] == pytest.approx(1.0)
    same = metrics.evaluate_generation(A, A, n_points=256, progress=False)
    assert same["iou"]["mmd"] == 0.0 and same["iou"]["cov"] == 1.0
    assert same["chamfer"]["mmd"] == pytest.approx(0.0, abs=1e-6) and same["chamfer"]["cov"] == 1.0
    assert same["jsd"] == pytest.approx(0.0, abs=1e-12)


def test_jsd_values():
    rng = np.random.default_rng(7)
    G = _random_grids(rng, 6, 8)
    assert metrics.jsd(G, G) == pytest.approx(0.0, abs=1e-12)
    left = np.zeros((2, 8, 8, 8), dtype=bool)
    right = left.copy()
    left[:, :4] = True
    right[:, 4:] = True
    assert metrics.jsd(left, right) == pytest.approx(1.0)  # one bit
    H = _random_grids(rng, 4, 8)
    p = G.reshape(6, -1).mean(0)
    q = H.reshape(4, -1).mean(0)
    assert metrics.jsd(G, H) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
    assert math.isnan(metrics.jsd(np.zeros((2, 8, 8, 8)), G))


def test_surface_points_of_a_block():
    r = 16
    lo, hi = np.array([3, 4, 2]), np.array([9, 12, 7])
    g = np.zeros((r, r, r), dtype=np.float32)
    g[3:9, 4:12, 2:7] = 1.0
    pts = metrics.sample_surface_points(g, 3000, rng=np.random.default_rng(8))
    assert pts.dtype == np.float32 and pts.shape == (3000, 3)
    assert pts.min() >= 0.0 and pts.max() <= 1.0
    w = pts.astype(np.float64) * r  # back to voxel units
    assert np.all(w >= lo - 1e-5) and np.all(w <= hi + 1e-5)
    to_boundary = np.minimum(w - lo, hi - w).min(axis=1)
    assert to_boundary.max() <= 0.5 + 1e-5
    np.testing.assert_allclose(w.mean(axis=0), (lo + hi) / 2, atol=0.2)
    again = metrics.sample_surface_points(g, 3000, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(pts, again)
    empty = metrics.sample_surface_points(np.zeros((r, r, r)), 5, rng=0)
    assert empty.shape == (5, 3) and np.isnan(empty).all()


def test_surface_points_are_area_weighted(monkeypatch):
    # two triangles, areas 1 and 3 (in voxel units): points fall on them 1:3
    v = np.array([[0, 0, 1], [2, 0, 1], [0, 1, 1], [0, 0, 3], [3, 0, 3], [0, 2, 3]], dtype=np.float32)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    monkeypatch.setattr("gan3d.io.meshing.smooth_mesh", lambda grid: (v, f))
    g = np.ones((4, 4, 4))
    pts = metrics.sample_surface_points(g, 8000, rng=np.random.default_rng(9)) * 4
    upper = pts[:, 2] > 2
    assert abs(upper.mean() - 0.75) < 0.02
    low = pts[~upper]
    assert np.all(low[:, 0] / 2 + low[:, 1] <= 1 + 1e-5)  # inside the first triangle
    # uniform inside a triangle: the centroid of the points is the triangle's centroid
    np.testing.assert_allclose(low[:, :2].mean(axis=0), [2 / 3, 1 / 3], atol=0.03)


def test_evaluate_generation_small_sets_and_empty_samples():
    rng = np.random.default_rng(10)
    S = _cubes(rng, 4, 0)
    S[1] = False  # an empty sample
    R = np.concatenate([_cubes(rng, 3, 0), _cubes(rng, 2, 1)]).astype(np.float32)
    res = metrics.evaluate_generation(S, R, n_points=128, progress=False)
    assert res["n_samples"] == 4 and res["n_ref"] == 5
    assert res["n_empty_samples"] == 1 and res["n_empty_ref"] == 0
    for name in ("iou", "chamfer"):
        assert set(res[name]) == {"mmd", "cov", "1nna"}
        assert all(np.isfinite(v) for v in res[name].values())
        assert 0 <= res[name]["cov"] <= 1 and 0 <= res[name]["1nna"] <= 1
    assert 0 <= res["jsd"] <= 1
    only_iou = metrics.evaluate_generation(S, R, distances=("iou",), progress=False)
    assert "chamfer" not in only_iou and only_iou["iou"] == res["iou"]


def test_evaluate_generation_errors():
    g = np.ones((2, 8, 8, 8))
    with pytest.raises(Gan3dError, match="reference set is empty"):
        metrics.evaluate_generation(g, np.zeros((0, 8, 8, 8)), progress=False)
    with pytest.raises(Gan3dError, match="no samples"):
        metrics.evaluate_generation(np.zeros((0, 8, 8, 8)), g, progress=False)
    with pytest.raises(Gan3dError, match=r"16\^3.*8\^3"):
        metrics.evaluate_generation(np.ones((2, 16, 16, 16)), g, progress=False)
    with pytest.raises(Gan3dError, match="unknown distance"):
        metrics.evaluate_generation(g, g, distances=("emd",), progress=False)


def test_baseline_sets():
    rng = np.random.default_rng(11)
    train = np.zeros((5, 8, 8, 8), dtype=bool)
    train[:, 2:6, 2:6, 0:3] = True  # shared by all: mean occupancy 1 there
    train[0, 0, 0, 7] = True
    b = metrics.baseline_sets(train, rng=rng)
    assert set(b) == {"train", "shuffled", "mean_shape"}
    assert all(v.shape == train.shape and v.dtype == bool for v in b.values())
    np.testing.assert_array_equal(b["train"], train)
    np.testing.assert_array_equal(b["shuffled"].sum(axis=(1, 2, 3)), train.sum(axis=(1, 2, 3)))
    assert not np.array_equal(b["shuffled"], train)
    expected = np.zeros((8, 8, 8), dtype=bool)
    expected[2:6, 2:6, 0:3] = True
    assert all(np.array_equal(m, expected) for m in b["mean_shape"])
    # shapes with no common voxel: mean < 0.5 everywhere, top-k with k = median count
    disjoint = np.zeros((3, 8, 8, 8), dtype=bool)
    disjoint[0, 0, 0, :2] = True
    disjoint[1, 3, 3, :5] = True
    disjoint[2, 7, 7, :3] = True
    m = metrics.baseline_sets(disjoint, rng=rng)["mean_shape"]
    assert all(x.sum() == 3 for x in m)
