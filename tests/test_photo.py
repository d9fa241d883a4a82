"""Photo-like renders (gan3d data render --photo): reproducible bytes, seeds that matter, an object
that covers a sensible part of the frame (checked against plain renders of it), occluders in the
intended share of the images."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from gan3d.cli import main
from gan3d.data import procedural
from gan3d.data.pairs import render_dataset
from gan3d.data.prepared import from_arrays
from gan3d.render.photo import CUT_SHARE, MAX_CUT, OCCLUSION_SHARE, SPAN, photo_background, render_photo
from gan3d.render.rgb import render_rgb


@pytest.fixture(scope="module")
def shapes():
    grids, labels = procedural.make_dataset(14, 16, seed=5)
    return grids, labels


@pytest.fixture(scope="module")
def voxels(tmp_path_factory, shapes):
    grids, labels = shapes
    path = tmp_path_factory.mktemp("photo") / "v.npz"
    from_arrays(grids[:4], labels[:4], list(procedural.CLASS_NAMES)).save(path)
    return path


def _images(folder):
    return np.load(folder / "images.npy")


def test_same_seed_same_bytes_other_seed_other_images(voxels, tmp_path):
    kw = dict(views=[(30.0, 15.0), (200.0, 45.0)], size=48, photo=True, progress=False)
    a = render_dataset(voxels, tmp_path / "a", seed=3, **kw)
    b = render_dataset(voxels, tmp_path / "b", seed=3, **kw)
    render_dataset(voxels, tmp_path / "c", seed=4, **kw)
    render_dataset(voxels, tmp_path / "first", seed=3, limit=1, **kw)
    render_dataset(voxels, tmp_path / "plain", seed=3, **{**kw, "photo": False})
    assert a["count"] == b["count"] == 8
    A, B, C = _images(tmp_path / "a"), _images(tmp_path / "b"), _images(tmp_path / "c")
    assert (tmp_path / "a" / "images.npy").read_bytes() == (tmp_path / "b" / "images.npy").read_bytes()
    assert all(not np.array_equal(A[i], C[i]) for i in range(len(A)))  # every image changes with the seed
    assert np.array_equal(_images(tmp_path / "first"), A[:2])  # the same bytes whatever subset is rendered
    plain = _images(tmp_path / "plain")
    assert (plain[:, 0, 0] == 255).all() and not (A[:, 0, 0] == 255).all(axis=1).any()  # no white corners
    assert len({A[i].tobytes() for i in range(len(A))}) == len(A)
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["options"]["photo"] is True


def _paste(layer, offset, size):
    out = np.zeros((size, size) + layer.shape[2:], layer.dtype)
    m, (c0, r0) = layer.shape[0], offset
    for r in range(m):  # row by row: an independent way of placing the layer
        rr = r0 + r
        if 0 <= rr < size:
            cols = np.arange(m) + c0
            keep = (cols >= 0) & (cols < size)
            out[rr, cols[keep]] = layer[r, keep]
    return out


def test_object_covers_a_sensible_part_of_the_frame(shapes):
    """The object's mask from plain renders (over black and over white) at the drawn scale and
    placement is the photo's object layer; it spans SPAN of the frame, lies whole in it or is cut
    by at most MAX_CUT of its extent, and the picture shows the object's colours there."""
    grids, _ = shapes
    size, spans, cuts = 64, [], 0
    for i in range(40):
        g = grids[i % len(grids)]
        az, el = 25.0 * i, (15.0, 30.0, 45.0)[i % 3]
        res = render_photo(g, azimuth_deg=az, elevation_deg=el, size=size, rng=np.random.default_rng([7, i, 0]), occlusion=0.0)
        p = res.params
        kw = dict(azimuth_deg=az, elevation_deg=el, size=p["render_size"], color=p["color"], light=p["light"],
                  ambient=p["ambient"], diffuse=p["diffuse"])
        white = render_rgb(g, background=np.full((p["render_size"],) * 2 + (3,), 255, np.uint8), **kw).astype(float)
        black = render_rgb(g, background=np.zeros((p["render_size"],) * 2 + (3,), np.uint8), **kw).astype(float)
        alpha_full = 1 - (white - black).mean(axis=2) / 255
        alpha = _paste(alpha_full, p["offset"], size)
        assert np.abs(alpha - res.object_alpha).max() < 2.5 / 255
        inside = alpha.sum() / alpha_full.sum()
        rows, cols = np.nonzero(alpha > 0.5)
        span = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) / size
        spans.append(span)
        assert 0.02 < alpha.mean() < 0.9 and 0.3 < span <= 1.0
        if p["cut"] is None:
            assert inside > 0.995
        else:
            cuts += 1
            assert inside > 1 - 1.5 * MAX_CUT and alpha[[0, -1]].sum() + alpha[:, [0, -1]].sum() > 0  # it reaches an edge
        # where the object covers whole pixels, the picture is the object's shading (camera noise and blur aside)
        core = ndimage.binary_erosion(alpha > 0.999, iterations=2)
        if core.sum() > 20:
            want = np.clip(_paste(white, p["offset"], size) * p["exposure"], 0, 255)
            assert np.abs(res.image.astype(float) - want)[core].mean() < 10
    assert 0 < cuts < 20  # CUT_SHARE of 40
    assert min(spans) < SPAN[0] + 0.2 and max(spans) > SPAN[1] - 0.2  # the scale varies over the range


