"""The 3D-VAE-GAN's training levers against lost thin parts and unbalanced classes: the wbce and
focal reconstruction losses (values and gradients in closed form) and class-balanced batches
(frequencies and exact resume)."""

import json

import numpy as np
import pytest
import torch
from test_vaegan import make_pairs, vcfg

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.data.pairs import PairedData
from gan3d.data.prepared import from_arrays, load
from gan3d.options import OptionError
from gan3d.runtime import set_determinism
from gan3d.train.batching import balanced_indices, batch_indices, class_weights, mean_occupancy
from gan3d.train.config import VAEGANConfig
from gan3d.train.loop import train_vaegan
from gan3d.train.losses import reconstruction_loss
from gan3d.train.vaegan import VaeganTask


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


# --- losses: values ---------------------------------------------------------------------------


RECON = np.array([[0.9, 0.2, 0.5, 0.05], [0.1, 0.7, 0.99, 0.3]])
TRUTH = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])


def _t(a):
    return torch.tensor(a, dtype=torch.float64).reshape(a.shape[0], 1, -1)


def test_wbce_and_focal_values_are_the_closed_forms():
    q, t = RECON, TRUTH
    for w in (1.0, 3.0, 17.5):
        ref = -(w * t * np.log(q) + (1 - t) * np.log(1 - q)).sum(1).mean()
        assert reconstruction_loss(_t(q), _t(t), "wbce", pos_weight=w).item() == pytest.approx(ref, rel=1e-9)
    for g in (0.0, 1.0, 2.0, 3.5):
        ref = -(t * (1 - q) ** g * np.log(q) + (1 - t) * q**g * np.log(1 - q)).sum(1).mean()
        assert reconstruction_loss(_t(q), _t(t), "focal", gamma=g).item() == pytest.approx(ref, rel=1e-9)
    bce = reconstruction_loss(_t(q), _t(t), "bce").item()
    assert reconstruction_loss(_t(q), _t(t), "wbce", pos_weight=1.0).item() == pytest.approx(bce, rel=1e-12)
    assert reconstruction_loss(_t(q), _t(t), "focal", gamma=0.0).item() == pytest.approx(bce, rel=1e-12)
    # a perfect prediction costs (almost) nothing under every loss; G's 0 and 1 are clamped, not NaN
    for kind in ("wbce", "focal"):
        v = reconstruction_loss(_t(TRUTH), _t(TRUTH), kind, pos_weight=5.0).item()
        assert np.isfinite(v) and 0 <= v < 1e-4


# --- losses: gradients --------------------------------------------------------------------------


def _logit_grads(kind, q, t, **kw):
    """d loss / d logit at each voxel, G's output being sigmoid(logit) = q."""
    x = torch.logit(torch.tensor(q, dtype=torch.float64)).reshape(1, 1, -1).requires_grad_(True)
    reconstruction_loss(torch.sigmoid(x), torch.tensor(t, dtype=torch.float64).reshape(1, 1, -1), kind, **kw).backward()
    return x.grad.reshape(-1).numpy()


def test_thin_voxel_gradient_closed_forms():
    """A thin filled voxel that G has let fall to q = 0.05 (voxel 0) beside empty voxels predicted
    well at q = 0.05 (the rest): the push on its logit under each loss, in closed form."""
    q0, W, g = 0.05, 12.0, 2.0
    q = np.array([q0, 0.05, 0.05, 0.05])
    t = np.array([1.0, 0.0, 0.0, 0.0])
    grads = {
        "l2": _logit_grads("l2", q, t),
        "bce": _logit_grads("bce", q, t),
        "wbce": _logit_grads("wbce", q, t, pos_weight=W),
        "focal": _logit_grads("focal", q, t, gamma=g),
    }
    thin = {k: -v[0] for k, v in grads.items()}  # all push the logit up (negative gradient)
    assert thin["l2"] == pytest.approx(2 * (1 - q0) * q0 * (1 - q0), rel=1e-9)  # vanishes as q -> 0
    assert thin["bce"] == pytest.approx(1 - q0, rel=1e-9)
    assert thin["wbce"] == pytest.approx(W * (1 - q0), rel=1e-9)
    assert thin["focal"] == pytest.approx((1 - q0) ** g * ((1 - q0) + g * q0 * -np.log(q0)), rel=1e-9)
    assert thin["wbce"] > thin["bce"] > thin["l2"] and thin["focal"] > thin["bce"]
    assert thin["bce"] / thin["l2"] > 10 and thin["wbce"] / thin["bce"] == pytest.approx(W)
    # wbce leaves the empty voxels' gradient as bce's: the filled voxel's share of the push grows W-fold
    assert np.allclose(grads["wbce"][1:], grads["bce"][1:], rtol=1e-12)
    # focal scales the well-predicted empty voxels down by about q^g: the thin voxel's gradient
    # against an empty voxel's is more than 100 times bce's ratio
    empty_focal = q0**g * (q0 + g * (1 - q0) * -np.log(1 - q0))
    assert grads["focal"][1] == pytest.approx(empty_focal, rel=1e-9)
    ratio = {k: thin[k] / grads[k][1] for k in ("bce", "focal")}
    assert ratio["focal"] > 100 * ratio["bce"]


