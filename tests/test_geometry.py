"""Tests for gan3d.geometry: largest connected component and meshes."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from gan3d.errors import Gan3dError
from gan3d.io.meshing import blocky_mesh, export_mesh, smooth_mesh
from gan3d.voxels import largest_component, largest_component_batch

# ---------------------------------------------------------------------------------------------
# Slow, obviously correct reference: breadth-first search over filled voxels in C order.


def _neighbour_offsets(connectivity):
    offs = [d for d in itertools.product((-1, 0, 1), repeat=3) if d != (0, 0, 0)]
    if connectivity == 6:
        offs = [d for d in offs if sum(abs(x) for x in d) == 1]
    return offs


def reference_components(grid, connectivity):
    """List of components (lists of index tuples) in order of their first voxel in C order."""
    filled = np.asarray(grid) >= 0.5
    seen = np.zeros(filled.shape, dtype=bool)
    comps = []
    offs = _neighbour_offsets(connectivity)
    for start in itertools.product(*(range(n) for n in filled.shape)):
        if not filled[start] or seen[start]:
            continue
        seen[start] = True
        queue = collections.deque([start])
        comp = []
        while queue:
            p = queue.popleft()
            comp.append(p)
            for d in offs:
                q = tuple(a + b for a, b in zip(p, d))
                if all(0 <= q[i] < filled.shape[i] for i in range(3)) and filled[q] and not seen[q]:
                    seen[q] = True
                    queue.append(q)
        comps.append(comp)
    return comps


def reference_largest(grid, connectivity):
    out = np.zeros(np.asarray(grid).shape, dtype=bool)
    comps = reference_components(grid, connectivity)
    if comps:
        best = max(comps, key=len)  # max keeps the first of equal maxima
        for p in best:
            out[p] = True
    return out


# ---------------------------------------------------------------------------------------------
# largest_component


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("seed", range(12))
def test_largest_component_matches_bfs_reference(seed, connectivity):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 10, size=3))
    density = rng.uniform(0.05, 0.35)
    grid = (rng.random(shape) < density).astype(np.float32)
    got = largest_component(grid, connectivity=connectivity)
    assert got.dtype == bool and got.shape == shape
    np.testing.assert_array_equal(got, reference_largest(grid, connectivity))


def test_corner_touching_cubes_one_component_under_26_two_under_6():
    grid = np.zeros((6, 6, 6), dtype=bool)
    grid[0:2, 0:2, 0:2] = True
    grid[2:4, 2:4, 2:4] = True  # shares only the point (2, 2, 2) with the first cube
    both = largest_component(grid, connectivity=26)
    np.testing.assert_array_equal(both, grid)
    assert len(reference_components(grid, 26)) == 1
    assert len(reference_components(grid, 6)) == 2
    six = largest_component(grid, connectivity=6)
    assert six.sum() == 8
    # tie between two equal components: the one met first in C order (lowest label) wins
    np.testing.assert_array_equal(six[0:2, 0:2, 0:2], True)
    assert not six[2:4, 2:4, 2:4].any()


def test_edge_touching_and_separate_parts():
    grid = np.zeros((5, 5, 5))
    grid[0, 0, 0] = grid[1, 1, 0] = 1.0  # edge neighbours: connected only under 26
    grid[4, 4, 4] = 1.0
    grid[4, 4, 3] = 1.0
    grid[4, 3, 3] = 1.0  # a 3-voxel face-connected piece
    assert largest_component(grid, connectivity=26).sum() == 3
    g6 = largest_component(grid, connectivity=6)
    assert g6.sum() == 3 and g6[4, 4, 4] and g6[4, 3, 3]


def test_largest_component_threshold_and_empty():
    assert not largest_component(np.zeros((4, 4, 4))).any()
    soft = np.full((4, 4, 4), 0.49, dtype=np.float32)
    soft[1, 1, 1] = 0.5
    out = largest_component(soft)
    assert out.sum() == 1 and out[1, 1, 1]
    with pytest.raises(ValueError):
        largest_component(np.zeros((4, 4, 4)), connectivity=18)


def test_largest_component_batch():
    rng = np.random.default_rng(7)
    grids = (rng.random((4, 8, 8, 8)) < 0.2).astype(np.float32)
    out = largest_component_batch(grids)
    assert out.shape == grids.shape and out.dtype == bool
    for g, o in zip(grids, out):
        np.testing.assert_array_equal(o, reference_largest(g, 26))
    out5 = largest_component_batch(grids[:, None], connectivity=6)
    assert out5.shape == (4, 1, 8, 8, 8)
    np.testing.assert_array_equal(out5[2, 0], reference_largest(grids[2], 6))


# ---------------------------------------------------------------------------------------------
# meshes


def _mesh(v, f):
    return trimesh.Trimesh(vertices=v, faces=f, process=False)


def _expected_box_volume(a, b, c):
    """Marching cubes at level 0.5 on a 0/1 box of a x b x c voxels: the flat parts lie on the box's
    faces; each edge of n voxels loses a prism of cross-section 1/8 over length n - 1 (the 2D
    corner cut has legs 1/2); each of the 8 corners loses 1/8 - 1/48 (the kept part of the corner
    cell is a tetrahedron with legs 1/2). A single voxel gives the octahedron of volume 1/6."""
    edges = 4 * ((a - 1) + (b - 1) + (c - 1))
    return a * b * c - edges / 8 - 8 * (1 / 8 - 1 / 48)


def _expected_block_volume(k):
    return _expected_box_volume(k, k, k)


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_smooth_mesh_solid_block(k):
    grid = np.zeros((10, 10, 10), dtype=np.float32)
    grid[2 : 2 + k, 3 : 3 + k, 1 : 1 + k] = 1.0
    v, f = smooth_mesh(grid)
    assert v.dtype == np.float32 and f.dtype == np.int64 and v.shape[1] == 3 and f.shape[1] == 3
    m = _mesh(v, f)
    assert m.is_watertight
    assert m.volume > 0  # outward normals
    assert m.volume == pytest.approx(_expected_block_volume(k), abs=1e-4)
    # world units: the flat faces lie on the voxel boundaries
    np.testing.assert_allclose(v.min(axis=0), [2, 3, 1], atol=1e-5)
    np.testing.assert_allclose(v.max(axis=0), [2 + k, 3 + k, 1 + k], atol=1e-5)


def test_smooth_mesh_closes_at_border_and_empty():
    grid = np.ones((3, 3, 3), dtype=bool)
    m = _mesh(*smooth_mesh(grid))
    assert m.is_watertight and m.volume == pytest.approx(_expected_block_volume(3), abs=1e-4)
    np.testing.assert_allclose(m.vertices.min(axis=0), 0, atol=1e-5)
    v, f = smooth_mesh(np.zeros((4, 4, 4)))
    assert v.shape == (0, 3) and f.shape == (0, 3)


def test_smooth_mesh_real_shape_is_closed_and_outward():
    rng = np.random.default_rng(3)
    grid = np.zeros((16, 16, 16))
    grid[3:13, 3:13, 2:5] = 1  # a slab
    grid[4:6, 4:6, 5:12] = 1  # a post
    grid += 0.3 * rng.random(grid.shape)  # soft occupancy below the threshold outside
    m = _mesh(*smooth_mesh(grid))
    assert m.is_watertight and m.volume > 0


def test_blocky_single_voxel():
    grid = np.zeros((3, 3, 3))
    grid[1, 2, 0] = 1
    v, f = blocky_mesh(grid)
    assert len(f) == 12 and len(v) == 8
    m = _mesh(v, f)
    assert m.is_watertight and m.volume == pytest.approx(1.0)
    np.testing.assert_array_equal(v.min(axis=0), [1, 2, 0])
    np.testing.assert_array_equal(v.max(axis=0), [2, 3, 1])


def test_blocky_bar():
    grid = np.zeros((3, 3, 3))
    grid[0:2, 0, 0] = 1
    v, f = blocky_mesh(grid)
    assert len(f) == 20 and len(v) == 12
    m = _mesh(v, f)
    assert m.is_watertight and m.volume == pytest.approx(2.0)


def _exposed_face_count(filled):
    p = np.pad(filled, 1)
    n = 0
    for axis in range(3):
        for sign in (-1, 1):
            n += int((p & ~np.roll(p, -sign, axis=axis)).sum())
    return n


def _has_edge_only_contacts(filled):
    """True if two filled voxels share an edge but neither of the two voxels next to both is filled."""
    p = np.pad(filled, 1)
    for a, b in itertools.combinations(range(3), 2):
        for sb in (-1, 1):
            diag = np.roll(np.roll(p, -1, axis=a), -sb, axis=b)
            side_a = np.roll(p, -1, axis=a)
            side_b = np.roll(p, -sb, axis=b)
            if (p & diag & ~side_a & ~side_b).any():
                return True
    # corner-only contacts also make non-manifold vertices, which do not affect is_watertight
    return False


@pytest.mark.parametrize("seed", range(6))
def test_blocky_random_face_count_and_closed(seed):
    rng = np.random.default_rng(seed)
    filled = rng.random((8, 8, 8)) < 0.4
    v, f = blocky_mesh(filled)
    assert len(f) == 2 * _exposed_face_count(filled)
    m = _mesh(v, f)
    assert m.volume == pytest.approx(filled.sum())
    assert len(np.unique(v, axis=0)) == len(v)  # merged vertices


def test_blocky_watertight_without_edge_contacts():
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(200):
        # unions of a few random boxes; keep those without edge-only contacts
        seeds = rng.random((10, 10, 10)) < 0.005
        filled = ndimage.binary_dilation(seeds, structure=np.ones((3, 3, 3)), iterations=int(rng.integers(1, 3)))
        if not filled.any() or _has_edge_only_contacts(filled):
            continue
        m = _mesh(*blocky_mesh(filled))
        assert m.is_watertight
        assert m.volume == pytest.approx(filled.sum())
        assert len(m.faces) == 2 * _exposed_face_count(filled)
        checked += 1
        if checked >= 10:
            break
    assert checked >= 5


def test_blocky_edge_contact_is_non_manifold_but_counted_right():
    filled = np.zeros((3, 3, 3), dtype=bool)
    filled[0, 0, 0] = filled[1, 1, 0] = True  # share only the edge x = y = 1
    assert _has_edge_only_contacts(filled)
    v, f = blocky_mesh(filled)
    assert len(f) == 24 and len(v) == 14  # two cubes sharing two vertices
    m = _mesh(v, f)
    assert m.volume == pytest.approx(2.0)
    assert not m.is_watertight  # four faces meet at the shared edge


def test_blocky_empty():
    v, f = blocky_mesh(np.zeros((4, 4, 4)))
    assert v.shape == (0, 3) and f.shape == (0, 3)


# ---------------------------------------------------------------------------------------------
# export


@pytest.mark.parametrize("suffix", [".obj", ".stl", ".ply"])
@pytest.mark.parametrize("style", ["smooth", "blocky"])
def test_export_mesh_round_trip(tmp_path, suffix, style):
    grid = np.zeros((8, 8, 8))
    grid[1:5, 2:6, 0:3] = 1
    out = tmp_path / f"shape{suffix}"
    export_mesh(grid, out, style=style)
    assert out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left
    m = trimesh.load(out, force="mesh")
    assert m.is_watertight
    expected = 48.0 if style == "blocky" else _expected_box_volume(4, 4, 3)
    assert m.volume == pytest.approx(expected, abs=1e-3)
    np.testing.assert_allclose(m.bounds, [[1, 2, 0], [5, 6, 3]], atol=1e-4)


def test_export_mesh_errors(tmp_path):
    grid = np.zeros((4, 4, 4))
    with pytest.raises(Gan3dError, match="no filled voxels") as err:
        export_mesh(grid, tmp_path / "empty.obj")
    assert "empty.obj" in str(err.value)
    grid[1, 1, 1] = 1
    with pytest.raises(Gan3dError, match="suffix") as err:
        export_mesh(grid, tmp_path / "shape.xyz")
    assert "shape.xyz" in str(err.value)
    with pytest.raises(Gan3dError):
        export_mesh(grid, tmp_path / "noext")
    assert list(tmp_path.iterdir()) == []
