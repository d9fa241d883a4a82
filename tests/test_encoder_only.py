"""--encoder-only: E trained alone against a fixed G in eval mode (gan3d.train.encoderfit)."""

import copy
import json
import dataclasses

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.models.encoder import kl_divergence, reparameterize
from gan3d.options import OptionError
from gan3d.runtime import set_determinism
from gan3d.train.encoderfit import encoder_step, fix_decoder
from gan3d.train.loop import train_vaegan
from gan3d.train.losses import reconstruction_loss
from test_distributed import no_torchrun  # noqa: F401 (a fixture)
from test_vaegan import _setup, _state, make_pairs, vcfg


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _rec(recon, shapes):
    return reconstruction_loss(recon, shapes, "l2")


def _g_with_running_statistics():
    """_setup's modules, with G's BatchNorm running statistics moved away from their initial values."""
    E, G, D, opts, images, shapes, z, eps, cfg = _setup()
    with torch.no_grad():
        for k in range(5):
            G(torch.randn(8, z.shape[1], generator=torch.Generator().manual_seed(k)) * 2 + 1)
    return E, G, images, shapes, eps, dataclasses.replace(cfg, alpha1=0.0, alpha2=1e-2)  # the step's gradient all through G


def _sgd_by_hand(E, G, images, shapes, eps, cfg, g_mode_train):
    E, G = copy.deepcopy(E), copy.deepcopy(G).requires_grad_(False)
    G.train(g_mode_train)
    opt = torch.optim.SGD(E.parameters(), lr=0.1)
    mu, logvar = E(images)
    loss = cfg.alpha1 * kl_divergence(mu, logvar).mean() + cfg.alpha2 * _rec(G(reparameterize(mu, logvar, eps=eps)), shapes)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return _state(E)


def test_encoder_step_fits_e_to_g_in_eval_mode():
    """One step moves E by the gradient of E's loss through G in eval mode (not G's batch statistics),
    and leaves G's weights and statistics as they were."""
    E, G, images, shapes, eps, cfg = _g_with_running_statistics()
    want_eval = _sgd_by_hand(E, G, images, shapes, eps, cfg, g_mode_train=False)
    want_train = _sgd_by_hand(E, G, images, shapes, eps, cfg, g_mode_train=True)
    fix_decoder(G)
    g_before, e_before = _state(G), _state(E)
    st = encoder_step(E, G, torch.optim.SGD(E.parameters(), lr=0.1), images, shapes, eps, cfg, _rec)
    assert set(st) == {"loss_e", "kl", "recon", "recon_iou"} and all(np.isfinite(v) for v in st.values())
    got = _state(E)
    assert all(torch.equal(g_before[k], v) for k, v in _state(G).items())
    weights = [k for k in got if k.endswith("weight")]
    assert any(not torch.equal(e_before[k], got[k]) for k in weights)
    moved = sum(float((got[k] - e_before[k]).norm()) for k in weights)
    off_eval = sum(float((got[k] - want_eval[k]).norm()) for k in weights)
    off_train = sum(float((got[k] - want_train[k]).norm()) for k in weights)
    assert off_eval < 1e-4 * moved
    # the two modes give different steps, so the comparison above tells them apart
    assert off_train > 1e-2 * moved


def test_encoder_step_refuses_a_g_that_could_change():
    E, G, images, shapes, eps, cfg = _g_with_running_statistics()
    opt = torch.optim.SGD(E.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="fixed"):
        encoder_step(E, G.eval(), opt, images, shapes, eps, cfg, _rec)  # trainable parameters
    with pytest.raises(ValueError, match="fixed"):
        encoder_step(E, G.requires_grad_(False).train(), opt, images, shapes, eps, cfg, _rec)  # batch statistics


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    pairs = make_pairs(tmp_path_factory.mktemp("eo") / "pairs")
    res = train_vaegan(vcfg(pairs, tmp_path_factory.mktemp("runs"), steps=4, n_preview=0))
    set_determinism(False)
    return pairs, res.run_dir / "snapshot.pt"