def test_focal_is_not_stronger_than_bce_everywhere():
    """Focal's push on a filled voxel exceeds bce's only while it is far below 0.5 (about q < 0.3
    for gamma 2); near the threshold it is weaker: its gain is relative, over the easy voxels."""
    qs = np.array([0.02, 0.1, 0.2, 0.4, 0.6])
    t = np.ones_like(qs)
    focal, bce = -_logit_grads("focal", qs, t), -_logit_grads("bce", qs, t)
    assert (focal[:3] > bce[:3]).all() and (focal[3:] < bce[3:]).all()


def test_wbce_gradient_in_probability_is_w_times_bce():
    q = torch.tensor([[0.05, 0.3, 0.5, 0.8]], dtype=torch.float64).reshape(1, 1, 4)
    t = torch.tensor([[1.0, 1.0, 0.0, 1.0]], dtype=torch.float64).reshape(1, 1, 4)
    gs = {}
    for kind, kw in (("bce", {}), ("wbce", {"pos_weight": 7.0})):
        p = q.clone().requires_grad_(True)
        reconstruction_loss(p, t, kind, **kw).backward()
        gs[kind] = p.grad.reshape(-1).numpy()
    filled = t.reshape(-1).numpy() == 1
    assert np.allclose(gs["wbce"][filled], 7.0 * gs["bce"][filled]) and np.allclose(gs["wbce"][~filled], gs["bce"][~filled])
    assert np.allclose(gs["bce"][filled], -1.0 / q.reshape(-1).numpy()[filled])


def test_loss_options_are_checked():
    VAEGANConfig(pairs="x", recon_loss="wbce", recon_pos_weight=4.0)
    VAEGANConfig(pairs="x", recon_loss="focal", recon_focal_gamma=0.5)
    with pytest.raises(OptionError, match="wbce only"):
        VAEGANConfig(pairs="x", recon_loss="bce", recon_pos_weight=4.0)
    with pytest.raises(OptionError, match="focal only"):
        VAEGANConfig(pairs="x", recon_loss="wbce", recon_focal_gamma=1.0)
    with pytest.raises(OptionError, match="recon_pos_weight"):
        VAEGANConfig(pairs="x", recon_loss="wbce", recon_pos_weight=-1.0)
    assert VAEGANConfig().recon_loss == "l2" and VAEGANConfig().balance_classes is False  # the paper's


@pytest.mark.parametrize("argv,needle", [
    (["--recon-loss", "l2", "--recon-pos-weight", "3"], "--recon-pos-weight"),
    (["--recon-loss", "focal", "--recon-focal-gamma", "-1"], "--recon-focal-gamma"),
    (["--balance-classes", "maybe"], "--balance-classes"),
])
def test_bad_loss_options_are_one_line(argv, needle, capsys):
    try:
        code = main(["train", "--model", "vaegan", "--pairs", "/nonexistent", *argv, "--dry-run"])
    except SystemExit as e:
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and needle in err[0], err


# --- pairs with unbalanced classes -------------------------------------------------------------------


TRAIN_LABELS = [0] * 6 + [1] * 2 + [2]  # 9 training shapes, 6:2:1


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory):
    """make_pairs' folder (2 views per shape) with its training shapes relabelled 6:2:1."""
    folder = make_pairs(tmp_path_factory.mktemp("u") / "pairs", n_shapes=11, n_test=2)
    with np.load(folder / "pairs.npz") as z:
        arrays = {k: z[k] for k in z.files}
    shape_label = np.array(TRAIN_LABELS + [0, 1])
    arrays["label"] = shape_label[arrays["shape_index"]]
    np.savez(folder / "pairs.npz", **arrays)
    ds = load(folder / "voxels.npz")  # the shapes carry the same classes (PairedData checks that they agree)
    from_arrays(ds.grids(np.arange(len(ds))), shape_label, list(ds.class_names), split=ds.split).save(folder / "voxels.npz")
    return folder


