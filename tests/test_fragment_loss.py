"""The fragment term (``--fragment-loss``): it sees exactly the voxels that sampling's largest-component
cut would drop, pushes only those below 0.5, vanishes on one-piece shapes, and runs that use it log it
and resume exactly."""

import json

import numpy as np
import pytest
import torch

from gan3d.cli import main
from gan3d.runtime import set_determinism
from gan3d.train.losses import fragment_term
from gan3d.voxels import fragment_masks, largest_component_batch


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _two_pieces():
    """One 16^3 grid: a 4x4x4 block at 0.9 and a 2x2x1 speck at 0.8, two voxels apart; 0.1 elsewhere."""
    x = torch.full((1, 1, 16, 16, 16), 0.1)
    x[0, 0, 2:6, 2:6, 2:6] = 0.9
    x[0, 0, 10:12, 10:12, 8] = 0.8
    return x


def test_the_term_sees_what_the_largest_component_cut_drops():
    x = _two_pieces()
    term, share = fragment_term(x)
    assert share == pytest.approx(4 / (64 + 4))
    assert term.item() == pytest.approx(4 * -torch.log1p(torch.tensor(-0.8)).item() / 68, rel=1e-5)
    # the same share as the largest-component cut that sampling makes
    kept = largest_component_batch((x >= 0.5).float().numpy())
    assert share == pytest.approx(1 - kept.sum() / (x >= 0.5).sum().item())


def test_only_the_fragment_gets_a_gradient_and_descent_removes_it():
    logits = torch.logit(_two_pieces()).requires_grad_(True)
    term, _ = fragment_term(torch.sigmoid(logits))
    (grad,) = torch.autograd.grad(term, logits)
    speck = torch.zeros_like(grad, dtype=torch.bool)
    speck[0, 0, 10:12, 10:12, 8] = True
    assert (grad[speck] > 0).all() and (grad[~speck] == 0).all()
    opt = torch.optim.SGD([logits], lr=200.0)
    for _ in range(20):
        opt.zero_grad()
        fragment_term(torch.sigmoid(logits))[0].backward()
        opt.step()
    p = torch.sigmoid(logits.detach())
    assert (p[speck] < 0.5).all()
    assert (p[0, 0, 2:6, 2:6, 2:6] == pytest.approx(0.9))  # the main piece untouched
    assert fragment_term(p)[1] == 0.0


def test_one_piece_gives_zero():
    x = _two_pieces()
    x[0, 0, 10:12, 10:12, 8] = 0.1
    term, share = fragment_term(x.requires_grad_(True))
    assert term.item() == 0.0 and share == 0.0
    term, share = fragment_term(torch.zeros(2, 1, 8, 8, 8))  # empty shapes: no division by zero
    assert term.item() == 0.0 and share == 0.0


def test_a_run_with_the_term_logs_it_and_resumes_exactly(tmp_path, tiny_gan_runs):
    a, sa = tiny_gan_runs.resume_matches(tmp_path, fragment_loss=5.0)
    rows = [json.loads(line) for line in (a.run_dir / "stats.jsonl").read_text().splitlines()]
    assert rows and all(0.0 <= r["fragments"] <= 1.0 for r in rows)
    assert json.loads((a.run_dir / "config.json").read_text())["train"]["fragment_loss"] == 5.0


@pytest.mark.parametrize("argv", [
    ["--model", "autoencoder", "--fragment-loss", "1"],
    ["--model", "vaegan", "--pairs", "nowhere", "--fragment-loss", "1"],
    ["--fragment-loss", "-1"],
])
def test_bad_fragment_loss_is_one_line_and_writes_nothing(tmp_path, capsys, argv):
    rc = main(["train", "--preset", "tiny", "--steps", "1", *argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--fragment-loss" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def _near_and_far():
    """The block of ``_two_pieces``, its far speck, and a near 2x2x1 piece two empty voxels above the block."""
    x = _two_pieces()
    x[0, 0, 2:4, 2:4, 8] = 0.8
    return x


def test_join_bridges_the_near_piece_and_drops_the_far_one():
    filled = (_near_and_far() >= 0.5)[:, 0].numpy()
    outside, drop, bridge = fragment_masks(filled, join=2)
    assert outside.sum() == 8  # both pieces are outside, whatever is done to them
    far = np.zeros_like(drop)
    far[0, 10:12, 10:12, 8] = True
    assert (drop == far).all()
    assert sorted(map(tuple, np.argwhere(bridge[0]))) == [(2, 2, 6), (2, 2, 7)]  # the gap on the line to the block
    # one empty voxel fewer allowed: the near piece is too far to join, and is dropped with the other
    outside1, drop1, bridge1 = fragment_masks(filled, join=1)
    assert (drop1 == outside1).all() and not bridge1.any()
    # join 0 is the plain fragment term
    _, drop0, bridge0 = fragment_masks(filled, join=0)
    assert (drop0 == outside).all() and not bridge0.any()


def test_descent_on_the_join_term_makes_one_piece_and_keeps_the_near_one():
    logits = torch.logit(_near_and_far()).requires_grad_(True)
    opt = torch.optim.SGD([logits], lr=200.0)
    for _ in range(30):
        opt.zero_grad()
        fragment_term(torch.sigmoid(logits), join=2)[0].backward()
        opt.step()
    p = torch.sigmoid(logits.detach())
    assert fragment_term(p, join=2)[1] == 0.0  # one piece
    assert (p[0, 0, 2:4, 2:4, 8] > 0.5).all() and (p[0, 0, 2, 2, 6:8] > 0.5).all()  # joined, not dropped
    assert (p[0, 0, 10:12, 10:12, 8] < 0.5).all()  # the far speck dropped
    assert (p[0, 0, 2:6, 2:6, 2:6] == pytest.approx(0.9))


def test_a_run_that_joins_resumes_exactly(tmp_path, tiny_gan_runs):
    a, _ = tiny_gan_runs.resume_matches(tmp_path, fragment_loss=5.0, fragment_join=2)
    assert json.loads((a.run_dir / "config.json").read_text())["train"]["fragment_join"] == 2


@pytest.mark.parametrize("argv", [
    ["--fragment-join", "2"],
    ["--fragment-loss", "1", "--fragment-join", "-1"],
])
def test_bad_fragment_join_is_one_line_and_writes_nothing(tmp_path, capsys, argv):
    rc = main(["train", "--preset", "tiny", "--steps", "1", *argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--fragment-join" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
