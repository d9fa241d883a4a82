import json

import numpy as np
import pytest
import torch

from gan3d.data.prepare import prepare
from gan3d.data.prepared import from_arrays, load
from gan3d.errors import Gan3dError
from gan3d.eval.classify import (
    classify,
    default_blocks,
    extract_features,
    feature_dims,
    raw_features,
)
from gan3d.eval.generation import (
    generation,
    nearest_training,
    neighbours,
    neighbours_of,
)
from gan3d.eval.registry import EVALS, append_result, read_results
from gan3d.models.gan import ModelConfig, build
from gan3d.train.config import make_config
from gan3d.train.loop import training_loop

CLASSES = ["bed", "monitor", "toilet"]


@pytest.fixture(scope="module")
def small16(shared_data, tmp_path_factory):
    """3 easy ModelNet10 classes at 16^3: 20 train + 10 test shapes each."""
    src = shared_data / "modelnet10-32" / "modelnet10.npz"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    tmp = tmp_path_factory.mktemp("data")
    prepare(src, tmp / "mn3.npz", resolution=16, classes=CLASSES, progress=False)
    ds = load(tmp / "mn3.npz")
    rng = np.random.default_rng(0)
    keep = []
    for k in range(len(ds.class_names)):
        for s, n in ((0, 20), (1, 10)):
            pos = np.flatnonzero((ds.labels == k) & (ds.split == s))
            keep += sorted(rng.choice(pos, size=n, replace=False).tolist())
    return ds.subset(np.array(keep)).save(tmp / "small.npz")


@pytest.fixture(scope="module")
def tiny_ckpt(small16, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = make_config("tiny", data=str(small16), out=str(out), steps=2, batch_size=8, n_preview=2, bn_samples=16)
    return training_loop(cfg, progress=False, quiet=True).run_dir / "snapshot.pt"


def test_classify_end_to_end(tiny_ckpt, small16):
    r = classify(tiny_ckpt, small16, C_grid=(1e-3, 1e-1, 10.0), cv=3, device="cpu", progress=False)
    assert r["n_train"] == 60 and r["n_test"] == 30
    assert r["classes"] == CLASSES
    assert [b["block"] for b in r["blocks"]] == [0, 1]  # a 16^3 D has two hidden blocks: both
    assert r["feature_dim"] == (8 + 16) * 8
    for key in ("learned", "raw_voxels", "random_D"):
        e = r[key]
        assert 0.0 <= e["accuracy"] <= 1.0
        assert e["C"] in (1e-3, 1e-1, 10.0)  # CV picked a C from the grid
        m = np.array(e["confusion"]["matrix"])
        assert m.shape == (3, 3) and m.sum() == r["n_test"]
        assert e["confusion"]["labels"] == CLASSES
        assert np.isclose(np.trace(m) / m.sum(), e["accuracy"])
        assert set(e["per_class"]) == set(CLASSES)
    assert r["raw_voxels"]["dim"] == 16**3
    assert r["raw_voxels"]["accuracy"] > 1 / 3 + 0.25  # bed vs monitor vs toilet is easy
    json.dumps(r, allow_nan=False)  # JSON-able as returned
    assert r["checkpoint_step"] == 2 and "max-pooled to 2^3" in r["protocol"]
    assert set(r["empty_shapes"]) == {"train", "test"}


def test_feature_dims_and_pooling():
    cfg = ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4))  # D blocks: 4ch@16, 8ch@8, 16ch@4
    assert default_blocks(3) == (0, 1, 2) and default_blocks(4) == (1, 2, 3)
    dims = feature_dims(cfg)
    assert [(d["block"], d["channels"], d["edge"], d["dim"]) for d in dims] == [(0, 4, 16, 32), (1, 8, 8, 64), (2, 16, 4, 128)]
    torch.manual_seed(0)
    _, D = build(cfg)
    x = (np.random.default_rng(0).random((5, 32, 32, 32)) > 0.7).astype(np.float32)
    f = extract_features(D, x, batch_size=2)
    assert f.shape == (5, 8 * (4 + 8 + 16))
    # block 2 alone, pooled to 2^3, is the max of each 2x2x2 quadrant of its 4^3 response
    with torch.no_grad():
        D.eval()
        resp = D.features(torch.from_numpy(x).unsqueeze(1))[2]
    want = resp.reshape(5, 16, 2, 2, 2, 2, 2, 2).amax(dim=(3, 5, 7)).flatten(1).numpy()
    np.testing.assert_allclose(extract_features(D, x, blocks=[2]), want, rtol=1e-5, atol=1e-6)
    assert extract_features(D, x, blocks=[1], pool=1).shape == (5, 8)
    with pytest.raises(Gan3dError, match="block 3"):
        feature_dims(cfg, blocks=[3])
    assert raw_features(x, raw_resolution=16).shape == (5, 16**3)


