"""D's contrastive task (``--contrastive``, SimCLR's loss as ContraD trains a GAN's D): the head and
the pooled features it reads, the loss, the gated step that still trains it, the task being learned,
and runs that use it resuming exactly and loading where a D is read."""

import dataclasses

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.options import OptionError
from gan3d.eval.classify import extract_features
from gan3d.models.gan import Discriminator, ModelConfig, build
from gan3d.runtime import set_determinism
from gan3d.train import diffaug
from gan3d.train.config import make_config, model_config_for
from gan3d.train.gan import gan_step
from gan3d.train.loop import train
from gan3d.train.losses import contrastive_loss
from test_rotation import assert_head_leaves_d_alone

CFG = ModelConfig(resolution=16, z_dim=8, channels=(8, 4))


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _shapes(n: int, seed: int = 0) -> torch.Tensor:
    """Boxes of random size and place: every shape differs from the others."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 16, 16, 16)
    for i in range(n):
        lo = torch.randint(1, 7, (3,), generator=gen)
        size = torch.randint(3, 9, (3,), generator=gen)
        x[i, 0, lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = 1.0
    return x


def test_the_head_exists_only_when_asked_and_takes_nothing_from_the_rng():
    assert "contrast_head" not in CFG.to_dict()
    assert not any(k.startswith("contrast") for k in Discriminator(CFG).state_dict())
    con = ModelConfig.from_dict({**CFG.to_dict(), "contrast_head": True})
    assert ModelConfig.from_dict(con.to_dict()) == con
    assert_head_leaves_d_alone(CFG, con)
    e = Discriminator(con).contrast_embedding(torch.rand(5, 1, 16, 16, 16))
    assert e.shape == (5, 128)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(5))
    assert model_config_for(make_config("tiny", contrastive=1.0)).contrast_head
    assert not model_config_for(make_config("tiny")).contrast_head


def test_the_head_reads_the_classification_features():
    torch.manual_seed(0)
    D = Discriminator(CFG).eval()
    g = (np.random.default_rng(0).random((6, 16, 16, 16)) < 0.3).astype(np.float32)
    with torch.no_grad():
        pooled = D.pooled_features(torch.from_numpy(g).unsqueeze(1))
    np.testing.assert_allclose(pooled.numpy(), extract_features(D, g), rtol=1e-6, atol=1e-6)
    # blocks (0, 1) of a 16^3 D, each max-pooled to 2^3: 4 * 8 + 8 * 8 features
    assert pooled.shape == (6, 4 * 8 + 8 * 8)


def test_the_loss_rewards_matching_partners():
    torch.manual_seed(0)
    D = Discriminator(dataclasses.replace(CFG, contrast_head=True))
    a = _shapes(8)
    same, acc_same = contrastive_loss(D, a, a.clone())
    shuffled, acc_shuffled = contrastive_loss(D, a, a[torch.roll(torch.arange(8), 1)])
    assert acc_same == 1.0 and acc_shuffled < 0.5
    assert same.item() < shuffled.item()


def test_the_task_is_learned_across_augmented_views():
    torch.manual_seed(0)
    D = Discriminator(dataclasses.replace(CFG, channels=(16, 8), contrast_head=True))
    opt = torch.optim.Adam(D.parameters(), 1e-2)
    shapes = _shapes(16)
    gen = torch.Generator().manual_seed(1)

    def views():
        return [diffaug.apply(shapes, diffaug.draw(("translation",), 16, 16, gen)) for _ in range(2)]

    losses = []
    for _ in range(80):
        loss, _ = contrastive_loss(D, *views())
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    _, acc = contrastive_loss(D, *views())
    assert acc >= 0.5  # chance is 1 / 31


def test_a_shut_gate_still_trains_the_contrastive_head_but_not_the_score():
    torch.manual_seed(0)
    G, D = build(dataclasses.replace(CFG, contrast_head=True))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    before = {k: v.detach().clone() for k, v in D.state_dict().items()}
    draws = [diffaug.draw(("translation",), 8, 16, torch.Generator().manual_seed(s)) for s in (1, 2)]
    st = gan_step(G, D, opt_g, opt_d, _shapes(8), torch.randn(8, 8), d_gate=1e-6, contrast=(1.0, 0.1, *draws))
    moved = {k for k, v in D.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])}
    assert st["d_updated"] is False and 0.0 <= st["contrast_acc"] <= 1.0
    assert "contrast.0.weight" in moved and "blocks.0.0.weight" in moved
    assert "out.weight" not in moved


def test_contrastive_run_resumes_exactly_and_its_snapshot_classifies(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, contrastive=1.0)
    assert "contrast.0.weight" in sa["D"]
    rows = [__import__("json").loads(line) for line in (a.run_dir / "stats.jsonl").read_text().splitlines()]
    assert any("contrast_acc" in r for r in rows)
    D, _ = ckpt.load_discriminator(a.run_dir / "snapshot.pt")
    assert D.cfg.contrast_head
    assert extract_features(D, np.zeros((2, 16, 16, 16), np.float32)).shape[0] == 2
    c = train(tiny_gan_runs.config(tmp_path / "c"), progress=False, quiet=True)
    sc = torch.load(c.run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.equal(sc["D"]["blocks.0.0.weight"], sa["D"]["blocks.0.0.weight"])


def test_init_from_keeps_the_trained_d_and_adds_a_fresh_head(tmp_path, tiny_gan_runs):
    a = train(tiny_gan_runs.config(tmp_path / "a"), progress=False, quiet=True)
    b = train(tiny_gan_runs.config(tmp_path / "b", contrastive=1.0, init_from=str(a.run_dir / "checkpoint.pt"), steps=1,
                                   lr_g=1e-12, lr_d=1e-12), progress=False, quiet=True)
    sa = torch.load(a.run_dir / "checkpoint.pt", weights_only=True)
    sb = torch.load(b.run_dir / "checkpoint.pt", weights_only=True)
    for k, v in sa["D"].items():
        if v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(sb["D"][k], v, rtol=1e-5, atol=1e-6)
    assert "contrast.0.weight" in sb["D"] and "contrast.0.weight" not in sa["D"]


def test_no_views_is_refused():
    with pytest.raises(OptionError, match="contrastive_views|contrastive-views"):
        make_config("tiny", contrastive=1.0, contrastive_views=())


@pytest.mark.parametrize("argv,needle", [
    (["--model", "autoencoder", "--contrastive", "1"], "contrastive"),
    (["--contrastive", "-1"], "--contrastive"),
    (["--contrastive", "1", "--contrastive-views", "spin"], "--contrastive-views"),
    (["--contrastive", "1", "--contrastive-temperature", "0"], "--contrastive-temperature"),
])
def test_bad_contrastive_options_are_one_line(tmp_path, capsys, argv, needle):
    try:
        rc = main(["train", "--preset", "tiny", "--steps", "1", *argv, "--out", str(tmp_path / "r")])
    except SystemExit as stop:  # argparse's own refusals exit from inside the parser
        rc = stop.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
