"""Tests for gan3d.formats: binvox/mat/npy readers and writers, mesh reading and voxelization,
orientation agreement of the real data sources, and Gan3dError on every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import trimesh

from gan3d.errors import Gan3dError
from gan3d.io.files import DEFAULT_MESH_RESOLUTION, MESH_SUFFIXES, VOXEL_SUFFIXES
from gan3d.io.meshfiles import read_mesh, voxelize_mesh
from gan3d.io.voxelfiles import (
    BinvoxHeader,
    read_array,
    read_binvox,
    read_binvox_header,
    read_mat,
    read_voxels,
    write_array,
    write_binvox,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BINVOX_DIR = DATA / "shapenet-chair-binvox-64" / "chair"
MAT_DIR = DATA / "3dshapenets-chair-30" / "volumetric_data" / "chair" / "30"
NPZ = DATA / "modelnet10-32" / "modelnet10.npz"

needs_binvox = pytest.mark.skipif(not BINVOX_DIR.is_dir(), reason="shared binvox data absent")
needs_mat = pytest.mark.skipif(not MAT_DIR.is_dir(), reason="shared 3D ShapeNets data absent")
needs_npz = pytest.mark.skipif(not NPZ.is_file(), reason="shared ModelNet10 npz absent")


def _binvox_files() -> list[Path]:
    return sorted(BINVOX_DIR.glob("*/models/*.binvox"))


def _mat_files(rotation: int, n: int = 50) -> list[Path]:
    return sorted((MAT_DIR / "train").glob(f"chair_*_{rotation}.mat"))[:n]


def back_offset(grid: np.ndarray) -> np.ndarray:
    """(dx, dy)/R: centroid of the top 35% of the shape's height minus the overall centroid."""
    idx = np.argwhere(grid)
    z = idx[:, 2]
    lo, hi = z.min(), z.max()
    top = idx[z >= hi - 0.35 * (hi - lo + 1)]
    return (top[:, :2].mean(axis=0) - idx[:, :2].mean(axis=0)) / grid.shape[0]


def extents(grid: np.ndarray) -> np.ndarray:
    """Bounding-box side per axis as a fraction of R."""
    idx = np.argwhere(grid)
    return (idx.max(axis=0) - idx.min(axis=0) + 1) / grid.shape[0]


def assert_chair_convention(grids: list[np.ndarray], name: str) -> None:
    """Averaged over chairs: axis 2 is the tallest side, and the back (top region) is at +y."""
    off = np.mean([back_offset(g) for g in grids], axis=0)
    ext = np.mean([extents(g) for g in grids], axis=0)
    assert off[1] > 0.1, f"{name}: chair backs not at +y (offset {off})"
    assert abs(off[0]) < 0.04, f"{name}: chair backs leaning along x (offset {off})"
    assert ext[2] > ext[0] + 0.1 and ext[2] > ext[1] + 0.1, f"{name}: axis 2 not up (extents {ext})"


# ---------------------------------------------------------------------------------------------
# binvox round trip


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.random((16, 16, 16)) < 0.5,
        lambda rng: rng.random((33, 33, 33)) < 0.05,
        lambda rng: np.zeros((32, 32, 32), bool),  # one run of 32768 -> needs many 255-runs
        lambda rng: np.ones((20, 20, 20), bool),
        lambda rng: np.pad(np.ones((10, 30, 30), bool), ((0, 20), (0, 0), (0, 0))),  # long runs of both
        lambda rng: np.ones((1, 1, 1), bool),
    ],
)
def test_binvox_round_trip_exact(tmp_path, make):
    grid = make(np.random.default_rng(0))
    path = tmp_path / "g.binvox"
    write_binvox(path, grid, translate=(-0.25, 0.5, 1e-3), scale=0.618428)
    back, header = read_binvox(path, with_header=True)
    assert back.dtype == bool and back.shape == grid.shape
    np.testing.assert_array_equal(back, grid)
    assert header.dims == grid.shape
    assert header.translate == (-0.25, 0.5, 1e-3) and header.scale == 0.618428
    assert read_binvox_header(path) == header
    # runs are at most 255 long and the data has no slack
    raw = path.read_bytes()[header.data_offset :]
    counts = np.frombuffer(raw, np.uint8)[1::2]
    assert counts.min() >= 1 and int(counts.astype(np.int64).sum()) == grid.size
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temp file"


def test_binvox_layout_matches_format(tmp_path):
    """Raw order: index = x*d*d + z_binvox*d + y_binvox, and binvox's y is our axis 2 (up)."""
    d = 4
    # one filled voxel at binvox (x=1, y=3, z=2) -> flat index 1*16 + 2*4 + 3 = 27
    body = bytes([0, 27, 1, 1, 0, d**3 - 28])
    path = tmp_path / "one.binvox"
    path.write_bytes(b"#binvox 1\ndim 4 4 4\ntranslate 0 0 0\nscale 1\ndata\n" + body)
    grid = read_binvox(path)
    assert grid.sum() == 1 and grid[1, 2, 3]  # ours: x=1, y=z_binvox=2, z(up)=y_binvox=3


