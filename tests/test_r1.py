"""The R1 gradient penalty (``--r1``, Mescheder et al. 2018): its value, that it is paid only when the
gate opens, that it flattens D around the reals, and runs that use it resuming exactly."""

import json

import pytest
import torch

from gan3d.cli import main
from gan3d.models.gan import ModelConfig, build
from gan3d.runtime import set_determinism
from gan3d.train.gan import GanTask
from gan3d.train.loop import train
from gan3d.train.losses import gated_d_update, r1_penalty


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


class _Linear(torch.nn.Module):
    """D(x) = sum(w * x) + b: its input gradient is w for every shape."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True) + self.b


def test_the_penalty_is_the_squared_input_gradient_and_trains_d():
    w = torch.randn(1, 4, 4, 4)
    D = _Linear(w)
    x = torch.rand(5, 1, 4, 4, 4, requires_grad=True)
    pen = r1_penalty(D(x), x)
    assert torch.allclose(pen, w.pow(2).sum(), rtol=1e-5)
    pen.backward()  # differentiable in D's weights: d|w|^2/dw = 2w
    assert torch.allclose(D.w.grad, 2 * D.w.detach(), rtol=1e-5)


def _d_step(r1, gate, seed=0):
    torch.manual_seed(seed)
    G, D = build(ModelConfig(resolution=16, z_dim=8, channels=(8, 4)))
    opt = torch.optim.Adam(D.parameters(), 1e-3)
    real = (torch.rand(8, 1, 16, 16, 16) < 0.3).float()
    with torch.no_grad():
        fake = G(torch.randn(8, 8))
    st = gated_d_update(D, opt, real, fake, loss="bce", d_gate=gate, r1=r1)
    return st, {k: v.detach().clone() for k, v in D.state_dict().items()}


def test_the_penalty_changes_the_step_only_when_the_gate_opens():
    plain, w_plain = _d_step(0.0, 1.0)
    pen, w_pen = _d_step(10.0, 1.0)
    assert plain.r1 == 0.0 and pen.r1 > 0.0 and pen.d_updated
    assert not torch.equal(w_plain["out.weight"], w_pen["out.weight"])
    assert pen.loss_d.item() == pytest.approx(plain.loss_d.item())  # the reported loss is the adversarial one
    shut, w_shut = _d_step(10.0, 1e-6)
    untouched, w_untouched = _d_step(0.0, 1e-6)
    assert not shut.d_updated and shut.r1 == 0.0
    for k, v in w_untouched.items():  # a shut gate: no step, penalty or not
        assert torch.equal(v, w_shut[k]), k


def test_the_penalty_flattens_d_around_the_reals():
    def grad_norm_after(r1):
        torch.manual_seed(0)
        G, D = build(ModelConfig(resolution=16, z_dim=8, channels=(8, 4)))
        opt = torch.optim.Adam(D.parameters(), 3e-3)
        gen = torch.Generator().manual_seed(1)
        real = (torch.rand(16, 1, 16, 16, 16, generator=gen) < 0.3).float()
        fake = torch.rand(16, 1, 16, 16, 16, generator=gen) * 0.6
        for _ in range(30):
            gated_d_update(D, opt, real, fake, loss="bce", d_gate=1.0, r1=r1)
        x = real.clone().requires_grad_(True)
        return r1_penalty(D(x), x).item()

    assert grad_norm_after(10.0) < 0.5 * grad_norm_after(0.0)


WITH_R1 = dict(d_gate=1.0, r1=1.0)  # the gate always open: every step pays the penalty


def test_an_r1_run_logs_the_penalty_and_resumes_exactly(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, **WITH_R1)
    rows = [json.loads(line) for line in (a.run_dir / "stats.jsonl").read_text().splitlines()]
    logged = [r["r1"] for r in rows if "r1" in r]
    assert logged and all(v > 0 for v in logged)  # the gate is always open here
    assert json.loads((a.run_dir / "config.json").read_text())["train"]["r1"] == 1.0
    c = train(tiny_gan_runs.config(tmp_path / "c", **{**WITH_R1, "r1": 0.0}), progress=False, quiet=True)
    sc = torch.load(c.run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.equal(sc["D"]["out.weight"], sa["D"]["out.weight"])
    assert not any("r1" in json.loads(line) for line in (c.run_dir / "stats.jsonl").read_text().splitlines())


def test_r1_is_refused_under_ddp(tmp_path, tiny_gan_runs):
    task = GanTask(tiny_gan_runs.config(tmp_path, **WITH_R1), device=torch.device("cpu"), shard=slice(None), state=None, ckpt_path=None)
    with pytest.raises(Exception, match="--r1 trains in a single process only"):
        task.wrap(lambda m: m)


@pytest.mark.parametrize("argv, word", [
    (["--model", "autoencoder", "--r1", "1"], "--r1"),
    (["--model", "vaegan", "--pairs", "nowhere", "--r1", "1"], "--r1"),
])
def test_bad_r1_is_one_line_and_writes_nothing(tmp_path, capsys, argv, word):
    rc = main(["train", "--preset", "tiny", "--steps", "1", *argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
