"""The volumetric auto-encoder baseline (the paper's Fig. 2): the fitted Gaussian folded into G, the
training run, its snapshot read by the sampling and evaluation commands, and its refusals."""

import json

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.models.autoencoder import VoxelEncoder, fit_gaussian, gaussian_sampler
from gan3d.models.gan import Generator, ModelConfig, init_weights
from gan3d.runtime import set_determinism
from gan3d.train.config import make_config
from gan3d.train.loop import train


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def ae_cfg(tmp_path, **kw):
    base = dict(data="builtin", out=str(tmp_path / "runs"), builtin_count=32, steps=100, batch_size=8, log_every=10,
                snapshot_every=50, n_preview=2, bn_samples=8, deterministic=True, device="cpu", objective="autoencoder",
                lr_g=5e-3)
    base.update(kw)
    return make_config("tiny", **base)


def test_fitted_gaussian_is_folded_into_g_exactly():
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=16, z_dim=6, channels=(8, 4))
    G = Generator(cfg)
    init_weights(G)
    G.eval()
    a = torch.randn(6, 6)
    codes = torch.randn(5000, 6) @ a.T + torch.arange(6.0)
    mean, chol = fit_gaussian(codes)
    assert torch.allclose(mean, torch.arange(6.0), atol=0.1)
    cov = chol @ chol.T
    assert torch.allclose(cov, a @ a.T, atol=0.25 * float((a @ a.T).abs().max()))
    S = gaussian_sampler(G, mean, chol)
    assert S.cfg.latent_gaussian and not S.training
    eps = torch.randn(4, 6)
    with torch.no_grad():
        assert torch.allclose(S(eps), G(mean + eps @ chol.T), atol=1e-6)
    # the buffers are weights: a generator rebuilt from the state and the config gives the same shapes
    R = Generator(ModelConfig.from_dict(S.cfg.to_dict()))
    R.load_state_dict(S.state_dict())
    R.eval()
    with torch.no_grad():
        assert torch.equal(R(eps), S(eps))
    assert "latent_gaussian" not in cfg.to_dict()  # a 3D-GAN's config is unchanged by the option


def test_fit_needs_two_codes_and_survives_fewer_codes_than_dimensions():
    with pytest.raises(ValueError):
        fit_gaussian(torch.zeros(1, 4))
    mean, chol = fit_gaussian(torch.randn(3, 10))  # rank 2 covariance: the ridge keeps it factorable
    assert torch.isfinite(chol).all() and (chol.diagonal() > 0).all()


def test_encoder_maps_shapes_to_codes():
    cfg = ModelConfig(resolution=32, z_dim=7, channels=(16, 8, 4))
    assert VoxelEncoder(cfg)(torch.zeros(3, 1, 32, 32, 32)).shape == (3, 7)


def test_training_reconstructs_and_snapshot_samples(tmp_path):
    res = train(ae_cfg(tmp_path), progress=False, quiet=True)
    stats = [json.loads(line) for line in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["loss_recon"] < 0.6 * stats[0]["loss_recon"]
    assert stats[-1]["recon_iou"] > max(0.2, 2 * stats[0]["recon_iou"])
    assert res.run_dir.name.split("-", 1)[1].startswith("ae-")
    G, data = ckpt.load_generator(res.run_dir / "snapshot.pt")
    assert data["kind"] == "snapshot" and G.cfg.latent_gaussian and ckpt.z_prior(data) == "normal"
    assert "D" not in data and "E" in data
    # the snapshot's G is the trained decoder behind the fitted Gaussian: the codes it was fitted to
    # have that mean, and decoding the mean through the sampler equals decoding it directly
    train_state = torch.load(res.run_dir / "checkpoint.pt", weights_only=True)
    assert train_state["kind"] == "ae-train" and "opt" in train_state
    assert not torch.allclose(G.z_chol, torch.eye(G.cfg.z_dim))
    # every sampling command reads it
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", str(res.run_dir), "--seeds", "0-3", "--out", str(out), "--formats", "npz"]) == 0
    saved = np.load(out / "samples.npz")
    assert saved["grids"].shape == (4, 16, 16, 16) and list(saved["seeds"]) == [0, 1, 2, 3]
    from gan3d.runtime import latents

    with torch.no_grad():
        occ = G(latents([2], G.cfg.z_dim, "normal")).squeeze().numpy()
    assert (saved["grids"][2] <= (occ >= 0.5)).all()  # the largest component of G's shape for seed 2
    assert saved["grids"][2].sum() > 0


def test_resume_reaches_the_same_weights(tmp_path):
    a = train(ae_cfg(tmp_path / "a", steps=20, snapshot_every=10), progress=False, quiet=True)
    b0 = train(ae_cfg(tmp_path / "b", steps=20, snapshot_every=10), stop_after=10, progress=False, quiet=True)
    b = train(None, resume=b0.run_dir, progress=False, quiet=True)
    sa = torch.load(a.run_dir / "checkpoint.pt", weights_only=True)
    sb = torch.load(b.run_dir / "checkpoint.pt", weights_only=True)
    assert sb["step"] == 20
    for m in ("E", "G"):
        for k, v in sa[m].items():
            assert torch.equal(v, sb[m][k]), f"{m}.{k}"


def test_cli_refuses_gan_only_options(tmp_path, capsys):
    for extra in (["--lr-d", "1e-3"], ["--z-dist", "uniform"], ["--d-gate", "0.5"], ["--pairs", "x"]):
        assert main(["train", "--model", "autoencoder", "--preset", "tiny", "--out", str(tmp_path), *extra, "--dry-run"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and extra[0] in err[0], err
    assert main(["train", "--model", "autoencoder", "--preset", "cpu32", "--out", str(tmp_path), "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["objective"] == "autoencoder" and cfg["z_dist"] == "normal" and cfg["instance_noise"] == 0.0


def test_classify_refuses_an_autoencoder_snapshot(tmp_path, capsys):
    res = train(ae_cfg(tmp_path, steps=10, snapshot_every=10), progress=False, quiet=True)
    capsys.readouterr()
    data = tmp_path / "d.npz"
    assert main(["data", "prepare", "builtin", "--out", str(data), "--resolution", "16"]) == 0
    capsys.readouterr()
    code = main(["eval", "classify", "--checkpoint", str(res.run_dir / "snapshot.pt"), "--data", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "discriminator" in err[0]
