import json
import os
import signal

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.models.gan import ModelConfig, build
from gan3d.train.batching import batch_indices
from gan3d.train.config import make_config
from gan3d.train.gan import gan_step
from gan3d.train.loop import training_loop


def tiny_cfg(tmp_path, **kw):
    base = dict(data="builtin", out=str(tmp_path / "runs"), builtin_count=48, steps=6, batch_size=8,
                log_every=2, snapshot_every=100, n_preview=4, deterministic=True, device="cpu")
    base.update(kw)
    return make_config("tiny", **base)


def _models(seed=0):
    cfg = ModelConfig(resolution=16, z_dim=32, channels=(16, 8))
    torch.manual_seed(seed)
    g, d = build(cfg)
    og = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.5, 0.999))
    return cfg, g, d, og, od


def _params(m):
    return [p.detach().clone() for p in m.parameters()]


def _changed(before, m):
    return [not torch.equal(a, b) for a, b in zip(before, m.parameters())]


def test_one_step_changes_both_models_when_gate_open():
    cfg, g, d, og, od = _models()
    g0, d0 = _params(g), _params(d)
    real = (torch.rand(8, 1, 16, 16, 16) > 0.8).float()
    st = gan_step(g, d, og, od, real, torch.rand(8, 32), d_gate=1.0)
    assert st["d_updated"] is True
    assert all(_changed(g0, g)) and all(_changed(d0, d))
    assert 0.0 <= st["d_acc"] <= 1.0 and np.isfinite(st["loss_d"]) and np.isfinite(st["loss_g"])
    assert all(p.requires_grad for p in d.parameters())  # D is trainable again after the G phase


def test_gate_skips_d_when_its_accuracy_is_above_threshold():
    cfg, g, d, og, od = _models()
    real = (torch.rand(8, 1, 16, 16, 16) > 0.8).float()
    with torch.no_grad():
        d.out.bias.fill_(10.0)  # D calls everything real: accuracy exactly 0.5 (reals right, fakes wrong)
    g0, d0 = _params(g), _params(d)
    st = gan_step(g, d, og, od, real, torch.rand(8, 32), d_gate=0.4)
    assert st["d_acc"] == 0.5 and st["d_updated"] is False
    assert not any(_changed(d0, d))  # D untouched
    assert all(_changed(g0[:1], g))  # G still learns (its first layer always gets a gradient)
    st = gan_step(g, d, og, od, real, torch.rand(8, 32), d_gate=0.5)  # "at most": 0.5 <= 0.5 updates
    assert st["d_updated"] is True and any(_changed(d0, d))


