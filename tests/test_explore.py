"""gan3d explore: each analysis against a slow, obviously correct version on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.data import prepared as datasets
from gan3d.explore.common import RED, fast, occupancy, shapes
from gan3d.explore.interpolate import slerp
from gan3d.models.gan import build, recalibrate_batchnorm
from gan3d.presets import get
from gan3d.render.raster import render_voxels
from gan3d.runtime import latents
from gan3d.voxels import THRESHOLD


def _tiny(dist: str):
    """A tiny (16^3, z 32) G and D with fixed weights, G's BatchNorm calibrated on its prior and its
    output layer scaled so that the shapes are crisp (few occupancies near 0.5)."""
    torch.manual_seed(0)
    cfg = get("tiny").model
    G, D = build(cfg)
    with torch.no_grad():
        G.net[-2].weight.mul_(40.0)
    recalibrate_batchnorm(G, latents(range(100, 164), cfg.z_dim, dist))
    recalibrate_batchnorm(D, torch.rand(64, 1, 16, 16, 16).round())
    return G.eval(), D.eval()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("explore")
    out = {}
    for dist in ("uniform", "normal"):
        G, D = _tiny(dist)
        path = d / f"{dist}.pt"
        ckpt.save(path, dict(kind="snapshot", model_config=G.cfg.to_dict(), train_config={"z_dist": dist},
                             G=G.state_dict(), D=D.state_dict(), step=7))
        out[dist] = (path, G, D)
    # a small dataset: 12 training shapes made by G (so they have structure), 3 test shapes
    G = out["uniform"][1]
    grids = shapes(G, latents(range(200, 215), 32, "uniform"))
    ds = datasets.from_arrays(grids, split=[0] * 12 + [1] * 3)
    out["data"] = datasets.save(ds, d / "data.npz")
    out["dir"] = d
    return out


def _run(args, capsys):
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_fast_generator_is_G(model):
    _, G, _ = model["uniform"]
    z = latents(range(20), 32, "uniform")
    with torch.no_grad():
        ref = G(z)[:, 0].numpy()
    torch.testing.assert_close(occupancy(fast(G), z), ref, atol=1e-5, rtol=0)


def test_voxel_colors_all_red_equals_red_color():
    g = np.zeros((8, 8, 8), bool)
    g[2:6, 2:6, 1:4] = True
    all_red = np.broadcast_to(np.asarray(RED), (8, 8, 8, 3))
    np.testing.assert_array_equal(render_voxels(g, size=48, voxel_colors=all_red), render_voxels(g, size=48, color=RED))
    half = np.zeros((8, 8, 8, 3)) + (0.2, 0.3, 0.9)
    half[4:] = RED  # +x half red
    img = render_voxels(g, size=48, voxel_colors=half).astype(int)
    reddish = (img[..., 0] > img[..., 2] + 30).sum()
    bluish = (img[..., 2] > img[..., 0] + 30).sum()
    assert reddish > 20 and bluish > 20


def test_slerp_keeps_ends_and_interpolates_norm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16) * 2
    z = slerp(a, b, np.linspace(0, 1, 5))
    np.testing.assert_allclose(z[0], a, atol=1e-12)
    np.testing.assert_allclose(z[-1], b, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.linspace(np.linalg.norm(a), np.linalg.norm(b), 5), rtol=1e-10)


@pytest.mark.parametrize("dist", ["uniform", "normal"])
def test_interpolation_end_frames_are_the_end_shapes(model, tmp_path, capsys, dist):
    path, G, _ = model[dist]
    np.save(tmp_path / "z5.npy", latents([5], 32, dist)[0].numpy())
    rc, _, err = _run(["explore", "interpolate", "--checkpoint", str(path), "--from", "3", "--to", str(tmp_path / "z5.npy"),
                         "--steps", "5", "--data", str(model["data"]), "--out", str(tmp_path / "i"), "--keep-all"], capsys)
    assert rc == 0, err
    f = np.load(tmp_path / "i" / "interpolation.npz")
    ends = shapes(G, latents([3, 5], 32, dist))
    assert f["frames"].dtype == bool and f["frames"].shape == (5, 16, 16, 16)
    np.testing.assert_array_equal(f["frames"][0], ends[0])
    np.testing.assert_array_equal(f["frames"][-1], ends[1])
    assert f["latents"].dtype == np.float32 and f["t"].dtype == np.float64
    j = json.loads((tmp_path / "i" / "interpolation.json").read_text())
    assert j["method"] == ("linear" if dist == "uniform" else "slerp")
    assert len(j["consecutive_iou"]) == 4 and len(j["nearest_train_iou"]) == 5
    train = datasets.load(model["data"]).select(split="train").grids(slice(None)) >= 0.5
    for frame, near in zip(f["frames"], j["nearest_train_iou"]):
        best = max((frame & t).sum() / max(1, (frame | t).sum()) for t in train)
        assert near == pytest.approx(best, abs=1e-6)
    a, b = f["frames"][1], f["frames"][2]
    assert j["consecutive_iou"][1] == pytest.approx((a & b).sum() / (a | b).sum(), abs=1e-6)
    for name in ("interpolation.png", "interpolation.gif"):
        assert (tmp_path / "i" / name).stat().st_size > 0


def test_dimension_map_marks_exactly_the_changed_voxels(model, tmp_path, capsys):
    path, G, _ = model["uniform"]
    rc, _, err = _run(["explore", "dimensions", "--checkpoint", str(path), "--bases", "2", "--values", "3", "--top", "4",
                       "--dims", "0-11", "--batch-size", "7", "--out", str(tmp_path / "d")], capsys)
    assert rc == 0, err
    f = np.load(tmp_path / "d" / "dimensions.npz")
    j = json.loads((tmp_path / "d" / "dimensions.json").read_text())
    bases = latents([0, 1], 32, "uniform")
    counts = np.zeros((2, 12))
    maps = {}
    with torch.no_grad():  # brute force: one latent at a time through G itself
        for b in range(2):
            ref = G(bases[b : b + 1])[0, 0].numpy() >= THRESHOLD
            for d in range(12):
                changed = np.zeros_like(ref)
                for v in (0.0, 0.5, 1.0):
                    z = bases[b : b + 1].clone()
                    z[0, d] = v
                    changed |= (G(z)[0, 0].numpy() >= THRESHOLD) != ref
                counts[b, d] = changed.sum()
                if b == 0:
                    maps[d] = changed
            if b == 0:
                np.testing.assert_array_equal(f["base"], ref)
    mean = counts.mean(0)
    assert [r["dim"] for r in j["dimensions"]] == sorted(range(12), key=lambda d: (-mean[d], d))
    assert [r["mean_changed"] for r in j["dimensions"]] == pytest.approx(sorted(mean, reverse=True))
    assert list(f["top"]) == [r["dim"] for r in j["dimensions"][:4]]
    assert mean.max() > 0  # the test would be empty otherwise
    for k, d in enumerate(f["top"]):
        np.testing.assert_array_equal(f["changed"][k], maps[int(d)])


def test_neuron_ranking_equals_brute_force(model, tmp_path, capsys):
    path, _, D = model["uniform"]
    rc, _, err = _run(["explore", "neurons", "--checkpoint", str(path), "--data", str(model["data"]), "--layer", "0",
                       "--unit-ids", "1,4,7", "--top", "4", "--random-sets", "20", "--out", str(tmp_path / "n")], capsys)
    assert rc == 0, err
    f = np.load(tmp_path / "n" / "neurons.npz")
    train = datasets.load(model["data"]).select(split="train").grids(slice(None))
    acts = []
    with torch.no_grad():
        for g in train:  # one shape at a time
            x = D.blocks[0](torch.from_numpy(g)[None, None])
            acts.append([float(x[0, u].max()) for u in (1, 4, 7)])
    acts = np.asarray(acts)
    for i in range(3):
        expect = sorted(range(len(train)), key=lambda s: (-acts[s, i], s))[:4]
        assert list(f["top_index"][i]) == expect
        np.testing.assert_array_equal(f["top_shapes"][i], train[expect] >= 0.5)
    assert f["response"].dtype == np.float16 and f["response"].min() >= 0 and f["response"].max() <= 1
    j = json.loads((tmp_path / "n" / "neurons.json").read_text())
    top = f["top_shapes"][0]
    pairs = [(top[a] & top[b]).sum() / (top[a] | top[b]).sum() for a in range(4) for b in range(a + 1, 4)]
    assert j["units"][0]["mean_pairwise_iou"] == pytest.approx(np.mean(pairs), abs=1e-6)
    assert 0 < j["random_mean_pairwise_iou"] < 1


@pytest.mark.parametrize("dist", ["uniform", "normal"])
def test_inversion_recovers_a_generated_shape(model, tmp_path, capsys, dist):
    path, G, _ = model[dist]
    target = shapes(G, latents([11], 32, dist))[0]
    np.save(tmp_path / "t.npy", target)
    rc, _, err = _run(["explore", "invert", "--checkpoint", str(path), "--target", str(tmp_path / "t.npy"), "--starts", "4",
                       "--iters", "120", "--seed", "50", "--out", str(tmp_path / "v")], capsys)
    assert rc == 0, err
    j = json.loads((tmp_path / "v" / "invert.json").read_text())
    f = np.load(tmp_path / "v" / "invert.npz")
    rec = shapes(G, f["z"][None])[0]
    np.testing.assert_array_equal(rec, f["reconstruction"])
    assert j["iou"] == pytest.approx((rec & target).sum() / (rec | target).sum(), abs=1e-9)
    assert j["iou"] >= 0.9 and len(j["start_ious"]) == 4
    z = np.load(tmp_path / "v" / "z.npy")
    np.testing.assert_array_equal(z, f["z"])
    if dist == "uniform":
        assert z.min() >= 0 and z.max() <= 1


def test_inversion_of_a_dataset_split(model, tmp_path, capsys):
    """--data: the first --limit shapes of the split, each inverted as --target would be; G made these
    test shapes, so it fits them, and every reported IoU is the IoU of G(z) with its target."""
    path, G, _ = model["uniform"]
    rc, out, err = _run(["explore", "invert", "--checkpoint", str(path), "--data", str(model["data"]), "--limit", "2",
                         "--starts", "4", "--iters", "120", "--seed", "50", "--out", str(tmp_path / "s")], capsys)
    assert rc == 0, err
    j = json.loads((tmp_path / "s" / "invert_set.json").read_text())
    f = np.load(tmp_path / "s" / "invert_set.npz")
    ds = datasets.load(model["data"])
    assert list(f["rows"]) == list(np.flatnonzero(ds.split == 1)[:2])
    targets = ds.grids(f["rows"]) >= 0.5
    recs = shapes(G, f["z"])
    ious = [(r & t).sum() / (r | t).sum() for r, t in zip(recs, targets)]
    np.testing.assert_allclose(f["iou"], ious, atol=1e-9)
    assert min(ious) >= 0.9 and j["mean_iou"] == pytest.approx(np.mean(ious), abs=1e-4)
    assert j["per_class"][ds.class_names[0]]["n"] == 2 and "mean IoU" in out
    single = tmp_path / "one"
    np.save(tmp_path / "t0.npy", targets[0])
    _run(["explore", "invert", "--checkpoint", str(path), "--target", str(tmp_path / "t0.npy"), "--starts", "4", "--iters", "120",
          "--seed", "50", "--out", str(single)], capsys)
    assert json.loads((single / "invert.json").read_text())["iou"] == pytest.approx(ious[0], abs=1e-9)


def test_batched_inversion_is_each_shape_alone(model):
    """invert_many puts several shapes' searches in one pass; each shape's z is the one invert finds for it
    alone, also when a pass holds part of a shape list (batch not a multiple of the starts)."""
    from gan3d.explore.invert import invert, invert_many

    _, G, _ = model["uniform"]
    ds = datasets.load(model["data"])
    targets = ds.grids(np.arange(3)) >= 0.5
    z, iou = invert_many(G, targets, starts=3, iters=40, seed=7, batch=7)
    assert z.shape == (3, G.cfg.z_dim) and iou.shape == (3,)
    for k in range(3):
        one = invert(G, targets[k], starts=3, iters=40, seed=7)
        np.testing.assert_allclose(z[k], one["z"], atol=1e-5)
        assert iou[k] == pytest.approx(one["iou"], abs=1e-9)
    assert len(set(map(tuple, np.round(z, 4)))) == 3  # three targets, three codes


def test_arithmetic_with_b_equal_to_c_returns_a(model, tmp_path, capsys):
    path, G, _ = model["uniform"]
    rc, _, err = _run(["explore", "arithmetic", "--checkpoint", str(path), "--a", "2", "--b", "7", "--c", "7",
                       "--out", str(tmp_path / "a")], capsys)
    assert rc == 0, err
    f = np.load(tmp_path / "a" / "arithmetic.npz")
    np.testing.assert_array_equal(f["latents"][3], f["latents"][0])
    np.testing.assert_array_equal(f["result"], f["operands"][0])
    np.testing.assert_array_equal(f["operands"][0], shapes(G, latents([2], 32, "uniform"))[0])
    assert f["operands"].shape == (3, 16, 16, 16) and f["latents"].shape == (4, 32)
    rc, _, err = _run(["explore", "arithmetic", "--checkpoint", str(path), "--a", "2", "--b", "7", "--c", "9",
                       "--out", str(tmp_path / "b")], capsys)
    assert rc == 0, err
    g = np.load(tmp_path / "b" / "arithmetic.npz")
    za, zb, zc = latents([2, 7, 9], 32, "uniform").double().numpy()
    np.testing.assert_allclose(g["latents"][3], za - zb + zc, atol=1e-6)
    np.testing.assert_array_equal(g["result"], shapes(G, g["latents"][3:])[0])


def test_bad_inputs_are_one_line_and_exit_2(model, tmp_path, capsys):
    path = str(model["uniform"][0])
    np.save(tmp_path / "short.npy", np.zeros(5, np.float32))
    np.save(tmp_path / "small.npy", np.zeros((8, 8, 8), bool))
    out = str(tmp_path / "o")
    cases = [
        (["explore", "interpolate", "--checkpoint", str(tmp_path / "nope.pt"), "--from", "0", "--to", "1", "--out", out], "nope.pt"),
        (["explore", "interpolate", "--checkpoint", path, "--from", str(tmp_path / "short.npy"), "--to", "1", "--out", out], "(32,)"),
        (["explore", "interpolate", "--checkpoint", path, "--from", "0", "--to", "1", "--steps", "1", "--out", out], "--steps"),
        (["explore", "interpolate", "--checkpoint", path, "--from", "zero", "--to", "1", "--out", out], "--from"),
        (["explore", "arithmetic", "--checkpoint", path, "--a", "0", "--b", str(tmp_path / "x.png"), "--c", "1", "--out", out], "x.png"),
        (["explore", "dimensions", "--checkpoint", path, "--dims", "30-40", "--out", out], "dimension 32"),
        (["explore", "dimensions", "--checkpoint", path, "--values", "1", "--out", out], "--values"),
        (["explore", "neurons", "--checkpoint", path, "--data", str(model["data"]), "--unit-ids", "99", "--out", out], "unit 99"),
        (["explore", "neurons", "--checkpoint", path, "--data", str(model["data"]), "--layer", "5", "--out", out], "--layer 5"),
        (["explore", "invert", "--checkpoint", path, "--target", str(tmp_path / "small.npy"), "--out", out], "8^3"),
        (["explore", "invert", "--checkpoint", path, "--target", str(tmp_path / "missing.npz"), "--out", out], "missing.npz"),
        (["explore", "invert", "--checkpoint", path, "--data", str(model["data"]), "--limit", "0", "--out", out], "--limit"),
        (["explore", "invert", "--checkpoint", path, "--data", str(model["data"]), "--classes", "lamp", "--out", out], "lamp"),
        (["explore", "invert", "--checkpoint", path, "--target", str(tmp_path / "small.npy"), "--limit", "3", "--out", out], "--data"),
        (["explore", "invert", "--checkpoint", path, "--data", str(tmp_path / "small.npy"), "--out", out], "small.npy"),
        (["explore", "invert", "--checkpoint", path, "--data", str(model["data"]), "--encoder-checkpoint", path, "--out", out], "--pairs"),
        (["explore", "invert", "--checkpoint", path, "--data", str(model["data"]), "--anchor-weight", "1", "--out", out], "--anchor-weight"),
        (["explore", "invert", "--checkpoint", path, "--data", str(model["data"]), "--encoder-checkpoint", path,
          "--pairs", str(tmp_path / "nopairs"), "--out", out], "nopairs"),
        (["explore", "invert", "--checkpoint", path, "--data", str(model["data"]), "--encoder-checkpoint", path,
          "--pairs", str(tmp_path), "--out", out], "meta.json"),
    ]
    for args, needle in cases:
        rc, _, err = _run(args, capsys)
        assert rc == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gan3d explore: error:") and needle in lines[0], (args, err)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_image_operand_is_the_encoders_mean(model, tmp_path, capsys):
    from PIL import Image

    from gan3d.data.images import prepare_image
    from gan3d.models.encoder import ImageEncoder
    from gan3d.presets import ENCODER_PRESETS

    path, G, _ = model["uniform"]
    torch.manual_seed(1)
    E = ImageEncoder(ENCODER_PRESETS["tiny"]).eval()
    enc = tmp_path / "vae.pt"
    ckpt.save(enc, dict(kind="vaegan-snapshot", model_config=G.cfg.to_dict(), encoder_config=E.cfg.to_dict(),
                        E=E.state_dict(), G=G.state_dict(), step=1))
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "im.png")
    rc, _, err = _run(["explore", "arithmetic", "--checkpoint", str(path), "--a", str(tmp_path / "im.png"), "--b", "3", "--c", "3",
                       "--encoder-checkpoint", str(enc), "--out", str(tmp_path / "a")], capsys)
    assert rc == 0, err
    with torch.no_grad():
        mu, _ = E(torch.from_numpy(np.asarray(prepare_image(tmp_path / "im.png", size=32), np.float32))[None])
    np.testing.assert_allclose(np.load(tmp_path / "a" / "arithmetic.npz")["latents"][0], mu[0].numpy(), atol=1e-6)


def test_checkpoint_may_be_a_shipped_model_name(model, tmp_path, capsys, monkeypatch):
    from gan3d.zoo import registry
    from gan3d.zoo.package import package

    path, _, _ = model["normal"]
    monkeypatch.setenv("GAN3D_MODELS_DIR", str(tmp_path / "models"))
    package(path, name="tinyn", command="built by a test", n_seeds=20, n_images=0)
    G, data = ckpt.load_generator("tinyn")  # the packaged weights (possibly rounded), read by name
    rc, _, err = _run(["explore", "arithmetic", "--checkpoint", "tinyn", "--a", "2", "--b", "7", "--c", "9",
                       "--out", str(tmp_path / "a")], capsys)
    assert rc == 0, err
    f = np.load(tmp_path / "a" / "arithmetic.npz")
    za, zb, zc = latents([2, 7, 9], 32, "normal").double().numpy()  # the prior is read from the model: normal
    np.testing.assert_allclose(f["latents"][3], za - zb + zc, atol=1e-6)
    np.testing.assert_array_equal(f["operands"], shapes(G, f["latents"][:3]))
    rc, _, err = _run(["explore", "neurons", "--checkpoint", "tinyn", "--data", str(model["data"]), "--layer", "0",
                       "--units", "2", "--top", "3", "--random-sets", "5", "--out", str(tmp_path / "n")], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "n" / "neurons.json").read_text())["step"] == 7
    rc, _, err = _run(["explore", "arithmetic", "--checkpoint", "nosuchmodel", "--a", "0", "--b", "1", "--c", "2",
                       "--out", str(tmp_path / "b")], capsys)
    assert rc == 2 and "nosuchmodel" in err and registry.shipped_list() in err and len(err.strip().splitlines()) == 1


def test_make_sh_summary_is_the_analyses_numbers(model, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import gan3d

    script = Path(__file__).resolve().parents[1] / "docs" / "explore" / "make.sh"
    path, _, _ = model["normal"]
    env = dict(os.environ, GAN3D=str(Path(sys.executable).with_name("gan3d")), PYTHON=sys.executable, INVERT_COUNT="2",
               PYTHONPATH=str(Path(gan3d.__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    bad = subprocess.run(["bash", str(script), str(path), str(tmp_path / "none.npz"), str(tmp_path / "o")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "none.npz" in bad.stderr and not (tmp_path / "o").exists()
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(script), str(path), str(model["data"]), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    interp = json.loads((out / "interp" / "interpolation.json").read_text())
    assert s["interpolation"]["consecutive_iou"] == interp["consecutive_iou"] and len(interp["consecutive_iou"]) == 7
    dims = json.loads((out / "dims" / "dimensions.json").read_text())["dimensions"]
    assert [d["dim"] for d in s["dimensions"]["top"]] == [d["dim"] for d in dims[:8]]
    assert s["dimensions"]["median_mean_changed"] == pytest.approx(np.median([d["mean_changed"] for d in dims]))
    assert s["dimensions"]["least"]["dim"] == dims[-1]["dim"]
    neur = json.loads((out / "neurons" / "neurons.json").read_text())
    assert s["neurons"]["selectivity_ratio"] == pytest.approx(neur["top_mean_pairwise_iou"] / neur["random_mean_pairwise_iou"])
    ds = datasets.load(model["data"])
    test, train = ds.select(split="test").grids(slice(0, 2)) >= 0.5, ds.select(split="train").grids(slice(None)) >= 0.5
    inv = s["inversion"]["per_chair"]
    assert [c["target"] for c in inv] == ["test00", "test01"]
    for i, c in enumerate(inv):
        np.testing.assert_array_equal(np.load(out / "targets" / f"test{i:02d}.npy"), test[i])
        j = json.loads((out / "inv" / f"test{i:02d}" / "invert.json").read_text())
        assert c["iou"] == j["iou"] and j["starts"] == 4 and j["iters"] == 100
        best = max((test[i] & t).sum() / (test[i] | t).sum() for t in train)
        assert c["nearest_train_iou"] == pytest.approx(best, abs=1e-6)
    assert s["inversion"]["iou"]["mean"] == pytest.approx(np.mean([c["iou"] for c in inv]))
    times = (out / "times.tsv").read_text().splitlines()
    assert [t.split("\t")[0] for t in times[1:]] == ["interpolate", "arithmetic", "dimensions", "neurons", "invert test00", "invert test01"]
    assert all(float(t.split("\t")[1]) > 0 for t in times[1:])
    assert "| test01 |" in (out / "summary.md").read_text() and (out / "inversions.png").stat().st_size > 0