def test_balanced_draws_are_balanced_and_seeded():
    labels = np.repeat([0, 1, 2, 5], [900, 90, 9, 1])  # 1000 rows, 900:90:9:1
    draws = np.concatenate([balanced_indices(labels, 50, 3, s)[0] for s in range(400)])
    freq = np.bincount(labels[draws], minlength=6)[[0, 1, 2, 5]] / len(draws)
    assert np.abs(freq - 0.25).max() < 0.02  # 20,000 draws: 3 sigma is 0.009
    rare = draws[labels[draws] == 2]  # within a class, every row is drawn
    assert set(rare.tolist()) == set(np.flatnonzero(labels == 2).tolist())
    a, e = balanced_indices(labels, 50, 3, 17)
    assert np.array_equal(a, balanced_indices(labels, 50, 3, 17)[0]) and e == 17 * 50 // 1000
    assert not np.array_equal(a, balanced_indices(labels, 50, 4, 17)[0])
    assert not np.array_equal(a, balanced_indices(labels, 50, 3, 18)[0])


def test_task_batches_balance_the_classes(unbalanced, tmp_path):
    data = PairedData(unbalanced)
    counts = {}
    for balance in (False, True):
        task = VaeganTask(vcfg(unbalanced, tmp_path, balance_classes=balance, batch_size=8),
                          device=torch.device("cpu"), shard=slice(None), state=None, ckpt_path=None)
        rows = []
        for step in range(300):
            pos = balanced_indices(task.train_labels, 8, 0, step) if balance else batch_indices(len(task.train_rows), 8, 0, step)
            rows.append(task.train_rows[pos[0]])
        counts[balance] = np.bincount(data.label[np.concatenate(rows)], minlength=3) / (300 * 8)
    assert np.abs(counts[True] - 1 / 3).max() < 0.05  # 2,400 draws
    assert counts[False][0] > 0.6 and counts[False][2] < 0.15  # the plain draws follow the data (6:2:1)