def test_encoder_only_run_keeps_g_and_trains_e(parent, tmp_path):
    """From a 3D-VAE-GAN snapshot, --encoder-only changes E only: the checkpoint's and the snapshot's G
    are the parent's exactly (weights and BatchNorm statistics: no re-estimation), E has moved, and the
    logged statistics are E's. It resumes exactly, as every run does."""
    pairs, snap = parent
    kw = dict(init_from=str(snap), encoder_only=True, steps=6, n_preview=0)
    res = train_vaegan(vcfg(pairs, tmp_path, run_name="eo", **kw))
    src, state, out = ckpt.load(snap), ckpt.load(res.run_dir / "checkpoint.pt"), ckpt.load(res.run_dir / "snapshot.pt")
    for got in (state["G"], out["G"]):
        assert all(torch.equal(got[k], src["G"][k]) for k in src["G"])
    assert any(not torch.equal(state["E"][k], src["E"][k]) for k in src["E"] if k.endswith("weight"))
    log = (res.run_dir / "log.txt").read_text()
    assert "--encoder-only" in log and "test_iou" in log and "d_acc" not in log
    set_determinism(False)
    part = train_vaegan(vcfg(pairs, tmp_path, run_name="eo-part", **kw), stop_after=3)
    set_determinism(False)
    done = train_vaegan(vcfg(pairs, tmp_path, **kw), resume=part.run_dir)
    again = ckpt.load(done.run_dir / "checkpoint.pt")
    assert all(torch.equal(again["E"][k], state["E"][k]) for k in state["E"])


def test_encoder_only_needs_init_from(tmp_path):
    with pytest.raises(OptionError, match="encoder_only"):
        vcfg(tmp_path / "p", tmp_path, encoder_only=True)


