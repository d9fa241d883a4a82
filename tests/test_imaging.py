from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan3d.data import procedural
from gan3d.data.images import prepare_image
from gan3d.data.pairs import VIEWS_PAPER, PairedData, render_dataset
from gan3d.data.prepare import prepare
from gan3d.data.prepared import from_arrays, load
from gan3d.errors import Gan3dError
from gan3d.render.rgb import random_background, random_color, render_rgb

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELNET = DATA / "modelnet10-32" / "modelnet10.npz"


def _chair(r=32, seed=0):
    return procedural.make_shape("chair", np.random.default_rng(seed), r)


def _sofa(r=32, seed=0):
    return procedural.make_shape("sofa", np.random.default_rng(seed), r)


def _silhouette(img):
    return (img != 255).any(axis=2)


def _crop_to_grid(mask, r, size):
    """The central square where the bounding cube lands, resized to r x r (cell-majority)."""
    side = size * 0.96  # render._FILL
    lo = size / 2 - side / 2
    # pixel centres -> grid cell index
    idx = np.floor((np.arange(size) + 0.5 - lo) / side * r).astype(int)
    out = np.zeros((r, r))
    cnt = np.zeros((r, r))
    ok = (idx >= 0) & (idx < r)
    rows, cols = np.nonzero(ok[:, None] & ok[None, :])
    np.add.at(out, (idx[rows], idx[cols]), mask[rows, cols])
    np.add.at(cnt, (idx[rows], idx[cols]), 1)
    return out / np.maximum(cnt, 1) >= 0.5


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


@pytest.mark.parametrize("shape", [_chair, _sofa])
def test_axis_views_match_orthographic_projection(shape):
    g = shape()
    r, size = g.shape[0], 128
    # top view: x to the right, +y up on screen
    top = render_rgb(g, azimuth_deg=0, elevation_deg=90, size=size)
    expect = g.any(axis=2).T[::-1]  # rows: y descending, cols: x
    assert _iou(_crop_to_grid(_silhouette(top), r, size), expect) > 0.9
    # front view (camera at -y): x right, z up
    front = render_rgb(g, azimuth_deg=0, elevation_deg=0, size=size)
    expect = g.any(axis=1).T[::-1]
    assert _iou(_crop_to_grid(_silhouette(front), r, size), expect) > 0.9
    # side view from -x (azimuth 90): -y to the right, z up
    side = render_rgb(g, azimuth_deg=90, elevation_deg=0, size=size)
    expect = g.any(axis=0)[::-1].T[::-1]
    assert _iou(_crop_to_grid(_silhouette(side), r, size), expect) > 0.9
    # bottom view also works
    bottom = render_rgb(g, azimuth_deg=0, elevation_deg=-90, size=size)
    assert _silhouette(bottom).sum() == pytest.approx(_silhouette(top).sum(), rel=0.1)


def test_render_basics():
    g = _chair()
    img = render_rgb(g, azimuth_deg=30, elevation_deg=20, size=64, color=(200, 50, 50))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    obj = _silhouette(img)
    assert 0.05 < obj.mean() < 0.9
    # object pixels are reddish, shaded with several levels
    assert (img[obj][:, 0] >= img[obj][:, 1]).all()
    assert len(np.unique(img[obj][:, 0])) > 3
    empty = render_rgb(np.zeros((8, 8, 8)), azimuth_deg=0, elevation_deg=30, size=32)
    assert (empty == 255).all()
    with pytest.raises(ValueError):
        render_rgb(g, azimuth_deg=0, elevation_deg=100)


def test_views_paper():
    assert len(VIEWS_PAPER) == 72 and len(set(VIEWS_PAPER)) == 72
    assert sorted({a for a, _ in VIEWS_PAPER}) == [15.0 * k for k in range(24)]
    assert sorted({e for _, e in VIEWS_PAPER}) == [15.0, 30.0, 45.0]


