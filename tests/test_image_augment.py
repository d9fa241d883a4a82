"""`gan3d train --model vaegan --image-augment`: each operation does what it says on known pictures,
the draws are the step's own (deterministic, shard rows of one batch draw), and a training run uses
them, records them and resumes exactly."""

import json

import numpy as np
import pytest
import torch
from test_vaegan import make_pairs, vcfg

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.options import OptionError
from gan3d.runtime import set_determinism, step_generator
from gan3d.train import imageaug
from gan3d.train.config import VAEGANConfig
from gan3d.train.loop import train_vaegan


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _square(n=2, s=32):
    """Grey pictures with a white 8x8 square whose top-left corner is at (row 12, col 8)."""
    x = torch.full((n, 3, s, s), 0.5)
    x[:, :, 12:20, 8:16] = 1.0
    return x


def test_crop_without_zoom_or_shift_is_the_identity_and_a_shift_moves_the_picture():
    x = _square()
    same = imageaug.crop(x, torch.ones(2), torch.zeros(2, 2))
    assert torch.allclose(same, x, atol=1e-6)
    # a shift of +1/8 of the edge along x shows what was 4 pixels to the right: the square moves 4 left
    moved = imageaug.crop(x, torch.ones(2), torch.tensor([[0.125, 0.0], [0.0, 0.125]]))
    assert torch.allclose(moved[0, :, 12:20, 4:12], torch.ones(3, 8, 8), atol=1e-5)
    assert torch.allclose(moved[1, :, 8:16, 8:16], torch.ones(3, 8, 8), atol=1e-5)
    assert moved[0, 0, 16, 14] == pytest.approx(0.5) and moved[1, 0, 18, 12] == pytest.approx(0.5)


def test_zoom_scales_the_object_about_the_centre():
    s = 32
    x = torch.zeros(1, 3, s, s)
    x[:, :, 12:20, 12:20] = 1.0  # an 8-pixel square at the centre
    bigger = imageaug.crop(x, torch.tensor([2.0]), torch.zeros(1, 2))
    smaller = imageaug.crop(x, torch.tensor([0.5]), torch.zeros(1, 2))
    area = lambda t: float((t[0, 0] > 0.5).sum())  # noqa: E731
    assert area(bigger) == pytest.approx(4 * 64, rel=0.15)
    assert area(smaller) == pytest.approx(64 / 4, rel=0.3)
    assert bigger[0, 0, 16, 16] == 1.0 and smaller[0, 0, 16, 16] == 1.0


def test_color_jitter_neutral_is_the_identity_and_each_factor_acts():
    x = torch.rand(3, 3, 16, 16) * 0.6 + 0.2
    assert torch.allclose(imageaug.jitter(x, torch.ones(3, 3)), x, atol=1e-6)
    bright = imageaug.jitter(x, torch.tensor([[1.2, 1.0, 1.0]] * 3))
    assert torch.allclose(bright, (x * 1.2).clamp(0, 1), atol=1e-6)
    flat = imageaug.jitter(x, torch.tensor([[1.0, 0.0, 1.0]] * 3))  # no contrast: every pixel at the mean grey
    assert float(flat.std(dim=(1, 2, 3)).max()) < 0.2 * float(x.std(dim=(1, 2, 3)).min())
    grey = imageaug.jitter(x, torch.tensor([[1.0, 1.0, 0.0]] * 3))  # no saturation: the channels agree
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-6) and torch.allclose(grey[:, 1], grey[:, 2], atol=1e-6)
    loud = imageaug.jitter(x, torch.tensor([[1.3, 1.3, 1.5]] * 3))
    assert float(loud.min()) >= 0.0 and float(loud.max()) <= 1.0


