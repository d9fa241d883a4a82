"""D's self-supervised rotation task (``--rotation-loss``, after Chen et al. 2019): the quarter turns,
the head, the gated step that still trains the head, the task being learned, and runs that use it
resuming exactly and loading everywhere a D is read."""

import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.models.gan import Discriminator, ModelConfig, build
from gan3d.runtime import set_determinism
from gan3d.train.config import make_config
from gan3d.train.gan import gan_step
from gan3d.train.loop import train
from gan3d.train.losses import rotate_quarter, rotation_loss


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def assert_head_leaves_d_alone(plain, with_head) -> None:
    """Models built from the same seed for ``plain`` and ``with_head`` (the same config plus one of D's
    extra heads) share every weight ``plain`` has: the head takes nothing from the RNG, so a random-D
    baseline is the same network for a run with the head and one without."""
    torch.manual_seed(3)
    _, d_plain = build(plain)
    torch.manual_seed(3)
    _, d_head = build(with_head)
    for k, v in d_plain.state_dict().items():
        assert torch.equal(v, d_head.state_dict()[k]), k


def test_a_quarter_turn_moves_voxels_about_the_up_axis_only():
    x = torch.zeros(4, 1, 8, 8, 8)
    x[:, 0, 6, 1, 3] = 1.0  # one voxel at x=6, y=1, z=3
    y = rotate_quarter(x, torch.tensor([0, 1, 2, 3]))
    where = [tuple(int(v) for v in torch.nonzero(y[i, 0])[0]) for i in range(4)]
    # counter-clockwise seen from above (z up, right-handed): (x, y) -> (7 - y, x) per turn, z kept
    assert where == [(6, 1, 3), (6, 6, 3), (1, 6, 3), (1, 1, 3)]
    g = torch.rand(3, 1, 8, 8, 8)
    assert torch.equal(rotate_quarter(rotate_quarter(g, torch.tensor([1, 2, 3])), torch.tensor([3, 2, 1])), g)


def test_the_head_exists_only_when_asked_and_old_configs_are_unchanged():
    plain = ModelConfig(resolution=16, z_dim=8, channels=(8, 4))
    assert "rotation_head" not in plain.to_dict()
    assert not any(k.startswith("rotation") for k in Discriminator(plain).state_dict())
    rot = ModelConfig.from_dict({**plain.to_dict(), "rotation_head": True})
    D = Discriminator(rot)
    assert D.rotation_logits(torch.rand(2, 1, 16, 16, 16)).shape == (2, 4)
    assert ModelConfig.from_dict(rot.to_dict()) == rot
    assert_head_leaves_d_alone(plain, rot)
    assert make_config("tiny", rotation_loss=1.0).rotation_loss == 1.0
    from gan3d.train.config import model_config_for

    assert model_config_for(make_config("tiny", rotation_loss=1.0)).rotation_head
    assert not model_config_for(make_config("tiny")).rotation_head


def _step(D_gate, rotation, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(resolution=16, z_dim=8, channels=(8, 4), rotation_head=True)
    G, D = build(cfg)
    with torch.no_grad():  # a head that has learned something (a fresh one is zero, so the first step moves it alone)
        D.rotation.weight.normal_(0.0, 0.5)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    before = {k: v.detach().clone() for k, v in D.state_dict().items()}
    real = (torch.rand(8, 1, 16, 16, 16) < 0.3).float()
    st = gan_step(G, D, opt_g, opt_d, real, torch.randn(8, 8), d_gate=D_gate, rotation=rotation)
    moved = {k for k, v in D.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])}
    return st, moved


def test_a_shut_gate_still_trains_the_rotation_head_but_not_the_score():
    turns = (torch.arange(8) % 4, (torch.arange(8) + 1) % 4)
    st, moved = _step(1e-6, (1.0, 0.2, *turns))
    assert st["d_updated"] is False and 0.0 <= st["rot_acc"] <= 1.0
    assert "rotation.weight" in moved and "blocks.0.0.weight" in moved
    assert "out.weight" not in moved  # the adversarial score got no step
    st, moved = _step(1e-6, None)
    assert "rot_acc" not in st and not any(k.endswith("weight") and not k.startswith("blocks") for k in moved)
    assert "blocks.0.0.weight" not in moved  # without the task a shut gate leaves D alone


