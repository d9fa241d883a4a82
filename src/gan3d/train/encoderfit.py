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

``--distill W --distill-pairs PLAIN`` adds a teacher to the encoder-only loss: ``--init-from``'s own E,
frozen in eval mode, reads each training image's twin in PLAIN (the same shape from the same view,
:func:`twin_rows`), and E's mean is pulled onto the teacher's by ``W * sum((mu - mu_teacher)^2)``. With
photo-like images to train on and their plain renders as twins, E learns to read a photograph as the
plain model reads the plain picture, against the G those codes were fitted to.
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
    mu_teacher: torch.Tensor | None = None,
) -> dict[str, float]:
    """One E step against the fixed ``G`` (eval mode, see :func:`fix_decoder`): ``alpha1 * KL +
    alpha2 * rec(G(z), shapes)`` with ``z`` drawn from E's Gaussian by the noise ``eps``; with
    ``mu_teacher``, plus ``cfg.distill * sum((mu - mu_teacher)^2)`` averaged over the batch."""
    if G.training or any(p.requires_grad for p in G.parameters()):
        raise ValueError("the encoder-only step needs G fixed: eval mode, no trainable parameter (fix_decoder)")
    mu, logvar = E(images)
    extra = None if mu_teacher is None else (mu - mu_teacher).pow(2).sum(1).mean()
    return e_update(mu, logvar, G(reparameterize(mu, logvar, eps=eps)), shapes, opt_e, cfg, rec_loss, extra)


def e_update(mu, logvar, recon, shapes, opt_e, cfg, rec_loss, teacher_sq: torch.Tensor | None = None) -> dict[str, float]:
    """E's update (step 2 of the three, and the encoder-only step): ``alpha1 * KL(mu, logvar) + alpha2 *
    rec_loss(recon, shapes)`` (plus ``cfg.distill * teacher_sq`` when given) backward, then ``opt_e``
    steps; E's statistics (``teacher_rmse``: the root mean square of mu - mu_teacher per latent)."""
    kl = kl_divergence(mu, logvar).mean()
    rec = rec_loss(recon, shapes)
    loss = cfg.alpha1 * kl + cfg.alpha2 * rec
    if teacher_sq is not None:
        loss = loss + cfg.distill * teacher_sq
    opt_e.zero_grad(set_to_none=True)
    loss.backward()
    opt_e.step()
    out = dict(loss_e=loss.item(), kl=kl.item(), recon=rec.item(), recon_iou=iou_torch(recon.detach(), shapes).mean().item())
    if teacher_sq is not None:
        out["teacher_rmse"] = float(np.sqrt(teacher_sq.item() / mu.shape[1]))
    return out


def load_teacher(init_from: str, device: torch.device) -> nn.Module:
    """``--distill``'s teacher: the E of ``init_from`` as reconstruction reads it, frozen in eval mode."""
    from gan3d.reconstruct import load_reconstructor

    E, _, _ = load_reconstructor(init_from, device=device)
    return E.eval().requires_grad_(False)


def twin_rows(data: Any, teacher: Any, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows`` of the paired folder ``data``, the row of the paired folder ``teacher`` that shows
    the same shape (``shape_index``) from the same view (``view``, at the same azimuth and elevation); a
    Gan3dError naming ``teacher`` if it is made from another voxel file, shows one of them twice, lacks one,
    or numbers its views at other angles."""
    if Path(teacher.dataset_path).resolve() != Path(data.dataset_path).resolve():
        raise Gan3dError(f"its shapes are {teacher.dataset_path}, not the training pairs' {data.dataset_path}", teacher.folder)
    width = int(max(data.view.max(initial=0), teacher.view.max(initial=0))) + 1
    keys = teacher.shape_index.astype(np.int64) * width + teacher.view
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    if len(sorted_keys) > 1 and (np.diff(sorted_keys) == 0).any():
        raise Gan3dError("shows one shape from one view twice: the teacher's twin of an image must be one picture", teacher.folder)
    want = data.shape_index[rows].astype(np.int64) * width + data.view[rows]
    at = np.clip(np.searchsorted(sorted_keys, want), 0, max(len(sorted_keys) - 1, 0))
    missing = np.flatnonzero(sorted_keys[at] != want) if len(sorted_keys) else np.arange(len(want))
    if len(missing):
        r = int(rows[missing[0]])
        raise Gan3dError(f"has no picture of shape {int(data.shape_index[r])} from view {int(data.view[r])} "
                         f"({len(missing)} training images lack a twin)", teacher.folder)
    twins = order[at]
    off = np.flatnonzero((teacher.azimuth[twins] != data.azimuth[rows]) | (teacher.elevation[twins] != data.elevation[rows]))
    if len(off):
        r, t = int(rows[off[0]]), int(twins[off[0]])
        raise Gan3dError(f"its view {int(teacher.view[t])} is at azimuth {teacher.azimuth[t]:g}, elevation {teacher.elevation[t]:g}, "
                         f"the training pairs' at {data.azimuth[r]:g}, {data.elevation[r]:g}: render both with the same views", teacher.folder)
    return twins


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
