"""Prepared datasets: prepare from every source type, load, info, selection, augmentation."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from gan3d.data import procedural
from gan3d.data.inspect import format_info, info
from gan3d.data.prepare import MODELNET10_CLASSES, prepare
from gan3d.data.prepared import VoxelDataset, from_arrays, load
from gan3d.errors import Gan3dError
from gan3d.io.meshfiles import read_mesh, voxelize_mesh
from gan3d.io.voxelfiles import read_binvox, read_mat, write_binvox
from gan3d.voxels import pad_to, resize, upsample_nearest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MAT_DIR = DATA / "3dshapenets-chair-30" / "volumetric_data" / "chair" / "30"
BINVOX_DIR = DATA / "shapenet-chair-binvox-64"
MODELNET = DATA / "modelnet10-32" / "modelnet10.npz"

needs_mat = pytest.mark.skipif(not MAT_DIR.is_dir(), reason="3D ShapeNets chair data not available")
needs_binvox = pytest.mark.skipif(not BINVOX_DIR.is_dir(), reason="ShapeNet binvox chairs not available")
needs_modelnet = pytest.mark.skipif(not MODELNET.is_file(), reason="ModelNet10 npz not available")


# ----------------------------------------------------------------------------------------------
# 3D ShapeNets .mat trees


def _mat_files(split: str, models: int, rots: range) -> list[Path]:
    files = sorted((MAT_DIR / split).glob("*.mat"))
    ids = sorted({f.stem.split("_")[1] for f in files})[:models]
    return [MAT_DIR / split / f"chair_{i}_{r}.mat" for i in ids for r in rots]


@pytest.fixture(scope="module")
def mat_tree(tmp_path_factory):
    """volumetric_data/{chair,stool}/30/{train,test}/ of symlinks to 20 real .mat files."""
    if not MAT_DIR.is_dir():
        pytest.skip("3D ShapeNets chair data not available")
    root = tmp_path_factory.mktemp("shapenets") / "volumetric_data"
    links = {}
    for split, models in (("train", 3), ("test", 1)):
        d = root / "chair" / "30" / split
        d.mkdir(parents=True)
        for f in _mat_files(split, models, range(1, 5)):
            (d / f.name).symlink_to(f)
            links[(split, f.name)] = f
    # a second class made of renamed copies of two train chairs
    d = root / "stool" / "30" / "train"
    d.mkdir(parents=True)
    for f in _mat_files("train", 4, range(1, 2))[-2:]:
        name = f.name.replace("chair_", "stool_")
        (d / name).symlink_to(f)
    assert sum(1 for _ in root.rglob("*.mat")) == 18
    return root


@needs_mat
def test_prepare_mat_tree_at_64(mat_tree, tmp_path):
    out = tmp_path / "chairs.npz"
    summary = prepare(mat_tree, out, resolution=64, progress=False)
    assert summary["count"] == 18 and summary["class_names"] == ["chair", "stool"]
    assert summary["counts"] == {"chair": {"train": 12, "test": 4}, "stool": {"train": 2, "test": 0}}
    ds = load(out)
    assert len(ds) == 18 and ds.resolution == 64 and ds.class_names == ("chair", "stool")
    files = sorted(mat_tree.rglob("*.mat"))
    by_key = {}
    for f in files:
        cls, mid, rot = f.stem.split("_")
        split = 0 if f.parent.name == "train" else 1
        by_key[(cls, mid, int(rot), split)] = f
    seen = set()
    for i in range(len(ds)):
        cls = ds.class_names[ds.labels[i]]
        key = (cls, str(ds.source_id[i]), int(ds.rotation[i]), int(ds.split[i]))
        f = by_key[key]
        seen.add(key)
        expected = upsample_nearest(pad_to(read_mat(f), 32), 2)  # the usual 30 -> 32 -> 64
        np.testing.assert_array_equal(ds.grids([i])[0], expected.astype(np.float32))
    assert len(seen) == 18
    assert ds.grids([0]).dtype == np.float32
    assert sorted(set(ds.rotation.tolist())) == [1, 2, 3, 4]
    assert len(str(ds.source_id[0])) == 9  # the 9-digit model id


@needs_mat
def test_prepare_mat_filters_and_entry_points(mat_tree, tmp_path):
    a = prepare(mat_tree, tmp_path / "a.npz", resolution=32, rotations=[1], classes=["chair"], progress=False)
    assert a["count"] == 4 and a["counts"] == {"chair": {"train": 3, "test": 1}}
    ds = load(tmp_path / "a.npz")
    assert set(ds.rotation.tolist()) == {1}
    f = mat_tree / "chair" / "30" / "train" / f"chair_{ds.source_id[0]}_1.mat"
    np.testing.assert_array_equal(ds.grids([0])[0] > 0, pad_to(read_mat(f), 32))
    # pointing at the folder holding volumetric_data, or at one class folder, finds the same files
    b = prepare(mat_tree.parent, tmp_path / "b.npz", resolution=32, rotations=[1], classes=["chair"], progress=False)
    c = prepare(mat_tree / "chair", tmp_path / "c.npz", resolution=32, rotations=[1], progress=False)
    for other in (b, c):
        o = load(other["path"])
        np.testing.assert_array_equal(o.source_id, ds.source_id)
        np.testing.assert_array_equal(o.grids(range(len(o))), ds.grids(range(len(ds))))
    d = prepare(mat_tree, tmp_path / "d.npz", resolution=32, splits=["test"], rotations=[2, 3], progress=False)
    dd = load(d["path"])
    assert len(dd) == 2 and set(dd.split.tolist()) == {1} and set(dd.rotation.tolist()) == {2, 3}
    assert dd.class_names == ("chair",)


@needs_mat
def test_prepare_filters_matching_nothing(mat_tree, tmp_path):
    out = tmp_path / "none.npz"
    with pytest.raises(Gan3dError, match="no shapes match --rotations 13"):
        prepare(mat_tree, out, resolution=32, rotations=[13], progress=False)
    with pytest.raises(Gan3dError, match="no shapes match --classes stool --splits test"):
        prepare(mat_tree, out, resolution=32, classes=["stool"], splits="test", progress=False)
    with pytest.raises(Gan3dError, match="no class 'sofa'"):
        prepare(mat_tree, out, resolution=32, classes=["sofa"], progress=False)
    assert not out.exists()


@needs_mat
def test_unreadable_file_in_tree_names_it(mat_tree, tmp_path):
    root = tmp_path / "vd"
    d = root / "chair" / "30" / "train"
    d.mkdir(parents=True)
    for f in _mat_files("train", 1, range(1, 3)):
        (d / f.name).symlink_to(f)
    bad = d / "chair_000000999_1.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(50))
    out = tmp_path / "out.npz"
    with pytest.raises(Gan3dError) as e:
        prepare(root, out, resolution=32, progress=False)
    assert str(bad) in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@needs_mat
def test_pool_matches_serial(tmp_path):
    root = tmp_path / "vd"
    d = root / "chair" / "30" / "train"
    d.mkdir(parents=True)
    for f in _mat_files("train", 90, range(1, 13))[:1080]:
        (d / f.name).symlink_to(f)
    a = prepare(root, tmp_path / "a.npz", resolution=32, workers=1, progress=False)
    b = prepare(root, tmp_path / "b.npz", resolution=32, workers=2, progress=False)
    assert a["count"] == b["count"] == 1080
    with np.load(a["path"]) as za, np.load(b["path"]) as zb:
        np.testing.assert_array_equal(za["packed"], zb["packed"])
        np.testing.assert_array_equal(za["source_id"], zb["source_id"])


@pytest.mark.slow
@needs_mat
def test_full_chair_set_at_64(tmp_path):
    summary = prepare(MAT_DIR.parent.parent.parent, tmp_path / "c.npz", resolution=64, splits="train", progress=False)
    assert summary["count"] == 10668
    ds = load(tmp_path / "c.npz")
    assert ds.resolution == 64 and (ds.rotation >= 1).all()


# ----------------------------------------------------------------------------------------------
# binvox trees


@needs_binvox
def test_prepare_binvox_tree(tmp_path):
    s = prepare(BINVOX_DIR, tmp_path / "bv.npz", resolution=64, progress=False)
    assert s["count"] == 15 and s["class_names"] == ["chair"]
    ds = load(tmp_path / "bv.npz")
    assert set(ds.split.tolist()) == {0} and set(ds.rotation.tolist()) == {0}
    ids = sorted(p.name for p in (BINVOX_DIR / "chair").iterdir())
    assert list(ds.source_id) == ids
    for i in (0, 7, 14):
        f = BINVOX_DIR / "chair" / ds.source_id[i] / "models" / f"{ds.source_id[i]}.binvox"
        np.testing.assert_array_equal(ds.grids([i])[0] > 0, read_binvox(f))
    s32 = prepare(BINVOX_DIR / "chair", tmp_path / "bv32.npz", resolution=32, progress=False)
    d32 = load(s32["path"])
    assert d32.class_names == ("chair",)  # files directly below a class folder: its name
    f = BINVOX_DIR / "chair" / d32.source_id[3] / "models" / f"{d32.source_id[3]}.binvox"
    np.testing.assert_array_equal(d32.grids([3])[0] > 0, resize(read_binvox(f), 32))


def test_binvox_any_layout_and_synset_names(tmp_path):
    g = np.zeros((16, 16, 16), bool)
    g[4:12, 4:12, :10] = True
    write_binvox(tmp_path / "03001627" / "abc" / "models" / "model_normalized.solid.binvox", g)
    write_binvox(tmp_path / "lamps" / "x" / "y" / "z.binvox", g[::-1])
    s = prepare(tmp_path, tmp_path / "o.npz", resolution=16, progress=False)
    ds = load(s["path"])
    assert ds.class_names == ("chair", "lamps")
    assert list(ds.source_id) == ["abc", "z"]
    np.testing.assert_array_equal(ds.grids([1])[0] > 0, g[::-1])
    s2 = prepare(tmp_path, tmp_path / "p.npz", resolution=16, classes=["03001627"], progress=False)
    assert s2["class_names"] == ["chair"]


# ----------------------------------------------------------------------------------------------
# ModelNet-style mesh trees


def _write_mesh_tree(root: Path) -> dict[str, Path]:
    import trimesh

    files = {}
    meshes = {
        ("box", "train", "box_0001"): trimesh.creation.box(extents=(1.0, 0.6, 0.4)),
        ("box", "train", "box_0002"): trimesh.creation.box(extents=(0.3, 0.9, 1.2)),
        ("box", "test", "box_0003"): trimesh.creation.box(extents=(1.0, 1.0, 0.2)),
        ("cylinder", "train", "cylinder_0001"): trimesh.creation.cylinder(radius=0.3, height=1.0, sections=24),
    }
    for (cls, split, stem), mesh in meshes.items():
        d = root / cls / split
        d.mkdir(parents=True, exist_ok=True)
        mesh.apply_translation((0.2, -0.1, 0.5))
        path = d / f"{stem}.off"
        path.write_text(trimesh.exchange.off.export_off(mesh))
        files[stem] = path
    return files


def test_prepare_mesh_tree(tmp_path):
    files = _write_mesh_tree(tmp_path / "meshes")
    s = prepare(tmp_path / "meshes", tmp_path / "m.npz", resolution=24, progress=False)
    assert s["counts"] == {"box": {"train": 2, "test": 1}, "cylinder": {"train": 1, "test": 0}}
    ds = load(s["path"])
    assert list(ds.source_id) == ["box_0001", "box_0002", "box_0003", "cylinder_0001"]
    for i, sid in enumerate(ds.source_id):
        v, f = read_mesh(files[sid])
        expected = voxelize_mesh(v, f, 24, up="z")
        np.testing.assert_array_equal(ds.grids([i])[0] > 0, expected)
    # box_0002 is tallest along z; as a y-up mesh its long side lies along y instead
    g = ds.grids([1])[0] > 0
    assert np.ptp(np.argwhere(g)[:, 2]) == 23
    sy = prepare(tmp_path / "meshes", tmp_path / "y.npz", resolution=24, mesh_up="y", classes=["box"],
                 splits="train", workers=2, progress=False)
    gy = load(sy["path"]).grids([1])[0] > 0
    assert np.ptp(np.argwhere(gy)[:, 1]) == 23
    # a mesh tree one folder down (ModelNet10.zip unpacks to ModelNet10/<class>/...)
    s2 = prepare(tmp_path, tmp_path / "m2.npz", resolution=24, splits="test", progress=False)
    assert s2["count"] == 1


def test_broken_mesh_is_named(tmp_path):
    _write_mesh_tree(tmp_path / "meshes")
    bad = tmp_path / "meshes" / "box" / "train" / "box_0009.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")
    with pytest.raises(Gan3dError) as e:
        prepare(tmp_path / "meshes", tmp_path / "m.npz", resolution=16, progress=False)
    assert str(bad) in str(e.value)


# ----------------------------------------------------------------------------------------------
# npz archives


@pytest.fixture(scope="module")
def modelnet_prepared(tmp_path_factory):
    if not MODELNET.is_file():
        pytest.skip("ModelNet10 npz not available")
    out = tmp_path_factory.mktemp("mn") / "modelnet10-32.npz"
    summary = prepare(MODELNET, out, resolution=32, progress=False)
    return summary, out


@needs_modelnet
def test_modelnet_counts_and_info(modelnet_prepared):
    summary, out = modelnet_prepared
    assert summary["class_names"] == list(MODELNET10_CLASSES)
    train = [106, 515, 889, 200, 200, 465, 200, 680, 392, 344]
    test = [50, 100, 100, 86, 86, 100, 86, 100, 100, 100]
    for k, c in enumerate(MODELNET10_CLASSES):
        assert summary["counts"][c] == {"train": train[k], "test": test[k]}
    d = info(out)
    assert d["count"] == 4899 and d["resolution"] == 32
    assert len(d["empty"]) == 34
    assert sum(e["split"] == "train" for e in d["empty"]) == 27
    ds = load(out)
    for e in d["empty"]:
        assert not ds.grids([e["index"]]).any()
        assert ds.source_id[e["index"]] == e["source_id"]
    assert d["occupancy"]["min"] == 0.0 and 0 < d["occupancy"]["mean"] < d["occupancy"]["max"] <= 1
    # about one grid in seven has stray voxels
    assert 400 < len(d["suspicious"]) < 1000
    assert all(s["largest_fraction"] < 0.9 and s["components"] >= 2 for s in d["suspicious"])
    text = format_info(d)
    assert "empty grids: 34" in text and "night_stand" in text and "3991" in text


@needs_modelnet
def test_modelnet_subset_equals_source_arrays(tmp_path):
    s = prepare(MODELNET, tmp_path / "t.npz", resolution=32, splits="test", classes=["monitor", "chair"],
                progress=False)
    assert s["class_names"] == ["chair", "monitor"]  # kept in the archive's label order
    ds = load(s["path"])
    with np.load(MODELNET) as z:
        x, y = z["X_test"], z["y_test"]
    sel = np.flatnonzero(np.isin(y, [2, 5]))
    assert len(ds) == sel.size == 200
    np.testing.assert_array_equal(ds.labels, np.where(y[sel] == 2, 0, 1))
    np.testing.assert_array_equal(ds.grids(range(len(ds))), x[sel].astype(np.float32))
    assert list(ds.source_id[:2]) == [f"test_{sel[0]}", f"test_{sel[1]}"]
    assert set(ds.split.tolist()) == {1}
    # the same file prepared at 64: every voxel repeated 2x per axis
    s64 = prepare(s["path"], tmp_path / "t64.npz", resolution=64, classes=["chair"], progress=False)
    d64 = load(s64["path"])
    assert d64.class_names == ("chair",) and len(d64) == 100
    np.testing.assert_array_equal(d64.grids([5])[0], upsample_nearest(x[sel[5]], 2).astype(np.float32))


def test_small_npz_class_names_and_resampling(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((6, 16, 16, 16)) < 0.3).astype(np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez_compressed(tmp_path / "a.npz", X_train=x[:4], y_train=y[:4], X_test=x[4:], y_test=y[4:])
    s = prepare(tmp_path / "a.npz", tmp_path / "p.npz", resolution=32, progress=False)
    assert s["class_names"] == ["class_0", "class_1", "class_2"]
    ds = load(s["path"])
    np.testing.assert_array_equal(ds.split, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(ds.grids([4])[0], upsample_nearest(x[4], 2).astype(np.float32))
    np.savez(tmp_path / "b.npz", X_train=x, y_train=y, class_names=np.array(["a", "b", "c"]))
    s = prepare(tmp_path / "b.npz", tmp_path / "q.npz", resolution=8, classes=["c"], progress=False)
    assert s["class_names"] == ["c"] and s["count"] == 2
    np.testing.assert_array_equal(load(s["path"]).grids([0])[0] > 0, resize(x[2], 8))
    np.savez(tmp_path / "c.npz", X_train=x * 3, y_train=y)
    with pytest.raises(Gan3dError, match="outside"):
        prepare(tmp_path / "c.npz", tmp_path / "r.npz", resolution=16, progress=False)
    np.savez(tmp_path / "d.npz", X_train=x, y_train=y[:5])
    with pytest.raises(Gan3dError, match="labels"):
        prepare(tmp_path / "d.npz", tmp_path / "r.npz", resolution=16, progress=False)
    np.savez(tmp_path / "e.npz", grids=x)
    with pytest.raises(Gan3dError, match="X_train"):
        prepare(tmp_path / "e.npz", tmp_path / "r.npz", resolution=16, progress=False)


# ----------------------------------------------------------------------------------------------
# builtin


def test_prepare_builtin(tmp_path):
    s = prepare("builtin", tmp_path / "b.npz", resolution=16, classes=["table", "chair"], per_class=(3, 2),
                seed=4, progress=False)
    assert s["class_names"] == ["chair", "table"]
    assert s["counts"] == {"chair": {"train": 3, "test": 2}, "table": {"train": 3, "test": 2}}
    ds = load(s["path"])
    for i in range(len(ds)):
        seed, index = (int(v) for v in str(ds.source_id[i]).split("-")[1:])
        kind = ds.class_names[ds.labels[i]]
        expected = procedural.make_shape(kind, np.random.default_rng([seed, index]), 16)
        np.testing.assert_array_equal(ds.grids([i])[0] > 0, expected)
    train_ids = set(ds.select(split="train").source_id.tolist())
    assert not train_ids & set(ds.select(split="test").source_id.tolist())
    t = prepare("builtin", tmp_path / "c.npz", resolution=16, classes=["table", "chair"], per_class=(1, 2),
                seed=4, splits="test", progress=False)
    np.testing.assert_array_equal(load(t["path"]).source_id, ds.select(split="test").source_id)


def test_unknown_sources(tmp_path):
    with pytest.raises(Gan3dError, match="not found"):
        prepare(tmp_path / "nope", tmp_path / "o.npz", resolution=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Gan3dError, match="no dataset found"):
        prepare(tmp_path / "empty", tmp_path / "o.npz", resolution=32)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(Gan3dError, match="unsupported source"):
        prepare(tmp_path / "x.txt", tmp_path / "o.npz", resolution=32)


# ----------------------------------------------------------------------------------------------
# the file format and loading


def _toy(n=10, r=8, classes=("a", "b")) -> VoxelDataset:
    """Grid i has exactly i + 1 filled voxels (an asymmetric staircase), so counts identify grids."""
    g = np.zeros((n, r, r, r), bool)
    for i in range(n):
        g[i].reshape(-1)[: i + 1] = True
    labels = np.arange(n) % len(classes)
    split = (np.arange(n) >= n - 3).astype(int)
    return from_arrays(g, labels, classes, split=split, rotation=np.arange(n) % 3,
                       source_id=[f"s{i}" for i in range(n)])


def test_file_layout(tmp_path):
    ds = _toy()
    path = ds.save(tmp_path / "toy.npz")
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())  # uncompressed
    with np.load(path) as z:
        assert str(z["format"]) == "gan3d-voxels" and int(z["format_version"]) == 1
        assert int(z["resolution"]) == 8
        assert z["packed"].dtype == np.uint8 and z["packed"].shape == (10, 64)
        assert z["label"].dtype == np.int64 and z["split"].dtype == np.uint8
        assert z["rotation"].dtype == np.int16 and z["source_id"].dtype.kind == "U"
        assert list(z["class_names"]) == ["a", "b"] and z["source"].dtype.kind == "U"
    back = load(path)
    np.testing.assert_array_equal(back.grids(range(10)), ds.grids(range(10)))
    np.testing.assert_array_equal(back.labels, ds.labels)
    np.testing.assert_array_equal(back.split, ds.split)
    np.testing.assert_array_equal(back.rotation, ds.rotation)
    assert list(back.source_id) == [f"s{i}" for i in range(10)]
    assert not [p for p in tmp_path.iterdir() if p.name != "toy.npz"]  # no temp files left


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_bad_files_give_gan3d_errors(tmp_path):
    good = _toy().save(tmp_path / "good.npz")
    raw = good.read_bytes()
    cases = {}
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    cases["trunc.npz"] = "truncated or corrupt"
    (tmp_path / "garbled.npz").write_bytes(raw[:100] + bytes(len(raw) - 200) + raw[-100:])
    cases["garbled.npz"] = "cannot read dataset file|not a (valid )?gan3d voxel dataset"
    mid = len(raw) // 2  # inside the packed bits: the zip structure survives, the CRC does not
    (tmp_path / "flipped.npz").write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 8]) + raw[mid + 8 :])
    cases["flipped.npz"] = "truncated or corrupt"
    (tmp_path / "text.npz").write_text("not an archive")
    cases["text.npz"] = "not an .npz archive"
    with np.load(good) as z:
        base = {k: z[k] for k in z.files}
    _write_npz(tmp_path / "raw.npz", X_train=np.zeros((1, 4, 4, 4)), y_train=np.zeros(1, int))
    cases["raw.npz"] = "prepare it first"
    _write_npz(tmp_path / "fmt.npz", **{**base, "format": np.array("something-else")})
    cases["fmt.npz"] = "format"
    _write_npz(tmp_path / "ver.npz", **{**base, "format_version": np.array(2)})
    cases["ver.npz"] = "newer"
    _write_npz(tmp_path / "packed.npz", **{**base, "packed": base["packed"][:, :10]})
    cases["packed.npz"] = "packed"
    _write_npz(tmp_path / "label.npz", **{**base, "label": base["label"][:5]})
    cases["label.npz"] = "label"
    _write_npz(tmp_path / "range.npz", **{**base, "label": base["label"] + 5})
    cases["range.npz"] = "labels outside"
    missing = dict(base)
    del missing["split"]
    _write_npz(tmp_path / "missing.npz", **missing)
    cases["missing.npz"] = "missing keys: split"
    for name, text in cases.items():
        with pytest.raises(Gan3dError, match=text) as e:
            load(tmp_path / name)
        assert str(tmp_path / name) in str(e.value), name
        assert "\n" not in str(e.value)
    with pytest.raises(Gan3dError, match="not found"):
        load(tmp_path / "absent.npz")


# ----------------------------------------------------------------------------------------------
# VoxelDataset


def test_select_views():
    ds = _toy()
    tr = ds.select(split="train")
    assert len(tr) == 7 and set(tr.split.tolist()) == {0}
    b = ds.select(classes="b")
    np.testing.assert_array_equal(b.labels, [1] * 5)
    np.testing.assert_array_equal(b.source_id, ["s1", "s3", "s5", "s7", "s9"])
    np.testing.assert_array_equal(b.grids([1])[0], ds.grids([3])[0])
    both = ds.select(split=1, classes=[0])
    assert list(both.source_id) == ["s8"]
    assert both.class_names == ("a", "b")  # labels keep their meaning
    assert ds.select(classes=[1]).source_id.tolist() == b.source_id.tolist()
    nested = tr.select(classes="a")
    assert list(nested.source_id) == ["s0", "s2", "s4", "s6"]
    with pytest.raises(Gan3dError, match="no shapes match"):
        b.select(split="test", classes="a")
    with pytest.raises(Gan3dError, match="unknown class"):
        ds.select(classes="zebra")
    with pytest.raises(Gan3dError, match="unknown split"):
        ds.select(split="validation")
    assert ds.counts() == {"a": {"train": 4, "test": 1}, "b": {"train": 3, "test": 2}}


def test_grids_unpack_only_requested():
    ds = _toy()
    g = ds.grids([3, 0, -1])
    assert g.shape == (3, 8, 8, 8) and g.dtype == np.float32
    np.testing.assert_array_equal(g.reshape(3, -1).sum(1), [4, 1, 10])
    assert ds.grids(2).shape == (1, 8, 8, 8)


def _ids(batch):
    return (batch.reshape(batch.shape[0], -1).sum(1) - 1).astype(int)  # grid i has i + 1 voxels


def _symmetries(g):
    out = []
    for flip in (False, True):
        h = g[::-1] if flip else g
        for k in range(4):
            out.append(np.rot90(h, k, axes=(0, 1)))
    return out


def test_augmentation_is_exact_and_reproducible():
    from gan3d.data.augment import augment_batch

    ds = _toy(n=12, r=6)
    originals = ds.grids(range(12))
    seen = set()
    chunks = [np.arange(i, i + 4) for i in range(0, 12, 4)]

    def run(seed):
        rng = np.random.default_rng(seed)
        return [augment_batch(originals[idx], rng) for idx in chunks]

    batches, again, other = run(3), run(3), run(4)
    for a, b in zip(batches, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
    for batch in batches:
        for g, i in zip(batch, _ids(batch)):
            assert g.sum() == i + 1  # voxel count preserved
            sym = _symmetries(originals[i])
            match = [k for k, s in enumerate(sym) if np.array_equal(g, s)]
            assert match, "augmented grid is not a symmetry of its original"
            seen.add(match[0])
            # z (up) profile unchanged
            np.testing.assert_array_equal(g.sum(axis=(0, 1)), originals[i].sum(axis=(0, 1)))
    assert len(seen) >= 4  # several rotations/flips actually drawn


def test_info_components_and_empty(tmp_path):
    r = 8
    g = np.zeros((5, r, r, r), bool)
    g[0, 1:4, 1:4, 0:3] = True  # one solid block
    g[1, 0, 0, 0] = g[1, 1, 1, 1] = g[1, 2, 2, 2] = True  # diagonal chain: one 26-connected piece
    g[2, 0:2, 0:2, 0:2] = True  # two equal blocks far apart: largest holds 50%
    g[2, 5:7, 5:7, 5:7] = True
    g[4, 1:6, 1:6, 0:5] = True  # 125 voxels + 10 strays in one other piece: 92.6% -> fine
    g[4, 7, 7, 0:7] = True
    g[4, 7, 0, 0:3] = True
    ds = from_arrays(g, [0, 0, 1, 1, 0], ["p", "q"], source_id=["a", "b", "c", "d", "e"])
    d = info(ds)
    assert [e["index"] for e in d["empty"]] == [3] and d["empty"][0]["source_id"] == "d"
    assert [s["index"] for s in d["suspicious"]] == [2]
    assert d["suspicious"][0]["largest_fraction"] == pytest.approx(0.5)
    assert d["occupancy"]["min"] == 0 and d["occupancy"]["max"] == pytest.approx(135 / 512)
    # a 2x repeated grid has the same components (the fast path for 32 -> 64 data)
    big = from_arrays(np.stack([upsample_nearest(x, 2) for x in g]), [0, 0, 1, 1, 0], ["p", "q"])
    db = info(big)
    assert [e["index"] for e in db["empty"]] == [3]
    assert [(s["index"], s["components"]) for s in db["suspicious"]] == [(2, 2)]
    assert db["suspicious"][0]["largest_fraction"] == pytest.approx(0.5)
    path = ds.save(tmp_path / "i.npz")
    text = format_info(info(path))
    assert "empty grids: 1" in text and "#3 d" in text and "50.0%" in text
