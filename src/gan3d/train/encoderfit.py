"""Freezing modules for a phase of the 3D-VAE-GAN step, and the encoder-only step.

``--encoder-only`` (:class:`gan3d.train.config.VAEGANConfig`) trains E alone against a fixed G taken
from ``--init-from``. G runs in eval mode, on the BatchNorm running statistics that reconstruction
uses, so E is fitted to the very G that will decode its latents at test time. In the three
alternating steps E learns against G in training mode (batch statistics) and against a G that moves
under it. The loss is the E step's: ``alpha1 * KL + alpha2 * rec``. There is no D and no
adversarial term, and G does not change.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import nn

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
