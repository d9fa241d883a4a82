import pytest
import torch

from gan3d.models.gan import (
    Generator,
    ModelConfig,
    build,
    conv_flops,
    recalibrate_batchnorm,
    with_resolution,
)
from gan3d.presets import PRESETS


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_shapes(name):
    cfg = PRESETS[name].model
    torch.manual_seed(0)
    g, d = build(cfg)
    g.eval(), d.eval()
    with torch.no_grad():
        x = g(torch.rand(2, cfg.z_dim))
        assert x.shape == (2, 1, cfg.resolution, cfg.resolution, cfg.resolution)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert d(x).shape == (2,)
        feats = d.features(x)
        assert [f.shape[1] for f in feats] == list(reversed(cfg.channels))
        assert feats[-1].shape[-1] == 4  # last hidden block is 4^3, scored by a 4^3 convolution


def test_paper64_is_the_paper_architecture():
    g, d = build(PRESETS["paper64"].model)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert [tuple(c.weight.shape[:2]) for c in convs] == [(200, 512), (512, 256), (256, 128), (128, 64), (64, 1)]
    assert all(c.kernel_size == (4, 4, 4) and c.bias is None for c in convs)
    assert [c.stride[0] for c in convs] == [1, 2, 2, 2, 2]
    assert [c.padding[0] for c in convs] == [0, 1, 1, 1, 1]
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in g.modules()) == 4
    assert isinstance(list(g.modules())[-1], torch.nn.Sigmoid)
    dconvs = [m for m in d.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [tuple(c.weight.shape[:2]) for c in dconvs] == [(64, 1), (128, 64), (256, 128), (512, 256), (1, 512)]
    lrelu = [m for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(lrelu) == 4 and all(m.negative_slope == 0.2 for m in lrelu)


def test_gpu64_is_cpu32_scaled_to_the_papers_resolution():
    gpu, cpu, paper = PRESETS["gpu64"], PRESETS["cpu32"], PRESETS["paper64"]
    assert gpu.model.resolution == paper.model.resolution == 64
    assert gpu.model.channels == (256, 128, 64, 32) and gpu.model.channels[1:] == cpu.model.channels  # one more block in front
    assert gpu.model.minibatch_std and gpu.model.z_dim == cpu.model.z_dim
    assert gpu.recipe == cpu.recipe and gpu.vaegan == cpu.vaegan  # the CPU-found recipes, not the paper's
    assert gpu.recipe != paper.recipe


def test_config_validation_and_resolution_change():
    with pytest.raises(ValueError):
        ModelConfig(resolution=48, channels=(8, 8, 8))
    with pytest.raises(ValueError):
        ModelConfig(resolution=32, channels=(8, 8))
    c = with_resolution(PRESETS["paper64"].model, 32)
    assert c.resolution == 32 and c.channels == (512, 256, 128)
    c = with_resolution(PRESETS["tiny"].model, 64)
    assert c.channels == (16, 8, 4, 2)
    assert PRESETS["cpu32"].model.scaled(0.5).channels == (64, 32, 16)


def test_flop_count_matches_a_direct_count():
    # G of the tiny config: 32->16 (1->4^3), 16->8 (4->8), 8->1 (8->16); each input voxel meets 64 taps
    cfg = ModelConfig(resolution=16, z_dim=32, channels=(16, 8))
    f = conv_flops(cfg)
    assert f["G"] == 2 * 64 * (32 * 16 * 1 + 16 * 8 * 4**3 + 8 * 1 * 8**3)
    # D: 1->8 at 8^3 outputs, 8->16 at 4^3, then 16->1 over one 4^3 window
    assert f["D"] == 2 * 64 * (1 * 8 * 8**3 + 8 * 16 * 4**3) + 2 * 16 * 64


def test_minibatch_std_discriminator_and_layer_summary():
    from gan3d.models.gan import layer_summary

    cfg = ModelConfig(resolution=16, z_dim=8, channels=(8, 4), minibatch_std=True)
    g, d = build(cfg)
    lines = layer_summary(g, d)
    assert lines[-1].startswith("D.out") and "(1, 1, 1, 1)" in lines[-1]
    assert any("minibatch std" in l and "(9, 4, 4, 4)" in l for l in lines)
    # the extra channel carries the batch spread: identical shapes give (almost) zero
    x = torch.rand(1, 1, 16, 16, 16).repeat(4, 1, 1, 1, 1)
    from gan3d.models.gan import append_minibatch_std

    with torch.no_grad():
        feats = d.features(x)[-1]
    assert float(append_minibatch_std(feats)[:, -1].max()) < 1e-3
    assert float(append_minibatch_std(torch.randn(4, 3, 2, 2, 2))[:, -1].min()) > 0.5


def test_spectral_norm_discriminator_round_trip():
    cfg = ModelConfig(resolution=16, z_dim=8, channels=(8, 4), d_norm="spectral")
    torch.manual_seed(0)
    _, d = build(cfg)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in d.modules())
    d.eval()
    x = torch.rand(3, 1, 16, 16, 16)
    with torch.no_grad():
        y = d(x)
    _, d2 = build(cfg)
    d2.load_state_dict(d.state_dict())
    d2.eval()
    with torch.no_grad():
        torch.testing.assert_close(d2(x), y)
    # every conv's largest singular value is held near 1 once power iteration has run (one step per
    # training-mode forward)
    d.train()
    with torch.no_grad():
        for _ in range(30):
            d(x)
    d.eval()
    w = d.blocks[1][0].weight.detach()
    w = w.reshape(w.shape[0], -1)  # (out, in * k^3), the matrix spectral norm normalises
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 0.1
    with pytest.raises(ValueError):
        ModelConfig(resolution=16, channels=(8, 4), d_norm="layer")


def test_recalibrate_batchnorm_is_the_plain_average_over_all_inputs():
    """For an image encoder (2D BatchNorm) fed batches: the first BN's running mean and variance
    become the mean over all batches of each batch's statistics of that BN's input, whatever the
    momentum-averaged values were before."""
    from gan3d.models.encoder import ImageEncoder
    from gan3d.presets import ENCODER_PRESETS

    torch.manual_seed(0)
    E = ImageEncoder(ENCODER_PRESETS["tiny"])
    bn = next(m for m in E.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_mean.fill_(5.0)
    seen = []
    hook = bn.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    batches = [torch.rand(4, 3, 32, 32) + k for k in range(3)]  # shifting means: a momentum average would lag
    recalibrate_batchnorm(E, iter(batches))
    hook.remove()
    assert not E.training and bn.momentum == 0.1
    x = torch.stack(seen)  # (3, 4, C, H, W)
    mean = x.mean(dim=(1, 3, 4)).mean(0)
    var = torch.stack([b.transpose(0, 1).flatten(1).var(1, unbiased=True) for b in seen]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, rtol=1e-4)
    # a tensor of inputs is split into batches of batch_size
    G = Generator(ModelConfig(resolution=16, z_dim=8, channels=(8, 4)))
    recalibrate_batchnorm(G, torch.randn(10, 8), batch_size=4)
    assert all(m.num_batches_tracked.item() == 3 for m in G.modules() if isinstance(m, torch.nn.BatchNorm3d))