def test_binvox_header_optional_lines(tmp_path):
    path = tmp_path / "minimal.binvox"
    path.write_bytes(b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([1, 8]))
    grid, header = read_binvox(path, with_header=True)
    assert grid.all() and header == BinvoxHeader(dims=(2, 2, 2), data_offset=header.data_offset)


# ---------------------------------------------------------------------------------------------
# real data


@needs_binvox
def test_real_binvox_chairs():
    files = _binvox_files()
    assert len(files) == 15
    grids = []
    for f in files:
        grid, header = read_binvox(f, with_header=True)
        assert grid.shape == (64, 64, 64) and grid.dtype == bool
        assert header.dims == (64, 64, 64) and header.scale > 0
        assert 0 < grid.sum() < grid.size
        grids.append(grid)
    assert_chair_convention(grids, "binvox")
    # -cb: the longest side spans (nearly) the whole grid for every model
    assert min(max(extents(g)) for g in grids) > 0.9


@needs_binvox
def test_real_binvox_rewrite_is_byte_identical(tmp_path):
    src = _binvox_files()[0]
    grid, header = read_binvox(src, with_header=True)
    out = tmp_path / "copy.binvox"
    write_binvox(out, grid, translate=header.translate, scale=header.scale)
    np.testing.assert_array_equal(read_binvox(out), grid)
    # the run-length data (not the float formatting of the header) is identical
    assert out.read_bytes()[read_binvox_header(out).data_offset :] == src.read_bytes()[header.data_offset :]


@needs_mat
def test_real_mat_shape_and_turn():
    f = _mat_files(1, 1)[0]
    raw = scipy.io.loadmat(str(f))["instance"]
    assert raw.shape == (30, 30, 30)
    grid = read_mat(f)
    assert grid.shape == (30, 30, 30) and grid.dtype == bool
    assert grid.sum() == (raw > 0).sum()
    np.testing.assert_array_equal(grid, np.rot90(raw > 0, 1, axes=(0, 1)))
    np.testing.assert_array_equal(read_voxels(f), grid)
    assert read_voxels(f, resolution=32).shape == (32, 32, 32)


@needs_mat
def test_real_mat_rotation1_faces_like_convention():
    files = _mat_files(1)
    raw_offset = np.mean([back_offset(scipy.io.loadmat(str(f))["instance"] > 0) for f in files], axis=0)
    assert raw_offset[0] > 0.1 and abs(raw_offset[1]) < 0.04  # as stored: back at +x
    assert_chair_convention([read_mat(f) for f in files], "mat rotation 1")


@needs_npz
def test_real_npz_and_orientation_agreement():
    with np.load(NPZ) as z:
        x, y = z["X_train"], z["y_train"]
        assert x.shape == (3991, 32, 32, 32) and y.shape == (3991,)
        chairs = [g > 0 for g in x[y == 2][:50] if g.any()]
    assert_chair_convention(chairs, "modelnet10 npz")