def test_resolution_mismatch_names_both(tiny_ckpt, tmp_path):
    grids = np.zeros((4, 32, 32, 32), bool)
    grids[:, 8:20, 8:20, 8:20] = True
    path = from_arrays(grids, [0, 1, 0, 1], ["a", "b"], split=["train", "train", "test", "test"]).save(tmp_path / "d32.npz")
    with pytest.raises(Gan3dError) as e:
        classify(tiny_ckpt, path, device="cpu", progress=False)
    msg = str(e.value)
    assert "16^3" in msg and "32^3" in msg and str(tiny_ckpt) in msg and "d32.npz" in msg


def test_empty_selection_is_an_error(tiny_ckpt, small16, tmp_path):
    with pytest.raises(Gan3dError, match="class filter"):
        classify(tiny_ckpt, small16, classes=[], device="cpu", progress=False)
    # a dataset with no test split
    ds = load(small16)
    train_only = ds.select(split="train").save(tmp_path / "train_only.npz")
    with pytest.raises(Gan3dError, match="no test shapes"):
        classify(tiny_ckpt, train_only, device="cpu", progress=False)


def test_nearest_training_finds_exact_copy(small16, tmp_path):
    pool = load(small16).select(split="train")
    samples = pool.grids([5, 17, 42])
    idx, iou = nearest_training(samples, pool, k=3, chunk=7)  # several chunks exercise the running top-k
    assert idx[:, 0].tolist() == [5, 17, 42]
    np.testing.assert_allclose(iou[:, 0], 1.0)
    assert (np.diff(iou, axis=1) <= 0).all() and (iou[:, 1] < 1).all()
    # the same against the full IoU matrix
    from gan3d.eval.metrics import iou_distance_matrix

    full = 1 - iou_distance_matrix(samples, pool.grids(slice(None)))
    np.testing.assert_allclose(np.sort(full, axis=1)[:, ::-1][:, :3], iou, atol=1e-6)
    r = neighbours_of(samples, pool, k=2, threshold=0.9, out_png=tmp_path / "nn.png", size=32)
    assert r["memorised_fraction"] == 1.0
    nb = r["samples"][1]["neighbours"][0]
    assert nb["index"] == int(pool.indices[17]) and nb["source_id"] == str(pool.source_id[17]) and nb["iou"] == 1.0
    assert (tmp_path / "nn.png").stat().st_size > 0
    noise = (np.random.default_rng(1).random((2, 16, 16, 16)) > 0.5)
    assert neighbours_of(noise, pool, k=1)["memorised_fraction"] == 0.0


def test_neighbours_from_checkpoint(tiny_ckpt, small16, tmp_path):
    r = neighbours(tiny_ckpt, small16, seeds=[0, 1], k=2, out_png=tmp_path / "n.png", device="cpu", progress=False)
    assert [s["seed"] for s in r["samples"]] == [0, 1] and r["k"] == 2 and r["n_pool"] == 60
    assert 0.0 <= r["memorised_fraction"] <= 1.0 and (tmp_path / "n.png").is_file()
    json.dumps(r, allow_nan=False)


def test_generation_rows(tiny_ckpt, small16):
    r = generation(tiny_ckpt, small16, n_samples=6, distances=("iou",), device="cpu", progress=False)
    assert list(r["rows"]) == ["samples (largest component)", "samples (all components)", "train", "shuffled", "mean_shape"]
    assert r["n_reference"] + r["n_reference_empty_dropped"] == 30 and r["seeds"] == "0-5"
    assert all(v == 6 for v in r["row_sizes"].values())
    for row in r["rows"].values():
        assert row["n_ref"] == r["n_reference"] and row["n_empty_ref"] == 0 and 0 <= row["iou"]["cov"] <= 1
    json.dumps(r, allow_nan=False)
    r2 = generation(tiny_ckpt, small16, seeds=[3, 4], keep_all=False, context_rows=False, distances=("iou",), device="cpu", progress=False)
    assert list(r2["rows"]) == ["samples (largest component)"] and r2["seeds"] == "3-4"
    assert r["truncation"] == 1.0
    r3 = generation(tiny_ckpt, small16, seeds=[3, 4], keep_all=False, context_rows=False, distances=("iou",), device="cpu", progress=False,
                    truncation=0.2)
    assert r3["truncation"] == 0.2 and r3["rows"] != r2["rows"]  # other latents, other samples, other scores