def test_batch_indices_cover_each_epoch_once():
    n, bs = 50, 8
    seen = np.concatenate([batch_indices(n, bs, 3, s)[0] for s in range(n // bs)])
    assert len(set(seen.tolist())) == len(seen) == (n // bs) * bs
    assert batch_indices(n, bs, 3, n // bs)[1] == 1
    assert not np.array_equal(batch_indices(n, bs, 3, 0)[0], batch_indices(n, bs, 4, 0)[0])


def test_run_folder_contents_and_checkpoint_loads_weights_only(tmp_path):
    res = training_loop(tiny_cfg(tmp_path), progress=False, quiet=True)
    run = res.run_dir
    for name in ("config.json", "log.txt", "stats.jsonl", "checkpoint.pt", "snapshot.pt", "reals.png", "samples_000006.png"):
        assert (run / name).is_file(), name
    lines = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4, 6]
    for key in ("loss_d", "loss_g", "acc_real", "acc_fake", "d_updated", "samples_per_s"):
        assert key in lines[0]
    data = torch.load(run / "checkpoint.pt", weights_only=True)
    assert data["kind"] == "train" and data["step"] == 6
    assert {"G", "D", "opt_g", "opt_d", "rng", "model_config", "train_config", "gan3d_version"} <= set(data)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["lr_g"] == 0.002 and cfg["train"]["preset"] == "tiny"


def _tensors(d):
    return {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}


def assert_exact_resume(tmp_path, device):
    """A deterministic run stopped at step 3 and resumed ends with the same bits as one that never
    stopped, on ``device`` (tests/test_cuda.py runs it on a GPU)."""
    full = training_loop(tiny_cfg(tmp_path, run_name="full", device=device), progress=False, quiet=True)
    part = training_loop(tiny_cfg(tmp_path, run_name="part", device=device), stop_after=3, progress=False, quiet=True)
    assert part.step == 3
    assert torch.load(part.run_dir / "checkpoint.pt", weights_only=True)["step"] == 3
    resumed = training_loop(tiny_cfg(tmp_path, device=device), resume=part.run_dir, progress=False, quiet=True)
    assert resumed.run_dir == part.run_dir and resumed.step == 6
    a = torch.load(full.run_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(part.run_dir / "checkpoint.pt", weights_only=True)
    for key in ("G", "D"):
        for name, t in a[key].items():
            torch.testing.assert_close(b[key][name], t, rtol=0, atol=0, msg=f"{key}.{name}")
    sa, sb = a["opt_g"]["state"], b["opt_g"]["state"]
    for i in sa:
        torch.testing.assert_close(sb[i]["exp_avg"], sa[i]["exp_avg"], rtol=0, atol=0)
    # and the uninterrupted run differs from a run with another seed (the comparison can fail)
    other = training_loop(tiny_cfg(tmp_path, run_name="other", seed=1, device=device), progress=False, quiet=True)
    c = torch.load(other.run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.equal(c["G"]["net.0.weight"], a["G"]["net.0.weight"])
    return full


def test_exact_resume(tmp_path):
    assert_exact_resume(tmp_path, "cpu")


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path, run_name="nan", snapshot_every=2)
    import gan3d.train.gan as tr

    real_step = tr.gan_step
    calls = {"n": 0}

    def flaky(*a, **k):
        st = real_step(*a, **k)
        calls["n"] += 1
        if calls["n"] == 4:
            st["loss_d"] = float("nan")
        return st

    monkeypatch.setattr(tr, "gan_step", flaky)
    with pytest.raises(Gan3dError, match="diverged at step 3"):
        training_loop(cfg, progress=False, quiet=True)
    data = torch.load(tmp_path / "runs" / "nan" / "checkpoint.pt", weights_only=True)
    assert data["step"] == 2
    assert all(torch.isfinite(v).all() for v in data["G"].values() if v.is_floating_point())


def test_ctrl_c_saves_and_returns(tmp_path):
    cfg = tiny_cfg(tmp_path, run_name="int", steps=50, log_every=1)
    sent = {"done": False}

    def on_stats(rec):
        if rec["step"] == 2 and not sent["done"]:
            sent["done"] = True
            os.kill(os.getpid(), signal.SIGINT)

    res = training_loop(cfg, progress=False, quiet=True, on_stats=on_stats)
    assert res.interrupted and res.step == 2
    assert torch.load(res.run_dir / "checkpoint.pt", weights_only=True)["step"] == 2


def test_checkpoint_errors(tmp_path):
    with pytest.raises(Gan3dError, match="no such checkpoint"):
        ckpt.load(tmp_path / "missing.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(Gan3dError, match="empty"):
        ckpt.load(empty)
    res = training_loop(tiny_cfg(tmp_path, steps=2), progress=False, quiet=True)
    good = (res.run_dir / "snapshot.pt").read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(Gan3dError, match="trunc.pt"):
        ckpt.load(trunc)
    # a checkpoint whose recorded config does not fit its weights (as from another preset)
    data = torch.load(res.run_dir / "snapshot.pt", weights_only=True)
    data["model_config"] = {"resolution": 16, "z_dim": 32, "channels": [32, 8]}
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(Gan3dError, match="do not fit"):
        ckpt.load_generator(tmp_path / "mismatch.pt")
    with pytest.raises(Gan3dError, match="not a training checkpoint"):
        training_loop(tiny_cfg(tmp_path), resume=res.run_dir / "snapshot.pt", progress=False, quiet=True)


def test_in_training_evaluation_writes_metrics(tmp_path):
    res = training_loop(tiny_cfg(tmp_path, eval_every=2, eval_samples=16), progress=False, quiet=True)
    rows = [json.loads(l) for l in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    for r in rows:
        assert 0.0 <= r["eval_1nna_iou"] <= 1.0 and 0.0 <= r["eval_cov_iou"] <= 1.0
        assert 0.0 <= r["eval_pairwise_iou"] <= 1.0


def test_quick_eval_sees_a_collapsed_generator():
    from gan3d.eval.registry import EVALS

    quick_eval = EVALS["quick_generation"]

    class Same(torch.nn.Module):  # every latent gives the same shape
        def forward(self, z):
            x = torch.zeros(len(z), 1, 8, 8, 8)
            x[:, :, 2:5, 2:5, 0:6] = 1.0
            return x

    ref = np.zeros((10, 8, 8, 8), bool)
    for i in range(10):
        ref[i, 5:8, :, : 1 + i % 7] = True  # varied slabs, disjoint from the sample's block
    m = quick_eval(Same(), torch.zeros(12, 4), ref)
    assert m["eval_pairwise_iou"] == 1.0
    assert m["eval_cov_iou"] <= 0.1  # one shape covers at most one reference
    assert m["eval_1nna_iou"] == 1.0  # and is trivially told apart from the references


def test_straight_through_binarize_is_hard_forward_identity_backward():
    from gan3d.train.losses import straight_through_binarize

    x = torch.tensor([0.1, 0.49, 0.5, 0.93], requires_grad=True)
    y = straight_through_binarize(x)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_hard_fakes_reach_d_as_binary_grids():
    cfg, g, d, og, od = _models()
    seen = []
    d.blocks[0].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    real = (torch.rand(8, 1, 16, 16, 16) > 0.8).float()
    gan_step(g, d, og, od, real, torch.rand(8, 32), d_gate=1.0, hard_fakes=True)
    assert len(seen) == 3  # real, fake (D phase), fake (G phase)
    for x in seen:
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    g0 = _params(g)
    gan_step(g, d, og, od, real, torch.rand(8, 32), d_gate=1.0, hard_fakes=True)
    assert all(_changed(g0, g))  # gradients still reach G through the threshold


def test_mode_seeking_term_punishes_identical_shapes():
    from gan3d.train.losses import mode_seeking_term

    torch.manual_seed(0)
    z = torch.randn(8, 5)
    varied = torch.rand(8, 1, 4, 4, 4)
    same = varied[:1].repeat(8, 1, 1, 1, 1)
    assert mode_seeking_term(same, z) > 100 * mode_seeking_term(varied, z)
    # equal to 1 / (L1 ratio) computed by hand on the two halves
    ratio = (varied[:4] - varied[4:]).abs().mean() / (z[:4] - z[4:]).abs().mean()
    torch.testing.assert_close(mode_seeking_term(varied, z), 1 / (ratio + 1e-5))


def test_in_training_evaluation_uses_the_held_out_split(tmp_path):
    from gan3d.data.prepare import prepare

    data = tmp_path / "b.npz"
    prepare("builtin", data, resolution=16, per_class=(8, 5), progress=False)  # 35 test shapes
    res = training_loop(tiny_cfg(tmp_path, data=str(data), steps=2, eval_every=2, eval_samples=40), progress=False, quiet=True)
    assert "against 35 test shapes" in (res.run_dir / "log.txt").read_text()
