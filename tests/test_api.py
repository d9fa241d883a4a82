"""The Python API (gan3d.load/sample/export/render/reconstruct) and exact sampling at any batch size."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import gan3d
from gan3d.errors import Gan3dError
from gan3d.runtime import set_determinism
from gan3d.sampling import sample_to_dir
from gan3d.train.config import make_config
from gan3d.train.loop import training_loop


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = make_config("tiny", data="builtin", out=str(out), builtin_count=32, steps=4, batch_size=8,
                      log_every=2, n_preview=4, deterministic=True)
    run = training_loop(cfg, progress=False, quiet=True).run_dir
    set_determinism(False)
    return run


@pytest.fixture(scope="module")
def demo_snapshot(tmp_path_factory):
    """The `demo` preset (32^3) trained 2 steps on built-in data, as in the issue's report."""
    out = tmp_path_factory.mktemp("demo")
    cfg = make_config("demo", data="builtin", out=str(out), builtin_count=32, steps=2, n_preview=4)
    return training_loop(cfg, progress=False, quiet=True).run_dir / "snapshot.pt"


@pytest.fixture(scope="module")
def vaegan_run(tmp_path_factory):
    from test_vaegan import make_pairs, vcfg

    from gan3d.train.loop import train_vaegan

    pairs = make_pairs(tmp_path_factory.mktemp("p") / "pairs")
    res = train_vaegan(vcfg(pairs, tmp_path_factory.mktemp("vruns"), steps=2, snapshot_every=2))
    set_determinism(False)
    return res.run_dir, pairs


def test_import_gan3d_is_cheap():
    code = "import sys, gan3d; assert 'torch' not in sys.modules and 'numpy' not in sys.modules; print(callable(gan3d.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_load_holds_the_networks_configs_and_prior(gan_run):
    m = gan3d.load(gan_run, device="cpu")
    assert m.path.endswith("snapshot.pt") and m.kind == "snapshot" and m.step == 4
    assert m.resolution == 16 and m.D is not None and m.E is None and m.z_dist == "uniform"
    assert not m.G.training
    z = torch.rand(2, m.z_dim)
    assert m.G(z).shape == (2, 1, 16, 16, 16)
    assert gan3d.load(gan_run / "checkpoint.pt").kind == "train"
    with pytest.raises(Gan3dError, match="no such checkpoint"):
        gan3d.load(gan_run / "missing.pt")


def test_sample_matches_the_cli(gan_run, tmp_path):
    from gan3d.cli import main

    m = gan3d.load(gan_run, device="cpu")
    grids = gan3d.sample(m, "0-9")
    assert grids.dtype == bool and grids.shape == (10, 16, 16, 16)
    assert np.array_equal(gan3d.sample(m, range(10)), grids)
    assert np.array_equal(gan3d.sample(m, 7), grids[7:8])
    occ = gan3d.sample(m, range(10), occupancy=True)
    assert occ.dtype == np.float32 and np.array_equal(occ >= 0.5, gan3d.sample(m, range(10), keep_all=True))
    assert main(["sample", "--checkpoint", str(gan_run), "--seeds", "0-9", "--out", str(tmp_path / "s"),
                 "--formats", "npz", "--batch-size", "3"]) == 0
    with np.load(tmp_path / "s" / "samples.npz") as z:
        assert np.array_equal(z["grids"], grids)
        assert z["seeds"].tolist() == list(range(10))


def test_sample_to_dir_files_are_the_writer_s(gan_run, tmp_path):
    from gan3d.io.meshing import export_mesh
    from gan3d.io.voxelfiles import read_voxels

    m = gan3d.load(gan_run, device="cpu")
    s = sample_to_dir(gan_run, [0, 3], tmp_path, formats=["npz", "binvox", "obj", "stl", "ply"])
    grids = gan3d.sample(m, [0, 3])
    want = ["samples.npz"]
    for seed, g in zip((0, 3), grids):
        want.append(f"seed{seed:04d}.binvox")
        if g.any():
            want += [f"seed{seed:04d}.{f}" for f in ("obj", "stl", "ply")]
    assert s["files"] == want + ["grid.png"]
    with np.load(tmp_path / "samples.npz") as z:
        assert sorted(z.files) == ["grids", "occupancy", "seeds"]
        assert np.array_equal(z["occupancy"], gan3d.sample(m, [0, 3], occupancy=True).astype(np.float16))
    assert np.array_equal(read_voxels(tmp_path / "seed0003.binvox") >= 0.5, grids[1])
    if grids[1].any():
        export_mesh(grids[1], tmp_path / "ref.stl")
        assert (tmp_path / "seed0003.stl").read_bytes() == (tmp_path / "ref.stl").read_bytes()