def _eo_worker(rank: int, world: int, port: int, out: str, pairs: str, init: str) -> None:
    """One rank of a two-process --encoder-only run; saves its E and G as it holds them at the end."""
    import os
    from datetime import timedelta

    import torch.distributed as dist

    from test_distributed import keep_tasks

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tasks = keep_tasks()
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    train_vaegan(vcfg(pairs, out, run_name="ddp", init_from=init, encoder_only=True, steps=4, n_preview=0), progress=False)
    E, G = tasks[0].E, tasks[0].G  # E's weights (its BatchNorm statistics are each rank's own), all of G
    torch.save({"E": {k: p.detach() for k, p in E.named_parameters()}, "G": _state(G)}, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_encoder_only_under_two_processes(parent, tmp_path, no_torchrun):
    """Under torchrun only E is wrapped and stepped: the two ranks end with the same E weights (its
    gradients averaged), different from the start, and with the parent's G."""
    import torch.multiprocessing as mp
    from test_distributed import _free_port

    pairs, snap = parent
    out = tmp_path / "runs"
    out.mkdir()
    mp.spawn(_eo_worker, args=(2, _free_port(), str(out), str(pairs), str(snap)), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    src = ckpt.load(snap)
    for k, t in r0["E"].items():
        torch.testing.assert_close(r1["E"][k], t, rtol=0, atol=0, msg=f"E.{k}")
    assert any(not torch.equal(t, src["E"][k]) for k, t in r0["E"].items())
    for r in (r0, r1):
        assert all(torch.equal(r["G"][k], src["G"][k]) for k in src["G"])
    assert "data-parallel: 2 processes" in (out / "ddp" / "log.txt").read_text()


def test_encoder_only_z_mean_decodes_e_mean(parent, tmp_path, monkeypatch):
    """--encoder-only-z mean hands the encoder-only step zero noise (z = E's mean, what reconstruction
    decodes); sample hands it the step's drawn noise."""
    import gan3d.train.vaegan as vg

    pairs, snap = parent
    seen, real = {}, vg.encoder_step

    def spy(E, G, opt_e, images, shapes, eps, *a):
        seen.setdefault(z, []).append(eps.clone())
        return real(E, G, opt_e, images, shapes, eps, *a)

    monkeypatch.setattr(vg, "encoder_step", spy)
    kw = dict(init_from=str(snap), encoder_only=True, steps=2, n_preview=0, eval_pairs=0)
    for z in ("mean", "sample"):
        train_vaegan(vcfg(pairs, tmp_path, run_name=z, encoder_only_z=z, **kw))
        set_determinism(False)
    assert len(seen["mean"]) == len(seen["sample"]) == 2
    assert all(not e.any() for e in seen["mean"])
    assert all(e.abs().sum() > 0 for e in seen["sample"]) and not torch.equal(*seen["sample"])
    with pytest.raises(OptionError, match="encoder_only_z"):
        vcfg(pairs, tmp_path, encoder_only_z="mean")


def _invert_codes(parent, out, iters, *extra):
    """`gan3d explore invert` over the parent's training shapes, each search started from the parent's code."""
    from gan3d.cli import main

    pairs, snap = parent
    rc = main(["explore", "invert", "--checkpoint", str(snap), "--data", str(pairs / "voxels.npz"), "--split", "train",
               "--limit", "100", "--starts", "1", "--iters", str(iters), "--encoder-checkpoint", str(snap),
               "--pairs", str(pairs), "--out", str(out), *extra])
    assert rc == 0
    return np.load(out / "invert_set.npz")


def test_inversion_starts_from_the_encoders_code(parent, tmp_path):
    """With --encoder-checkpoint and --pairs, a shape's first start is the mean of E's means over its images:
    with no search step, that is the code kept."""
    from gan3d.data.pairs import PairedData
    from gan3d.reconstruct import load_reconstructor

    f = _invert_codes(parent, tmp_path / "c0", iters=0)
    E, _, _ = load_reconstructor(parent[1])
    pd = PairedData(parent[0])
    for row, z in zip(f["rows"], f["z"]):
        img, _ = pd.batch(np.flatnonzero(pd.shape_index == row), E.cfg.image_size)
        with torch.no_grad():
            np.testing.assert_allclose(z, E(img)[0].mean(0).numpy(), atol=1e-5)
    assert len(f["rows"]) == int((pd.dataset.split == 0).sum())


def test_anchor_weight_holds_the_search_near_the_encoders_code(parent, tmp_path):
    """--anchor-weight adds W * mean((z - code)^2): the heavier the weight, the nearer the codes stay."""
    start = _invert_codes(parent, tmp_path / "a0", 0)["z"]
    moved = [np.sqrt(((_invert_codes(parent, tmp_path / f"a{w}", 30, "--lr", "0.05", "--anchor-weight", w)["z"] - start) ** 2).mean())
             for w in ("0", "100")]
    assert moved[0] > 0.05 and moved[1] < 0.5 * moved[0]


def test_latent_targets_pull_e_onto_the_codes(parent, tmp_path):
    """--latent-targets: E's mean moves towards each training shape's inverted code (the logged distance
    falls), G stays the parent's, and a codes file that misses a training shape is refused by name."""
    from gan3d.errors import Gan3dError

    pairs, snap = parent
    _invert_codes(parent, tmp_path / "codes", iters=10)
    codes = tmp_path / "codes" / "invert_set.npz"
    res = train_vaegan(vcfg(pairs, tmp_path, run_name="lt", init_from=str(snap), encoder_only=True, latent_targets=str(codes),
                            steps=30, log_every=1, n_preview=0, eval_pairs=0))
    set_determinism(False)
    rows = [json.loads(line) for line in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    rmse = [r["code_rmse"] for r in rows if "code_rmse" in r]
    assert len(rmse) == 30 and np.mean(rmse[-5:]) < 0.7 * np.mean(rmse[:5])
    src, out = ckpt.load(snap), ckpt.load(res.run_dir / "snapshot.pt")
    assert all(torch.equal(out["G"][k], src["G"][k]) for k in src["G"])
    f = dict(np.load(codes))
    np.savez(tmp_path / "short.npz", rows=f["rows"][1:], z=f["z"][1:])
    with pytest.raises(Gan3dError, match="no code for 1 training shapes"):
        train_vaegan(vcfg(pairs, tmp_path, run_name="bad", init_from=str(snap), encoder_only=True,
                          latent_targets=str(tmp_path / "short.npz"), steps=2, n_preview=0, eval_pairs=0))
    set_determinism(False)
    with pytest.raises(OptionError, match="latent_targets"):
        vcfg(pairs, tmp_path, latent_targets=str(codes))


def test_latent_codes_follow_the_shape_rows(tmp_path):
    """Each pair gets the code of its own shape, whatever order the file and the pairs list them in."""
    from gan3d.train.encoderfit import latent_codes

    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "c.npz", rows=np.array([7, 2, 9, 4]), z=z)
    got = latent_codes(str(tmp_path / "c.npz"), np.array([9, 9, 2, 4, 7]), 3).numpy()
    np.testing.assert_array_equal(got, z[[2, 2, 1, 3, 0]])
