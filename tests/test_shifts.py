"""Shifted test sets for the classification protocol (gan3d.eval.shifts, classify's ``shifts`` and
``also_test``) and the speckle measure of generation (outside_largest)."""

import numpy as np
import pytest

from gan3d.cli import main
from gan3d.errors import Gan3dError
from gan3d.eval import shifts
from gan3d.eval.classify import classify
from gan3d.eval.generation import outside_largest

from test_evaluation import CLASSES, small16, tiny_ckpt  # noqa: F401  (module fixtures)


def test_reframe_scales_about_the_centre():
    g = np.zeros((1, 32, 32, 32), np.uint8)
    g[0, :, :, :] = 1  # a full grid spans 32; re-framed it spans 24, centred
    out = shifts.reframe(g)[0]
    idx = np.flatnonzero(out.any((1, 2)))
    assert idx.min() == 4 and idx.max() == 27 and out.sum() == 24**3
    # brute force on a random grid: each output voxel takes the input voxel it maps back to
    rng = np.random.default_rng(0)
    g = (rng.random((2, 8, 8, 8)) < 0.5).astype(np.uint8)
    out = shifts.reframe(g, 0.5)
    for i in range(8):
        for j in range(8):
            for k in range(8):
                src = [int(np.floor((a + 0.5 - 4) / 0.5 + 4)) for a in (i, j, k)]
                inside = all(0 <= s < 8 for s in src)
                want = g[:, src[0], src[1], src[2]] if inside else np.zeros(2, np.uint8)
                assert np.array_equal(out[:, i, j, k], want)


def test_erode_and_dilate_by_one_voxel():
    g = np.zeros((1, 9, 9, 9), np.uint8)
    g[0, 2:7, 2:7, 2:7] = 1  # a 5-cube
    assert shifts.erode(g).sum() == 27 and shifts.erode(g)[0, 3:6, 3:6, 3:6].all()
    d = shifts.dilate(g)[0]
    assert d.sum() == 125 + 6 * 25  # each face grows by a 5x5 layer (6-neighbourhood: no edges, no corners)
    assert d[1, 4, 4] and not d[1, 1, 1]
    with pytest.raises(ValueError):
        shifts.apply("rotate", g)


def test_classify_scores_shifted_sets_with_the_same_svm(tiny_ckpt, small16, tmp_path):  # noqa: F811
    r = classify(tiny_ckpt, small16, C_grid=(1e-2,), cv=3, device="cpu", progress=False, shifts=("erode", "dilate"),
                 also_test=(small16,))
    assert r["shifted_tests"] == {"erode": 30, "dilate": 30, "small.npz": 30}
    for row in ("learned", "random_D", "raw_voxels"):
        sh = r[row]["shifted"]
        # the other dataset is the test split itself: the same SVM scores it exactly as the test split
        assert sh["small.npz"]["accuracy"] == pytest.approx(r[row]["accuracy"])
        assert 0 <= sh["erode"]["accuracy"] <= 1 and sh["erode"]["n"] == 30
    with pytest.raises(Gan3dError, match="rotate"):
        classify(tiny_ckpt, small16, C_grid=(1e-2,), cv=3, device="cpu", progress=False, shifts=("rotate",))


