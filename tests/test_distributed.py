"""Data-parallel training (gan3d.distributed + training_loop under torchrun), on the CPU with gloo.

Two real 2-process runs: one started with torch.multiprocessing (so each rank can hand back the
models it trained) and one through the documented ``torchrun ... -m gan3d train`` command line.
Both take a device: tests/test_cuda.py runs them with nccl on two GPUs.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gan3d.errors import Gan3dError
from gan3d.models.gan import ModelConfig, build
from gan3d.train import distributed
from gan3d.train.batching import draw_batch, load_training_data, shard_of
from gan3d.train.config import VAEGANConfig, make_config
from gan3d.train.gan import gan_step
from gan3d.train.loop import train_vaegan, training_loop
from gan3d.train.vaegan import vaegan_step

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


def tiny_cfg(out, **kw):
    base = dict(data="builtin", out=str(out), builtin_count=48, steps=24, batch_size=8, log_every=1,
                snapshot_every=12, n_preview=4, deterministic=True, device="cpu")
    base.update(kw)
    return make_config("tiny", **base)


# --- the batch split -----------------------------------------------------------------------------


@pytest.mark.parametrize("augment", [False, True])
def test_shards_put_together_are_the_single_process_batch(tmp_path, augment):
    cfg = tiny_cfg(tmp_path, batch_size=12, augment=augment, instance_noise=0.3, noise_decay_steps=50)
    data = load_training_data(cfg, 16)
    for step in (0, 5, 9):  # 9: the second epoch (48 // 12 = 4 batches per epoch)
        whole = draw_batch(cfg, data, 32, step)
        assert whole.real.shape == (12, 16, 16, 16) and whole.z.shape == (12, 32) and whole.noise[0].shape == (12, 1, 16, 16, 16)
        for world in (2, 3, 4):
            parts = [draw_batch(cfg, data, 32, step, shard_of(12, r, world)) for r in range(world)]
            assert all(len(p.real) == 12 // world for p in parts)
            np.testing.assert_array_equal(np.concatenate([p.real for p in parts]), whole.real)
            torch.testing.assert_close(torch.cat([p.z for p in parts]), whole.z, rtol=0, atol=0)
            for i in range(2):
                torch.testing.assert_close(torch.cat([p.noise[i] for p in parts]), whole.noise[i], rtol=0, atol=0)
            assert {p.epoch for p in parts} == {whole.epoch}
    assert not np.array_equal(draw_batch(cfg, data, 32, 0).real, draw_batch(cfg, data, 32, 1).real)


def test_batch_must_split_evenly(tmp_path, monkeypatch):
    assert shard_of(12, 2, 4) == slice(6, 9)
    with pytest.raises(Gan3dError, match="batch size 12 does not split evenly over 5 processes"):
        shard_of(12, 0, 5)
    # under torchrun the check comes before the process group would wait for the other ranks
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(Gan3dError, match="multiple of 3"):
        training_loop(tiny_cfg(tmp_path), progress=False, quiet=True)
    assert not dist.is_initialized()


# --- the gate reads the whole batch --------------------------------------------------------------


def _models():
    torch.manual_seed(0)
    g, d = build(ModelConfig(resolution=16, z_dim=32, channels=(16, 8)))
    og = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.5, 0.999))
    return g, d, og, od


@pytest.mark.parametrize("other_rank_right, d_gate", [(True, 0.6), (False, 0.4)])
def test_gate_decides_on_the_accuracy_of_the_whole_batch(other_rank_right, d_gate):
    g, d, og, od = _models()
    with torch.no_grad():
        d.out.bias.fill_(10.0 if other_rank_right else -10.0)  # this rank's D calls everything real (fake): accuracy 0.5
    d0 = [p.detach().clone() for p in d.parameters()]
    # a fake second rank of 8 shapes on which D is always right (always wrong): the whole batch's
    # accuracy is 0.75 (0.25), so the gate closes at 0.6 (opens at 0.4), where this rank's own 0.5
    # would have opened (closed) it
    other = torch.tensor([8.0, 8.0, 8.0, 8.0]) if other_rank_right else torch.tensor([0.0, 0.0, 8.0, 8.0])
    updated = not other_rank_right
    seen = []

    def sum_over_ranks(x):
        seen.append(x.clone())
        return x + other

    real = (torch.rand(8, 1, 16, 16, 16) > 0.8).float()
    st = gan_step(g, d, og, od, real, torch.rand(8, 32), d_gate=d_gate, sum_over_ranks=sum_over_ranks)
    assert len(seen) == 1 and seen[0][2:].tolist() == [8.0, 8.0]  # this rank's counts and batch sizes
    assert st["d_acc"] == (0.75 if other_rank_right else 0.25)
    assert st["d_updated"] is updated
    assert any(not torch.equal(a, b) for a, b in zip(d0, d.parameters())) is updated


# --- single process ------------------------------------------------------------------------------


def test_without_torchrun_nothing_changes(tmp_path, monkeypatch, no_torchrun):
    assert (distributed.launched(), distributed.world(), distributed.rank(), distributed.is_main()) == (False, 1, 0, True)
    assert distributed.all_sum(torch.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    plain = training_loop(tiny_cfg(tmp_path, steps=4, run_name="plain"), progress=False, quiet=True)
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not distributed.launched()
    one = training_loop(tiny_cfg(tmp_path, steps=4, run_name="one"), progress=False, quiet=True)
    assert not dist.is_initialized()
    a = torch.load(plain.run_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(one.run_dir / "checkpoint.pt", weights_only=True)
    for key in ("G", "D"):
        for name, t in a[key].items():
            torch.testing.assert_close(b[key][name], t, rtol=0, atol=0, msg=f"{key}.{name}")
    assert "processes" not in json.loads((one.run_dir / "config.json").read_text())


# --- two processes -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, device: str = "cpu") -> None:
    """One rank: five training_loop calls in one process group (gloo on the CPU, nccl with
    ``device`` cuda, one GPU per rank); each rank's final G and D are saved."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if device == "cuda":
        torch.cuda.set_device(rank)

    def cfg(**kw):
        return tiny_cfg(out, device=device, **kw)
    import gan3d.train.gan as tr

    built = []  # the plain (G, D) of every training_loop call, as training_loop built them
    real_build = tr.build

    def keep(mcfg):
        built.append(real_build(mcfg))
        return built[-1]

    tr.build = keep
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=120))  # up before training_loop: it must use it and leave it up
    runs = {}
    runs["full"] = training_loop(cfg(run_name="full"), progress=False, quiet=True)
    training_loop(cfg(run_name="part"), stop_after=10, progress=False, quiet=True)
    runs["part"] = training_loop(cfg(), resume=os.path.join(out, "part"), progress=False, quiet=True)
    runs["single"] = training_loop(cfg(), resume=os.path.join(out, "single"), progress=False, quiet=True)

    def ctrl_c(rec):  # called on rank 0 only: Ctrl-C reaches one rank, after step 3
        if rec["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = training_loop(cfg(run_name="int"), progress=False, quiet=True, on_stats=ctrl_c)
    assert stopped.interrupted and stopped.step == 4  # both ranks stop after the next step, together
    assert dist.is_initialized()
    for (name, res), (g, d) in zip(runs.items(), [built[0], built[2], built[3]]):
        assert res.step == 24 and not res.interrupted
        assert bool(res.stats) == (rank == 0)  # only rank 0 keeps statistics
        torch.save({"G": dict(g.named_parameters()), "D": dict(d.named_parameters())}, os.path.join(out, f"{name}_rank{rank}.pt"))
    dist.destroy_process_group()


def two_processes_train_one_run(tmp_path, device: str, backend: str) -> None:
    """Two ranks (:func:`_worker`) train, stop and resume, continue a single-process run, and hand
    their run back to a single process, all on ``device``; the checks of every part."""
    out = tmp_path / "runs"
    # a single-process run stopped part-way, which the two processes then continue
    training_loop(tiny_cfg(out, run_name="single", device=device), stop_after=10, progress=False, quiet=True)
    mp.spawn(_worker, args=(2, _free_port(), str(out), device), nprocs=2, join=True)

    def load(path):  # on the CPU: ranks' tensors from different GPUs compare there
        return torch.load(path, weights_only=True, map_location="cpu")

    full = out / "full"
    for name in ("config.json", "log.txt", "stats.jsonl", "checkpoint.pt", "snapshot.pt", "reals.png", "samples_000024.png"):
        assert (full / name).is_file(), name
    assert json.loads((full / "config.json").read_text())["processes"] == 2
    assert f"data-parallel: 2 processes ({backend}), 4 of each batch of 8" in (full / "log.txt").read_text()
    rows = [json.loads(line) for line in (full / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 25))  # one writer: no line twice
    assert {r["d_updated"] for r in rows} == {0.0, 1.0}  # the gate was open at some steps and closed at others

    for name in ("full", "part", "single"):
        ckpt = load(out / name / "checkpoint.pt")
        assert ckpt["step"] == 24
        r0 = load(out / f"{name}_rank0.pt")
        r1 = load(out / f"{name}_rank1.pt")
        for key in ("G", "D"):
            for p, t in r0[key].items():
                torch.testing.assert_close(r1[key][p], t, rtol=0, atol=0, msg=f"{name}: rank 1 {key}.{p}")  # ranks agree
                torch.testing.assert_close(ckpt[key][p], t, rtol=0, atol=0, msg=f"{name}: saved {key}.{p}")  # and are what was saved

    a = load(full / "checkpoint.pt")
    b = load(out / "part" / "checkpoint.pt")
    for key in ("G", "D"):  # stopped at step 10 and resumed: the same weights as never stopped
        for p, t in a[key].items():
            torch.testing.assert_close(b[key][p], t, rtol=0, atol=0, msg=f"resumed {key}.{p}")

    # the data-parallel checkpoint continues in a single process
    more = training_loop(tiny_cfg(out, steps=28, device=device), resume=full, progress=False, quiet=True)
    assert more.step == 28 and [r["step"] for r in more.stats] == [25, 26, 27, 28]
    c = load(full / "checkpoint.pt")
    assert not torch.equal(c["G"]["net.0.weight"], a["G"]["net.0.weight"])
    assert load(out / "int" / "checkpoint.pt")["step"] == 4  # Ctrl-C saved


def test_two_processes_train_one_run(tmp_path, no_torchrun):
    two_processes_train_one_run(tmp_path, "cpu", "gloo")


def torchrun_command_line(tmp_path, device: str, backend: str) -> None:
    """The documented ``torchrun ... -m gan3d train --device D`` with 2 processes: one run folder
    written by rank 0, with the backend ``device`` implies."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan3d", "train",
           "--preset", "tiny", "--data", "builtin", "--builtin-count", "48", "--steps", "6", "--log-every", "2",
           "--device", device, "--out", str(tmp_path), "--run-name", "cli", "--quiet"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("run folder:") == 1  # printed by rank 0 only
    run = tmp_path / "cli"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 6
    assert [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()] == [2, 4, 6]
    assert json.loads((run / "config.json").read_text())["processes"] == 2
    assert f"data-parallel: 2 processes ({backend})" in (run / "log.txt").read_text()


def test_torchrun_command_line(tmp_path, no_torchrun):
    torchrun_command_line(tmp_path, "cpu", "gloo")


# --- the 3D-VAE-GAN, two processes ---------------------------------------------------------------


def vae_cfg(pairs, out, **kw):
    base = dict(pairs=str(pairs), encoder="tiny", preset="tiny", out=str(out), steps=8, batch_size=4, log_every=1,
                snapshot_every=4, n_preview=2, eval_pairs=4, bn_samples=8, deterministic=True, device="cpu",
                lr_g=1e-3, lr_d=2e-3, lr_e=1e-3, d_gate=0.6)
    base.update(kw)
    return VAEGANConfig(**base)


def _vae_gradients_are_averaged(rank: int, world: int) -> None:
    """One fused step (optimizers with lr 0, so nothing moves and every gradient stays readable):
    with E, G and D wrapped, each parameter's gradient is the mean over the ranks of what one process
    gets on its shard alone (G is called twice before the one backward pass of alpha1 * KL +
    alpha2 * rec + adv; its reducer must still average it once, and D's must not take part in adv)."""
    import copy

    from gan3d.models.encoder import ImageEncoder, init_encoder
    from gan3d.presets import ENCODER_PRESETS

    torch.manual_seed(0)
    G, D = build(ModelConfig(resolution=16, z_dim=32, channels=(16, 8)))
    E = ImageEncoder(ENCODER_PRESETS["tiny"])
    init_encoder(E)
    gen = torch.Generator().manual_seed(1)
    images, shapes = torch.rand(4, 3, 32, 32, generator=gen), (torch.rand(4, 1, 16, 16, 16, generator=gen) > 0.7).float()
    z_prior, eps = torch.rand(4, 32, generator=gen), torch.randn(4, 32, generator=gen)
    cfg = VAEGANConfig(alpha1=0.5, alpha2=0.01, d_gate=1.0)
    mine = slice(2 * rank, 2 * rank + 2)

    def grads(mods, **kw):
        opts = [torch.optim.SGD(distributed.plain(m).parameters(), lr=0.0) for m in mods]
        vaegan_step(*mods, *opts, images[mine], shapes[mine], z_prior[mine], eps[mine], cfg, **kw)
        return [torch.cat([p.grad.flatten() for p in distributed.plain(m).parameters()]).double() for m in mods]

    alone = grads([copy.deepcopy(m) for m in (E, G, D)])
    together = grads([distributed.data_parallel(m) for m in (E, G, D)], sum_over_ranks=distributed.all_sum)
    for name, a, t in zip("EGD", alone, together):
        expected = distributed.all_sum(a) / world
        assert t.abs().max() > 0 and not torch.allclose(a, expected), name  # the shards' gradients differ
        torch.testing.assert_close(t, expected, rtol=1e-5, atol=1e-8, msg=name)


def keep_tasks() -> list:
    """The task of every later training call in this process, holding the plain modules it trained."""
    import gan3d.train.loop as lp

    tasks, real_run = [], lp._steps

    def keep(task, *a, **k):
        tasks.append(task)
        return real_run(task, *a, **k)

    lp._steps = keep
    return tasks


def _vae_worker(rank: int, world: int, port: int, out: str, pairs: str) -> None:
    """One rank: the gradient check, then four train_vaegan calls; each rank's final E, G, D are saved."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tasks = keep_tasks()
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    _vae_gradients_are_averaged(rank, world)
    runs = {}
    runs["full"] = train_vaegan(vae_cfg(pairs, out, run_name="full"), progress=False)
    train_vaegan(vae_cfg(pairs, out, run_name="part"), stop_after=3, progress=False)
    runs["part"] = train_vaegan(vae_cfg(pairs, out), resume=os.path.join(out, "part"), progress=False)
    runs["single"] = train_vaegan(vae_cfg(pairs, out), resume=os.path.join(out, "single"), progress=False)
    for (name, res), task in zip(runs.items(), [tasks[0], tasks[2], tasks[3]]):
        assert res.step == 8 and not res.interrupted and bool(res.stats) == (rank == 0)
        torch.save({k: dict(getattr(task, k).named_parameters()) for k in "EGD"}, os.path.join(out, f"{name}_rank{rank}.pt"))
    dist.destroy_process_group()


def test_vaegan_two_processes_train_one_run(tmp_path, no_torchrun):
    from test_vaegan import make_pairs

    pairs = make_pairs(tmp_path / "pairs")
    out = tmp_path / "runs"
    train_vaegan(vae_cfg(pairs, out, run_name="single"), stop_after=5, progress=False)  # continued by two processes
    mp.spawn(_vae_worker, args=(2, _free_port(), str(out), str(pairs)), nprocs=2, join=True)

    full = out / "full"
    assert json.loads((full / "config.json").read_text())["processes"] == 2
    assert "data-parallel: 2 processes (gloo), 2 of each batch of 4" in (full / "log.txt").read_text()
    rows = [json.loads(line) for line in (full / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))  # one writer
    assert {r["d_updated"] for r in rows} == {0.0, 1.0}  # the gate was open at some steps and closed at others
    for name in ("full", "part", "single"):
        state = torch.load(out / name / "checkpoint.pt", weights_only=True)
        assert state["step"] == 8
        r0 = torch.load(out / f"{name}_rank0.pt", weights_only=True)
        r1 = torch.load(out / f"{name}_rank1.pt", weights_only=True)
        for key in "EGD":
            for p, t in r0[key].items():
                torch.testing.assert_close(r1[key][p], t, rtol=0, atol=0, msg=f"{name}: rank 1 {key}.{p}")
                torch.testing.assert_close(state[key][p], t, rtol=0, atol=0, msg=f"{name}: saved {key}.{p}")
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(out / "part" / "checkpoint.pt", weights_only=True)
    for key in "EGD":  # stopped at step 3 and resumed by two processes: as never stopped
        for p, t in a[key].items():
            torch.testing.assert_close(b[key][p], t, rtol=0, atol=0, msg=f"resumed {key}.{p}")
    # the data-parallel checkpoint continues in a single process
    more = train_vaegan(vae_cfg(pairs, out, steps=10), resume=full, progress=False)
    assert more.step == 10 and [r["step"] for r in more.stats] == [9, 10]
    assert not torch.equal(torch.load(full / "checkpoint.pt", weights_only=True)["G"]["net.0.weight"], a["G"]["net.0.weight"])


def test_vaegan_batch_must_split_evenly(tmp_path, monkeypatch):
    from test_vaegan import make_pairs

    pairs = make_pairs(tmp_path / "pairs")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(Gan3dError, match="batch size 4 does not split evenly over 3 processes"):
        train_vaegan(vae_cfg(pairs, tmp_path / "runs"), progress=False)
    assert not dist.is_initialized() and not (tmp_path / "runs").exists()


def test_vaegan_torchrun_command_line(tmp_path, no_torchrun):
    from test_vaegan import make_pairs

    pairs = make_pairs(tmp_path / "pairs")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gan3d", "train",
           "--model", "vaegan", "--preset", "tiny", "--pairs", str(pairs), "--batch-size", "4", "--steps", "4",
           "--log-every", "2", "--out", str(tmp_path), "--run-name", "cli", "--quiet"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("run folder:") == 1  # printed by rank 0 only
    run = tmp_path / "cli"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4
    assert [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()] == [2, 4]
    assert json.loads((run / "config.json").read_text())["processes"] == 2
