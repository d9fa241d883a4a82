"""The 3D-VAE-GAN's image encoder E: an RGB image to a Gaussian over the latent z.

The paper's E takes a 256x256 RGB image through five 2D convolutions, channels 64-128-256-512-400,
kernels 11-5-5-5-8, strides 4-2-2-2-1, with BatchNorm and ReLU between them (not after the last).
The 400 outputs at 1x1 are the mean (200) and log-variance (200) of a Gaussian over z. Paddings
(not given in the paper) are ``ceil((k - s) / 2)`` for each strided layer and 0 for the last one,
which for the paper's layers gives **4-2-2-2-0** and halves the size exactly at every stride-2
layer: 256 -> 64 -> 32 -> 16 -> 8 -> 1. ``EncoderConfig.paddings`` computes them for any preset and
the config checks that the last layer's output is 1x1.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from gan3d.models.gan import init_weights


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int = 256  # edge of the square RGB input
    z_dim: int = 200  # latent size; the last layer has 2 * z_dim channels (mean and log-variance)
    channels: tuple[int, ...] = (64, 128, 256, 512, 400)  # output widths of every convolution
    kernels: tuple[int, ...] = (11, 5, 5, 5, 8)
    strides: tuple[int, ...] = (4, 2, 2, 2, 1)

    def __post_init__(self):
        for name in ("channels", "kernels", "strides"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        n = len(self.channels)
        if n < 1 or len(self.kernels) != n or len(self.strides) != n:
            raise ValueError("channels, kernels and strides must have the same (non-zero) length")
        if self.z_dim < 1 or min(self.channels) < 1 or min(self.kernels) < 1 or min(self.strides) < 1:
            raise ValueError("z_dim, channels, kernels and strides must be positive")
        if self.channels[-1] != 2 * self.z_dim:
            raise ValueError(f"the last layer must have 2 * z_dim = {2 * self.z_dim} channels, got {self.channels[-1]}")
        sizes = self.spatial_sizes()
        if sizes[-1] != 1:
            raise ValueError(f"image_size {self.image_size} with these layers gives {sizes[-1]}x{sizes[-1]} output, not 1x1 ({sizes})")

    @property
    def paddings(self) -> tuple[int, ...]:
        """``ceil((k - s) / 2)`` for every strided layer (exact division by the stride when the
        size is a multiple of it), 0 for the last layer (a full-size 'dense' convolution)."""
        pads = [max(0, math.ceil((k - s) / 2)) for k, s in zip(self.kernels[:-1], self.strides[:-1])]
        return (*pads, 0)

    def spatial_sizes(self) -> list[int]:
        """Spatial edge after each layer."""
        out, x = [], int(self.image_size)
        for k, s, p in zip(self.kernels, self.strides, self.paddings):
            x = (x + 2 * p - k) // s + 1
            out.append(x)
        return out

    def with_z_dim(self, z_dim: int) -> "EncoderConfig":
        return dataclasses.replace(self, z_dim=int(z_dim), channels=(*self.channels[:-1], 2 * int(z_dim)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


class ImageEncoder(nn.Module):
    """RGB image (N, 3, S, S) in [0, 1] -> (mu, logvar), each (N, z_dim)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        widths = [3, *cfg.channels]
        layers: list[nn.Module] = []
        last = len(cfg.channels) - 1
        for i, (cin, cout, k, s, p) in enumerate(zip(widths[:-1], widths[1:], cfg.kernels, cfg.strides, cfg.paddings)):
            if i < last:
                layers += [nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            else:
                layers.append(nn.Conv2d(cin, cout, k, s, p, bias=True))
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.cfg.image_size
        if img.dim() != 4 or img.shape[1] != 3 or img.shape[2] != s or img.shape[3] != s:
            raise ValueError(f"encoder expects (N, 3, {s}, {s}) images, got {tuple(img.shape)}")
        out = self.net(img).reshape(img.shape[0], 2 * self.cfg.z_dim)
        return out[:, : self.cfg.z_dim], out[:, self.cfg.z_dim :]


def init_encoder(E: nn.Module) -> None:
    """DCGAN-style initialisation, the same as G and D get (:func:`gan3d.models.init_weights`)."""
    init_weights(E)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None, *, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """``mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` drawn on the CPU from ``generator`` (or given)."""
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps.to(mu.device, mu.dtype)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dimensions: (N,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
