"""3D-VAE-GAN (Wu et al., NIPS 2016, section 3.2 and the supplement): an image encoder E in front of
the 3D-GAN's generator G, trained on (image, shape) pairs so that ``G(E(image))`` is the shape.

The encoder
-----------
The paper's E takes a 256x256 RGB image through five 2D convolutions, channels 64-128-256-512-400,
kernels 11-5-5-5-8, strides 4-2-2-2-1, with BatchNorm and ReLU between them (not after the last).
The 400 outputs at 1x1 are the mean (200) and log-variance (200) of a Gaussian over z. Paddings
(not given in the paper) are ``ceil((k - s) / 2)`` for each strided layer and 0 for the last one,
which for the paper's layers gives **4-2-2-2-0** and halves the size exactly at every stride-2
layer: 256 -> 64 -> 32 -> 16 -> 8 -> 1. ``EncoderConfig.paddings`` computes them for any preset and
the config checks that the last layer's output is 1x1.

Training (the supplement's three alternating steps, each with only its own module trainable)
--------------------------------------------------------------------------------------------
1. **D**: scores real shapes ``x`` and ``G(z)``, ``z ~ N(0, I)``; stepped only if its accuracy on
   that batch was <= ``d_gate`` (0.8), as in the 3D-GAN (:func:`gan3d.train.losses.gated_d_update`).
2. **E**: ``alpha1 * KL(q(z|y) || N(0, I)) + alpha2 * ||G(E(y)) - x||^2`` with ``E(y)`` sampled by
   the reparameterisation trick.
3. **G**: ``g_loss(D(G(z)))`` (non-saturating) ``+ alpha2 * ||G(E(y)) - x||^2`` with E's latents of
   step 2 held fixed.

The reconstruction term is the squared L2 distance **summed over voxels**, averaged over the batch
(the paper's ``alpha2 = 1e-4`` only makes sense against a sum over 64^3 voxels); KL is summed over
the latent dimensions and averaged over the batch. Defaults: ``alpha1 = 5``, ``alpha2 = 1e-4``,
``d_gate = 0.8``. In a phase, the modules it does not own run in training mode (batch statistics)
but their BatchNorm running statistics are restored afterwards, so a phase changes nothing but its
own module (and its optimizer).

The run is the one training loop of :mod:`gan3d.train.loop`, driven by :class:`VaeganTask`. As for
the 3D-GAN, every random draw of step ``s`` comes from generators seeded by ``(seed, s)``, so a run
stopped at step k and resumed equals an uninterrupted one (exactly in deterministic CPU mode), and
under ``torchrun`` every process draws the whole batch and trains on its own share of it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from gan3d import __version__
from gan3d import checkpoint as ckpt
from gan3d.data.pairs import PairedData, spread
from gan3d.errors import Gan3dError
from gan3d.models.encoder import EncoderConfig, ImageEncoder, init_encoder, kl_divergence, reparameterize
from gan3d.models.gan import Discriminator, Generator, build, recalibrate_batchnorm, with_resolution
from gan3d.presets import get as get_preset
from gan3d.presets import get_encoder_preset
from gan3d.runtime import step_generator
from gan3d.train import distributed, imageaug
from gan3d.train.batching import balanced_indices, batch_indices, class_weights, mean_occupancy
from gan3d.train.config import VAEGANConfig
from gan3d.train.encoderfit import e_update, encoder_step, fix_decoder, frozen, latent_codes, latent_step, load_teacher, twin_rows
from gan3d.train.gan import ema_decay, update_ema
from gan3d.train.losses import (
    draw_instance_noise,
    g_loss,
    gated_d_update,
    inverse_occupancy,
    reconstruction_loss,
)
from gan3d.train.state import _count as _count
from gan3d.train.state import _plain_state
from gan3d.voxels import iou_torch


def vaegan_step(
    E: ImageEncoder,
    G: Generator,
    D: Discriminator,
    opt_e: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    images: torch.Tensor,
    shapes: torch.Tensor,
    z_prior: torch.Tensor,
    eps: torch.Tensor,
    cfg: Any,
    *,
    phases: tuple[str, ...] = ("d", "e", "g"),
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    fused: bool = True,
    sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pos_weight: float | None = None,
) -> dict[str, float]:
    """One 3D-VAE-GAN step on images (N,3,S,S), their shapes (N,1,R,R,R), prior latents (N,z) and
    the reparameterisation noise (N,z). ``cfg`` supplies ``alpha1``, ``alpha2``, ``d_gate`` and
    ``loss`` (a VAEGANConfig). ``phases`` runs a subset (tests check each phase alone).
    ``noise``: instance noise (two tensors shaped like ``shapes``) added to D's real and fake inputs,
    in the D phase and in G's adversarial term. ``pos_weight``: wbce's filled-voxel weight (default
    ``cfg.recon_pos_weight``; its automatic value 0 is resolved from the data by :class:`VaeganTask`).

    With all three phases and ``fused`` (the default) the step computes the same updates with fewer
    passes: G is not changed by the D and E phases, so ``G(z_prior)`` of the D phase is the one the
    G phase needs, and ``G(E(y))`` of the E phase is the G phase's reconstruction (E's latents of step
    2 are those the G phase holds fixed). One backward pass of
    ``alpha1 * KL + alpha2 * rec + adv`` then gives E exactly its step-2 gradient (``adv`` does not
    depend on E) and G exactly its step-3 gradient (KL does not depend on G): two G forward and two
    backward passes instead of four forward and three backward.

    Data-parallel use (fused step only): ``E``, ``G`` and ``D`` wrapped in DistributedDataParallel,
    the tensors this rank's share of the batch, ``sum_over_ranks`` as in
    :func:`gan3d.train.gan.gan_step` (D's gate then reads the whole batch). The one backward pass
    reaches every parameter of E and G exactly once (G's two forward passes feed the same gradient
    accumulators), so their reducers average the gradient of the whole batch's loss; the
    adversarial term calls the plain D, whose reducer takes no part in it.
    """
    rec_loss = _recon_loss(cfg, pos_weight)
    if fused and set(phases) == {"d", "e", "g"}:
        return _fused_step(E, G, D, opt_e, opt_g, opt_d, images, shapes, z_prior, eps, cfg, noise, sum_over_ranks, rec_loss)
    if sum_over_ranks is not None:
        raise ValueError("data-parallel training runs the fused step (all three phases) only")
    st: dict[str, float] = {}
    if "d" in phases:
        with frozen(G), torch.no_grad():
            fake = G(z_prior)
        st.update(_d_phase(D, opt_d, shapes, fake, cfg, noise))

    z_enc = None
    if "e" in phases:
        mu, logvar = E(images)
        z_enc = reparameterize(mu, logvar, eps=eps)
    elif "g" in phases:  # the G phase alone must not change E (not even its BatchNorm statistics)
        with frozen(E), torch.no_grad():
            z_enc = reparameterize(*E(images), eps=eps)
    if "e" in phases:
        with frozen(G):  # G's statistics are restored after the backward pass, which reads them
            st.update(e_update(mu, logvar, G(z_enc), shapes, opt_e, cfg, rec_loss))

    if "g" in phases:
        with frozen(D, E):
            z_fixed = z_enc.detach()
            fake = G(z_prior)
            adv = g_loss(cfg.loss, D(fake if noise is None else fake + noise[1]))
            rec_g = rec_loss(G(z_fixed), shapes)
            loss_g = adv + cfg.alpha2 * rec_g
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        st.update(loss_g=loss_g.item(), loss_g_adv=adv.item(), recon_g=rec_g.item())
    return st


def _recon_loss(cfg: Any, pos_weight: float | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The reconstruction loss ``cfg`` asks for, as ``loss(recon, shapes)``."""
    w = getattr(cfg, "recon_pos_weight", 0.0) if pos_weight is None else float(pos_weight)
    if cfg.recon_loss == "wbce" and not w > 0:
        raise ValueError("wbce needs a filled-voxel weight > 0 (VaeganTask resolves the automatic one from its data)")
    gamma = getattr(cfg, "recon_focal_gamma", 2.0)
    return lambda recon, shapes: reconstruction_loss(recon, shapes, cfg.recon_loss, pos_weight=w, gamma=gamma)


def _d_phase(D, opt_d, shapes, fake, cfg, noise, sum_over_ranks=None) -> dict[str, float]:
    """Step 1: D on real shapes and (detached) fakes, stepped only if its batch accuracy <= the gate."""
    fake = fake.detach()
    loss_d, acc_real, acc_fake, d_acc, d_updated, _ = gated_d_update(
        D, opt_d, shapes if noise is None else shapes + noise[0], fake if noise is None else fake + noise[1], loss=cfg.loss, d_gate=cfg.d_gate,
        sum_over_ranks=sum_over_ranks,
    )
    return dict(
        loss_d=loss_d.item(),
        acc_real=acc_real,
        acc_fake=acc_fake,
        d_acc=d_acc,
        d_updated=float(d_updated),
        fake_occupancy=(fake >= 0.5).float().mean().item(),
    )


@torch.no_grad()
def shape_ious(recon: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
    """IoU at 0.5 of each reconstruction (N, 1, R, R, R) with its shape: (N,), by the one IoU rule
    (:func:`gan3d.voxels.iou_torch`: 1 when both are empty). The 3D-VAE-GAN's training statistic and
    its snapshots' held-out IoU both use it."""
    return iou_torch(recon, shapes)


def _fused_step(E, G, D, opt_e, opt_g, opt_d, images, shapes, z_prior, eps, cfg, noise, sum_over_ranks, rec_loss) -> dict[str, float]:
    """The three phases with shared passes (see :func:`vaegan_step`); same updates, same statistics."""
    fake = G(z_prior)  # kept with its graph for G's adversarial term
    st = _d_phase(D, opt_d, shapes, fake, cfg, noise, sum_over_ranks)
    D = distributed.plain(D)
    mu, logvar = E(images)
    z_enc = reparameterize(mu, logvar, eps=eps)
    recon = G(z_enc)
    kl = kl_divergence(mu, logvar).mean()
    rec = rec_loss(recon, shapes)
    with frozen(D):  # D's running statistics are restored after the backward pass
        adv = g_loss(cfg.loss, D(fake if noise is None else fake + noise[1]))
        total = cfg.alpha1 * kl + cfg.alpha2 * rec + adv
        opt_e.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        total.backward()
    opt_e.step()
    opt_g.step()
    loss_e = cfg.alpha1 * kl.item() + cfg.alpha2 * rec.item()
    st.update(
        loss_e=loss_e,
        kl=kl.item(),
        recon=rec.item(),
        recon_iou=shape_ious(recon, shapes).mean().item(),
        loss_g=adv.item() + cfg.alpha2 * rec.item(),
        loss_g_adv=adv.item(),
        recon_g=rec.item(),
    )
    return st


def _models_for(cfg: VAEGANConfig, data: PairedData, log_lines: list[str]):
    """(model config, G, D, the ``init_from`` dict or None) freshly built or loaded from ``init_from``;
    G's resolution must be the data's."""
    init = None
    if cfg.init_from:
        init = ckpt.load(cfg.init_from)
        mcfg = ckpt.model_config(init, cfg.init_from)
        if mcfg.resolution != data.resolution:
            raise Gan3dError(
                f"the 3D-GAN is {mcfg.resolution}^3 but the paired shapes are {data.resolution}^3 "
                f"(make the pairs from a {mcfg.resolution}^3 dataset)",
                cfg.init_from,
            )
    else:
        mcfg = get_preset(cfg.preset).model
        if mcfg.resolution != data.resolution:
            mcfg = with_resolution(mcfg, data.resolution)
    G, D = build(mcfg)
    if init is not None:
        ckpt.load_state(G, init["G"], "generator", cfg.init_from)
        if "D" in init and not cfg.fresh_d:
            ckpt.load_state(D, init["D"], "discriminator", cfg.init_from)
            log_lines.append(f"G and D initialised from {cfg.init_from} (step {init.get('step', '?')})")
        else:
            if "D" in init:
                why = "has its D left out (--fresh-d)"
            else:
                why = "was shipped without D" if "D" in (init.get("omitted") or ()) else "has no D"
            log_lines.append(f"G initialised from {cfg.init_from}; it {why}, so D starts fresh")
    return mcfg, G, D, init




class VaeganTask:
    """What the training loop (:mod:`gan3d.train.loop`) needs to train a 3D-VAE-GAN."""

    kind = "vaegan-train"
    config_type = VAEGANConfig
    config_key = "vaegan_config"
    config_json_key = "vaegan"
    not_resumable = "not a 3D-VAE-GAN training checkpoint (kind 'vaegan-train')"
    finite_keys = ("loss_d", "loss_e", "loss_g")
    stat_keys = ("loss_d", "d_acc", "d_updated", "loss_e", "kl", "recon", "recon_iou", "loss_g", "loss_g_adv", "fake_occupancy")
    # per-process values, averaged over the processes (D's accuracy and gate are the whole batch's already)
    rank_keys = ("loss_d", "loss_e", "kl", "recon", "recon_iou", "loss_g", "loss_g_adv", "recon_g", "fake_occupancy")

    def __init__(self, cfg: VAEGANConfig, *, device: torch.device, shard: slice, state: dict | None, ckpt_path: Path | None):
        if not cfg.pairs:
            raise Gan3dError("no paired image/shape folder given")
        self.cfg, self.device, self.shard, self.state, self.ckpt_path = cfg, device, shard, state, ckpt_path
        self.data = PairedData(cfg.pairs)
        # --classes: one class (or a few) of the pairs, as the paper's separately trained models
        self.train_rows, self.test_rows = self.data.rows(0, cfg.classes), self.data.rows(1, cfg.classes)
        if len(self.train_rows) < cfg.batch_size:
            of = f" of {', '.join(cfg.classes)}" if cfg.classes else ""
            raise Gan3dError(f"the paired folder has {len(self.train_rows)} training pairs{of}, fewer than one batch of {cfg.batch_size}", cfg.pairs)
        self.memfmt = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
        self.train_labels = self.data.label[self.train_rows]
        self.pos_weight, self.occupancy = cfg.recon_pos_weight, None
        if cfg.recon_loss == "wbce" and not cfg.recon_pos_weight:  # the batches' mean occupancy, as drawn
            weights = class_weights(self.train_labels) if cfg.balance_classes else None
            self.occupancy = mean_occupancy(self.data.dataset, self.data.shape_index[self.train_rows], weights)
            if not 0 < self.occupancy < 1:
                raise Gan3dError(f"the training shapes have occupancy {self.occupancy:g}: give --recon-pos-weight for wbce", cfg.pairs)
            self.pos_weight = min(inverse_occupancy(self.occupancy), 1e4)
        if cfg.encoder_only:  # E's statistics only: there is no D or G step
            self.finite_keys = ("loss_e",)
            self.stat_keys = self.rank_keys = ("loss_e", "kl", "recon", "recon_iou") + (("code_rmse",) if cfg.latent_targets else ()) \
                + (("teacher_rmse",) if cfg.distill else ())
        if cfg.distill:  # --distill: the teacher's picture of each training image, and the teacher
            self.teacher_data = PairedData(cfg.distill_pairs)
            self.twins = twin_rows(self.data, self.teacher_data, self.train_rows)
            self.teacher = load_teacher(cfg.init_from, device)

    def label(self) -> str:
        return f"vaegan-{Path(self.cfg.pairs).name or 'pairs'}"

    def build(self) -> None:
        """E, G, D and their optimizers: G and D new or from ``init_from`` (the global torch seed is set by the loop)."""
        cfg, data, state = self.cfg, self.data, self.state
        self.notes: list[str] = []
        if cfg.balance_classes:
            names, counts = self.data.class_names, np.unique(self.train_labels, return_counts=True)
            per = ", ".join(f"{names[c] if c < len(names) else c} {n}" for c, n in zip(*counts))
            self.notes.append(f"class-balanced batches: each class drawn with chance 1/{len(counts[0])} (training pairs: {per})")
        if self.occupancy is not None:
            self.notes.append(f"wbce: filled voxels weighted {self.pos_weight:.4g} = (1 - p) / p, p = {self.occupancy:.4g} the training shapes' mean occupancy")
        init_e = None
        if state is None:
            mcfg, G, D, init = _models_for(cfg, data, self.notes)
            if init is not None and "E" in init and "encoder_config" in init:  # a 3D-VAE-GAN: its encoder too
                ecfg, init_e = EncoderConfig.from_dict(init["encoder_config"]), init["E"]
            else:
                ecfg = get_encoder_preset(cfg.encoder)
            if ecfg.z_dim != mcfg.z_dim:
                self.notes.append(f"encoder z_dim {ecfg.z_dim} -> {mcfg.z_dim} to match G")
                ecfg = ecfg.with_z_dim(mcfg.z_dim)
        else:
            mcfg = ckpt.model_config(state, self.ckpt_path)
            ecfg = EncoderConfig.from_dict(state["encoder_config"])
            G, D = Generator(mcfg), Discriminator(mcfg)
        if mcfg.resolution != data.resolution:
            raise Gan3dError(f"model is {mcfg.resolution}^3 but the paired shapes are {data.resolution}^3", cfg.pairs)
        E = ImageEncoder(ecfg)
        init_encoder(E)
        if init_e is not None:
            ckpt.load_state(E, init_e, "encoder", cfg.init_from)
            self.notes.append(f"E initialised from {cfg.init_from} (its encoder, not --encoder {cfg.encoder})")
        E.to(self.device), G.to(self.device), D.to(self.device)
        G.to(memory_format=self.memfmt), D.to(memory_format=self.memfmt)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_e = torch.optim.Adam(E.parameters(), lr=cfg.lr_e, betas=betas)
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas)
        self.mcfg, self.ecfg, self.E, self.G, self.D = mcfg, ecfg, E, G, D
        if cfg.encoder_only:
            fix_decoder(G)
            if cfg.latent_targets:  # each training pair's code, in train_rows order
                self.codes = latent_codes(cfg.latent_targets, data.shape_index[self.train_rows], mcfg.z_dim)
            self.notes.append(f"--encoder-only: E trained against G of {cfg.init_from} held fixed in eval mode; D unused"
                              + (f"; --distill {cfg.distill:g}: its E, frozen, reads each image's twin in {cfg.distill_pairs}" if cfg.distill else ""))
        # --ema: moving averages of E's and G's weights, which snapshots (so evaluation and shipping) use
        self.E_ema, self.G_ema = (copy.deepcopy(E).requires_grad_(False), copy.deepcopy(G).requires_grad_(False)) if cfg.ema else (None, None)
        self.E_step, self.G_step, self.D_step = E, G, D  # what the steps call: the plain modules, or their DDP wrappers
        self.sum_over_ranks = None

    def load(self, state: dict, path: Path) -> None:
        ckpt.load_state(self.E, state["E"], "encoder", path)
        ckpt.load_state(self.G, state["G"], "generator", path)
        ckpt.load_state(self.D, state["D"], "discriminator", path)
        self.opt_e.load_state_dict(state["opt_e"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.E_ema is not None:
            ckpt.load_state(self.E_ema, state["E_ema"], "encoder (moving average)", path)
            ckpt.load_state(self.G_ema, state["G_ema"], "generator (moving average)", path)

    def wrap(self, data_parallel: Callable[[nn.Module], nn.Module]) -> None:
        if self.cfg.encoder_only:  # G and D take no step: only E's gradients are averaged
            self.E_step = data_parallel(self.E)
            return
        self.E_step, self.G_step, self.D_step = data_parallel(self.E), data_parallel(self.G), data_parallel(self.D)
        self.sum_over_ranks = distributed.all_sum

    def config_json(self) -> dict:
        return {"vaegan": self.cfg.to_dict(), "model": self.mcfg.to_dict(), "encoder": self.ecfg.to_dict()}

    def header(self, run: Path) -> list[str]:
        cfg, ecfg, data = self.cfg, self.ecfg, self.data
        return [
            f"gan3d {__version__}: 3D-VAE-GAN run folder {run}",
            *self.notes,
            f"encoder {cfg.encoder} {ecfg.to_dict()} paddings {list(ecfg.paddings)} sizes {ecfg.spatial_sizes()}",
            f"model {self.mcfg.to_dict()}; E {_count(self.E):,}, G {_count(self.G):,}, D {_count(self.D):,} params",
            f"pairs {cfg.pairs}{' (' + ', '.join(cfg.classes) + ' only)' if cfg.classes else ''}: "
            f"{len(self.train_rows)} train, {len(self.test_rows)} test, {data.image_size} px images, "
            f"{data.resolution}^3 shapes; device {self.device}",
        ]

    def start(self, run: Path, log: Callable[[str], None], *, main: bool, resumed: bool) -> None:
        cfg, test_rows = self.cfg, self.test_rows
        self.preview_rows = spread(test_rows if len(test_rows) else self.train_rows, cfg.n_preview)
        self.eval_rows = spread(test_rows, cfg.eval_pairs)
        self.bn_rows = spread(self.train_rows, cfg.bn_samples)

    def step(self, step: int) -> tuple[dict, int]:
        """One step on this process's share of step ``step``'s batch: (statistics, epoch)."""
        cfg, device, shard, z_dim = self.cfg, self.device, self.shard, self.mcfg.z_dim
        if cfg.balance_classes:
            pos, epoch = balanced_indices(self.train_labels, cfg.batch_size, cfg.seed, step)
        else:
            pos, epoch = batch_indices(len(self.train_rows), cfg.batch_size, cfg.seed, step)
        img, shp = self.data.batch(self.train_rows[pos[shard]], self.ecfg.image_size)
        img, shp = img.to(device), shp.to(device).contiguous(memory_format=self.memfmt)
        if cfg.image_augment:
            img = imageaug.apply(cfg.image_augment, img, imageaug.draw(cfg.batch_size, step_generator(cfg.seed, step, 4)).rows(shard))

        def draw(stream: int) -> torch.Tensor:  # latents of the step's own stream, this process's share
            return torch.randn(cfg.batch_size, z_dim, generator=step_generator(cfg.seed, step, stream))[shard].to(device)

        if cfg.latent_targets:  # E's mean regressed onto the shapes' inverted codes
            st = latent_step(self.E_step, self.G, self.opt_e, img, shp, self.codes[pos[shard]].to(device), _recon_loss(cfg, self.pos_weight))
        elif cfg.encoder_only:  # E's step alone: no prior latents or instance noise (each stream is its own, so no other draw moves)
            eps = draw(2) if cfg.encoder_only_z == "sample" else torch.zeros(len(img), z_dim, device=device)  # mean: z = E's mean
            mu_t = None
            if cfg.distill:
                with torch.no_grad():
                    mu_t = self.teacher(self.teacher_data.batch(self.twins[pos[shard]], self.teacher.cfg.image_size)[0].to(device))[0]
            st = encoder_step(self.E_step, self.G, self.opt_e, img, shp, eps, cfg, _recon_loss(cfg, self.pos_weight), mu_t)
        else:
            noise = draw_instance_noise(cfg, step, (cfg.batch_size, *shp.shape[1:]), stream=3)
            if noise is not None:
                noise = tuple(n[shard].to(device).contiguous(memory_format=self.memfmt) for n in noise)
            st = vaegan_step(self.E_step, self.G_step, self.D_step, self.opt_e, self.opt_g, self.opt_d, img, shp, draw(1), draw(2), cfg,
                             noise=noise, sum_over_ranks=self.sum_over_ranks, pos_weight=self.pos_weight)
        if self.E_ema is not None:
            update_ema(self.E_ema, self.E, ema_decay(cfg.ema, step))
            update_ema(self.G_ema, self.G, ema_decay(cfg.ema, step))
        return st, epoch

    def summarize(self, window: list[dict], step: int, samples_per_s: float) -> dict:
        rec = {k: round(float(np.mean([w[k] for w in window])), 5) for k in self.stat_keys}
        rec["samples_per_s"] = round(samples_per_s, 2)
        return rec

    def postfix(self, rec: dict) -> dict:
        return dict(kl=rec["kl"], iou=rec["recon_iou"], **({} if self.cfg.encoder_only else {"d_acc": rec["d_acc"]}))

    def evaluate(self, step: int, end: int) -> dict:
        return {}

    def _common(self, step: int) -> dict:
        return dict(model_config=self.mcfg.to_dict(), encoder_config=self.ecfg.to_dict(), vaegan_config=self.cfg.to_dict(), step=step)

    def checkpoint_payload(self, step: int) -> dict:
        """checkpoint.pt's content but the RNG state (which the loop adds)."""
        return dict(
            kind="vaegan-train", **self._common(step), E=_plain_state(self.E), G=_plain_state(self.G), D=_plain_state(self.D),
            opt_e=self.opt_e.state_dict(), opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict(),
            **({} if self.E_ema is None else {"E_ema": _plain_state(self.E_ema), "G_ema": _plain_state(self.G_ema)}),
        )

    def eval_models(self, step: int) -> tuple[ImageEncoder, Generator]:
        """Copies of E and G in eval mode with BatchNorm statistics re-estimated: E's on training
        images, G's on prior latents, as the 3D-GAN loop does (training state untouched)."""
        cfg, bn_rows, device = self.cfg, self.bn_rows, self.device
        e_eval, g_eval = (copy.deepcopy(m).eval() for m in ((self.E, self.G) if self.E_ema is None else (self.E_ema, self.G_ema)))
        if len(bn_rows):
            bs, size = cfg.batch_size, self.ecfg.image_size
            recalibrate_batchnorm(e_eval, (self.data.batch(bn_rows[i : i + bs], size)[0].to(device) for i in range(0, len(bn_rows), bs)))
            if not cfg.encoder_only:  # a fixed G keeps the statistics E was fitted to
                z_bn = torch.randn(len(bn_rows), self.mcfg.z_dim, generator=step_generator(cfg.seed, step, 5)).to(device)
                recalibrate_batchnorm(g_eval, z_bn, batch_size=bs)
        return e_eval, g_eval

    def snapshot(self, run: Path, step: int, log: Callable[[str], None]) -> Path | None:
        """snapshot.pt (E and G with BatchNorm re-estimated, D), the held-out IoU and the preview
        picture (its path; None without preview pairs)."""
        from gan3d.train.state import save_checkpoint

        e_eval, g_eval = self.eval_models(step)
        save_checkpoint(run / "snapshot.pt", dict(kind="vaegan-snapshot", **self._common(step), E=_plain_state(e_eval), G=_plain_state(g_eval), D=_plain_state(self.D)))
        with torch.no_grad():
            extra = {"test_iou": self._test_iou(e_eval, g_eval)} if len(self.eval_rows) else {}
            if len(self.preview_rows):
                self._preview(e_eval, g_eval, run / f"recon_{step:06d}.png")
        if extra:
            log(json.dumps({"step": step, **extra}))
        return run / f"recon_{step:06d}.png" if len(self.preview_rows) else None

    def _test_iou(self, e_eval: ImageEncoder, g_eval: Generator) -> float:
        ious, bs = [], self.cfg.batch_size
        for i in range(0, len(self.eval_rows), bs):
            img, shp = self.data.batch(self.eval_rows[i : i + bs], self.ecfg.image_size)
            ious.append(shape_ious(g_eval(e_eval(img.to(self.device))[0]).cpu(), shp).numpy())
        return round(float(np.concatenate(ious).mean()), 4)

    def _preview(self, e_eval: ImageEncoder, g_eval: Generator, path: Path) -> None:
        """Image, true shape and reconstruction of each preview pair, one row each."""
        from gan3d.render.raster import render_voxels, save_png, tile

        img, shp = self.data.batch(self.preview_rows, self.ecfg.image_size)
        rec = g_eval(e_eval(img.to(self.device))[0]).squeeze(1).cpu().numpy()
        size, pics = 96, []
        for k in range(len(self.preview_rows)):
            raw = np.asarray(self.data.images[int(self.preview_rows[k])])
            pics += [_resize_rgb(raw, size), render_voxels(shp[k, 0].numpy(), size=size), render_voxels(rec[k], size=size)]
        save_png(tile(pics, ncols=3), path)


def _resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((size, size), Image.BILINEAR))
