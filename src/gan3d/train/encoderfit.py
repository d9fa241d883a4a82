"""Freezing modules for a phase of the 3D-VAE-GAN step, and the encoder-only step.

``--encoder-only`` (:class:`gan3d.train.config.VAEGANConfig`) trains E alone against a fixed G taken
from ``--init-from``. G runs in eval mode, on the BatchNorm running statistics that reconstruction
uses, so E is fitted to the very G that will decode its latents at test time. In the three
alternating steps E learns against G in training mode (batch statistics) and against a G that moves
under it. The loss is the E step's: ``alpha1 * KL + alpha2 * rec``. There is no D and no
adversarial term, and G does not change.

``--latent-targets`` replaces that loss with a regression in z: each training shape has a code that
``gan3d explore invert --data`` fitted to it with the same G (its IoU at 0.5 is the search's score),
and E's mean is pulled onto the code of the shape its image shows (:func:`latent_step`). A loss on
G's soft output rewards codes whose uncertain voxels stay under 0.5; a code chosen by IoU at 0.5
does not.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from gan3d.errors import Gan3dError
from gan3d.models.encoder import kl_divergence, reparameterize
from gan3d.voxels import iou_torch


@contextlib.contextmanager
def keep_buffers(*modules: nn.Module) -> Iterator[None]:
    """Restore the modules' buffers (BatchNorm running statistics) on exit."""
    saved = [[(b, b.detach().clone()) for b in m.buffers()] for m in modules]
    try:
        yield
    finally:
        with torch.no_grad():
            for group in saved:
                for b, v in group:
                    b.copy_(v)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """No gradients for the modules' parameters and their buffers restored on exit."""
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        m.requires_grad_(False)
    try:
        with keep_buffers(*modules):
            yield
    finally:
        for m, fl in zip(modules, flags):
            for p, f in zip(m.parameters(), fl):
                p.requires_grad_(f)


def fix_decoder(G: nn.Module) -> nn.Module:
    """G as ``--encoder-only`` holds it: eval mode, no parameter trainable."""
    return G.eval().requires_grad_(False)


def encoder_step(
    E: nn.Module,
    G: nn.Module,
    opt_e: torch.optim.Optimizer,
    images: torch.Tensor,
    shapes: torch.Tensor,
    eps: torch.Tensor,
    cfg: Any,
    rec_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    """One E step against the fixed ``G`` (eval mode, see :func:`fix_decoder`): ``alpha1 * KL +
    alpha2 * rec(G(z), shapes)`` with ``z`` drawn from E's Gaussian by the noise ``eps``."""
    if G.training or any(p.requires_grad for p in G.parameters()):
        raise ValueError("the encoder-only step needs G fixed: eval mode, no trainable parameter (fix_decoder)")
    mu, logvar = E(images)
    return e_update(mu, logvar, G(reparameterize(mu, logvar, eps=eps)), shapes, opt_e, cfg, rec_loss)


def e_update(mu, logvar, recon, shapes, opt_e, cfg, rec_loss) -> dict[str, float]:
    """E's update (step 2 of the three, and the encoder-only step): ``alpha1 * KL(mu, logvar) + alpha2 *
    rec_loss(recon, shapes)`` backward, then ``opt_e`` steps; E's statistics."""
    kl = kl_divergence(mu, logvar).mean()
    rec = rec_loss(recon, shapes)
    loss = cfg.alpha1 * kl + cfg.alpha2 * rec
    opt_e.zero_grad(set_to_none=True)
    loss.backward()
    opt_e.step()
    return dict(loss_e=loss.item(), kl=kl.item(), recon=rec.item(), recon_iou=iou_torch(recon.detach(), shapes).mean().item())


def latent_codes(path: str, shape_rows: np.ndarray, z_dim: int) -> torch.Tensor:
    """(N, z) float32: the code of each of ``shape_rows`` (rows of the pairs' voxel file) from an
    ``invert_set.npz`` (``rows``, ``z``) of ``gan3d explore invert --data`` on that file."""
    try:
        with np.load(path) as f:
            rows, z = np.asarray(f["rows"], np.int64), np.asarray(f["z"], np.float32)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise Gan3dError(f"not an invert_set.npz with rows and z ({e})", path) from None
    if z.ndim != 2 or z.shape != (len(rows), z_dim) or not np.isfinite(z).all():
        raise Gan3dError(f"codes are {z.shape}, finite ({len(rows)}, {z_dim}) expected for this G", path)
    where = {int(r): i for i, r in enumerate(rows)}
    missing = [int(r) for r in np.unique(shape_rows) if int(r) not in where]
    if missing:
        raise Gan3dError(f"has no code for {len(missing)} training shapes (rows {missing[:5]} ...): invert the training split of these classes", Path(path))
    return torch.from_numpy(z[[where[int(r)] for r in shape_rows]])


def latent_step(E: nn.Module, G: nn.Module, opt_e: torch.optim.Optimizer, images: torch.Tensor, shapes: torch.Tensor,
                codes: torch.Tensor, rec_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, float]:
    """One E step of ``--latent-targets``: ``sum (mu - code)^2`` (E's mean, least squares) plus the Gaussian
    negative log-likelihood of the code under E's variance with the mean held, ``0.5 sum(exp(-logvar) (code -
    mu)^2 + logvar)``, averaged over the batch. G (fixed) only decodes E's mean for the statistics."""
    mu, logvar = E(images)
    sq = (mu - codes).pow(2)
    nll = 0.5 * (torch.exp(-logvar) * (codes - mu.detach()).pow(2) + logvar)
    loss = (sq + nll).sum(1).mean()
    opt_e.zero_grad(set_to_none=True)
    loss.backward()
    opt_e.step()
    with torch.no_grad():
        recon = G(mu.detach())
        return dict(loss_e=loss.item(), kl=kl_divergence(mu, logvar).mean().item(), recon=rec_loss(recon, shapes).item(),
                    recon_iou=iou_torch(recon, shapes).mean().item(), code_rmse=sq.detach().mean().sqrt().item())