def test_registry_and_results_file(tmp_path):
    assert {"classify", "generation", "neighbours", "reconstruction"} <= set(EVALS)
    for name, fn in EVALS.items():  # each name is the public evaluation of that name, not a helper
        assert fn.__name__ == name and fn.eval_name == name, name
    path = tmp_path / "results" / "x.jsonl"
    rec = {"checkpoint": "run/snapshot.pt", "checkpoint_step": 7, "accuracy": np.float32(0.5), "bad": float("nan")}
    line = append_result(path, rec, eval_name="classify", args=["eval", "classify"])
    assert line["step"] == 7 and line["checkpoint"] == "run/snapshot.pt" and line["gan3d_version"]
    with open(path, "a") as f:
        f.write('{"truncated": ')  # a writer that died mid-line
    append_result(path, {"x": 1}, eval_name="neighbours", checkpoint="c.pt", step=3)
    lines = read_results(path)
    assert [rec["eval"] for rec in lines] == ["classify", "neighbours"]
    assert lines[0]["result"]["accuracy"] == 0.5 and lines[0]["result"]["bad"] is None
    assert lines[1]["step"] == 3 and lines[1]["args"] is not None and "time" in lines[1]


def test_cli_help_and_run(tiny_ckpt, small16, tmp_path, capsys):
    import argparse

    from gan3d.cli import eval as eval_cli

    parser = argparse.ArgumentParser(prog="gan3d")
    eval_cli.add_parser(parser.add_subparsers(dest="cmd"))
    for sub in ("classify", "generation", "neighbours"):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(["eval", sub, "--help"])
        assert e.value.code == 0
        assert "--checkpoint" in capsys.readouterr().out
    args = parser.parse_args(
        ["eval", "classify", "--checkpoint", str(tiny_ckpt), "--data", str(small16), "--cv", "3", "--C-grid", "0.01,1",
         "--device", "cpu", "--quiet", "--out", str(tmp_path / "c.json"), "--results", str(tmp_path / "r.jsonl")]
    )  # fmt: skip
    assert eval_cli.run(args) == 0
    out = capsys.readouterr().out
    assert "raw_voxels" in out and "per-class" in out
    assert json.loads((tmp_path / "c.json").read_text())["n_test"] == 30
    assert read_results(tmp_path / "r.jsonl")[0]["eval"] == "classify"
    args = parser.parse_args(
        ["eval", "neighbours", "--checkpoint", str(tiny_ckpt.parent), "--data", str(small16), "--seeds", "0-1", "-k", "1",
         "--device", "cpu", "--quiet"]
    )  # fmt: skip
    assert eval_cli.run(args) == 0
    assert "memorised" in capsys.readouterr().out


def test_generation_latent_sets_score_disjoint_shifted_seed_sets(tiny_ckpt, small16):
    kw = dict(keep_all=False, context_rows=False, distances=("iou",), device="cpu", progress=False)
    r = generation(tiny_ckpt, small16, seeds=[0, 1, 2, 3], latent_sets=3, **kw)
    ls = r["latent_sets"]
    assert ls["n_sets"] == 3 and ls["seeds"] == ["0-3", "4-7", "8-11"]
    row = "samples (largest component)"
    assert ls["per_set"][0][row]["iou/1nna"] == r["rows"][row]["iou"]["1nna"]  # set 0 is the headline
    third = generation(tiny_ckpt, small16, seeds=[8, 9, 10, 11], **kw)  # set 2 is the seeds shifted by 8
    assert ls["per_set"][2][row]["iou/mmd"] == pytest.approx(third["rows"][row]["iou"]["mmd"])
    assert ls["per_set"][2]["outside_largest"]["mean"] == pytest.approx(third["outside_largest"]["mean"])
    vals = [p[row]["iou/mmd"] for p in ls["per_set"]]
    assert ls["mean"][row]["iou/mmd"] == pytest.approx(np.mean(vals), abs=1e-5)
    assert ls["sd"][row]["iou/mmd"] == pytest.approx(np.std(vals, ddof=1), abs=1e-5)
    assert "n" not in ls["mean"]["outside_largest"] and "n_samples" not in ls["mean"][row]  # counts are not averaged
    assert "latent_sets" not in generation(tiny_ckpt, small16, seeds=[0, 1], **kw)


