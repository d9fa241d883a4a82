"""The device-dependent checks on a GPU (marker ``cuda``; ``pytest -m cuda``, or ``scripts/gpu_check.sh``):
a training step and a short run, exact resume in deterministic mode, sampling determinism and its
agreement with the CPU, and data-parallel training with nccl over two GPUs. Without CUDA (or with
fewer than two GPUs for the nccl tests) each test skips with one line saying so.

The CPU versions of the resume and DDP checks live in tests/test_training.py and
tests/test_distributed.py; these call the same helpers with a CUDA device.
"""

import os

# cuBLAS needs this before its first use for deterministic results (gan3d.runtime.set_determinism
# sets it too, but only when a deterministic run starts, which may be after another test used cuBLAS)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gan3d.runtime import set_determinism  # noqa: E402

N_GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(N_GPUS == 0, reason="CUDA is not available on this machine (torch.cuda.is_available() is False)"),
]
two_gpus = pytest.mark.skipif(N_GPUS < 2, reason=f"nccl data-parallel needs 2 GPUs, this machine has {N_GPUS}")

# Sampling on CUDA against the CPU: cuDNN runs fp32 convolutions in TF32 by default (10 mantissa
# bits) and may sum in another order. Emulating TF32 on the CPU (every convolution's input and
# weights rounded to 10 mantissa bits) moved the shipped chair and modelnet10 models' occupancy by at
# most 0.0057 over seeds 0-63 and flipped at most 4 of the 32^3 voxels of a grid. The bounds below
# leave about 4x (occupancy) and 8x (voxels) room over that.
OCCUPANCY_ATOL = 0.02  # largest |occupancy_cuda - occupancy_cpu| over all voxels of all seeds
VOXEL_FRACTION = 1e-3  # at most this fraction of a grid's voxels may differ after thresholding (raw grids, no component cut)


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _tiny_models(device):
    from gan3d.models.gan import ModelConfig, build

    torch.manual_seed(0)
    g, d = build(ModelConfig(resolution=16, z_dim=32, channels=(16, 8), minibatch_std=True))
    g.to(device), d.to(device)
    og = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.5, 0.999))
    return g, d, og, od


def test_one_training_step_on_cuda():
    from gan3d.train.gan import gan_step

    g, d, og, od = _tiny_models("cuda")
    before = [p.detach().clone() for p in (*g.parameters(), *d.parameters())]
    gen = torch.Generator().manual_seed(0)
    real = (torch.rand(8, 1, 16, 16, 16, generator=gen) > 0.8).float().cuda()
    noise = tuple(0.2 * torch.randn(real.shape, generator=gen).cuda() for _ in range(2))
    st = gan_step(g, d, og, od, real, torch.rand(8, 32, generator=gen).cuda(), d_gate=1.0, noise=noise, mode_seeking=0.1)
    assert st["d_updated"] is True and np.isfinite(st["loss_d"]) and np.isfinite(st["loss_g"])
    after = [*g.parameters(), *d.parameters()]
    assert all(p.is_cuda for p in after)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # every parameter of G and D moved


def test_short_run_on_cuda(tmp_path):
    from test_training import tiny_cfg

    from gan3d.train.loop import training_loop

    res = training_loop(tiny_cfg(tmp_path, device="cuda", eval_every=6, eval_samples=16), progress=False, quiet=True)
    log = (res.run_dir / "log.txt").read_text()
    assert "; device cuda" in log
    rows = [json.loads(line) for line in (res.run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in rows)
    assert (res.run_dir / "samples_000006.png").is_file()


def test_exact_resume_on_cuda(tmp_path):
    from test_training import assert_exact_resume

    full = assert_exact_resume(tmp_path, "cuda")
    assert "; device cuda" in (full.run_dir / "log.txt").read_text()  # it did run on the GPU


@pytest.mark.parametrize("name", ["chair", "modelnet10"])
def test_sampling_is_deterministic_on_cuda_and_close_to_the_cpu(name, monkeypatch):
    import gan3d

    # benchmark mode on, as a run without --deterministic leaves it: sampling must not depend on it
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    seeds = list(range(24))
    first = gan3d.sample(gan3d.load(name, device="cuda"), seeds, occupancy=True)
    again = gan3d.load(name, device="cuda")
    np.testing.assert_array_equal(gan3d.sample(again, seeds, occupancy=True), first)  # a fresh load, the same bits
    np.testing.assert_array_equal(gan3d.sample(again, seeds, occupancy=True, batch_size=1), first)  # at any batch size
    np.testing.assert_array_equal(gan3d.sample(again, seeds[::-1], occupancy=True), first[::-1])  # beside any seeds
    assert torch.backends.cudnn.benchmark is True  # the flags come back after sampling

    cpu = gan3d.sample(gan3d.load(name, device="cpu"), seeds, occupancy=True)
    gap = float(np.abs(first - cpu).max())
    assert gap <= OCCUPANCY_ATOL, f"occupancy differs from the CPU's by {gap}"
    on_gpu, on_cpu = first >= 0.5, cpu >= 0.5
    assert on_cpu.reshape(len(seeds), -1).any(1).all()  # no empty grid: the comparison is not vacuous
    differ = (on_gpu != on_cpu).reshape(len(seeds), -1).mean(1)
    assert differ.max() <= VOXEL_FRACTION, f"seed {int(differ.argmax())}: {differ.max():.2%} of voxels differ from the CPU's"


@two_gpus
def test_two_gpus_train_one_run_with_nccl(tmp_path, monkeypatch):
    from test_distributed import TORCHRUN_VARS, two_processes_train_one_run

    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    two_processes_train_one_run(tmp_path, "cuda", "nccl")


@two_gpus
def test_torchrun_on_two_gpus_uses_nccl(tmp_path, monkeypatch):
    from test_distributed import TORCHRUN_VARS, torchrun_command_line

    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    torchrun_command_line(tmp_path, "cuda", "nccl")
