import numpy as np
import pytest
import torch

from gan3d.errors import Gan3dError
from gan3d.runtime import latents, parse_seeds
from gan3d.sampling import postprocess, sample_to_dir
from gan3d.train.config import make_config
from gan3d.train.loop import training_loop


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = make_config("tiny", data="builtin", out=str(out), builtin_count=32, steps=4, batch_size=8,
                      log_every=2, n_preview=4, deterministic=True)
    return training_loop(cfg, progress=False, quiet=True).run_dir / "snapshot.pt"


def test_parse_seeds():
    assert parse_seeds("0-3,10,12-13") == [0, 1, 2, 3, 10, 12, 13]
    assert parse_seeds("5,5,4") == [5, 4]
    for bad in ("a", "3-1", "1,,2", "-1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_latent_of_a_seed_does_not_depend_on_the_others():
    z = latents([3, 17, 40], 200)
    assert torch.equal(z[1], latents([17], 200)[0])
    assert not torch.equal(z[0], z[1])
    assert float(z.min()) >= 0 and float(z.max()) <= 1  # the paper's U[0,1] prior


def test_shape_17_is_the_same_at_any_batch_size(snapshot, tmp_path):
    a = sample_to_dir(snapshot, [17], tmp_path / "a", formats=["npz"], keep_all=True, picture=False)
    b = sample_to_dir(snapshot, list(range(32)), tmp_path / "b", formats=["npz"], keep_all=True, batch_size=5, picture=False)
    ga = np.load(tmp_path / "a" / "samples.npz")
    gb = np.load(tmp_path / "b" / "samples.npz")
    np.testing.assert_allclose(ga["occupancy"][0].astype(np.float32), gb["occupancy"][17].astype(np.float32), atol=2e-3)
    assert (ga["grids"][0] == gb["grids"][17]).mean() > 0.999
    assert a["n"] == 1 and b["n"] == 32


def test_writes_every_format_and_largest_component(snapshot, tmp_path):
    s = sample_to_dir(snapshot, [0, 1], tmp_path, formats=["npz", "binvox", "obj", "stl", "ply"])
    names = set(s["files"])
    assert "samples.npz" in names and "grid.png" in names and "seed0000.binvox" in names
    from gan3d.io.voxelfiles import read_binvox

    grids = np.load(tmp_path / "samples.npz")["grids"]
    np.testing.assert_array_equal(read_binvox(tmp_path / "seed0000.binvox"), grids[0])
    # largest-component post-processing leaves one component per non-empty sample
    from scipy import ndimage

    for g in grids:
        if g.any():
            assert ndimage.label(g, structure=np.ones((3, 3, 3)))[1] == 1


def test_postprocess_keeps_largest_component():
    occ = np.zeros((1, 8, 8, 8), np.float32)
    occ[0, :3, :3, :3] = 0.9
    occ[0, 6, 6, 6] = 0.7
    occ[0, 5, 0, 0] = 0.3  # below threshold
    out = postprocess(occ)
    assert out.sum() == 27 and not out[0, 6, 6, 6]
    assert postprocess(occ, keep_all=True).sum() == 28


def test_bad_format_and_bad_checkpoint(snapshot, tmp_path):
    with pytest.raises(Gan3dError, match="unknown output format"):
        sample_to_dir(snapshot, [0], tmp_path, formats=["xyz"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(Gan3dError, match="junk.pt"):
        sample_to_dir(junk, [0], tmp_path / "o")
    assert not (tmp_path / "o" / "samples.npz").exists()


def test_format_seeds_is_the_inverse_of_parse_seeds():
    from gan3d.runtime import format_seeds

    for text in ("0-3,10,12-13", "7", "5,3-4"):
        assert format_seeds(parse_seeds(text)) == text
    assert format_seeds([]) == ""


@pytest.mark.parametrize("device, pinned", [("cuda", True), ("cuda:1", True), ("cpu", False)])
def test_sampling_pins_cudnn_algorithms_on_cuda_only(device, pinned, monkeypatch):
    """Sampling's guard against cuDNN's per-call algorithm choice (only the flags: tests/test_cuda.py
    checks the grids on a GPU); the flags are as before after the block, also after an error."""
    from gan3d.runtime import fixed_cudnn_algorithms

    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "benchmark", True)  # as a run without --deterministic leaves them
    monkeypatch.setattr(cudnn, "deterministic", False)
    with fixed_cudnn_algorithms(device):
        assert (cudnn.deterministic, cudnn.benchmark) == ((True, False) if pinned else (False, True))
    assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
    with pytest.raises(KeyError), fixed_cudnn_algorithms(device):
        raise KeyError("boom")
    assert (cudnn.deterministic, cudnn.benchmark) == (False, True)


def test_truncation_pulls_each_latent_towards_the_prior_mean():
    for dist, mean in (("uniform", 0.5), ("normal", 0.0)):
        z = latents([3, 17], 200, dist)
        t = latents([3, 17], 200, dist, truncation=0.5)
        assert torch.allclose(t - mean, 0.5 * (z - mean), atol=1e-6)
        assert torch.equal(latents([3, 17], 200, dist, truncation=1.0), z)
        assert float((t - mean).abs().max()) < float((z - mean).abs().max())
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError):
            latents([1], 8, "normal", truncation=bad)


def test_truncated_sampling_changes_the_shapes_and_is_recorded(snapshot, tmp_path):
    from gan3d.cli import main

    a = sample_to_dir(snapshot, list(range(8)), tmp_path / "a", formats=["npz"], keep_all=True, picture=False)
    b = sample_to_dir(snapshot, list(range(8)), tmp_path / "b", formats=["npz"], keep_all=True, picture=False, truncation=0.3)
    oa, ob = (np.load(tmp_path / x / "samples.npz")["occupancy"].astype(np.float32) for x in "ab")
    assert a["truncation"] == 1.0 and b["truncation"] == 0.3
    assert not np.allclose(oa, ob)
    # the truncated shapes lie closer together: their spread over seeds is smaller
    assert ob.std(axis=0).mean() < oa.std(axis=0).mean()
    assert main(["sample", "--checkpoint", str(snapshot), "--seeds", "0-7", "--out", str(tmp_path / "c"), "--formats", "npz",
                 "--keep-all", "--truncation", "0.3"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "samples.npz")["grids"], np.load(tmp_path / "b" / "samples.npz")["grids"])

