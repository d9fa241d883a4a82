"""Random changes to the 3D-VAE-GAN's training images that leave the shape they show unchanged.

The encoder sees 8 rendered views of each of a few thousand training shapes; photographs differ from
those renders in framing, exposure and what stands in front of the object. The target of every image
is the shape in its canonical frame, so any change of the picture that does not change which object it
shows keeps the pair true:

* ``crop``: the picture is zoomed by a factor drawn from ``[0.85, 1.2]`` (above 1 cuts the object's
  edges off, below 1 shows more of the background, its border pixels repeated) and moved by up to
  10% of its edge along each image axis;
* ``color``: brightness and contrast each scaled by a factor from ``[0.7, 1.3]`` and saturation by
  one from ``[0.5, 1.5]``, the result clamped to ``[0, 1]``;
* ``erase``: with probability 1/2, one rectangle covering 2% to 20% of the picture (aspect ratio
  from 1/3 to 3) is painted in one random color, a stand-in for something in front of the object.

Every parameter of a step comes from that step's seeded generator, drawn in one fixed order for the
whole batch whichever operations are on, so that data-parallel processes take their rows of the same
draws and a resumed run sees the same pictures. The operations run in the order above on the device
the batch is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OPS = ("crop", "color", "erase")

ZOOM = (0.85, 1.2)
SHIFT = 0.1  # of the image edge
BRIGHTNESS = CONTRAST = (0.7, 1.3)
SATURATION = (0.5, 1.5)
ERASE_P = 0.5
ERASE_AREA = (0.02, 0.2)
ERASE_ASPECT = (1 / 3, 3.0)


@dataclass(frozen=True)
class Draw:
    """One batch's parameters, per image (CPU float32 tensors of ``n`` rows)."""

    zoom: torch.Tensor  # (n,)
    shift: torch.Tensor  # (n, 2): x and y offsets as fractions of the edge
    color: torch.Tensor  # (n, 3): brightness, contrast, saturation factors
    erase: torch.Tensor  # (n,) bool: paint a rectangle
    box: torch.Tensor  # (n, 4): centre x, centre y, width, height as fractions of the edge
    paint: torch.Tensor  # (n, 3): the rectangle's RGB

    def rows(self, shard: slice) -> "Draw":
        return Draw(*(getattr(self, f)[shard] for f in ("zoom", "shift", "color", "erase", "box", "paint")))


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def draw(n: int, generator: torch.Generator) -> Draw:
    """Random parameters for ``n`` images (every operation's, always in the same order)."""
    zoom = _uniform(generator, *ZOOM, n)
    shift = _uniform(generator, -SHIFT, SHIFT, n, 2)
    color = torch.stack([_uniform(generator, *BRIGHTNESS, n), _uniform(generator, *CONTRAST, n),
                         _uniform(generator, *SATURATION, n)], dim=1)
    erase = torch.rand(n, generator=generator) < ERASE_P
    area = _uniform(generator, *ERASE_AREA, n)
    aspect = torch.exp(_uniform(generator, math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1]), n))
    w, h = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    cx = w / 2 + (1 - w) * torch.rand(n, generator=generator)
    cy = h / 2 + (1 - h) * torch.rand(n, generator=generator)
    paint = torch.rand(n, 3, generator=generator)
    return Draw(zoom, shift, color, erase, torch.stack([cx, cy, w, h], dim=1), paint)


def crop(images: torch.Tensor, zoom: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``images`` (n, 3, S, S) zoomed by ``zoom`` about a centre moved by ``shift`` (fractions of the
    edge; +x shows what was to the right of the centre), bilinear, border pixels repeated."""
    n = images.shape[0]
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    inv = (1.0 / zoom).to(images)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    theta[:, :, 2] = 2.0 * shift.to(images)  # grid coordinates span [-1, 1]: twice the fraction of the edge
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def jitter(images: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast (about each image's mean grey) and saturation (about each pixel's grey)
    scaled by the rows of ``color`` (n, 3), clamped to [0, 1]."""
    c = color.to(images).view(-1, 3, 1, 1, 1)
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    x = images * c[:, 0]
    mean = (x * weights).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * c[:, 1] + mean
    grey = (x * weights).sum(1, keepdim=True)
    x = (x - grey) * c[:, 2] + grey
    return x.clamp(0.0, 1.0)


def erase_boxes(images: torch.Tensor, erase: torch.Tensor, box: torch.Tensor, paint: torch.Tensor) -> torch.Tensor:
    """Images with a rectangle (``box``: centre x, centre y, width, height, fractions of the edge)
    painted ``paint`` where ``erase`` is true; pixels whose centres fall inside are painted."""
    n, _, s, t = images.shape
    box = box.to(images)
    ys = (torch.arange(s, dtype=images.dtype, device=images.device) + 0.5) / s
    xs = (torch.arange(t, dtype=images.dtype, device=images.device) + 0.5) / t
    inside_x = ((xs.view(1, -1) - box[:, 0:1]).abs() <= box[:, 2:3] / 2)  # (n, T)
    inside_y = ((ys.view(1, -1) - box[:, 1:2]).abs() <= box[:, 3:4] / 2)  # (n, S)
    mask = (inside_y[:, :, None] & inside_x[:, None, :]) & erase.to(images.device).view(-1, 1, 1)
    mask = mask.unsqueeze(1)
    return torch.where(mask, paint.to(images).view(n, 3, 1, 1), images)


def apply(ops: tuple[str, ...], images: torch.Tensor, d: Draw) -> torch.Tensor:
    """``images`` (n, 3, S, S) in [0, 1] changed by the operations ``ops`` with the parameters ``d``."""
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(f"unknown image augmentation {unknown[0]!r}: choose from {', '.join(OPS)}")
    if "crop" in ops:
        images = crop(images, d.zoom, d.shift)
    if "color" in ops:
        images = jitter(images, d.color)
    if "erase" in ops:
        images = erase_boxes(images, d.erase, d.box, d.paint)
    return images