def test_also_test_refuses_unknown_classes_and_resolutions(tiny_ckpt, small16, tmp_path, capsys):  # noqa: F811
    from gan3d.data.prepared import from_arrays

    other = from_arrays(np.zeros((2, 16, 16, 16), bool), [0, 0], ["lamp"], split=[1, 1]).save(tmp_path / "lamp.npz")
    code = main(["eval", "classify", "--checkpoint", str(tiny_ckpt), "--data", str(small16), "--also-test", str(other), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lamp" in err[0] and "lamp.npz" in err[0]
    big = from_arrays(np.zeros((2, 32, 32, 32), bool), [0, 0], ["bed"], split=[1, 1]).save(tmp_path / "bed32.npz")
    code = main(["eval", "classify", "--checkpoint", str(tiny_ckpt), "--data", str(small16), "--also-test", str(big), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "32^3" in err[0]


def test_outside_largest_counts_the_specks():
    occ = np.zeros((3, 8, 8, 8), np.float32)
    occ[0, 1:4, 1:4, 1:4] = 1  # 27 voxels, one component
    occ[1, 1:4, 1:4, 1:4] = 1
    occ[1, 6, 6, 6] = 0.9  # a speck: 1 of 28 outside
    r = outside_largest(occ)  # the third sample is empty: left out
    assert r["n"] == 2 and r["max"] == pytest.approx(1 / 28, abs=1e-5) and r["mean"] == pytest.approx(0.5 / 28, abs=1e-5)
    assert r["over_1pct"] == 0.5


def test_validation_scores_a_held_out_part_of_the_training_split(tiny_ckpt, small16):  # noqa: F811
    r = classify(tiny_ckpt, small16, C_grid=(1e-2,), cv=3, device="cpu", progress=False, baselines=False, validation=0.25)
    # 20 training shapes per class: 5 of each held out, the 30 test shapes never used
    assert r["n_test"] == 15 and r["n_train"] == 45 and "validation" in r["scored_on"]
    assert sorted(r["learned"]["per_class"]) == sorted(CLASSES)
    again = classify(tiny_ckpt, small16, C_grid=(1e-2,), cv=3, device="cpu", progress=False, baselines=False, validation=0.25)
    assert again["learned"]["accuracy"] == r["learned"]["accuracy"]  # the same seed holds out the same shapes
    with pytest.raises(Gan3dError):
        classify(tiny_ckpt, small16, device="cpu", progress=False, validation=1.5)


def test_repeats_score_each_seed_as_a_separate_run_and_summarise_them(tiny_ckpt, small16):  # noqa: F811
    kw = dict(C_grid=(1e-2, 1.0), cv=3, device="cpu", progress=False, shifts=("erode",), validation=0.25)
    r = classify(tiny_ckpt, small16, seed=3, repeats=3, **kw)
    rep = r["repeats"]
    assert rep["n"] == 3 and rep["seeds"] == [3, 4, 5] and rep["sets"] == ["validation", "erode"]
    assert r["learned"]["accuracy"] == pytest.approx(rep["per_seed"][0]["learned"]["validation"], abs=1e-5)  # the top-level keys: seed 3
    alone = classify(tiny_ckpt, small16, seed=5, **kw)  # the third repeat is the run with seed 5
    for ex in ("learned", "random_D", "raw_voxels"):
        assert rep["per_seed"][2][ex]["validation"] == pytest.approx(alone[ex]["accuracy"], abs=1e-5)
        assert rep["per_seed"][2][ex]["erode"] == pytest.approx(alone[ex]["shifted"]["erode"]["accuracy"], abs=1e-5)
    margins = np.array([p["learned"]["erode"] - p["random_D"]["erode"] for p in rep["per_seed"]])
    assert rep["mean"]["learned_minus_random_D"]["erode"] == pytest.approx(margins.mean(), abs=1e-5)
    assert rep["sd"]["learned_minus_random_D"]["erode"] == pytest.approx(margins.std(ddof=1), abs=1e-5)
    vals = [p["random_D"]["validation"] for p in rep["per_seed"]]
    assert len(set(vals)) > 1 or len({p["raw_voxels"]["validation"] for p in rep["per_seed"]}) > 1  # the seeds differ
    with pytest.raises(Gan3dError, match="repeats"):
        classify(tiny_ckpt, small16, device="cpu", progress=False, repeats=0)


def test_repeats_extract_the_seed_independent_features_once(tiny_ckpt, small16, monkeypatch):  # noqa: F811
    import gan3d.eval.classify as classify_module

    calls = {"D": 0, "raw": 0}
    real_d, real_raw = classify_module.extract_features, classify_module.raw_features

    def counted(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    monkeypatch.setattr(classify_module, "extract_features", counted("D", real_d))
    monkeypatch.setattr(classify_module, "raw_features", counted("raw", real_raw))
    kw = dict(C_grid=(1e-2,), cv=3, device="cpu", progress=False, shifts=("erode", "dilate"))
    classify(tiny_ckpt, small16, repeats=3, **kw)
    # learned D: train, test and two shifted sets once; random D: the same four sets for each of 3 seeds
    assert calls == {"D": 4 + 3 * 4, "raw": 4}
    calls.update(D=0, raw=0)
    classify(tiny_ckpt, small16, repeats=2, validation=0.25, **kw)  # validation: carved from the training split's features
    # the shifted copies are of each seed's held-out part, so they are extracted per seed
    assert calls == {"D": 1 + 2 * 2 + 2 * 3, "raw": 1 + 2 * 2}
