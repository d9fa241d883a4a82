"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020), in 3D.

On a small dataset D soon memorises the training shapes and G's gradient stops telling it anything
useful. DiffAugment transforms *both* the real and the generated shapes the same random way before
D sees them, in D's update and in G's, so D cannot win by memorising and G's gradient passes
through the transform. The operations here are differentiable voxel re-indexings and masks:

* ``translation``: each shape moves by a random whole number of voxels per axis, up to
  ``translate`` of the grid edge, zeros coming in at the border;
* ``cutout``: a random axis-aligned cube of ``cutout`` of the edge is emptied;
* ``flip``: a mirror of the first (x) axis with probability 1/2, a symmetry of the aligned chairs
  and furniture gan3d trains on.

Every draw comes from the step's seeded generator (see :func:`draw`), one set for the reals and one
for the fakes of the whole batch, so that data-parallel processes take their rows of the same
draws and a resumed run sees the same augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

OPS = ("translation", "cutout", "flip")


@dataclass(frozen=True)
class Draw:
    """One batch's augmentation parameters, per shape (CPU tensors of ``n`` rows)."""

    shift: torch.Tensor | None  # (n, 3) int64 voxel shifts, or None
    cut_lo: torch.Tensor | None  # (n, 3) int64 lower corner of the emptied cube, or None
    cut_size: int
    flip: torch.Tensor | None  # (n,) bool, or None

    def rows(self, shard: slice) -> "Draw":
        pick = (lambda t: None if t is None else t[shard])
        return Draw(pick(self.shift), pick(self.cut_lo), self.cut_size, pick(self.flip))


def draw(ops: tuple[str, ...], n: int, resolution: int, generator: torch.Generator, *, translate: float = 0.125,
         cutout: float = 0.5) -> Draw:
    """Random parameters for ``n`` shapes of edge ``resolution``."""
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}: choose from {', '.join(OPS)}")
    r = int(resolution)
    m = int(round(translate * r))
    shift = torch.randint(-m, m + 1, (n, 3), generator=generator) if "translation" in ops and m > 0 else None
    size = max(1, int(round(cutout * r)))
    cut = torch.randint(0, r - size + 1, (n, 3), generator=generator) if "cutout" in ops else None
    flip = (torch.rand(n, generator=generator) < 0.5) if "flip" in ops else None
    return Draw(shift, cut, size, flip)


def apply(x: torch.Tensor, d: Draw) -> torch.Tensor:
    """Shapes ``x`` (n, 1, R, R, R) transformed by ``d``; differentiable in ``x``."""
    n, _, r = x.shape[0], x.shape[1], x.shape[2]
    dev = x.device
    if d.flip is not None:
        x = torch.where(d.flip.to(dev).reshape(n, 1, 1, 1, 1), x.flip(2), x)
    if d.shift is not None:
        # out[i] = x[i - shift] inside the grid, 0 outside: a gather from the zero-padded grid
        m = int(d.shift.abs().max().item()) if d.shift.numel() else 0
        if m > 0:
            p = torch.nn.functional.pad(x, (m,) * 6)
            base = torch.arange(r, device=dev)
            ix, iy, iz = ((base + m - d.shift[:, a].to(dev).reshape(n, 1)) for a in range(3))  # (n, r) each
            b = torch.arange(n, device=dev).reshape(n, 1, 1, 1)
            x = p[b, 0, ix[:, :, None, None], iy[:, None, :, None], iz[:, None, None, :]].unsqueeze(1)
    if d.cut_lo is not None:
        base = torch.arange(r, device=dev)
        lo = d.cut_lo.to(dev)
        inside = [((base >= lo[:, a : a + 1]) & (base < lo[:, a : a + 1] + d.cut_size)) for a in range(3)]  # (n, r) each
        box = inside[0][:, :, None, None] & inside[1][:, None, :, None] & inside[2][:, None, None, :]
        x = x * (~box).unsqueeze(1).to(x.dtype)
    return x