def test_occluders_in_the_intended_share(shapes):
    grids, _ = shapes
    n, size, occluded, parts = 150, 32, 0, []
    for i in range(n):
        g, az = grids[i % len(grids)], 17.0 * i
        res = render_photo(g, azimuth_deg=az, elevation_deg=30, size=size, rng=np.random.default_rng([2, i, 1]))
        bare = render_photo(g, azimuth_deg=az, elevation_deg=30, size=size, rng=np.random.default_rng([2, i, 1]), occlusion=0.0)
        assert not bare.occluded and not bare.occluder_alpha.any()
        change = np.abs(res.image.astype(int) - bare.image.astype(int)).max(axis=2)
        diff, occ = change > 0, res.occluder_alpha > 0
        # the occluder changes nothing else; the camera blur (PIL's, radius < 0.9) carries a change
        # a few pixels out, beyond two pixels by at most 2 levels
        assert not (diff & ~ndimage.binary_dilation(occ, iterations=6)).any()
        assert not ((change > 2) & ~ndimage.binary_dilation(occ, iterations=2)).any()
        if res.params["occluder"]:
            occluded += 1
            assert res.occluded and diff.any()
            parts.append((res.object_alpha * res.occluder_alpha).sum() / res.object_alpha.sum())
        else:
            assert not diff.any()
    sigma = np.sqrt(OCCLUSION_SHARE * (1 - OCCLUSION_SHARE) / n)
    assert abs(occluded / n - OCCLUSION_SHARE) < 3.5 * sigma
    parts = np.array(parts)
    assert (parts > 0).all() and (parts < 0.9).all() and np.mean((parts >= 0.05) & (parts <= 0.6)) > 0.8
    always = render_photo(grids[0], azimuth_deg=0, elevation_deg=30, size=size, rng=np.random.default_rng(0), occlusion=1.0)
    assert always.occluded


def test_background_is_a_wall_over_a_floor():
    size, differ = 48, 0
    for i in range(40):
        h = 0.3 + 0.01 * i
        bg = photo_background(np.random.default_rng([i]), size, h)
        assert bg.shape == (size, size, 3) and 0 <= bg.min() and bg.max() <= 1
        wall, floor = bg[: int((h - 0.1) * size)], bg[int((h + 0.1) * size) :]
        differ += np.abs(wall.mean((0, 1)) - floor.mean((0, 1))).max() > 0.03
        assert bg.std(axis=(0, 1)).max() > 0.01  # textured, not flat
    assert differ >= 32


def test_photo_refuses_the_other_random_options(voxels, tmp_path, capsys):
    code = main(["data", "render", str(voxels), "--out", str(tmp_path / "o"), "--photo", "--random-background"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "--photo" in err[0] and not (tmp_path / "o").exists()
    assert main(["data", "render", str(voxels), "--out", str(tmp_path / "ok"), "--photo", "--views", "1", "--size", "32"]) == 0
    assert _images(tmp_path / "ok").shape == (4, 32, 32, 3)


def test_merge_pairs_concatenates_plain_and_photo_renders(voxels, tmp_path, capsys):
    from gan3d.data.pairs import PairedData

    render_dataset(voxels, tmp_path / "plain", views=[(30.0, 15.0), (200.0, 45.0)], size=32, seed=3, progress=False)
    render_dataset(voxels, tmp_path / "photo", views=[(200.0, 45.0), (90.0, 30.0)], size=32, seed=3, photo=True, progress=False)
    assert main(["data", "merge-pairs", str(tmp_path / "plain"), str(tmp_path / "photo"), "--out", str(tmp_path / "mix")]) == 0
    plain, photo, mix = (PairedData(tmp_path / n) for n in ("plain", "photo", "mix"))
    assert len(mix) == len(plain) + len(photo) == 16
    assert np.array_equal(mix.images[:8], plain.images[:]) and np.array_equal(mix.images[8:], photo.images[:])
    assert np.array_equal(mix.shape_index, np.concatenate([plain.shape_index, photo.shape_index]))
    # the views are renumbered into one list: every row keeps its (azimuth, elevation)
    views = mix.meta["views"]
    assert len(views) == 3
    assert [tuple(views[v]) for v in mix.view] == [(float(a), float(e)) for a, e in zip(mix.azimuth, mix.elevation)]
    img, shapes = mix.batch(np.array([9, 1]), 32)
    assert torch.equal(shapes[0], photo.batch(np.array([1]), 32)[1][0]) and torch.equal(shapes[1], plain.batch(np.array([1]), 32)[1][0])
    assert [m["options"]["photo"] for m in mix.meta["merged_from"]] == [False, True]
    # a folder of another image size does not merge, and nothing is written
    render_dataset(voxels, tmp_path / "big", views=2, size=40, seed=3, progress=False)
    capsys.readouterr()
    assert main(["data", "merge-pairs", str(tmp_path / "plain"), str(tmp_path / "big"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "big" in err[0] and "--size" in err[0]
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.*"))
