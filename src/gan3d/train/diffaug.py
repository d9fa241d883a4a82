"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020), in 3D.

On a small dataset D soon memorises the training shapes and G's gradient stops telling it anything
useful. DiffAugment transforms *both* the real and the generated shapes the same random way before
D sees them, in D's update and in G's, so D cannot win by memorising and G's gradient passes
through the transform. The operations here are differentiable voxel re-indexings and masks:

* ``translation``: each shape moves by a random whole number of voxels per axis, up to
  ``translate`` of the grid edge, zeros coming in at the border;
* ``cutout``: a random axis-aligned cube of ``cutout`` of the edge is emptied;
* ``flip``: a mirror of the first (x) axis with probability 1/2, a symmetry of the aligned chairs
  and furniture gan3d trains on;
* ``scale``: each shape shrunk about the grid centre by a random factor from ``[1 - scale, 1]``
  (nearest voxel, zeros coming in), the way voxelizers that leave a margin frame an object;
* ``morph``: each shape, with probability 1/3 each, left alone, eroded or dilated by one voxel over
  the 6-neighbourhood (on soft grids: the minimum or maximum of a voxel and its six neighbours), the
  difference between a thin and a thick voxelizer.

``scale`` and ``morph`` are the voxelization changes that features meant to work on other people's
voxel data should not depend on.

Every draw comes from the step's seeded generator (see :func:`draw`), one set for the reals and one
for the fakes of the whole batch, so that data-parallel processes take their rows of the same
draws and a resumed run sees the same augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

OPS = ("translation", "cutout", "flip", "scale", "morph")


@dataclass(frozen=True)
class Draw:
    """One batch's augmentation parameters, per shape (CPU tensors of ``n`` rows)."""

    shift: torch.Tensor | None  # (n, 3) int64 voxel shifts, or None
    cut_lo: torch.Tensor | None  # (n, 3) int64 lower corner of the emptied cube, or None
    cut_size: int
    flip: torch.Tensor | None  # (n,) bool, or None
    scale: torch.Tensor | None = None  # (n,) float32 shrink factors in [1 - scale, 1], or None
    morph: torch.Tensor | None = None  # (n,) int64: 0 unchanged, 1 eroded, 2 dilated; or None

    def rows(self, shard: slice) -> "Draw":
        pick = (lambda t: None if t is None else t[shard])
        return Draw(pick(self.shift), pick(self.cut_lo), self.cut_size, pick(self.flip), pick(self.scale), pick(self.morph))


def draw(ops: tuple[str, ...], n: int, resolution: int, generator: torch.Generator, *, translate: float = 0.125,
         cutout: float = 0.5, scale: float = 0.25) -> Draw:
    """Random parameters for ``n`` shapes of edge ``resolution`` (the draws of ``scale`` and ``morph``
    come after the others, so that runs without them draw as before)."""
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}: choose from {', '.join(OPS)}")
    r = int(resolution)
    m = int(round(translate * r))
    shift = torch.randint(-m, m + 1, (n, 3), generator=generator) if "translation" in ops and m > 0 else None
    size = max(1, int(round(cutout * r)))
    cut = torch.randint(0, r - size + 1, (n, 3), generator=generator) if "cutout" in ops else None
    flip = (torch.rand(n, generator=generator) < 0.5) if "flip" in ops else None
    factor = (1.0 - float(scale) * torch.rand(n, generator=generator)) if "scale" in ops else None
    morph = torch.randint(0, 3, (n,), generator=generator) if "morph" in ops else None
    return Draw(shift, cut, size, flip, factor, morph)


def _neighbours(x: torch.Tensor, fill: float) -> list[torch.Tensor]:
    """The six face neighbours of every voxel of ``x`` (n, 1, R, R, R), ``fill`` beyond the border."""
    p = torch.nn.functional.pad(x, (1,) * 6, value=fill)
    r = x.shape[2]
    c = slice(1, r + 1)
    return [p[:, :, 0:r, c, c], p[:, :, 2 : r + 2, c, c], p[:, :, c, 0:r, c], p[:, :, c, 2 : r + 2, c],
            p[:, :, c, c, 0:r], p[:, :, c, c, 2 : r + 2]]


def morph(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Per shape: ``which`` 0 unchanged, 1 eroded (minimum over the voxel and its six neighbours, empty
    beyond the border), 2 dilated (the maximum). On 0/1 grids this is binary erosion and dilation
    with the 6-neighbourhood."""
    n = x.shape[0]
    w = which.to(x.device).reshape(n, 1, 1, 1, 1)
    if not bool((w > 0).any()):
        return x
    around = torch.stack([x, *_neighbours(x, 0.0)])  # the voxel and its six neighbours, built once
    out = x
    if bool((w == 1).any()):
        out = torch.where(w == 1, around.amin(0), out)
    if bool((w == 2).any()):
        out = torch.where(w == 2, around.amax(0), out)
    return out


def shrink(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Each shape of ``x`` (n, 1, R, R, R) scaled about the grid centre by its ``factor`` (<= 1):
    output voxel i takes input voxel ``floor((i + 0.5 - R/2) / factor + R/2)``, zero where that falls
    outside the grid. A gather, so differentiable in ``x``."""
    n, r, dev = x.shape[0], x.shape[2], x.device
    base = torch.arange(r, device=dev, dtype=torch.float32) + 0.5 - r / 2
    src = torch.floor(base[None, :] / factor.to(dev).reshape(n, 1) + r / 2).long()  # (n, r)
    ok = (src >= 0) & (src < r)
    src = src.clamp(0, r - 1)
    b = torch.arange(n, device=dev).reshape(n, 1, 1, 1)
    out = x[b, 0, src[:, :, None, None], src[:, None, :, None], src[:, None, None, :]].unsqueeze(1)
    mask = ok[:, :, None, None] & ok[:, None, :, None] & ok[:, None, None, :]
    return out * mask.unsqueeze(1).to(x.dtype)


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
    if d.scale is not None:
        x = shrink(x, d.scale)
    if d.morph is not None:
        x = morph(x, d.morph)
    return x
