"""The one training loop (gan3d.train.loop.train): resume keeps the run's config, runs stopped
before their first checkpoint, stale temporary files, stats.jsonl on resume, divergence, SIGTERM,
a full disk, TensorBoard."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from gan3d.cli import main
from gan3d.errors import Gan3dError
from gan3d.runtime import set_determinism
from gan3d.train.config import VAEGANConfig, make_config
from gan3d.train.loop import train


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def gan_cfg(tmp_path, **kw):
    base = dict(data="builtin", out=str(tmp_path / "runs"), builtin_count=24, steps=8, batch_size=8, log_every=1,
                snapshot_every=4, n_preview=2, bn_samples=16, deterministic=True, device="cpu")
    base.update(kw)
    return make_config("tiny", **base)


def vae_cfg(pairs, tmp_path, **kw):
    base = dict(pairs=str(pairs), encoder="tiny", preset="tiny", out=str(tmp_path / "runs"), steps=6, batch_size=4, log_every=1,
                snapshot_every=4, n_preview=0, eval_pairs=0, bn_samples=8, deterministic=True, device="cpu")
    base.update(kw)
    return VAEGANConfig(**base)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from test_vaegan import make_pairs

    return make_pairs(tmp_path_factory.mktemp("p") / "pairs")


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]


def _weights(path):
    state = torch.load(path, weights_only=True)
    return {f"{m}.{k}": v for m in ("E", "G", "D") if m in state for k, v in state[m].items()}


def _same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- resume keeps the run's own config -----------------------------------------------------------


@pytest.mark.parametrize("model", ["gan", "vaegan"])
def test_resume_keeps_the_saved_config(tmp_path, pairs, model):
    cfg = gan_cfg(tmp_path, run_name="r") if model == "gan" else vae_cfg(pairs, tmp_path, run_name="r")
    part = train(cfg, stop_after=3, progress=False, quiet=True)
    assert part.step == 3
    done = train(None, resume=part.run_dir, progress=False, quiet=True)  # no config: the saved one
    assert done.step == cfg.steps and not done.interrupted
    key = "train_config" if model == "gan" else "vaegan_config"
    state = torch.load(part.run_dir / "checkpoint.pt", weights_only=True)
    assert state["step"] == cfg.steps and state[key]["steps"] == cfg.steps
    assert _steps(part.run_dir) == list(range(1, cfg.steps + 1))
    # an allowed override extends it; any other option is refused in one line naming its flag
    more = train(None, resume=part.run_dir, overrides={"steps": cfg.steps + 2, "log_every": 2}, progress=False, quiet=True)
    assert more.step == cfg.steps + 2 and [r["step"] for r in more.stats] == [cfg.steps + 2]
    with pytest.raises(Gan3dError, match="^--lr-g cannot be changed when resuming"):
        train(None, resume=part.run_dir, overrides={"lr_g": 0.1}, progress=False, quiet=True)
    with pytest.raises(Gan3dError, match=f"--steps 2 is below the checkpoint's step {cfg.steps + 2}"):
        train(None, resume=part.run_dir, overrides={"steps": 2}, progress=False, quiet=True)
    same = {"lr_g": cfg.lr_g, "seed": cfg.seed, "eval_every": None}  # unchanged or not given: no change
    assert train(None, resume=part.run_dir, overrides=same, progress=False, quiet=True).step == cfg.steps + 2
    if model == "vaegan":
        with pytest.raises(Gan3dError, match="--eval-every does not apply"):
            train(None, resume=part.run_dir, overrides={"eval_every": 2}, progress=False, quiet=True)


def test_task_comes_from_the_config_type_or_the_checkpoint(tmp_path, pairs):
    gan = train(gan_cfg(tmp_path, steps=1, run_name="g"), progress=False, quiet=True)
    vae = train(vae_cfg(pairs, tmp_path, steps=1, run_name="v"), progress=False, quiet=True)
    assert torch.load(gan.run_dir / "checkpoint.pt", weights_only=True)["kind"] == "train"
    assert torch.load(vae.run_dir / "checkpoint.pt", weights_only=True)["kind"] == "vaegan-train"
    with pytest.raises(Gan3dError, match="VAE-GAN"):  # a 3D-VAE-GAN config cannot resume a 3D-GAN run
        train(vae_cfg(pairs, tmp_path), resume=gan.run_dir, progress=False, quiet=True)
    with pytest.raises(Gan3dError, match="sampling snapshot cannot be resumed"):
        train(None, resume=gan.run_dir / "snapshot.pt", progress=False, quiet=True)


# --- a run stopped before its first checkpoint ---------------------------------------------------


def test_run_without_checkpoint_starts_again_in_its_folder(tmp_path):
    cfg = gan_cfg(tmp_path, run_name="early", snapshot_every=6, steps=6)

    def crash(rec):  # the process dies at step 2, long before the first checkpoint at step 6
        if rec["step"] == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, progress=False, quiet=True, on_stats=crash)
    run = tmp_path / "runs" / "early"
    assert (run / "config.json").is_file() and not (run / "checkpoint.pt").exists() and _steps(run) == [1, 2]
    (run / ".checkpoint.x1y2.tmp.pt").write_bytes(b"half")
    # restarting under its name says what to do, in one line
    with pytest.raises(Gan3dError, match=f"start it again with --resume {run}"):
        train(cfg, progress=False, quiet=True)
    again = train(None, resume=run, progress=False, quiet=True)
    assert again.step == 6 and again.run_dir == run
    assert _steps(run) == [1, 2, 3, 4, 5, 6]  # the dead run's lines are gone
    assert not list(run.glob(".*.tmp.pt"))
    clean = train(gan_cfg(tmp_path, run_name="clean", snapshot_every=6, steps=6), progress=False, quiet=True)
    assert _same_weights(run / "checkpoint.pt", clean.run_dir / "checkpoint.pt")  # as if it had never died
    assert "started again from step 0" in (run / "log.txt").read_text()


def test_resume_tidies_the_folder(tmp_path, pairs):
    cfg = vae_cfg(pairs, tmp_path, run_name="t", steps=8, snapshot_every=4)

    def crash(rec):  # dies at step 6: stats.jsonl has lines past the checkpoint of step 4
        if rec["step"] == 6:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        train(cfg, progress=False, quiet=True, on_stats=crash)
    run = tmp_path / "runs" / "t"
    assert _steps(run) == list(range(1, 7)) and torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4
    stale = [run / ".checkpoint.abc123.tmp.pt", run / ".snapshot.def456.tmp.pt"]  # what a kill -9 mid-write leaves
    for p in stale:
        p.write_bytes(b"partial")
    done = train(None, resume=run, progress=False, quiet=True)
    assert done.step == 8
    assert _steps(run) == list(range(1, 9))  # no step twice
    assert not any(p.exists() for p in stale)
    clean = train(vae_cfg(pairs, tmp_path, run_name="c", steps=8, snapshot_every=4), progress=False, quiet=True)
    assert _same_weights(run / "checkpoint.pt", clean.run_dir / "checkpoint.pt")


# --- divergence, full disk, SIGTERM --------------------------------------------------------------


def test_divergence_before_any_checkpoint_names_none(tmp_path, monkeypatch):
    import gan3d.train.gan as tr

    real_step = tr.gan_step

    def nan_at_second(*a, **k):
        st = real_step(*a, **k)
        nan_at_second.n += 1
        if nan_at_second.n == 2:
            st["loss_g"] = float("nan")
        return st

    nan_at_second.n = 0
    monkeypatch.setattr(tr, "gan_step", nan_at_second)
    with pytest.raises(Gan3dError) as e:
        train(gan_cfg(tmp_path, run_name="nan"), progress=False, quiet=True)
    msg = str(e.value)
    assert "diverged at step 1" in msg and "loss_g = nan" in msg
    assert "no checkpoint was written yet" in msg and "kept in" not in msg
    assert not (tmp_path / "runs" / "nan" / "checkpoint.pt").exists()


def test_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path, monkeypatch, capsys):
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] > 2:  # checkpoint.pt and snapshot.pt of step 2 are written; step 4's checkpoint is not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "runs"
    code = main(["train", "--preset", "tiny", "--data", "builtin", "--builtin-count", "24", "--batch-size", "8", "--steps", "6",
                 "--snapshot-every", "2", "--log-every", "2", "--out", str(out), "--run-name", "full", "--deterministic", "true", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "checkpoint.pt" in err[0] and "disk full" in err[0] and "previous one is kept" in err[0]
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(out / "full" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not list((out / "full").glob(".*.tmp.*"))


def test_sigterm_stops_like_ctrl_c(tmp_path):
    out = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    cmd = [sys.executable, "-m", "gan3d", "train", "--preset", "tiny", "--data", "builtin", "--builtin-count", "24",
           "--batch-size", "8", "--steps", "5000", "--log-every", "1", "--snapshot-every", "5000", "--out", str(out),
           "--run-name", "term", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = out / "term" / "stats.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (stats.is_file() and stats.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    step = torch.load(out / "term" / "checkpoint.pt", weights_only=True)["step"]
    assert 2 <= step < 5000
    assert f"interrupted: saved {out / 'term' / 'checkpoint.pt'} at step {step}" in (out / "term" / "log.txt").read_text()


# --- TensorBoard ----------------------------------------------------------------------------------


def test_tensorboard_gets_every_statistics_line(tmp_path, monkeypatch):
    seen = {"scalars": [], "closed": 0}

    class Writer:
        def __init__(self, run):
            seen["run"] = run

        def scalars(self, rec, step):
            seen["scalars"].append((step, rec["loss_d"]))

        def image(self, tag, img, step):
            seen.setdefault("images", []).append((tag, img.dtype, img.ndim, img.shape[2], step))

        def close(self):
            seen["closed"] += 1

    monkeypatch.setitem(sys.modules, "gan3d.tensorboard", types.SimpleNamespace(TensorBoardWriter=Writer))
    res = train(gan_cfg(tmp_path, steps=4, log_every=2), overrides={"tensorboard": True}, progress=False, quiet=True)
    assert seen["run"] == res.run_dir and seen["closed"] == 1
    assert seen["scalars"] == [(r["step"], r["loss_d"]) for r in res.stats] and [s for s, _ in seen["scalars"]] == [2, 4]
    assert seen["images"] == [("preview", np.uint8, 3, 3, 4)]  # the snapshot's sample picture
    monkeypatch.delitem(sys.modules, "gan3d.tensorboard")
    seen["scalars"].clear()
    train(gan_cfg(tmp_path, steps=2, log_every=2), progress=False, quiet=True)  # off unless asked
    assert seen["scalars"] == []


# --- the command line ------------------------------------------------------------------------------


def test_cli_resume_without_steps_keeps_the_runs_own(tmp_path, capsys):
    cfg = gan_cfg(tmp_path, run_name="cli", steps=6)
    assert make_config("tiny").steps != 6  # the preset's steps, which the old CLI extended every run to
    train(cfg, stop_after=3, progress=False, quiet=True)
    run = str(tmp_path / "runs" / "cli")
    assert main(["train", "--resume", run, "--preset", "tiny", "--quiet"]) == 0  # the same preset is no change
    assert torch.load(os.path.join(run, "checkpoint.pt"), weights_only=True)["step"] == 6
    capsys.readouterr()
    for flags, needle in (
        (["--lr-g", "0.5"], "--lr-g cannot be changed when resuming"),
        (["--preset", "cpu32"], "checkpoint is from preset 'tiny', not 'cpu32'"),
        (["--data", "other.npz"], "--data cannot be changed when resuming"),
    ):
        assert main(["train", "--resume", run, *flags, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]
    assert main(["train", "--resume", run, "--steps", "7", "--quiet"]) == 0
    assert _steps(tmp_path / "runs" / "cli") == [1, 2, 3, 4, 5, 6, 7]
