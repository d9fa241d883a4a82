"""``gan3d train --d-width``: a wider D beside G's own widths."""

import json

import pytest

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.eval.classify import feature_dims
from gan3d.models.gan import ModelConfig, build, with_resolution


def test_d_widths_leave_g_alone():
    cfg = ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4)).d_scaled(2)
    assert cfg.channels == (16, 8, 4) and cfg.d_widths == (32, 16, 8)
    g, d = build(cfg)
    g0, d0 = build(ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4)))
    assert sum(p.numel() for p in g.parameters()) == sum(p.numel() for p in g0.parameters())
    assert [b[0].out_channels for b in d.blocks] == [8, 16, 32]  # D runs the widths in reverse
    assert [f["channels"] for f in feature_dims(cfg)] == [8, 16, 32]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert "d_channels" not in ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4)).to_dict()  # old configs unchanged
    assert with_resolution(cfg, 16).d_widths == (32, 16) and with_resolution(cfg, 64).d_widths == (32, 16, 8, 4)
    with pytest.raises(ValueError, match="d_channels"):
        ModelConfig(resolution=32, z_dim=8, channels=(16, 8, 4), d_channels=(8, 4))


def test_a_run_with_a_wider_d_resumes_exactly_and_loads(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, d_width=2.0)
    mcfg = ckpt.model_config(sa, a.run_dir / "checkpoint.pt")
    assert mcfg.d_widths == tuple(2 * c for c in mcfg.channels)
    d, _ = ckpt.load_discriminator(a.run_dir / "snapshot.pt")
    assert d.blocks[0][0].out_channels == 2 * mcfg.channels[-1]
    assert json.loads((a.run_dir / "config.json").read_text())["train"]["d_width"] == 2.0


@pytest.mark.parametrize("argv, word", [
    (["--model", "autoencoder", "--d-width", "2"], "--d-width"),
    (["--d-width", "0"], "--d-width"),
    (["--init-from", "chair", "--d-width", "2"], "--d-width"),
    (["--init-from", "chair", "--width", "2"], "--width"),  # the architecture comes from the checkpoint
    (["--init-from", "chair", "--g-output", "hardsigmoid"], "--g-output"),  # once silently ignored
    (["--init-from", "chair", "--minibatch-std", "false"], "--minibatch-std"),
    (["--init-from", "chair", "--d-norm", "spectral"], "--d-norm"),
])
def test_bad_d_width_is_one_line_and_writes_nothing(tmp_path, capsys, argv, word):
    rc = main(["train", "--preset", "tiny", "--steps", "1", *argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and word in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
