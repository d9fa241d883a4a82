import hashlib
import shutil

import numpy as np
import pytest
import scipy.io
from sklearn.metrics import average_precision_score

from gan3d.data.images import prepare_image
from gan3d.errors import Gan3dError
from gan3d.eval import ikea


def _asymmetric(seed=0):
    rng = np.random.default_rng(seed)
    g = np.zeros((20, 20, 20), bool)
    g[4:15, 5:11, 3:7] = True  # slab
    g[4:7, 5:8, 7:16] = True  # post in one corner
    g[12:15, 9:11, 7:10] = True  # short post elsewhere
    g[8:10, 6:8, 7:9] = rng.random((2, 2, 2)) > 0.3
    return g


def test_transforms_are_48_distinct():
    g = _asymmetric()
    outs = {ikea.apply_transform(g, ikea.Transform(p, f)).tobytes() for p, f in ikea.TRANSFORMS}
    assert len(ikea.TRANSFORMS) == 48 and len(outs) == 48
    assert ikea.TRANSFORMS[0] == ((0, 1, 2), (False, False, False))


@pytest.mark.parametrize(
    "t",
    [
        ikea.Transform((2, 0, 1), (True, False, True), (1, -2, 2)),
        ikea.Transform((1, 0, 2), (False, True, False), (-1, 0, 1)),
        ikea.Transform((0, 1, 2), (False, False, False), (0, 0, 0)),
    ],
)
def test_align_recovers_known_transform(t):
    truth = _asymmetric()
    # the prediction is the truth seen through the inverse transform: align must undo it
    pred = ikea.apply_transform(truth, t).astype(np.float32) * 0.9
    aligned, found, iou = ikea.align(pred, truth)
    assert iou == pytest.approx(1.0)
    assert np.array_equal(aligned >= 0.5, truth)
    assert aligned.dtype == np.float32 and aligned.max() == pytest.approx(0.9)
    assert np.array_equal(ikea.apply_transform(pred, found), aligned)


def test_align_respects_max_shift():
    truth = _asymmetric()
    pred = ikea.apply_transform(truth, ikea.Transform(shift=(4, 0, 0)))
    _, _, iou = ikea.align(pred, truth, max_shift=2)
    assert iou < 1.0
    _, t, iou = ikea.align(pred, truth, max_shift=4)
    assert iou == pytest.approx(1.0) and t.shift == (-4, 0, 0)


def test_align_empty_prediction_is_identity():
    aligned, t, iou = ikea.align(np.zeros((20, 20, 20)), _asymmetric())
    assert t == ikea.Transform() and iou == 0.0 and not aligned.any()


def test_to_resolution():
    g = _asymmetric().astype(np.float32)
    assert np.array_equal(ikea.to_resolution(g, 20), g)
    up = g.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # 40^3 -> 20^3 is exact average pooling
    assert np.allclose(ikea.to_resolution(up, 20), g)
    x = np.random.default_rng(0).random((32, 32, 32)).astype(np.float32)
    d = ikea.to_resolution(x, 20)
    assert d.shape == (20, 20, 20) and d.dtype == np.float32
    assert d.mean() == pytest.approx(x.mean(), rel=1e-5)  # area averaging keeps the mean
    assert 0 <= d.min() and d.max() <= 1
    with pytest.raises(Gan3dError):
        ikea.to_resolution(np.zeros((4, 5, 6)))


def test_average_precision():
    truth = np.array([1, 0, 1, 0, 0, 1], bool)
    pred = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.7])
    assert ikea.average_precision(pred, truth) == pytest.approx(average_precision_score(truth, pred))
    assert ikea.average_precision(pred, truth) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    g = _asymmetric()
    assert ikea.average_precision(g.astype(float), g) == pytest.approx(1.0)
    assert np.isnan(ikea.average_precision(np.ones(5), np.zeros(5)))


def test_paper_numbers():
    assert ikea.PAPER_AP["mean"] == 53.1
    assert np.mean([ikea.PAPER_AP[c] for c in ikea.CLASSES]) == pytest.approx(53.1, abs=0.05)


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ikea")
    items = ikea.make_fixture(root, n_per_class=2, seed=0)
    assert len(items) == 6 * 2 + 6
    return root


def test_fixture_layout(fixture_root):
    items = ikea.read_ikea(fixture_root)
    assert {it.class_name for it in items} == set(ikea.CLASSES)
    for it in items:
        assert it.image.is_file() and it.voxels.name == f"{it.model_index}.mat"
        g = ikea.load_voxels(it.voxels)
        assert g.shape == (20, 20, 20) and g.dtype == bool and g.any()
        assert it.object_name.startswith(it.class_name)
    m = scipy.io.loadmat(items[0].voxels)
    assert m["grid"].dtype == np.uint8


