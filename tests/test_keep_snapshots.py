"""``gan3d train --keep-snapshots``: every snapshot kept as snapshot_<step>.pt beside the latest."""

from pathlib import Path

import torch

from gan3d import checkpoint as ckpt
from gan3d.train.loop import train


def _g(path):
    return torch.load(path, weights_only=True)["G"]


def test_kept_snapshots_are_the_snapshots_of_their_steps(tmp_path, tiny_gan_runs):
    run = train(tiny_gan_runs.config(tmp_path / "a", keep_snapshots=True), progress=False, quiet=True).run_dir
    kept = sorted(p.name for p in run.glob("snapshot_*.pt"))
    assert kept == ["snapshot_000004.pt", "snapshot_000008.pt"]
    assert (run / "snapshot_000008.pt").read_bytes() == (run / "snapshot.pt").read_bytes()
    assert not list(run.glob(".snapshot.*"))  # no temporary file left behind
    # the step-4 copy is what a run stopped at step 4 wrote as its snapshot.pt, not the final one
    short = train(tiny_gan_runs.config(tmp_path / "b"), stop_after=4, progress=False, quiet=True).run_dir
    four, last, ref = _g(run / "snapshot_000004.pt"), _g(run / "snapshot.pt"), _g(short / "snapshot.pt")
    assert all(torch.equal(four[k], ref[k]) for k in ref)
    assert any(not torch.equal(four[k], last[k]) for k in last if last[k].is_floating_point())
    assert not list(short.glob("snapshot_*.pt"))  # off by default: only the latest
    assert ckpt.load(run / "snapshot_000004.pt")["step"] == 4  # a kept snapshot is a checkpoint gan3d opens


def test_keep_snapshots_can_be_switched_on_when_resuming(tmp_path, tiny_gan_runs):
    first = train(tiny_gan_runs.config(tmp_path), stop_after=4, progress=False, quiet=True).run_dir
    assert not list(first.glob("snapshot_*.pt"))
    run = train(None, resume=first, overrides={"keep_snapshots": True}, progress=False, quiet=True).run_dir
    assert sorted(p.name for p in Path(run).glob("snapshot_*.pt")) == ["snapshot_000008.pt"]
