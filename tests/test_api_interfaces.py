"""The one IoU, the one checkpoint resolver and the one grid writer (issue 8, interface 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.eval.metrics import iou_distance_matrix
from gan3d.io.writer import FORMATS, write_grids
from gan3d.voxels import iou, iou_torch


def _hand_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Slow reference: count voxels one by one."""
    inter = union = 0
    for x, y in zip(a.ravel(), b.ravel()):
        inter += bool(x >= 0.5) and bool(y >= 0.5)
        union += bool(x >= 0.5) or bool(y >= 0.5)
    return 1.0 if union == 0 else inter / union


def test_iou_pins_the_empty_rule_and_matches_a_hand_count():
    r = 4
    empty = np.zeros((r, r, r), bool)
    one = empty.copy()
    one[1, 2, 3] = True
    block = empty.copy()
    block[:2, :2, :2] = True  # 8 voxels, one of them... none shared with `one`
    block2 = empty.copy()
    block2[1:3, :2, :2] = True  # shares 4 voxels with block, union 12
    assert iou(empty, empty) == 1.0
    assert iou(empty, one) == 0.0 and iou(one, empty) == 0.0
    assert iou(block, block2) == pytest.approx(4 / 12)
    assert iou(block, block) == 1.0
    rng = np.random.default_rng(0)
    a = rng.random((6, 5, 5, 5)).astype(np.float32)
    b = rng.random((6, 5, 5, 5)).astype(np.float32) * 0.9
    a[0] = 0.0
    b[0] = 0.2  # both empty after thresholding
    got = iou(a, b)
    assert got.shape == (6,)
    want = [_hand_iou(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got[0] == 1.0
    # the torch twin gives the same numbers (and the (N, 1, R, R, R) model layout works)
    t = iou_torch(torch.from_numpy(a)[:, None], torch.from_numpy(b)[:, None])
    assert t.dtype == torch.float32 and t.shape == (6,)
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError):
        iou(a, b[:, :4])


def test_iou_distance_matrix_is_one_minus_iou():
    rng = np.random.default_rng(1)
    A = rng.random((7, 8, 8, 8)) < rng.random((7, 1, 1, 1))
    B = rng.random((5, 8, 8, 8)) < rng.random((5, 1, 1, 1))
    A[2] = False
    B[3] = False  # an empty grid on each side: empty-empty and empty-full pairs
    D = iou_distance_matrix(A, B)
    want = np.array([[iou(a, b) for b in B] for a in A])
    np.testing.assert_allclose(1.0 - D, want, atol=1e-6)
    assert D[2, 3] == 0.0 and D[2, 0] == 1.0


def test_vaegan_statistic_uses_the_one_rule():
    from gan3d.train.vaegan import shape_ious as _shape_ious

    z = torch.zeros(2, 1, 4, 4, 4)
    full = torch.ones(2, 1, 4, 4, 4)
    assert _shape_ious(z, z).tolist() == [1.0, 1.0]
    assert _shape_ious(z, full).tolist() == [0.0, 0.0]


def test_reconstruction_scores_use_the_one_rule():
    from gan3d.eval.reconstruction import _score_reconstructions

    rng = np.random.default_rng(2)
    pred = rng.random((4, 6, 6, 6)).astype(np.float32)
    truth = rng.random((4, 6, 6, 6)) < 0.4
    pred[1], truth[1] = 0.1, False  # both empty
    s = _score_reconstructions(pred, truth, np.array([0, 0, 1, 1]), ["a", "b"])
    assert s["per_class"]["a"]["iou"] == round(float(np.mean(iou(pred[:2], truth[:2]))), 4)
    assert s["per_class"]["b"]["iou"] == round(float(np.mean(iou(pred[2:], truth[2:]))), 4)


def test_ikea_alignment_reports_the_one_iou():
    from gan3d.eval.ikea import align

    rng = np.random.default_rng(3)
    truth = np.zeros((10, 10, 10), bool)
    truth[3:7, 2:8, 1:5] = True
    pred = np.roll(truth, 1, axis=0).astype(np.float32) * 0.9 + 0.05 * rng.random((10, 10, 10))
    out, _, v = align(pred, truth, max_shift=2)
    assert v == pytest.approx(float(iou(out, truth)))
    assert v == 1.0
    _, _, v0 = align(np.zeros((10, 10, 10), np.float32), np.zeros((10, 10, 10), bool))
    assert v0 == 1.0


def test_resolve(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(Gan3dError, match="no snapshot.pt or checkpoint.pt") as e:
        ckpt.resolve(run)
    assert str(run) in str(e.value)
    (run / "checkpoint.pt").write_bytes(b"x")
    assert ckpt.resolve(run) == run / "checkpoint.pt"  # falls back when the preferred file is absent
    (run / "snapshot.pt").write_bytes(b"x")
    assert ckpt.resolve(run) == run / "snapshot.pt"
    assert ckpt.resolve(run, prefer="checkpoint.pt") == run / "checkpoint.pt"
    assert ckpt.resolve(str(run / "checkpoint.pt")) == run / "checkpoint.pt"
    missing = tmp_path / "nope.pt"
    assert ckpt.resolve(missing) == missing  # load() reports it (or reads a shipped model of that name)
    with pytest.raises(Gan3dError, match="no such checkpoint"):
        ckpt.load(ckpt.resolve(missing))


def test_write_grids_formats_and_contents(tmp_path):
    from gan3d.io.meshing import export_mesh
    from gan3d.io.voxelfiles import read_voxels

    rng = np.random.default_rng(4)
    occ = rng.random((3, 8, 8, 8)).astype(np.float32)
    occ[1] = 0.0
    grids = occ >= 0.5
    files = write_grids(grids, tmp_path / "a", stems=["s0", "s1", "s2"], formats=FORMATS, occupancy=occ,
                        seeds=[5, 6, 7], npz_file="samples.npz")
    assert files == ["samples.npz", "s0.binvox", "s0.obj", "s0.stl", "s0.ply", "s1.binvox",
                     "s2.binvox", "s2.obj", "s2.stl", "s2.ply"]  # the empty grid has no mesh
    with np.load(tmp_path / "a" / "samples.npz") as z:
        assert sorted(z.files) == ["grids", "occupancy", "seeds"]
        np.testing.assert_array_equal(z["grids"], grids)
        np.testing.assert_array_equal(z["occupancy"], occ.astype(np.float16))
        assert z["seeds"].tolist() == [5, 6, 7]
    np.testing.assert_array_equal(read_voxels(tmp_path / "a" / "s2.binvox") >= 0.5, grids[2])
    export_mesh(grids[2], tmp_path / "ref.obj")
    assert (tmp_path / "a" / "s2.obj").read_bytes() == (tmp_path / "ref.obj").read_bytes()
    # per-shape npz with extras
    files = write_grids(grids[:1], tmp_path / "b", stems=["img"], formats=["npz"], occupancy=occ[:1],
                        extra={"mu": np.ones((1, 3)), "source": [np.asarray("x.png")]})
    assert files == ["img.npz"]
    with np.load(tmp_path / "b" / "img.npz") as z:
        assert list(z.files) == ["grid", "occupancy", "mu", "source"]
        np.testing.assert_array_equal(z["grid"], grids[0])
        assert str(z["source"]) == "x.png"
    with pytest.raises(Gan3dError, match="unknown output format"):
        write_grids(grids, tmp_path / "c", stems=["a", "b", "c"], formats=["gltf"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(Gan3dError, match="existing file"):
        write_grids(grids, tmp_path / "file", stems=["a", "b", "c"], formats=["binvox"])


def test_paired_folder_has_one_validated_reader(tmp_path):
    import json
    import shutil

    from test_vaegan import make_pairs

    from gan3d.data.pairs import PairedData

    good = make_pairs(tmp_path / "good")
    d = PairedData(good)
    assert len(d) == 16 and d.image_size == 32 and d.resolution == 16
    assert d.rows(1).tolist() == list(range(12, 16))
    images, shapes = d.batch(d.rows(1)[:2], 16)
    assert images.shape == (2, 3, 16, 16) and shapes.shape == (2, 1, 16, 16, 16)

    def broken(name, edit):
        f = tmp_path / name
        shutil.copytree(good, f)
        edit(f)
        return f

    def meta(f, **kw):
        m = json.loads((f / "meta.json").read_text())
        m.update(kw)
        (f / "meta.json").write_text(json.dumps(m))

    def pairs(f, **kw):
        with np.load(f / "pairs.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays.update(kw)
        np.savez(f / "pairs.npz", **arrays)

    cases = [
        (broken("fmt", lambda f: meta(f, format="other")), "meta.json", "not a gan3d-paired-images"),
        (broken("ver", lambda f: meta(f, format_version=2)), "meta.json", "newer"),
        (broken("lab", lambda f: pairs(f, label=np.zeros(3, np.int64))), "pairs.npz", r"label has shape \(3,\)"),
        (broken("img", lambda f: np.save(f / "images.npy", np.zeros((16, 32, 32, 3), np.float32))), "images.npy", "uint8"),
        (broken("idx", lambda f: pairs(f, shape_index=np.full(16, 99, np.int64))), "idx", "out of range"),
        # labels that are not the shapes' classes: training (which filters on them) and scoring would disagree
        (broken("cls", lambda f: pairs(f, label=(PairedData(good).label + 1) % 3)), "pairs.npz", "label is not its shape's class"),
        (broken("nam", lambda f: meta(f, class_names=["x", "y", "z"])), "meta.json", "names classes x, y, z but"),
    ]
    for folder, named, msg in cases:
        with pytest.raises(Gan3dError, match=msg) as e:
            PairedData(folder)
        assert named in str(e.value) and "\n" not in str(e.value)