def test_generation_leaves_out_empty_references(tiny_ckpt, tmp_path):
    g = np.zeros((4, 16, 16, 16), bool)
    g[0, 4:12, 4:12, 2:10] = True
    g[1, 6:10, 6:10, 1:14] = True
    g[3, 2:14, 2:6, 2:14] = True  # g[2] stays empty
    path = from_arrays(g, split=["train", "test", "test", "test"]).save(tmp_path / "e.npz")
    r = generation(tiny_ckpt, path, n_samples=3, context_rows=False, n_points=64, device="cpu", progress=False)
    assert r["n_reference"] == 2 and r["n_reference_empty_dropped"] == 1
    for row in r["rows"].values():
        assert np.isfinite(row["chamfer"]["mmd"]) or row["n_empty_samples"] > 0


def test_reconstruction_scores_and_class_mean_oracle():
    from types import SimpleNamespace

    from sklearn.metrics import average_precision_score

    from gan3d.eval.reconstruction import _class_mean_shapes, _score_reconstructions

    rng = np.random.default_rng(0)
    grids = (rng.random((7, 4, 4, 4)) > 0.6).astype(np.float32)
    ds = SimpleNamespace(
        resolution=4,
        split=np.array([0, 0, 0, 1, 0, 0, 1]),
        labels=np.array([0, 0, 1, 0, 1, 1, 1]),
        grids=lambda idx: grids[np.asarray(idx)],
    )
    means = _class_mean_shapes(ds, [0, 1], chunk=1)  # chunked sums equal the plain mean
    assert np.allclose(means[0], grids[[0, 1]].mean(0)) and np.allclose(means[1], grids[[2, 4, 5]].mean(0))  # test rows 3, 6 left out
    # scores by hand: class 0 is predicted perfectly, class 1 by a constant guess
    truth = grids[[3, 6]] >= 0.5
    pred = np.stack([truth[0].astype(np.float32), np.full((4, 4, 4), 0.7, np.float32)])
    s = _score_reconstructions(pred, truth, np.array([0, 1]), ["a", "b"])
    assert {k: s["per_class"]["a"][k] for k in ("n", "iou", "ap")} == {"n": 1, "iou": 1.0, "ap": 100.0}
    assert s["per_class"]["a"]["occupancy_ratio"] == 1.0 and s["per_class"]["a"]["small"] == 0.0
    assert s["per_class"]["b"]["occupancy_ratio"] == pytest.approx(64 / truth[1].sum(), abs=1e-3)  # 0.7 everywhere: all filled
    assert s["per_class"]["b"]["iou"] == pytest.approx(truth[1].mean(), abs=1e-4)  # all filled: IoU = occupancy
    assert s["per_class"]["b"]["ap"] == pytest.approx(100 * average_precision_score(truth[1].ravel(), pred[1].ravel()), abs=0.01)
    assert s["mean_iou"] == pytest.approx((1.0 + s["per_class"]["b"]["iou"]) / 2, abs=1e-4)


def test_occupancy_check_flags_fragments_and_not_full_shapes():
    from gan3d.voxels import SMALL, occupancy_check as _occupancy_check

    truth = np.zeros((4, 8, 8, 8), bool)
    truth[:, 1:7, 1:7, 1:5] = True  # 144 voxels each
    pred = truth.astype(np.float32) * 0.9
    pred[2] = 0.0
    pred[2, 0, 0, :] = 0.8  # a fragment of 8 voxels
    pred[3, :, :, 5:] = 0.6  # the shape plus a slab: 144 + 192
    c = _occupancy_check(pred, truth)
    assert c["small"] == 0.25  # one of four under a quarter of 144
    assert c["occupancy_ratio"] == 1.0  # the median image has the typical count
    assert _occupancy_check(pred[[2]], truth[[2]])["small"] == 1.0 and 8 < SMALL * 144
    assert np.isnan(_occupancy_check(pred, np.zeros_like(truth))["small"])
