"""The GAN and 3D-VAE-GAN losses, instance noise, and the paper's gated D update.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F

from gan3d.runtime import step_generator

LOSSES = ("bce", "hinge", "lsgan")


Z_DISTS = ("uniform", "normal")


def noise_std(cfg: Any, step: int) -> float:
    """Instance-noise std at ``step``: constant, or linear decay to 0 over ``noise_decay_steps``."""
    if cfg.instance_noise <= 0:
        return 0.0
    if cfg.noise_decay_steps <= 0:
        return cfg.instance_noise
    return cfg.instance_noise * max(0.0, 1.0 - step / cfg.noise_decay_steps)


def draw_instance_noise(cfg: Any, step: int, shape: tuple[int, ...], *, stream: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Instance noise for D's real and fake inputs at ``step``: two float32 CPU tensors of ``shape``
    with std :func:`noise_std`, drawn from the step's generator ``stream``; None when the noise is off.
    ``cfg`` needs ``seed``, ``instance_noise`` and ``noise_decay_steps``."""
    sigma = noise_std(cfg, step)
    if sigma <= 0:
        return None
    gen = step_generator(cfg.seed, step, stream)
    return tuple(sigma * torch.randn(shape, generator=gen) for _ in range(2))


def d_loss(loss: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on logits (N,). ``bce`` is the paper's cross-entropy."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
    if loss == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return ((real_logits - 1) ** 2).mean() + (fake_logits**2).mean()


def g_loss(loss: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss on D's logits for G(z): non-saturating BCE, hinge or least squares."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if loss == "hinge":
        return -fake_logits.mean()
    return ((fake_logits - 1) ** 2).mean()


def gated_d_update(
    D: torch.nn.Module,
    opt_d: torch.optim.Optimizer,
    real_in: torch.Tensor,
    fake_in: torch.Tensor,
    *,
    loss: str,
    d_gate: float,
    sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
    extra: torch.Tensor | None = None,
    r1: float = 0.0,
) -> "DStep":
    """The paper's D step: score ``real_in`` and ``fake_in`` (detached, noise already added), and step
    D only if its accuracy on this batch was <= ``d_gate``. Returns a :class:`DStep` (loss_d,
    acc_real, acc_fake, d_acc, d_updated, r1). ``sum_over_ranks``: see :func:`gan_step`; the accuracy is then the whole
    batch's over all ranks. ``extra``: a non-adversarial loss of D's (the rotation task), stepped
    every time: with the adversarial loss when the gate is open, alone when it is shut.
    ``r1``: weight gamma of the R1 penalty (:func:`r1_penalty`) on ``real_in``, added to D's loss
    when D is stepped (only then is its double backward paid); the returned ``r1`` is the penalty's
    value, gamma/2 included, or 0 when it was not computed."""
    if r1 > 0:
        real_in = real_in.detach().requires_grad_(True)
    real_logits = D(real_in)
    fake_logits = D(fake_in)
    loss_d = d_loss(loss, real_logits, fake_logits)
    if sum_over_ranks is None:
        acc_real = (real_logits > 0).float().mean().item()
        acc_fake = (fake_logits < 0).float().mean().item()
    else:  # counts of right calls and of shapes, summed over the ranks: exact, the same everywhere
        right = torch.stack([(real_logits > 0).sum(), (fake_logits < 0).sum()]).cpu().double()
        total = sum_over_ranks(torch.cat([right, torch.tensor([len(real_logits), len(fake_logits)], dtype=torch.float64)]))
        acc_real, acc_fake = float(total[0] / total[2]), float(total[1] / total[3])
    d_acc = 0.5 * (acc_real + acc_fake)
    d_updated = d_acc <= d_gate
    penalty = None
    if d_updated and r1 > 0:
        penalty = 0.5 * r1 * r1_penalty(real_logits, real_in)
    if d_updated or extra is not None:
        opt_d.zero_grad(set_to_none=True)
        total = loss_d if extra is None else (loss_d + extra if d_updated else extra)
        if penalty is not None:
            total = total + penalty
        total.backward()
        opt_d.step()
    return DStep(loss_d, acc_real, acc_fake, d_acc, d_updated, 0.0 if penalty is None else penalty.item())


class DStep(NamedTuple):
    """What one gated D step did (:func:`gated_d_update`)."""

    loss_d: torch.Tensor
    acc_real: float
    acc_fake: float
    d_acc: float
    d_updated: bool
    r1: float


def r1_penalty(real_logits: torch.Tensor, real_in: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder, Geiger and Nowozin 2018): the mean over the batch of the squared norm of D's
    gradient with respect to its real inputs, ``E |grad_x D(x)|^2``, kept differentiable in D's
    weights (``real_in`` must require grad and ``real_logits`` be ``D(real_in)``). It pushes D
    towards a flat response around the data, which keeps it from separating reals from fakes by
    sharp, voxel-level cues."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def rotate_quarter(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Shapes ``x`` (N, 1, X, Y, Z), shape ``n`` turned by ``k[n]`` quarter turns (0..3) about the up
    (z) axis, counter-clockwise seen from above; differentiable in ``x``."""
    turns = torch.stack([torch.rot90(x, int(t), dims=(2, 3)) for t in range(4)])  # (4, N, 1, X, Y, Z)
    return turns[k.to(x.device), torch.arange(x.shape[0], device=x.device)]


def rotation_loss(D: torch.nn.Module, x: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy of D's rotation head on ``x`` turned by ``k`` (SS-GAN's task), and its accuracy."""
    logits = D.rotation_logits(rotate_quarter(x, k))
    k = k.to(logits.device)
    return F.cross_entropy(logits, k), (logits.argmax(dim=1) == k).float().mean().item()


def contrastive_loss(D: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> tuple[torch.Tensor, float]:
    """SimCLR's NT-Xent (Chen et al. 2020) on D's projection head, as ContraD (Jeong and Shin 2021)
    trains a GAN's D: ``a`` and ``b`` are two augmented views of the same N shapes, embedded in one
    forward pass (so BatchNorm sees both); each of the 2N embeddings must pick its partner out of the
    other 2N - 1 by cosine similarity / ``temperature``. Returns (loss, share of the 2N whose nearest
    other embedding is the partner)."""
    n = a.shape[0]
    e = D.contrast_embedding(torch.cat([a, b]))
    sim = (e @ e.t()) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, partner), (sim.argmax(dim=1) == partner).float().mean().item()


def mode_seeking_term(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term: 1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps) over the batch split in halves.
    It is large when different latents give the same shape, so minimising it fights mode collapse."""
    h = fake.shape[0] // 2
    if h == 0:
        return fake.new_zeros(())
    ratio = (fake[:h] - fake[h : 2 * h]).abs().mean() / (z[:h] - z[h : 2 * h]).abs().mean()
    return 1.0 / (ratio + eps)


def fragment_term(fake: torch.Tensor, join: int = 0) -> tuple[torch.Tensor, float]:
    """G's loss on its own loose pieces: (term, share of filled voxels outside the largest component).

    Each fake (N, 1, R, R, R) is thresholded at 0.5 and cut into 26-connected components, as sampling
    cuts it (:func:`gan3d.voxels.largest_component_batch`). With ``join`` = 0, every filled voxel
    outside the largest component is pushed below 0.5 by a binary cross-entropy towards empty,
    ``-log(1 - p)``. With ``join`` = k > 0, a piece at most k empty voxels from the largest component
    is joined to it instead: the empty voxels on the straight line across the gap are pushed above
    0.5, ``-log p``; farther pieces are pushed below as before (:func:`gan3d.voxels.fragment_masks`).
    Each shape's sum is divided by its filled-voxel count; the term is the mean over the batch. The
    masks are fixed (no gradient through the labelling), and the term vanishes once a shape is one
    piece. The share is the fragment statistic that ``eval generation`` reports, on this batch's
    training G.
    """
    from gan3d.voxels import fragment_masks

    with torch.no_grad():
        filled = fake.detach() >= 0.5
        outside, drop, bridge = (torch.from_numpy(m).unsqueeze(1).to(fake.device) for m in fragment_masks(filled[:, 0].cpu().numpy(), join))
        n_filled = filled.flatten(1).sum(1).clamp(min=1)
        share = float((outside.flatten(1).sum(1) / n_filled).mean())
    if not bool(drop.any() or bridge.any()):
        return fake.sum() * 0.0, share  # zero, and still part of the graph
    per_voxel = -torch.log1p(-fake.clamp(max=1 - _EPS)) * drop - torch.log(fake.clamp(min=_EPS)) * bridge
    term = per_voxel.flatten(1).sum(1) / n_filled
    return term.mean(), share


def straight_through_binarize(x: torch.Tensor) -> torch.Tensor:
    """``x >= 0.5`` as 0/1 in the forward pass; identity gradient in the backward pass."""
    hard = (x >= 0.5).to(x.dtype)
    return hard + (x - x.detach())


RECON_LOSSES = ("l2", "bce", "wbce", "focal")


_EPS = 1e-6  # G's sigmoid can reach 0 or 1 in float32


def reconstruction_loss(recon: torch.Tensor, shapes: torch.Tensor, kind: str = "l2", *, pos_weight: float = 1.0,
                        gamma: float = 2.0) -> torch.Tensor:
    """Per-voxel error summed over voxels, averaged over the batch, of G's occupancy probabilities
    ``q`` against the 0/1 shapes ``t``:

    * ``l2`` (the paper's): ``(q - t)^2``. Through G's sigmoid its gradient on the logit is
      ``2 (q - t) q (1 - q)``, which vanishes as ``q -> 0``: a thin part that G has let fall to
      near-empty gets almost no push back.
    * ``bce``: ``-(t log q + (1 - t) log(1 - q))``; gradient on the logit ``q - t``.
    * ``wbce``: bce with the filled voxels' term multiplied by ``pos_weight`` (W):
      ``-(W t log q + (1 - t) log(1 - q))``. A filled voxel's gradient is W times bce's, an empty
      one's unchanged; where the target is uncertain the loss is lowest at ``q = W p / (W p + 1 - p)``
      (``p`` the chance that the voxel is filled), so ``q >= 0.5`` once ``p >= 1 / (1 + W)``.
    * ``focal`` (Lin et al. 2017, no class weight): ``-(t (1 - q)^g log q + (1 - t) q^g log(1 - q))``
      with ``g = gamma``; well-predicted voxels (most of the empty space) are scaled down by
      ``(1 - p_t)^g``, so the few badly predicted ones (thin parts at ``q < 0.5``) carry the loss.
      ``gamma = 0`` is bce.
    """
    if kind == "l2":
        per_voxel = (recon - shapes).pow(2)
    elif kind in ("bce", "wbce", "focal"):
        q = recon.clamp(_EPS, 1 - _EPS)
        pos, neg = -shapes * torch.log(q), -(1 - shapes) * torch.log1p(-q)
        if kind == "wbce":
            pos = pos_weight * pos
        elif kind == "focal":
            pos, neg = (1 - q).pow(gamma) * pos, q.pow(gamma) * neg
        per_voxel = pos + neg
    else:
        raise ValueError(f"reconstruction loss must be one of {RECON_LOSSES}, got {kind!r}")
    return per_voxel.reshape(recon.shape[0], -1).sum(dim=1).mean()


def inverse_occupancy(occupancy: float) -> float:
    """wbce's automatic filled-voxel weight ``(1 - p) / p`` for a mean occupancy ``p``: filled and
    empty voxels then weigh the same in total."""
    if not 0.0 < occupancy < 1.0:
        raise ValueError(f"occupancy must be in (0, 1), got {occupancy}")
    return (1.0 - occupancy) / occupancy