def test_random_background_changes_only_outside_silhouette():
    g = _chair()
    plain = render_rgb(g, azimuth_deg=45, elevation_deg=30, size=96)
    bg = random_background(np.random.default_rng(3), 96)
    over = render_rgb(g, azimuth_deg=45, elevation_deg=30, size=96, background=bg)
    obj = _silhouette(plain)
    # fully covered pixels are identical; pixels off the object show the background
    inner = obj.copy()
    for axis in (0, 1):
        for s in (1, -1):
            inner &= np.roll(obj, s, axis=axis)
    assert np.array_equal(plain[inner], over[inner])
    assert np.array_equal(over[~obj], bg[~obj])
    assert (plain[~obj] != over[~obj]).any()


def test_random_background_and_color_deterministic():
    for s in range(6):
        a = random_background(np.random.default_rng([1, s]), 64)
        b = random_background(np.random.default_rng([1, s]), 64)
        assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert random_color(np.random.default_rng(5)) == random_color(np.random.default_rng(5))


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ds")
    if MODELNET.is_file():
        path = tmp / "m.npz"
        prepare(MODELNET, path, resolution=32, classes=["chair", "bed"], progress=False)
        return path
    grids, labels = procedural.make_dataset(6, 32, seed=0, classes=["chair", "bed"])
    path = tmp / "p.npz"
    from_arrays(grids, labels, ["chair", "bed"], split=[0, 0, 0, 1, 1, 1]).save(path)
    return path


def test_render_dataset_round_trip(small_dataset, tmp_path):
    out = tmp_path / "pairs"
    views = [(0.0, 30.0), (90.0, 15.0), (200.0, 45.0)]
    summary = render_dataset(
        small_dataset, out, views=views, size=64, split="test", limit=3,
        random_background=True, random_color=True, seed=7, progress=False,
    )
    assert summary["count"] == 9 and summary["shapes"] == 3
    p = PairedData(out)
    assert len(p) == 9 and p.image_size == 64
    assert isinstance(p.images, np.memmap)
    ds = load(small_dataset)
    sel = ds.select(split="test")
    rows = sel.indices[:3]
    assert np.array_equal(p.shape_index, np.repeat(rows, 3))
    assert np.array_equal(p.view, np.tile([0, 1, 2], 3))
    assert np.allclose(p.azimuth, np.tile([0, 90, 200], 3)) and np.allclose(p.elevation, np.tile([30, 15, 45], 3))
    assert np.array_equal(p.label, ds.labels[rows].repeat(3)) and (p.split == 1).all()
    assert p.meta["source"] == str(Path(small_dataset).resolve())
    assert p.meta["resolution"] == 32 and p.meta["class_names"] == list(ds.class_names)
    assert p.meta["size"] == 64 and p.meta["seed"] == 7
    # image i is the shape at shape_index[i] seen from its view with its per-image rng
    i = 4
    grid = ds.grids(int(p.shape_index[i]))[0]
    rng = np.random.default_rng([7, int(p.shape_index[i]), int(p.view[i])])
    col = random_color(rng)
    bg = random_background(rng, 64)
    expect = render_rgb(grid, azimuth_deg=90, elevation_deg=15, size=64, color=col, background=bg)
    assert np.array_equal(np.asarray(p.images[i]), expect)
    # deterministic per seed, different for another seed
    render_dataset(small_dataset, tmp_path / "again", views=views, size=64, split="test", limit=3,
                           random_background=True, random_color=True, seed=7, progress=False)
    assert np.array_equal(np.load(tmp_path / "again" / "images.npy"), np.asarray(p.images))
    render_dataset(small_dataset, tmp_path / "other", views=views, size=64, split="test", limit=3,
                           random_background=True, random_color=True, seed=8, progress=False)
    assert not np.array_equal(np.load(tmp_path / "other" / "images.npy"), np.asarray(p.images))
    # no temporary folders left behind; existing output is refused
    assert sorted(x.name for x in tmp_path.iterdir()) == ["again", "other", "pairs"]
    with pytest.raises(Gan3dError, match="exists"):
        render_dataset(small_dataset, out, views=views, size=64, progress=False)


def test_render_dataset_view_count(small_dataset, tmp_path):
    s = render_dataset(small_dataset, tmp_path / "o", views=4, size=32, classes=["bed"], limit=2,
                               seed=1, progress=False)
    p = PairedData(tmp_path / "o")
    assert s["count"] == 8 and len(p) == 8
    assert len(p.meta["views"]) == 72
    for k in range(2):
        v = p.view[4 * k : 4 * k + 4]
        assert len(set(v.tolist())) == 4
        for j in range(4):
            az, el = VIEWS_PAPER[v[j]]
            assert p.azimuth[4 * k + j] == az and p.elevation[4 * k + j] == el
    assert (np.array(p.meta["class_names"])[p.label] == "bed").all()