def test_the_rotation_task_is_learned_on_asymmetric_shapes():
    torch.manual_seed(0)
    D = Discriminator(ModelConfig(resolution=16, z_dim=8, channels=(8, 4), rotation_head=True))
    opt = torch.optim.Adam(D.parameters(), 3e-3)
    shapes = torch.zeros(16, 1, 16, 16, 16)
    for i in range(16):  # L-shaped "chairs" of random size, always facing the same way
        a = 3 + i % 5
        shapes[i, 0, 2 : 2 + a, 2:4, 0:10] = 1.0
        shapes[i, 0, 2 : 2 + a, 2:12, 0:3] = 1.0
    gen = torch.Generator().manual_seed(1)
    for _ in range(60):
        k = torch.randint(0, 4, (16,), generator=gen)
        loss, _ = rotation_loss(D, shapes, k)
        opt.zero_grad(), loss.backward(), opt.step()
    D.eval()
    k = torch.randint(0, 4, (16,), generator=gen)
    _, acc = rotation_loss(D, shapes, k)
    assert acc >= 0.9  # chance is 0.25




def test_rotation_run_resumes_exactly_and_its_snapshot_loads(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, rotation_loss=1.0)
    assert "rotation.weight" in sa["D"]
    rows = [__import__("json").loads(line) for line in (a.run_dir / "stats.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["rot_acc"] <= 1.0 for r in rows if "rot_acc" in r) and any("rot_acc" in r for r in rows)
    D, _ = ckpt.load_discriminator(a.run_dir / "snapshot.pt")
    assert D.cfg.rotation_head and D.rotation_logits(torch.rand(2, 1, 16, 16, 16)).shape == (2, 4)
    # the task changed training: the same run without it ends elsewhere
    c = train(tiny_gan_runs.config(tmp_path / "c"), progress=False, quiet=True)
    sc = torch.load(c.run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.equal(sc["D"]["out.weight"], sa["D"]["out.weight"])
    assert "rotation.weight" not in sc["D"]


def test_autoencoder_refuses_the_rotation_task(tmp_path, capsys):
    rc = main(["train", "--model", "autoencoder", "--preset", "tiny", "--steps", "1", "--rotation-loss", "1",
               "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "rotation" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_negative_weight_is_one_line(tmp_path, capsys):
    rc = main(["train", "--preset", "tiny", "--steps", "1", "--rotation-loss", "-1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--rotation-loss" in err and "\n" not in err


def test_init_from_starts_from_the_trained_weights_and_adds_a_fresh_head(tmp_path, tiny_gan_runs):
    a = train(tiny_gan_runs.config(tmp_path / "a"), progress=False, quiet=True)
    b = train(tiny_gan_runs.config(tmp_path / "b", rotation_loss=1.0, init_from=str(a.run_dir / "checkpoint.pt"), steps=1, lr_g=1e-12, lr_d=1e-12),
              progress=False, quiet=True)
    sa = torch.load(a.run_dir / "checkpoint.pt", weights_only=True)
    sb = torch.load(b.run_dir / "checkpoint.pt", weights_only=True)
    for m in ("G", "D"):
        for k, v in sa[m].items():
            if v.is_floating_point() and "running" not in k:
                assert torch.allclose(v, sb[m][k], atol=1e-9), f"{m}.{k}"
    assert "rotation.weight" in sb["D"] and sb["step"] == 1
    assert "initialised from" in (b.run_dir / "log.txt").read_text()
    # a fresh run of the same config starts elsewhere
    c = train(tiny_gan_runs.config(tmp_path / "c", rotation_loss=1.0, steps=1, lr_g=1e-12, lr_d=1e-12), progress=False, quiet=True)
    sc = torch.load(c.run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.allclose(sc["G"]["net.0.weight"], sa["G"]["net.0.weight"], atol=1e-6)


def test_init_from_a_missing_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    rc = main(["train", "--preset", "tiny", "--steps", "1", "--init-from", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nope.pt" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
