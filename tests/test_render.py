"""Tests for gan3d.render: voxel pictures, tiling and PNG output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan3d.render import raster as render
from gan3d.render.raster import (
    LABEL_HEIGHT,
    project_points,
    render_files,
    render_grid_png,
    render_voxels,
    save_png,
    tile,
)


def _mask(img):
    """Pixels that are not pure white background."""
    return (img != 255).any(axis=2)


def _centroid(img):
    rows, cols = np.nonzero(_mask(img))
    return rows.mean(), cols.mean()


def _chair(r=32):
    """Seat, four legs, and a back at large y: the object faces -y."""
    g = np.zeros((r, r, r), dtype=bool)
    g[8:24, 8:24, 10:12] = True  # seat
    for x in (8, 22):
        for y in (8, 22):
            g[x : x + 2, y : y + 2, 0:10] = True  # legs
    g[8:24, 22:24, 12:28] = True  # back
    return g


def test_output_type_shape_and_empty_grid_is_blank():
    for size in (16, 64, 100):
        img = render_voxels(np.zeros((8, 8, 8)), size=size)
        assert img.dtype == np.uint8 and img.shape == (size, size, 3)
        assert (img == 255).all()
    img = render_voxels(_chair(), size=64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("seed", range(8))
def test_silhouette_nonempty_exactly_when_grid_nonempty(seed):
    rng = np.random.default_rng(seed)
    r = int(rng.choice([8, 32, 64]))
    grid = np.zeros((r, r, r), dtype=np.float32)
    n = int(rng.integers(0, 4))
    for _ in range(n):  # a few single voxels anywhere, including the borders
        grid[tuple(rng.integers(0, r, size=3))] = 1.0
    grid[grid < 0.5] = rng.uniform(0, 0.49, size=(grid < 0.5).sum())  # soft values below threshold
    img = render_voxels(grid, size=int(rng.choice([24, 64])))
    assert _mask(img).any() == (n > 0)


def test_single_voxel_in_a_big_grid_still_shows_in_a_small_picture():
    grid = np.zeros((128, 128, 128), dtype=bool)
    grid[127, 0, 127] = True  # a corner, sub-pixel at this size
    img = render_voxels(grid, size=32)
    assert _mask(img).any()


def test_background_stays_white_outside_the_projection():
    grid = np.zeros((16, 16, 16), dtype=bool)
    grid[4:9, 6:10, 2:12] = True
    size = 96
    img = render_voxels(grid, size=size)
    corners = np.array(list(np.ndindex(2, 2, 2))) * [5, 4, 10] + [4, 6, 2]
    cr = project_points(corners, grid.shape, size=size)
    c0, r0 = np.floor(cr.min(axis=0)).astype(int) - 1
    c1, r1 = np.ceil(cr.max(axis=0)).astype(int) + 1
    outside = np.ones((size, size), dtype=bool)
    outside[max(r0, 0) : r1, max(c0, 0) : c1] = False
    assert (img[outside] == 255).all()
    assert _mask(img)[~outside].mean() > 0.4  # and the shape fills a good part of its box


def test_up_is_up_on_screen():
    r = 16
    rows = []
    for z in (2, 7, 12):
        g = np.zeros((r, r, r), dtype=bool)
        g[8, 8, z] = True
        rows.append(_centroid(render_voxels(g, size=64))[0])
    assert rows[0] > rows[1] > rows[2]  # moving along +z lowers the row index


def test_x_moves_right_and_y_moves_left():
    r = 16
    cols_x, cols_y = [], []
    for v in (2, 7, 12):
        g = np.zeros((r, r, r), dtype=bool)
        g[v, 8, 8] = True
        cols_x.append(_centroid(render_voxels(g, size=64))[1])
        g = np.zeros((r, r, r), dtype=bool)
        g[8, v, 8] = True
        cols_y.append(_centroid(render_voxels(g, size=64))[1])
    assert cols_x[0] < cols_x[1] < cols_x[2]
    assert cols_y[0] > cols_y[1] > cols_y[2]


def test_chair_back_is_above_and_behind_the_seat():
    g = _chair()
    back = np.zeros_like(g)
    back[8:24, 22:24, 12:28] = True
    seat = np.zeros_like(g)
    seat[8:24, 8:24, 10:12] = True
    rb, cb = _centroid(render_voxels(back, size=96))
    rs, cs = _centroid(render_voxels(seat, size=96))
    assert rb < rs  # the back rises above the seat
    assert cb < cs  # and lies behind it (large y goes to the left)
    # the whole chair: the seat's top and the front of the back are both in view, the seat
    # (a top face) lighter than the back's front (a -y face)
    img = render_voxels(g, size=96)
    seat_top = _face_centre_colour(img, g.shape, [16, 14, 12])
    back_front = _face_centre_colour(img, g.shape, [16, 22, 20])
    assert (seat_top < 255).any() and (back_front < 255).any()
    assert seat_top.sum() > back_front.sum() + 30


def _face_centre_colour(img, grid_shape, point):
    c, r = project_points([point], grid_shape, size=img.shape[0])[0]
    return img[int(r), int(c)].astype(int)


@pytest.mark.parametrize("outline", [True, False])
def test_three_visible_faces_have_distinct_shades(outline):
    r = 16
    g = np.zeros((r, r, r), dtype=bool)
    g[4:12, 4:12, 4:12] = True
    img = render_voxels(g, size=128, outline=outline)
    top = _face_centre_colour(img, g.shape, [8, 8, 12])
    front = _face_centre_colour(img, g.shape, [8, 4, 8])  # -y face
    left = _face_centre_colour(img, g.shape, [4, 8, 8])  # -x face
    for a, b in ((top, front), (front, left), (top, left)):
        assert np.abs(a - b).sum() >= 30, (top, front, left)
    # the light comes from above and the front: top brightest, then front, then side
    assert top.sum() > front.sum() > left.sum()


def test_colour_option():
    g = np.zeros((8, 8, 8), dtype=bool)
    g[2:6, 2:6, 2:6] = True
    img = render_voxels(g, size=48, color=(1.0, 0.1, 0.1), supersample=1)  # no antialiased rims
    px = img[_mask(img)].astype(int)
    assert len(px) > 100 and (px[:, 0] > px[:, 1] + 40).all() and (px[:, 0] > px[:, 2] + 40).all()
    img255 = render_voxels(g, size=48, color=(255, 25.5, 25.5), supersample=1)  # 0..255 works too
    np.testing.assert_allclose(img.astype(int), img255.astype(int), atol=1)


def test_accepts_channel_axis_and_non_cubic_and_rejects_bad_shapes():
    g = np.zeros((1, 8, 8, 8), dtype=np.float32)
    g[0, 3, 3, 3] = 0.9
    assert _mask(render_voxels(g, size=32)).any()
    nc = np.zeros((4, 8, 12), dtype=bool)
    nc[1, 2, 3] = True
    assert _mask(render_voxels(nc, size=32)).any()
    with pytest.raises(ValueError):
        render_voxels(np.zeros((8, 8)), size=32)


def test_render_is_deterministic_on_noise():
    rng = np.random.default_rng(0)
    g = rng.random((64, 64, 64)) < 0.3  # worst-case noise, like an untrained generator
    a = render_voxels(g, size=128)
    b = render_voxels(g, size=128)
    np.testing.assert_array_equal(a, b)
    assert _mask(a).mean() > 0.3


def test_render_mesh_of_a_box():
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    img = render.render_mesh(box.vertices, box.faces, size=64, resolution=16)
    assert img.shape == (64, 64, 3) and _mask(img).any()


# ---------------------------------------------------------------------------------------------
# tiling and files


@pytest.mark.parametrize(
    "n, ncols, pad, labels, expect_rows, expect_cols",
    [(1, None, 2, False, 1, 1), (5, None, 2, False, 2, 3), (9, None, 0, True, 3, 3), (7, 2, 3, True, 4, 2), (3, 10, 1, False, 1, 3)],
)
def test_tile_size_arithmetic(n, ncols, pad, labels, expect_rows, expect_cols):
    h, w = 20, 30
    imgs = [np.full((h, w, 3), i * 20, dtype=np.uint8) for i in range(n)]
    out = tile(imgs, ncols=ncols, pad=pad, labels=[f"s{i}" for i in range(n)] if labels else None)
    lab = LABEL_HEIGHT if labels else 0
    assert out.dtype == np.uint8
    assert out.shape == (expect_rows * (h + lab) + (expect_rows + 1) * pad, expect_cols * w + (expect_cols + 1) * pad, 3)
    # image i sits at row i // ncols, column i % ncols
    for i in range(n):
        r, c = divmod(i, expect_cols)
        y, x = pad + r * (h + lab + pad), pad + c * (w + pad)
        assert (out[y : y + h, x : x + w] == i * 20).all()


def test_tile_labels_are_drawn_and_long_labels_fit():
    imgs = [np.full((40, 40, 3), 255, dtype=np.uint8)] * 2
    out = tile(imgs, labels=["chair", "a_very_long_file_name_that_cannot_fit.binvox"], pad=2)
    strip = out[2 + 40 : 2 + 40 + LABEL_HEIGHT]
    assert (strip[:, 2 : 2 + 40] < 128).any()  # dark text under the first image
    assert (strip[:, 44 : 44 + 40] < 128).any()
    assert (out[:, 42:44] == 255).all() and (out[:, 84:] == 255).all()  # labels stay in their cells
    with pytest.raises(ValueError):
        tile(imgs, labels=["one"])
    with pytest.raises(ValueError):
        tile([])


def test_tile_accepts_gray_and_float_images():
    out = tile([np.zeros((10, 10), dtype=np.uint8), np.ones((10, 10, 3), dtype=np.float32)], pad=0)
    assert out.shape == (10, 20, 3)
    assert (out[:, :10] == 0).all() and (out[:, 10:] == 255).all()


def test_save_png_round_trip(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, size=(12, 17, 3), dtype=np.uint8)
    out = save_png(img, tmp_path / "sub" / "a.png")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), img)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.png"]


def test_save_png_failure_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "b.png"

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_png(np.zeros((4, 4, 3), dtype=np.uint8), target)
    assert list(tmp_path.iterdir()) == []


def test_save_png_failure_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "c.png"
    save_png(np.zeros((4, 4, 3), dtype=np.uint8), target)
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_png(np.full((4, 4, 3), 9, dtype=np.uint8), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]


def test_render_grid_png(tmp_path):
    grids = np.zeros((3, 1, 8, 8, 8), dtype=np.float32)
    grids[0, 0, 2:5, 2:5, 0:6] = 1
    grids[2, 0, 4, 4, 4] = 1
    out = tmp_path / "grid.png"
    image = render_grid_png(grids, out, size=32, ncols=3, labels=["a", "b", "c"])
    loaded = np.asarray(Image.open(out))
    np.testing.assert_array_equal(loaded, image)
    assert image.shape == (32 + LABEL_HEIGHT + 4, 3 * 32 + 8, 3)
    cells = [image[2 : 2 + 32, 2 + i * 34 : 2 + i * 34 + 32] for i in range(3)]
    assert _mask(cells[0]).any() and not _mask(cells[1]).any() and _mask(cells[2]).any()


def test_render_files_with_reader(tmp_path, monkeypatch):
    calls = []

    def fake_read_voxels(path, *, resolution=None, key=None, mesh_up="z"):
        calls.append((str(path), resolution, mesh_up))
        g = np.zeros((resolution or 8,) * 3, dtype=bool)
        if "full" in str(path):
            g[2:6, 2:6, 2:6] = True
        return g

    monkeypatch.setattr("gan3d.io.voxelfiles.read_voxels", fake_read_voxels)
    paths = [tmp_path / "full.binvox", tmp_path / "empty.npy", tmp_path / "full.obj"]
    out = tmp_path / "files.png"
    image = render_files(paths, out, resolution=16, size=40, mesh_up="y")
    # voxel files keep their own resolution; meshes are voxelized at the requested one
    assert calls == [(str(paths[0]), None, "z"), (str(paths[1]), None, "z"), (str(paths[2]), 16, "y")]
    assert out.exists() and image.shape == (2 * (40 + LABEL_HEIGHT) + 6, 2 * 40 + 6, 3)
    cells = [image[2:42, 2:42], image[2:42, 44:84], image[44 + LABEL_HEIGHT : 84 + LABEL_HEIGHT, 2:42]]
    assert _mask(cells[0]).any() and not _mask(cells[1]).any() and _mask(cells[2]).any()


def test_render_files_real_reader(tmp_path):
    pytest.importorskip("gan3d.io.voxelfiles")
    g = np.zeros((16, 16, 16), dtype=bool)
    g[4:12, 4:12, 0:8] = True
    np.save(tmp_path / "box.npy", g)
    image = render_files([tmp_path / "box.npy"], tmp_path / "out.png", size=48)
    assert (tmp_path / "out.png").exists() and _mask(image).any()