def test_sampling_is_exact_at_any_batch_size(demo_snapshot, tmp_path):
    """Seeds 0-40 of a 2-step demo model: --batch-size 1, 7 and 32 write identical occupancy. Run
    with 4 threads, where unchunked batched convolutions did differ (by 1.2e-7) between 1 and 32."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        occ = []
        for bs in (1, 7, 32):
            sample_to_dir(demo_snapshot, list(range(41)), tmp_path / str(bs), formats=["npz"], keep_all=True,
                          batch_size=bs, picture=False, device="cpu")
            with np.load(tmp_path / str(bs) / "samples.npz") as z:
                occ.append((z["grids"], z["occupancy"]))
        m = gan3d.load(demo_snapshot, device="cpu")
        raw = [gan3d.sample(m, range(41), occupancy=True, batch_size=bs) for bs in (1, 7, 32)]
        alone = gan3d.sample(m, [35], occupancy=True)
    finally:
        torch.set_num_threads(before)
    for grids, o in occ[1:]:
        assert np.array_equal(grids, occ[0][0]) and o.tobytes() == occ[0][1].tobytes()
    assert raw[0].tobytes() == raw[1].tobytes() == raw[2].tobytes()
    assert alone[0].tobytes() == raw[0][35].tobytes()  # and beside any other seeds
    with pytest.raises(Gan3dError, match="batch size"):
        gan3d.sample(m, [0], batch_size=0)


def test_export_and_render(tmp_path):
    g = np.zeros((2, 8, 8, 8), bool)
    g[0, 2:6, 2:6, 0:4] = True
    paths = gan3d.export(g, tmp_path / "e", formats=("npz", "obj", "binvox"))
    assert [p.name for p in paths] == ["grids.npz", "shape0000.binvox", "shape0000.obj", "shape0001.binvox"]
    assert all(p.is_file() for p in paths)
    with np.load(paths[0]) as z:
        assert np.array_equal(z["grids"], g)
    one = gan3d.export(g[0].astype(np.float32), tmp_path / "f", formats=["stl"], stems=["chair"])
    assert [p.name for p in one] == ["chair.stl"]
    im = gan3d.render(g, size=40, ncols=2)
    assert im.mode == "RGB" and im.size[0] > 80
    pix = np.asarray(im)
    assert (pix != 255).any()  # the first grid is drawn
    importlib.import_module("gan3d.render.raster")  # the package of the same name: still callable
    importlib.import_module("gan3d.reconstruct")
    assert callable(gan3d.reconstruct)

    assert np.array_equal(np.asarray(gan3d.render(g, size=40, ncols=2)), pix)
    with pytest.raises(Gan3dError):
        gan3d.render(np.zeros((4, 5)))


def test_reconstruct_matches_the_cli(vaegan_run, tmp_path):
    from PIL import Image

    from gan3d.reconstruct import reconstruct_images

    run, pairs = vaegan_run
    m = gan3d.load(run, device="cpu")
    assert m.E is not None and m.z_dist == "normal" and m.image_size is not None
    images = np.load(pairs / "images.npy")[:3]
    files = []
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"im{i}.png")
        files.append(tmp_path / f"im{i}.png")
    grids = gan3d.reconstruct(m, files, keep_all=True)
    assert grids.dtype == bool and grids.shape == (3,) + (m.resolution,) * 3
    assert np.array_equal(gan3d.reconstruct(m, [Image.open(f) for f in files], keep_all=True), grids)
    assert np.array_equal(gan3d.reconstruct(m, str(files[1]), keep_all=True), grids[1:2])
    s = reconstruct_images(run, files, tmp_path / "out", keep_all=True, formats=["npz"], device="cpu")
    assert s["files"] == [f for i in range(3) for f in (f"im{i}.npz", f"im{i}.png")]
    for i in range(3):
        with np.load(tmp_path / "out" / f"im{i}.npz") as z:
            assert list(z.files) == ["grid", "occupancy", "mu", "logvar", "source"]
            assert np.array_equal(z["grid"], grids[i])
    # sampling a 3D-VAE-GAN draws from its N(0, I) prior, in the CLI as in the API
    sample_to_dir(run, [0, 1], tmp_path / "vs", formats=["npz"], picture=False, device="cpu")
    with np.load(tmp_path / "vs" / "samples.npz") as z:
        assert np.array_equal(z["occupancy"], gan3d.sample(m, [0, 1], occupancy=True).astype(np.float16))
    occ2 = gan3d.reconstruct(m, files[:1], samples=2, occupancy=True)
    assert occ2.shape == (1,) + (m.resolution,) * 3 and occ2.dtype == np.float32
    with pytest.raises(Gan3dError, match="no image encoder"):
        gan3d.reconstruct(gan3d.load(run / "snapshot.pt").__class__(**{**vars(m), "E": None}), files)


def test_eval_dispatch_goes_through_the_registry(gan_run, tmp_path, capsys):
    from gan3d.cli import main
    from gan3d.cli.eval import FORMATTERS, KWARGS
    from gan3d.data import procedural
    from gan3d.data.prepared import from_arrays
    from gan3d.eval.registry import EVALS, calc, read_results

    assert set(KWARGS) == set(FORMATTERS) == {n for n, f in EVALS.items() if f.eval_command}  # every command-level evaluation has a command
    assert not EVALS["quick_generation"].eval_command and "classify" in KWARGS
    grids, labels = procedural.make_dataset(12, 16, seed=1)
    data = tmp_path / "d.npz"
    from_arrays(grids, labels, list(procedural.CLASS_NAMES), split=np.array([0] * 8 + [1] * 4)).save(data)
    res = tmp_path / "r.jsonl"
    direct = calc("neighbours", gan_run, data, seeds=[0, 1], k=2, progress=False, device="cpu", results=res, argv=["x"])
    assert main(["eval", "neighbours", "--checkpoint", str(gan_run), "--data", str(data), "--seeds", "0-1", "-k", "2",
                 "--results", str(res), "--out", str(tmp_path / "o.json"), "--quiet", "--device", "cpu"]) == 0
    lines = read_results(res)
    assert [ln["eval"] for ln in lines] == ["neighbours", "neighbours"] and lines[0]["args"] == ["x"]
    assert lines[1]["result"]["samples"] == lines[0]["result"]["samples"] == direct["samples"]
    assert "memorised" in capsys.readouterr().out
    with pytest.raises(Gan3dError, match="unknown evaluation 'nope'; registered: classify"):
        calc("nope")