def test_load_pairs_errors(small_dataset, tmp_path):
    out = tmp_path / "p"
    render_dataset(small_dataset, out, views=[(0, 30)], size=32, limit=2, progress=False)
    PairedData(out)
    with pytest.raises(Gan3dError, match="no such directory"):
        PairedData(tmp_path / "nothing")
    (out / "pairs.npz").write_bytes(b"garbage")
    with pytest.raises(Gan3dError, match="pairs.npz"):
        PairedData(out)
    (out / "images.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(Gan3dError, match="images.npy"):
        PairedData(out)
    (out / "meta.json").unlink()
    with pytest.raises(Gan3dError, match="meta.json"):
        PairedData(out)


def test_render_throughput_dozens_per_second():
    import time

    g = _chair()
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    n = 0
    for az, el in VIEWS_PAPER[::8]:
        render_rgb(g, azimuth_deg=az, elevation_deg=el, size=256, color=random_color(rng),
                           background=random_background(rng, 256))
        n += 1
    rate = n / (time.perf_counter() - t)
    assert rate > 10  # lenient: the machine may be busy; measured ~50-100/s on one free core


# ---------------------------------------------------------------------------------------------- prepare_image


def _save(tmp_path, name, img, **kw):
    p = tmp_path / name
    img.save(p, **kw)
    return p


def test_prepare_image_modes(tmp_path):
    gray = _save(tmp_path, "g.png", Image.fromarray(np.full((40, 80), 100, np.uint8), "L"))
    x = prepare_image(gray, size=32)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    assert np.allclose(x, 100 / 255, atol=1e-2)
    rgba = np.zeros((50, 30, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:25, :, 3] = 255  # top half opaque red, bottom transparent -> white
    p = _save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA"))
    x = prepare_image(p, size=30)
    assert x.shape == (3, 30, 30)
    assert np.allclose(x[:, 2, 15], [1, 0, 0], atol=0.05)
    assert np.allclose(x[:, -2, 15], [1, 1, 1], atol=0.05)
    pal = Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 7).astype(np.uint8), "L").convert("P")
    x = prepare_image(_save(tmp_path, "p.png", pal), size=16)
    assert x.shape == (3, 16, 16) and 0 <= x.min() and x.max() <= 1
    jpg = _save(tmp_path, "c.jpg", Image.fromarray((np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)))
    x = prepare_image(jpg, size=48)
    assert x.shape == (3, 48, 48)
    # wide image: centre crop keeps the middle columns
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, 20:40] = 255
    x = prepare_image(arr, size=20)
    assert x.min() > 0.9
    assert prepare_image(np.ones((20, 20)), size=20).shape == (3, 20, 20)


def test_prepare_image_errors(tmp_path):
    tiny = _save(tmp_path, "tiny.png", Image.new("RGB", (10, 40)))
    with pytest.raises(Gan3dError, match="tiny.png.*too small"):
        prepare_image(tiny)
    full = tmp_path / "full.jpg"
    Image.fromarray((np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)).save(full)
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(Gan3dError, match="trunc.jpg"):
        prepare_image(trunc)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(Gan3dError, match="empty.png.*empty"):
        prepare_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(Gan3dError, match="notes.png"):
        prepare_image(text)
    with pytest.raises(Gan3dError, match="missing.png"):
        prepare_image(tmp_path / "missing.png")
    with pytest.raises(Gan3dError, match="too small"):
        prepare_image(np.zeros((8, 8, 3), np.uint8))


def test_render_dataset_failure_leaves_nothing(small_dataset, tmp_path, monkeypatch):
    calls = []

    def boom(*a, **k):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("interrupted")
        return np.zeros((32, 32, 3), np.uint8)

    monkeypatch.setattr("gan3d.data.pairs.render_rgb", boom)
    with pytest.raises(RuntimeError):
        render_dataset(small_dataset, tmp_path / "out", views=[(0, 30), (90, 30)], size=32, progress=False)
    assert list(tmp_path.iterdir()) == []