def test_erase_paints_one_rectangle_of_the_drawn_size_where_drawn():
    x = torch.zeros(2, 3, 40, 40)
    box = torch.tensor([[0.5, 0.25, 0.5, 0.2], [0.5, 0.5, 0.5, 0.5]])  # centre x, centre y, width, height
    paint = torch.tensor([[1.0, 0.5, 0.25], [1.0, 1.0, 1.0]])
    out = imageaug.erase_boxes(x, torch.tensor([True, False]), box, paint)
    changed = (out[0] != 0).any(0)
    rows, cols = changed.nonzero(as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 13, 10, 29)  # 8 x 20 pixels: 0.2 x 0.5 of 40
    assert int(changed.sum()) == 8 * 20
    assert torch.equal(out[0, :, 6, 10], paint[0])
    assert torch.equal(out[1], x[1])  # the second image was not drawn for erasing


def test_draws_are_the_steps_own_in_bounds_and_sharded_as_rows():
    a = imageaug.draw(64, step_generator(0, 5, 4))
    b = imageaug.draw(64, step_generator(0, 5, 4))
    c = imageaug.draw(64, step_generator(0, 6, 4))
    assert torch.equal(a.zoom, b.zoom) and torch.equal(a.box, b.box) and not torch.equal(a.zoom, c.zoom)
    assert float(a.zoom.min()) >= imageaug.ZOOM[0] and float(a.zoom.max()) <= imageaug.ZOOM[1]
    assert float(a.shift.abs().max()) <= imageaug.SHIFT
    cx, cy, w, h = a.box.unbind(1)
    area = w * h
    assert float(area.min()) >= imageaug.ERASE_AREA[0] - 1e-6 and float(area.max()) <= imageaug.ERASE_AREA[1] + 1e-6
    assert bool(((cx - w / 2) >= 0).all() and ((cx + w / 2) <= 1 + 1e-6).all() and ((cy - h / 2) >= 0).all())
    assert 0.3 < float(a.erase.float().mean()) < 0.7
    half = a.rows(slice(32, 64))
    assert torch.equal(half.zoom, a.zoom[32:]) and torch.equal(half.paint, a.paint[32:])
    x = torch.rand(64, 3, 16, 16)
    full = imageaug.apply(imageaug.OPS, x, a)
    assert torch.equal(imageaug.apply(imageaug.OPS, x[32:], half), full[32:])
    assert float(full.min()) >= 0 and float(full.max()) <= 1 and not torch.allclose(full, x)
    assert imageaug.apply((), x, a) is x


def test_the_option_is_checked_and_recorded(tmp_path):
    cfg = VAEGANConfig(pairs="x", image_augment=["erase", "crop", "erase"])
    assert cfg.image_augment == ("erase", "crop")
    assert VAEGANConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert VAEGANConfig(pairs="x").image_augment == ()  # the paper: no augmentation
    with pytest.raises(OptionError, match="blur"):
        VAEGANConfig(pairs="x", image_augment=("blur",))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("pa") / "pairs")


def test_a_run_uses_the_augmentation_records_it_and_resumes_exactly(pairs, tmp_path):
    aug = dict(image_augment=("crop", "color", "erase"))
    plain = train_vaegan(vcfg(pairs, tmp_path, run_name="plain"))
    full = train_vaegan(vcfg(pairs, tmp_path, run_name="full", **aug))
    part = train_vaegan(vcfg(pairs, tmp_path, run_name="part", **aug), stop_after=3)
    done = train_vaegan(vcfg(pairs, tmp_path, **aug), resume=part.run_dir)
    assert done.step == 6
    recorded = json.loads((full.run_dir / "config.json").read_text())["vaegan"]["image_augment"]
    assert recorded == ["crop", "color", "erase"]
    a, b, p = (ckpt.load(r.run_dir / "checkpoint.pt") for r in (done, full, plain))
    for k in a["E"]:
        assert torch.equal(a["E"][k], b["E"][k]), k
    assert any(not torch.equal(b["E"][k], p["E"][k]) for k in b["E"] if b["E"][k].is_floating_point())


def test_cli_refuses_an_unknown_operation_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:  # argparse checks the names against the field's choices
        main(["train", "--model", "vaegan", "--pairs", "x", "--image-augment", "crop", "blur", "--dry-run"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image-augment" in err[0] and "blur" in err[0]
