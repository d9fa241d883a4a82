"""The volumetric auto-encoder baseline of the paper's Fig. 2 (after Girdhar et al. 2016).

Wu et al. compare their samples with those of a volumetric auto-encoder whose latent codes were
fitted with a Gaussian and sampled. gan3d's baseline is built to be compared with its own 3D-GAN on
equal terms: the decoder *is* a gan3d :class:`Generator` of the same preset, and the encoder is the
preset's discriminator trunk (the same 4x4x4 stride-2 convolutions, BatchNorm, LeakyReLU 0.2) ending
in one 4x4x4 convolution to ``z_dim`` numbers instead of one logit. After training, the codes of the
training shapes are fitted with a full-covariance Gaussian and folded into the decoder
(:func:`gaussian_sampler`), so that sampling, evaluation and the explore commands treat it as any
other generator with a standard normal prior.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from gan3d.models.gan import Generator, ModelConfig


class VoxelEncoder(nn.Module):
    """Occupancy (N, 1, R, R, R) -> code (N, z_dim): the discriminator's trunk of ``cfg``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = [1, *reversed(cfg.channels)]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv3d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm3d(cout), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv3d(widths[-1], cfg.z_dim, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0], self.cfg.z_dim)


def fit_gaussian(codes: torch.Tensor, *, ridge: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, lower Cholesky factor of the covariance) of codes (N, z_dim), in float64 then float32.

    ``ridge`` times the mean variance is added to the diagonal so that the factor exists even when
    there are fewer codes than dimensions."""
    c = codes.detach().double().reshape(len(codes), -1)
    if len(c) < 2:
        raise ValueError("fitting a Gaussian needs at least 2 codes")
    mean = c.mean(0)
    cov = torch.cov(c.T, correction=1).reshape(c.shape[1], c.shape[1])
    cov = cov + ridge * max(float(cov.diagonal().mean()), 1e-12) * torch.eye(c.shape[1], dtype=cov.dtype)
    return mean.float(), torch.linalg.cholesky(cov).float()


def gaussian_sampler(G: Generator, mean: torch.Tensor, chol: torch.Tensor) -> Generator:
    """A copy of decoder ``G`` that maps z ~ N(0, I) to G(mean + chol @ z), in G's mode and device."""
    cfg = dataclasses.replace(G.cfg, latent_gaussian=True)
    out = Generator(cfg).to(next(G.parameters()).device)
    state = {k: v for k, v in copy.deepcopy(G.state_dict()).items() if k not in ("z_mean", "z_chol")}
    out.load_state_dict({**state, "z_mean": mean.to(out.z_mean), "z_chol": chol.to(out.z_chol)})
    return out.train(G.training)
