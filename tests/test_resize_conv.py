"""``gan3d train --g-upsample``: G's doubling layers as resize-convolutions (Odena et al. 2016)."""

import pytest
import torch
from torch import nn

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.explore.common import fast
from gan3d.models.gan import ModelConfig, ResizeConv3d, build


def test_resize_conv_is_nearest_doubling_then_a_3_cubed_convolution():
    torch.manual_seed(0)
    m = ResizeConv3d(5, 3).double()
    x = torch.randn(2, 5, 6, 7, 4, dtype=torch.double)
    doubled = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    want = nn.functional.conv3d(doubled, m.weight.transpose(0, 1), padding=1)
    got = m(x)
    assert got.shape == (2, 3, 12, 14, 8)
    assert torch.allclose(got, want, atol=1e-12)
    w = torch.randn_like(got)  # and the gradients of the 3^3 weight agree through the tied taps
    (want * w).sum().backward()
    g_want = m.weight.grad.clone()
    m.weight.grad = None
    (got * w).sum().backward()
    assert torch.allclose(m.weight.grad, g_want, atol=1e-10)


def test_no_checkerboard_from_a_constant_input():
    # A transposed 4^3 stride-2 layer maps a constant grid to one with a period-2 pattern inside it
    # unless its taps happen to balance; the resize-convolution maps it to a constant interior.
    torch.manual_seed(1)
    m = ResizeConv3d(2, 1)
    y = m(torch.ones(1, 2, 6, 6, 6))[0, 0, 1:-1, 1:-1, 1:-1]
    assert torch.allclose(y, y.mean().expand_as(y), atol=1e-6)
    t = nn.ConvTranspose3d(2, 1, 4, 2, 1, bias=False)
    yt = t(torch.ones(1, 2, 6, 6, 6))[0, 0, 1:-1, 1:-1, 1:-1]
    assert yt.std() > 1e-3


@pytest.mark.parametrize("mode, n_resize", [("resize", 3), ("resize-last", 1), ("transposed", 0)])
def test_generator_layers_and_config_round_trip(mode, n_resize):
    cfg = ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4), g_upsample=mode)
    g, _ = build(cfg)
    assert sum(isinstance(m, ResizeConv3d) for m in g.modules()) == n_resize
    assert g(torch.rand(3, 8)).shape == (3, 1, 32, 32, 32)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ("g_upsample" in cfg.to_dict()) == (mode != "transposed")  # older configs stay as they were
    g.eval()
    z = torch.rand(4, 8)
    assert torch.allclose(fast(g)(z), g(z), atol=1e-5)
    with pytest.raises(ValueError, match="g_upsample"):
        ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4), g_upsample="bilinear")


def test_a_resize_run_resumes_exactly_and_loads(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, g_upsample="resize")
    assert ckpt.model_config(sa, a.run_dir / "checkpoint.pt").g_upsample == "resize"
    g, _ = ckpt.load_generator(a.run_dir / "snapshot.pt")
    assert any(isinstance(m, ResizeConv3d) for m in g.modules())


def test_g_upsample_with_init_from_is_refused(tmp_path, capsys):
    rc = main(["train", "--preset", "tiny", "--steps", "1", "--init-from", "chair", "--g-upsample", "resize", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--g-upsample" in err and "\n" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