def test_balanced_run_draws_balanced_batches_and_resumes_exactly(unbalanced, tmp_path, monkeypatch):
    from gan3d.train import vaegan

    seen = []
    real = vaegan.PairedData.batch

    def spy(self, rows, image_size):
        seen.append(np.asarray(rows).copy())
        return real(self, rows, image_size)

    kw = dict(balance_classes=True, steps=6, n_preview=0, eval_pairs=0, bn_samples=0)
    full = train_vaegan(vcfg(unbalanced, tmp_path, run_name="full", **kw))
    monkeypatch.setattr(vaegan.PairedData, "batch", spy)
    part = train_vaegan(vcfg(unbalanced, tmp_path, run_name="part", **kw), stop_after=3)
    done = train_vaegan(vcfg(unbalanced, tmp_path, **kw), resume=part.run_dir)
    assert done.step == 6
    a, b = ckpt.load(done.run_dir / "checkpoint.pt"), ckpt.load(full.run_dir / "checkpoint.pt")
    for key in ("E", "G", "D"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    # the batches the run read were the balanced draws of steps 0..5
    task_labels = PairedData(unbalanced).label
    train_rows = np.flatnonzero(PairedData(unbalanced).split == 0)
    want = [train_rows[balanced_indices(task_labels[train_rows], 4, 0, s)[0]] for s in range(6)]
    assert [r.tolist() for r in seen] == [w.tolist() for w in want]
    assert json.loads((done.run_dir / "config.json").read_text())["vaegan"]["balance_classes"] is True
    assert "class-balanced batches: each class drawn with chance 1/3" in (full.run_dir / "log.txt").read_text()


# --- wbce's automatic weight ------------------------------------------------------------------------


def test_wbce_automatic_weight_is_the_inverse_occupancy(unbalanced, tmp_path):
    data = PairedData(unbalanced)
    train = np.flatnonzero(data.split == 0)
    occ = data.dataset.grids(data.shape_index[train]).reshape(len(train), -1).astype(np.float64).mean(1)
    labels = data.label[train]
    for balance, p in ((False, occ.mean()), (True, np.mean([occ[labels == c].mean() for c in range(3)]))):
        task = VaeganTask(vcfg(unbalanced, tmp_path, recon_loss="wbce", balance_classes=balance),
                          device=torch.device("cpu"), shard=slice(None), state=None, ckpt_path=None)
        assert task.occupancy == pytest.approx(p, rel=1e-9)
        assert task.pos_weight == pytest.approx((1 - p) / p, rel=1e-9)
    fixed = VaeganTask(vcfg(unbalanced, tmp_path, recon_loss="wbce", recon_pos_weight=4.0),
                       device=torch.device("cpu"), shard=slice(None), state=None, ckpt_path=None)
    assert fixed.pos_weight == 4.0 and fixed.occupancy is None
    assert np.allclose(class_weights([0, 0, 0, 1]), [1 / 3, 1 / 3, 1 / 3, 1])
    assert mean_occupancy(data.dataset, [0, 0, 1], [1, 1, 2]) == pytest.approx(
        (2 * data.dataset.grids(0).mean() + 2 * data.dataset.grids(1).mean()) / 4, rel=1e-6)


@pytest.mark.parametrize("loss", ["wbce", "focal"])
def test_runs_with_the_new_losses(unbalanced, tmp_path, loss):
    res = train_vaegan(vcfg(unbalanced, tmp_path, recon_loss=loss, steps=2, n_preview=0, eval_pairs=0, snapshot_every=2))
    log = (res.run_dir / "log.txt").read_text()
    assert ("wbce: filled voxels weighted" in log) == (loss == "wbce") and "class-balanced" not in log
    recs = [json.loads(line) for line in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    assert recs and all(np.isfinite(r["recon"]) and r["recon"] > 0 for r in recs)


# --- one class of the pairs (the paper's separately trained models) ---------------------------------


def test_classes_keep_only_those_classes_rows(unbalanced, tmp_path, monkeypatch, capsys):
    from gan3d.train import vaegan

    data = PairedData(unbalanced)
    names = list(data.class_names)
    one = names[1]
    task = VaeganTask(vcfg(unbalanced, tmp_path, classes=(one,), batch_size=2), device=torch.device("cpu"), shard=slice(None), state=None,
                      ckpt_path=None)
    want_train = np.flatnonzero((data.split == 0) & (data.label == 1))
    assert task.train_rows.tolist() == want_train.tolist() and len(want_train) == 4  # 2 shapes x 2 views
    assert set(data.label[task.test_rows].tolist()) <= {1}
    seen = []
    real = vaegan.PairedData.batch

    def spy(self, rows, image_size):
        seen.append(np.asarray(rows).copy())
        return real(self, rows, image_size)

    monkeypatch.setattr(vaegan.PairedData, "batch", spy)
    run = train_vaegan(vcfg(unbalanced, tmp_path, classes=(one,), batch_size=2, steps=3, n_preview=0, eval_pairs=0, bn_samples=0))
    assert seen and all(set(data.label[r].tolist()) == {1} for r in seen)  # every batch drew that class only
    assert json.loads((run.run_dir / "config.json").read_text())["vaegan"]["classes"] == [one]
    assert f"({one} only)" in (run.run_dir / "log.txt").read_text()
    assert main(["train", "--model", "vaegan", "--pairs", str(unbalanced), "--classes", "lamp", "--steps", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no class 'lamp' in the paired folder" in err[-1] and str(unbalanced) in err[-1]


# --- a moving average of E's and G's weights ----------------------------------------------------------


def test_ema_snapshots_use_the_moving_averages_and_resume_exactly(unbalanced, tmp_path):
    kw = dict(ema=0.9, steps=6, n_preview=0, eval_pairs=0, bn_samples=0)
    full = train_vaegan(vcfg(unbalanced, tmp_path, run_name="full", **kw))
    part = train_vaegan(vcfg(unbalanced, tmp_path, run_name="part", **kw), stop_after=3)
    done = train_vaegan(vcfg(unbalanced, tmp_path, **kw), resume=part.run_dir)
    a, b = ckpt.load(done.run_dir / "checkpoint.pt"), ckpt.load(full.run_dir / "checkpoint.pt")
    for key in ("E", "G", "D", "E_ema", "G_ema"):
        for k in b[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    floats = [k for k in b["E"] if b["E"][k].is_floating_point() and "running" not in k]
    assert any(not torch.equal(b["E"][k], b["E_ema"][k]) for k in floats)  # an average, not the weights
    snap = ckpt.load(full.run_dir / "snapshot.pt")  # bn_samples=0: the averages as they are
    for key in ("E", "G"):
        assert all(torch.equal(snap[key][k], b[f"{key}_ema"][k]) for k in snap[key]), key
    plain = train_vaegan(vcfg(unbalanced, tmp_path, run_name="plain", steps=2, n_preview=0, eval_pairs=0, bn_samples=0))
    assert "E_ema" not in ckpt.load(plain.run_dir / "checkpoint.pt")  # the paper: no average
