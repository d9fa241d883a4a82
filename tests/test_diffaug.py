"""DiffAugment in 3D (gan3d.train.diffaug) and the moving average of G: each transform against a
brute-force numpy version, gradients through it, and runs that use them resume exactly."""

import numpy as np
import pytest
import torch

from gan3d.runtime import set_determinism
from gan3d.train import diffaug
from gan3d.train.config import make_config
from gan3d.train.gan import ema_decay, update_ema
from gan3d.train.loop import train


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _grids(n=5, r=8, seed=0):
    return (torch.rand(n, 1, r, r, r, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def test_translation_moves_every_voxel_by_its_shift_with_zeros_coming_in():
    x = _grids()
    d = diffaug.draw(("translation",), 5, 8, torch.Generator().manual_seed(1), translate=0.25)
    assert d.shift.abs().max() <= 2 and d.shift.abs().max() > 0
    y = diffaug.apply(x, d).numpy()
    for i in range(5):
        want = np.zeros((8, 8, 8), np.float32)
        sx, sy, sz = (int(v) for v in d.shift[i])
        for a in range(8):
            for b in range(8):
                for c in range(8):
                    if 0 <= a - sx < 8 and 0 <= b - sy < 8 and 0 <= c - sz < 8:
                        want[a, b, c] = x[i, 0, a - sx, b - sy, c - sz]
        assert np.array_equal(y[i, 0], want), i


def test_cutout_empties_exactly_its_cube_and_flip_mirrors_x():
    x = torch.ones(4, 1, 8, 8, 8)
    d = diffaug.draw(("cutout",), 4, 8, torch.Generator().manual_seed(2), cutout=0.5)
    y = diffaug.apply(x, d)
    for i in range(4):
        lo = d.cut_lo[i].tolist()
        box = np.zeros((8, 8, 8), bool)
        box[lo[0] : lo[0] + 4, lo[1] : lo[1] + 4, lo[2] : lo[2] + 4] = True
        assert np.array_equal(y[i, 0].numpy() == 0, box)
    x = _grids(6)
    d = diffaug.draw(("flip",), 6, 8, torch.Generator().manual_seed(1))
    y = diffaug.apply(x, d)
    assert 0 < int(d.flip.sum()) < 6
    for i in range(6):
        assert torch.equal(y[i], x[i].flip(1) if d.flip[i] else x[i])


def test_gradient_passes_to_the_voxels_that_are_kept():
    x = torch.rand(3, 1, 8, 8, 8, requires_grad=True)
    d = diffaug.draw(("translation", "cutout", "flip"), 3, 8, torch.Generator().manual_seed(4))
    y = diffaug.apply(x, d)
    y.sum().backward()
    # every input voxel lands on at most one output voxel: gradient 1 where it is kept, 0 elsewhere
    g = x.grad
    assert set(torch.unique(g).tolist()) <= {0.0, 1.0}
    assert int(g.sum()) == int((diffaug.apply(torch.ones_like(x), d) > 0).sum())


def test_unknown_operation_is_refused():
    with pytest.raises(ValueError):
        diffaug.draw(("rotate",), 2, 8, torch.Generator())
    from gan3d.options import OptionError

    with pytest.raises(OptionError):
        make_config("tiny", diffaugment=("rotate",))


def test_ema_follows_the_weights():
    a, m = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    update_ema(a, m, 0.75)
    assert torch.allclose(a.weight, 0.75 * before + 0.25 * m.weight)
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999


AUGMENTED = dict(diffaugment=("translation", "cutout", "flip"), ema=0.9)


def test_augmented_run_with_ema_resumes_exactly_and_samples_the_average(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, ("G", "D", "G_ema"), **AUGMENTED)
    # the snapshot's G is the average (BatchNorm re-estimated), not the last weights
    snap = torch.load(a.run_dir / "snapshot.pt", weights_only=True)
    w = "net.0.weight"
    assert torch.equal(snap["G"][w], sa["G_ema"][w]) and not torch.equal(snap["G"][w], sa["G"][w])
    # and the augmentation changed training: the same run without it ends elsewhere
    c = train(tiny_gan_runs.config(tmp_path / "c", **{**AUGMENTED, "diffaugment": ()}), progress=False, quiet=True)
    sc = torch.load(c.run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.equal(sc["D"]["out.weight"], sa["D"]["out.weight"])


def test_scale_matches_the_reframe_shift_at_the_same_factor():
    from gan3d.eval.shifts import reframe

    x = _grids(6, 16, seed=3)
    d = diffaug.draw(("scale",), 6, 16, torch.Generator().manual_seed(5), scale=0.25)
    assert ((d.scale >= 0.75) & (d.scale <= 1.0)).all() and d.scale.unique().numel() == 6
    y = diffaug.apply(x, d).numpy()
    for i in range(6):
        want = reframe(x[i : i + 1, 0].numpy(), float(d.scale[i]))[0]
        assert np.array_equal(y[i, 0], want), i
    one = diffaug.shrink(x, torch.ones(6))  # factor 1 leaves the shape as it is
    assert torch.equal(one, x)


def test_morph_is_binary_erosion_and_dilation_on_hard_grids():
    from gan3d.eval.shifts import dilate, erode

    x = _grids(6, 10, seed=7)
    which = torch.tensor([0, 1, 2, 1, 2, 0])
    y = diffaug.morph(x, which).numpy()
    for i, w in enumerate(which.tolist()):
        want = x[i, 0].numpy() if w == 0 else (erode if w == 1 else dilate)(x[i : i + 1, 0].numpy())[0]
        assert np.array_equal(y[i, 0], want), (i, w)
    d = diffaug.draw(("morph",), 300, 10, torch.Generator().manual_seed(0))
    counts = torch.bincount(d.morph, minlength=3)
    assert counts.min() > 70  # a third each


def test_scale_and_morph_pass_gradients_and_leave_older_draws_alone():
    x = torch.rand(4, 1, 8, 8, 8, requires_grad=True)
    d = diffaug.draw(("scale", "morph"), 4, 8, torch.Generator().manual_seed(2))
    diffaug.apply(x, d).sum().backward()
    assert x.grad.abs().sum() > 0
    old = diffaug.draw(("translation", "cutout", "flip"), 4, 8, torch.Generator().manual_seed(9))
    new = diffaug.draw(("translation", "cutout", "flip", "scale", "morph"), 4, 8, torch.Generator().manual_seed(9))
    assert torch.equal(old.shift, new.shift) and torch.equal(old.cut_lo, new.cut_lo) and torch.equal(old.flip, new.flip)


def test_a_run_with_scale_and_morph_resumes_exactly(tmp_path, tiny_gan_runs):
    tiny_gan_runs.resume_matches(tmp_path, diffaugment=("scale", "morph"))