def test_evaluate_ikea_oracle(fixture_root):
    items = ikea.read_ikea(fixture_root)
    truth_of = {}
    for it in items:
        key = hashlib.sha1(prepare_image(it.image, size=64).tobytes()).hexdigest()
        truth_of[key] = ikea.load_voxels(it.voxels)
    wrong = ikea.Transform((1, 2, 0), (True, False, False))  # fixture shapes touch the grid: no shift
    up = np.floor((np.arange(32) + 0.5) * 20 / 32).astype(int)

    def oracle(img):
        t = truth_of[hashlib.sha1(img.tobytes()).hexdigest()]
        t = ikea.apply_transform(t, wrong).astype(np.float32)  # in some other axis convention
        return t[np.ix_(up, up, up)]  # nearest-neighbour up to 32^3

    res = ikea.evaluate_ikea(fixture_root, oracle, progress=False, image_size=64)
    assert set(res["ap"]) == set(ikea.CLASSES) | {"mean"}
    for c in ikea.CLASSES:
        assert res["ap"][c] > 97.0, (c, res["ap"][c])
        assert res["iou"][c] > 0.9
        assert res["count"][c] == 3
        assert res["occupancy"][c]["small"] == 0.0 and 0.8 < res["occupancy"][c]["occupancy_ratio"] < 1.25
    assert res["paper"] == ikea.PAPER_AP and res["missing"] == []
    # a fragment of a few voxels for every photo is flagged as small
    frag = np.zeros((32, 32, 32), np.float32)
    frag[10:12, 10:12, 10:12] = 1.0
    res3 = ikea.evaluate_ikea(fixture_root, lambda img: frag, classes=["chair", "sofa"], progress=False, image_size=64)
    assert all(res3["occupancy"][c]["small"] == 1.0 for c in ("chair", "sofa"))

    # a constant prediction scores the voxel occupancy rate; a subset of classes works
    res2 = ikea.evaluate_ikea(fixture_root, lambda img: np.full((32, 32, 32), 0.3), classes=["chair"],
                              progress=False, image_size=64, ap="per_image")
    assert set(res2["ap"]) == {"chair", "mean"} and res2["ap"]["chair"] < 50

    with pytest.raises(Gan3dError, match="expected"):
        ikea.evaluate_ikea(fixture_root, lambda img: np.zeros((3, 4)), progress=False, image_size=64)


def _copy(fixture_root, tmp_path):
    root = tmp_path / "ikea"
    shutil.copytree(fixture_root, root)
    return root


@pytest.mark.parametrize("name", ["Images.txt", "ModelID.txt", "all_obj_clean.txt", "all_obj_class.txt"])
def test_missing_list(fixture_root, tmp_path, name):
    root = _copy(fixture_root, tmp_path)
    (root / "Lists" / name).unlink()
    with pytest.raises(Gan3dError, match=name):
        ikea.read_ikea(root)


def test_broken_layouts(fixture_root, tmp_path):
    root = _copy(fixture_root, tmp_path)
    lists = root / "Lists"
    ids = (lists / "ModelID.txt").read_text().split()

    (lists / "ModelID.txt").write_text("\n".join(ids[:-1]) + "\n")
    with pytest.raises(Gan3dError, match="ModelID.txt"):
        ikea.read_ikea(root)
    (lists / "ModelID.txt").write_text("\n".join(["99"] + ids[1:]) + "\n")
    with pytest.raises(Gan3dError, match="ModelID.txt.*out of range"):
        ikea.read_ikea(root)
    (lists / "ModelID.txt").write_text("\n".join(["0"] + ids[1:]) + "\n")
    with pytest.raises(Gan3dError, match="ModelID.txt.*out of range"):
        ikea.read_ikea(root)
    (lists / "ModelID.txt").write_text("\n".join(["two"] + ids[1:]) + "\n")
    with pytest.raises(Gan3dError, match="ModelID.txt.*not an integer"):
        ikea.read_ikea(root)
    (lists / "ModelID.txt").write_text("\n".join(ids) + "\n")
    ikea.read_ikea(root)

    classes = (lists / "all_obj_class.txt").read_text().split()
    (lists / "all_obj_class.txt").write_text("\n".join(classes[:-2]) + "\n")
    with pytest.raises(Gan3dError, match="all_obj_class.txt"):
        ikea.read_ikea(root)
    (lists / "all_obj_class.txt").write_text("\n".join(classes) + "\n")

    k = ids[0]
    (root / "Voxels" / f"{k}.mat").rename(root / "Voxels" / "moved.mat")
    with pytest.raises(Gan3dError, match=rf"Voxels/{k}\.mat"):
        ikea.read_ikea(root)
    (root / "Voxels" / "moved.mat").rename(root / "Voxels" / f"{k}.mat")

    first = (lists / "Images.txt").read_text().split()[0]
    (root / "Images" / first).unlink()
    with pytest.raises(Gan3dError, match=first):
        ikea.read_ikea(root)
    with pytest.raises(Gan3dError, match="nowhere"):
        ikea.read_ikea(tmp_path / "nowhere")


def test_bad_voxel_files(tmp_path):
    p = tmp_path / "1.mat"
    p.write_bytes(b"not a mat file")
    with pytest.raises(Gan3dError, match="1.mat"):
        ikea.load_voxels(p)
    scipy.io.savemat(p, {"instance": np.zeros((20, 20, 20), np.uint8)})
    with pytest.raises(Gan3dError, match="1.mat.*grid"):
        ikea.load_voxels(p)
    scipy.io.savemat(p, {"grid": np.zeros((30, 30, 30), np.uint8)})
    with pytest.raises(Gan3dError, match="1.mat.*shape"):
        ikea.load_voxels(p)