def test_read_array_npy_npz(tmp_path):
    grid = np.random.default_rng(1).random((8, 8, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", grid)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), grid >= 0.5)
    np.savez(tmp_path / "one.npz", vox=grid.astype(np.int8) * 0 + (grid >= 0.5))
    np.testing.assert_array_equal(read_array(tmp_path / "one.npz"), grid >= 0.5)
    np.savez(tmp_path / "two.npz", a=grid, b=1 - grid)
    np.testing.assert_array_equal(read_voxels(tmp_path / "two.npz", key="b"), (1 - grid) >= 0.5)
    write_array(tmp_path / "w.npz", grid)
    write_array(tmp_path / "w.npy", grid)
    np.testing.assert_array_equal(read_array(tmp_path / "w.npz"), grid >= 0.5)
    np.testing.assert_array_equal(read_voxels(tmp_path / "w.npy", resolution=16), np.repeat(
        np.repeat(np.repeat(grid >= 0.5, 2, 0), 2, 1), 2, 2))


# ---------------------------------------------------------------------------------------------
# meshes


def _cube_off(glued: bool) -> bytes:
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    lines = ["OFF" + ("" if glued else "\n") + f"{len(box.vertices)} {len(box.faces)} 0"]
    lines += [" ".join(f"{c:.6f}" for c in v) for v in box.vertices]
    lines += ["3 " + " ".join(str(i) for i in f) for f in box.faces]
    return ("\n".join(lines) + "\n").encode()


def test_modelnet_glued_off_header(tmp_path):
    path = tmp_path / "chair_0001.off"
    path.write_bytes(_cube_off(glued=True))
    vertices, faces = read_mesh(path)
    assert vertices.shape == (8, 3) and vertices.dtype == np.float64
    assert faces.shape == (12, 3) and faces.dtype == np.int64
    assert read_voxels(path, resolution=16).all()


@pytest.mark.parametrize("suffix", [".obj", ".stl", ".ply", ".off"])
def test_read_mesh_formats(tmp_path, suffix):
    box = trimesh.creation.box(extents=(1.0, 2.0, 4.0))
    path = tmp_path / f"box{suffix}"
    box.export(path)
    vertices, faces = read_mesh(path)
    assert faces.shape[1] == 3 and len(faces) == 12
    np.testing.assert_allclose(vertices.max(axis=0) - vertices.min(axis=0), [1.0, 2.0, 4.0], atol=1e-6)
    grid = read_voxels(path, resolution=32)
    # longest side (z) spans the grid; the others are centred
    np.testing.assert_array_equal(extents(grid), [8 / 32, 16 / 32, 1.0])
    assert grid.sum() == 8 * 16 * 32


def test_voxelize_unit_cube_is_full_block():
    box = trimesh.creation.box()
    for r in (8, 31, 64):
        grid = voxelize_mesh(box.vertices, box.faces, r)
        assert grid.shape == (r, r, r) and grid.dtype == bool and grid.all()


def test_voxelize_sphere_volume():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=3.0)
    r = 64
    grid = voxelize_mesh(sphere.vertices, sphere.faces, r)
    radius = r / 2  # the diameter spans the grid
    expected = 4 / 3 * np.pi * radius**3
    assert abs(grid.sum() / expected - 1) < 0.10
    # solid: the centre is filled and the corners are empty
    assert grid[r // 2 - 2 : r // 2 + 2, r // 2 - 2 : r // 2 + 2, r // 2 - 2 : r // 2 + 2].all()
    assert not grid[0, 0, 0] and not grid[-1, -1, -1]


def test_voxelize_rotated_box_is_solid():
    """Every voxel whose centre is inside a tilted box is filled (surface closed, interior filled)."""
    rot = trimesh.transformations.random_rotation_matrix(rand=np.random.default_rng(3).random(3))
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    box.apply_transform(rot)
    r = 40
    grid = voxelize_mesh(box.vertices, box.faces, r)
    lo = box.vertices.min(axis=0)
    ext = box.vertices.max(axis=0) - lo
    s = r / ext.max()
    centres = np.stack(np.meshgrid(*[np.arange(r) + 0.5] * 3, indexing="ij"), -1).reshape(-1, 3)
    local = ((centres - (r - ext * s) / 2) / s + lo) @ rot[:3, :3]
    inside = (np.abs(local) <= [0.5, 1.0, 1.5]).all(axis=1).reshape(r, r, r)
    assert not (inside & ~grid).any()
    assert grid.sum() < 1.3 * inside.sum()  # only a boundary layer of extra voxels


def test_voxelize_up_y_makes_y_vertical():
    box = trimesh.creation.box(extents=(0.2, 2.0, 0.5))  # tall along y
    # offset the top so we can tell which way is up: a small bump at +y, toward +z (the "back")
    bump = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    bump.apply_translation([0.0, 1.1, 0.15])
    mesh = trimesh.util.concatenate([box, bump])
    grid_y = voxelize_mesh(mesh.vertices, mesh.faces, 32, up="y")
    e = extents(grid_y)
    assert e[2] == 1.0 and e[0] < 0.2 and e[1] < 0.3
    filled = np.argwhere(grid_y)
    top = filled[filled[:, 2] >= 30]
    assert top[:, 1].mean() > 16  # mesh +y is up, mesh +z (back) is at +y
    grid_z = voxelize_mesh(mesh.vertices, mesh.faces, 32, up="z")
    assert extents(grid_z)[1] == 1.0


# ---------------------------------------------------------------------------------------------
# bad input -> Gan3dError naming the file


def _binvox_bytes(dim=b"dim 4 4 4", body=bytes([0, 64])) -> bytes:
    return b"#binvox 1\n" + dim + b"\ntranslate 0 0 0\nscale 1\ndata\n" + body


def _write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    return path


BAD_FILES = {
    "empty.binvox": b"",
    "empty.mat": b"",
    "empty.npy": b"",
    "empty.npz": b"",
    "empty.off": b"",
    "truncated.binvox": _binvox_bytes(body=bytes([0, 40])),
    "odd_bytes.binvox": _binvox_bytes(body=bytes([0, 63, 1])),
    "overlong.binvox": _binvox_bytes(body=bytes([0, 64, 1, 1])),
    "bad_value.binvox": _binvox_bytes(body=bytes([2, 64])),
    "bad_magic.binvox": b"#voxbin 1\ndim 4 4 4\ndata\n" + bytes([0, 64]),
    "noncubic.binvox": _binvox_bytes(dim=b"dim 4 4 8", body=bytes([0, 128])),
    "no_dim.binvox": b"#binvox 1\nscale 1\ndata\n" + bytes([0, 64]),
    "bad_dim.binvox": _binvox_bytes(dim=b"dim four 4 4"),
    "no_data_line.binvox": b"#binvox 1\ndim 4 4 4\n",
    "wrong_key.mat": lambda p: scipy.io.savemat(p, {"voxels": np.zeros((4, 4, 4), np.int8)}),
    "flat.mat": lambda p: scipy.io.savemat(p, {"instance": np.zeros((4, 4), np.int8)}),
    "truncated.mat": lambda p: (
        scipy.io.savemat(p, {"instance": np.ones((30, 30, 30), np.int8)}),
        p.write_bytes(p.read_bytes()[:300]),
    ),
    "header_only.mat": lambda p: (
        scipy.io.savemat(p, {"instance": np.ones((3, 3, 3))}),
        p.write_bytes(p.read_bytes()[:128]),
    ),
    "v73.mat": b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116)
    + b"\x00" * 8
    + b"\x00\x02IM"
    + b"\x89HDF\r\n\x1a\n"
    + b"\x00" * 64,
    "garbage.mat": b"MATLAB 5.0 MAT-file, this is not really one" * 3,
    "flat.npy": lambda p: np.save(p, np.zeros((4, 4))),
    "noncubic.npy": lambda p: np.save(p, np.zeros((4, 4, 5))),
    "range.npy": lambda p: np.save(p, np.full((4, 4, 4), 3.0)),
    "nan.npy": lambda p: np.save(p, np.full((4, 4, 4), np.nan)),
    "strings.npy": lambda p: np.save(p, np.full((2, 2, 2), "a")),
    "truncated.npy": lambda p: (np.save(p, np.zeros((8, 8, 8))), p.write_bytes(p.read_bytes()[:200])),
    "garbage.npz": b"PK\x03\x04 not a zip archive at all",
    "two_arrays.npz": lambda p: np.savez(p, a=np.zeros((4, 4, 4)), b=np.zeros((4, 4, 4))),
    "batch.npz": lambda p: np.savez(p, X=np.zeros((3, 4, 4, 4))),
    "no_faces.off": b"OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n",
    "bad_counts.off": b"OFF\n4 2 0\n0 0 0\n1 0 0\n",
    "garbage.off": b"hello world\n",
    "bad_index.off": b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",
    "nan.off": b"OFF\n3 1 0\nnan 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
    "flat.obj": b"v 0 0 0\nv 1 0 0\nv 0 1 0\n",
    "garbage.stl": b"solid x\nthis is not an stl\n",
    "garbage.ply": b"ply\nformat nonsense\n",
    "degenerate.off": b"OFF\n3 1 0\n1 1 1\n1 1 1\n1 1 1\n3 0 1 2\n",
    "shape.xyz": b"1 2 3\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_raises_gan3d_error_naming_file(tmp_path, name):
    path = _write(tmp_path, name, BAD_FILES[name])
    with pytest.raises(Gan3dError) as info:
        read_voxels(path, resolution=8 if path.suffix in MESH_SUFFIXES else None)
    message = str(info.value)
    assert name in message and "\n" not in message
    assert info.value.path == str(path)


def test_wrong_key_message_lists_keys(tmp_path):
    path = _write(tmp_path, "wrong_key.mat", BAD_FILES["wrong_key.mat"])
    with pytest.raises(Gan3dError, match="voxels"):
        read_mat(path)
    with pytest.raises(Gan3dError, match="arrays: voxels"):
        read_array(_write(tmp_path, "two.npz", lambda p: np.savez(p, voxels=np.zeros(3))), key="nope")


@pytest.mark.parametrize(
    "reader", [read_mat, read_binvox, read_binvox_header, read_array, read_mesh, read_voxels]
)
def test_missing_file(tmp_path, reader):
    path = tmp_path / "does_not_exist.binvox"
    with pytest.raises(Gan3dError, match="does_not_exist.binvox.*not found"):
        reader(path)


def test_write_binvox_rejects_non_cubic(tmp_path):
    with pytest.raises(Gan3dError, match="out.binvox"):
        write_binvox(tmp_path / "out.binvox", np.zeros((4, 4, 5)))
    assert not (tmp_path / "out.binvox").exists()


def test_suffix_constants():
    assert set(VOXEL_SUFFIXES) == {".mat", ".binvox", ".npy", ".npz"}
    assert set(MESH_SUFFIXES) == {".off", ".obj", ".stl", ".ply"}
    assert DEFAULT_MESH_RESOLUTION == 64
