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
   that batch was <= ``d_gate`` (0.8), as in the 3D-GAN (:func:`gan3d.training.gated_d_update`).
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

Like :func:`gan3d.training.training_loop`, every random draw of step ``s`` comes from generators
seeded by ``(seed, s)``, so a run stopped at step k and resumed equals an uninterrupted one (exactly
in deterministic CPU mode).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from gan3d import __version__
from gan3d import checkpoint as ckpt
from gan3d.data.pairs import PairedData
from gan3d.errors import Gan3dError
from gan3d.models.encoder import (
    EncoderConfig,
    ImageEncoder,
    init_encoder,
    kl_divergence,
    reparameterize,
)
from gan3d.models.gan import (
    Discriminator,
    Generator,
    build,
    recalibrate_batchnorm,
    with_resolution,
)
from gan3d.presets import get as get_preset
from gan3d.presets import get_encoder_preset
from gan3d.runtime import pick_device, set_determinism, step_generator
from gan3d.train.batching import batch_indices
from gan3d.train.config import VAEGANConfig
from gan3d.train.losses import (
    draw_instance_noise,
    g_loss,
    gated_d_update,
    reconstruction_loss,
)
from gan3d.train.runfolder import LoopIO, RunLog, TrainResult, make_run_dir, write_json
from gan3d.train.state import _count as _count
from gan3d.train.state import _plain_state, _rng_state, _set_rng_state, open_resume
from gan3d.voxels import iou_torch


@contextlib.contextmanager
def _keep_buffers(*modules: nn.Module) -> Iterator[None]:
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
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """No gradients for the modules' parameters and their buffers restored on exit."""
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        m.requires_grad_(False)
    try:
        with _keep_buffers(*modules):
            yield
    finally:
        for m, fl in zip(modules, flags):
            for p, f in zip(m.parameters(), fl):
                p.requires_grad_(f)


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
) -> dict[str, float]:
    """One 3D-VAE-GAN step on images (N,3,S,S), their shapes (N,1,R,R,R), prior latents (N,z) and
    the reparameterisation noise (N,z). ``cfg`` supplies ``alpha1``, ``alpha2``, ``d_gate`` and
    ``loss`` (a VAEGANConfig). ``phases`` runs a subset (tests check each phase alone).
    ``noise``: instance noise (two tensors shaped like ``shapes``) added to D's real and fake inputs,
    in the D phase and in G's adversarial term.

    With all three phases and ``fused`` (the default) the step computes the same updates with fewer
    passes: G is not changed by the D and E phases, so ``G(z_prior)`` of the D phase is the one the
    G phase needs, and ``G(E(y))`` of the E phase is the G phase's reconstruction (E's latents of step
    2 are those the G phase holds fixed). One backward pass of
    ``alpha1 * KL + alpha2 * rec + adv`` then gives E exactly its step-2 gradient (``adv`` does not
    depend on E) and G exactly its step-3 gradient (KL does not depend on G): two G forward and two
    backward passes instead of four forward and three backward.
    """
    if fused and set(phases) == {"d", "e", "g"}:
        return _fused_step(E, G, D, opt_e, opt_g, opt_d, images, shapes, z_prior, eps, cfg, noise)
    st: dict[str, float] = {}
    if "d" in phases:
        with _frozen(G), torch.no_grad():
            fake = G(z_prior)
        st.update(_d_phase(D, opt_d, shapes, fake, cfg, noise))

    z_enc = None
    if "e" in phases:
        mu, logvar = E(images)
        z_enc = reparameterize(mu, logvar, eps=eps)
    elif "g" in phases:  # the G phase alone must not change E (not even its BatchNorm statistics)
        with _frozen(E), torch.no_grad():
            z_enc = reparameterize(*E(images), eps=eps)
    if "e" in phases:
        with _frozen(G):  # G's statistics are restored after the backward pass, which reads them
            recon = G(z_enc)
            kl = kl_divergence(mu, logvar).mean()
            rec = reconstruction_loss(recon, shapes, cfg.recon_loss)
            loss_e = cfg.alpha1 * kl + cfg.alpha2 * rec
            opt_e.zero_grad(set_to_none=True)
            loss_e.backward()
            opt_e.step()
        st.update(loss_e=loss_e.item(), kl=kl.item(), recon=rec.item(), recon_iou=_shape_ious(recon, shapes).mean().item())

    if "g" in phases:
        with _frozen(D, E):
            z_fixed = z_enc.detach()
            fake = G(z_prior)
            adv = g_loss(cfg.loss, D(fake if noise is None else fake + noise[1]))
            rec_g = reconstruction_loss(G(z_fixed), shapes, cfg.recon_loss)
            loss_g = adv + cfg.alpha2 * rec_g
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        st.update(loss_g=loss_g.item(), loss_g_adv=adv.item(), recon_g=rec_g.item())
    return st


def _d_phase(D, opt_d, shapes, fake, cfg, noise) -> dict[str, float]:
    """Step 1: D on real shapes and (detached) fakes, stepped only if its batch accuracy <= the gate."""
    fake = fake.detach()
    loss_d, acc_real, acc_fake, d_acc, d_updated = gated_d_update(
        D, opt_d, shapes if noise is None else shapes + noise[0], fake if noise is None else fake + noise[1], loss=cfg.loss, d_gate=cfg.d_gate
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
def _shape_ious(recon: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
    """IoU at 0.5 of each reconstruction (N, 1, R, R, R) with its shape: (N,) (:func:`gan3d.voxels.iou_torch`: 1 when both are empty)."""
    return iou_torch(recon, shapes)


def _fused_step(E, G, D, opt_e, opt_g, opt_d, images, shapes, z_prior, eps, cfg, noise) -> dict[str, float]:
    """The three phases with shared passes (see :func:`vaegan_step`); same updates, same statistics."""
    fake = G(z_prior)  # kept with its graph for G's adversarial term
    st = _d_phase(D, opt_d, shapes, fake, cfg, noise)
    mu, logvar = E(images)
    z_enc = reparameterize(mu, logvar, eps=eps)
    recon = G(z_enc)
    kl = kl_divergence(mu, logvar).mean()
    rec = reconstruction_loss(recon, shapes, cfg.recon_loss)
    with _frozen(D):  # D's running statistics are restored after the backward pass
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
        recon_iou=_shape_ious(recon, shapes).mean().item(),
        loss_g=adv.item() + cfg.alpha2 * rec.item(),
        loss_g_adv=adv.item(),
        recon_g=rec.item(),
    )
    return st


def _new_run_dir(cfg: VAEGANConfig) -> Path:
    return make_run_dir(cfg.out, cfg.run_name, f"vaegan-{Path(cfg.pairs).name or 'pairs'}")


def _models_for(cfg: VAEGANConfig, data: PairedData, log_lines: list[str]):
    """(model config, G, D) freshly built or loaded from ``init_from``; G's resolution must be the data's."""
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
        if "D" in init:
            ckpt.load_state(D, init["D"], "discriminator", cfg.init_from)
            log_lines.append(f"G and D initialised from {cfg.init_from} (step {init.get('step', '?')})")
        else:
            log_lines.append(f"G initialised from {cfg.init_from}; it has no D, so D starts fresh")
    return mcfg, G, D


def train_vaegan(
    cfg: VAEGANConfig,
    *,
    resume: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    quiet: bool = True,
    on_stats: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a 3D-VAE-GAN as ``cfg`` says, in a new run folder or (``resume``: a run folder or its
    ``checkpoint.pt``) in an existing one, whose saved config is used (``cfg.steps`` may extend it).
    ``stop_after`` ends the call once that many steps have run in total. Ctrl-C saves and returns."""
    state = None
    if resume is not None:
        state, ckpt_path, cfg = open_resume(
            resume, cfg, kind="vaegan-train", config_key="vaegan_config", what="not a 3D-VAE-GAN training checkpoint (kind 'vaegan-train')"
        )
        run = ckpt_path.parent
    if not cfg.pairs:
        raise Gan3dError("no paired image/shape folder given")
    set_determinism(cfg.deterministic)
    device = pick_device(cfg.device)
    data = PairedData(cfg.pairs)
    train_rows = data.rows(0)
    test_rows = data.rows(1)
    if len(train_rows) < cfg.batch_size:
        raise Gan3dError(f"the paired folder has {len(train_rows)} training pairs, fewer than one batch of {cfg.batch_size}", cfg.pairs)

    torch.manual_seed(cfg.seed)
    notes: list[str] = []
    if state is None:
        mcfg, G, D = _models_for(cfg, data, notes)
        ecfg = get_encoder_preset(cfg.encoder)
        if ecfg.z_dim != mcfg.z_dim:
            notes.append(f"encoder z_dim {ecfg.z_dim} -> {mcfg.z_dim} to match G")
            ecfg = ecfg.with_z_dim(mcfg.z_dim)
    else:
        mcfg = ckpt.model_config(state, ckpt_path)
        ecfg = EncoderConfig.from_dict(state["encoder_config"])
        G, D = Generator(mcfg), Discriminator(mcfg)
    if mcfg.resolution != data.resolution:
        raise Gan3dError(f"model is {mcfg.resolution}^3 but the paired shapes are {data.resolution}^3", cfg.pairs)
    E = ImageEncoder(ecfg)
    init_encoder(E)
    E.to(device), G.to(device), D.to(device)
    memfmt = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    G.to(memory_format=memfmt), D.to(memory_format=memfmt)
    betas = (cfg.beta1, cfg.beta2)
    opt_e = torch.optim.Adam(E.parameters(), lr=cfg.lr_e, betas=betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas)
    step = 0
    if state is None:
        run = _new_run_dir(cfg)
    log = RunLog(run, quiet=quiet)
    if state is not None:
        ckpt.load_state(E, state["E"], "encoder", ckpt_path)
        ckpt.load_state(G, state["G"], "generator", ckpt_path)
        ckpt.load_state(D, state["D"], "discriminator", ckpt_path)
        opt_e.load_state_dict(state["opt_e"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        _set_rng_state(state["rng"])
        step = int(state["step"])
        log(f"resumed {ckpt_path} at step {step}")
    else:
        write_json(
            run / "config.json",
            {"gan3d_version": __version__, "vaegan": cfg.to_dict(), "model": mcfg.to_dict(), "encoder": ecfg.to_dict()},
        )
        log(f"gan3d {__version__}: 3D-VAE-GAN run folder {run}")
        for line in notes:
            log(line)
        log(f"encoder {cfg.encoder} {ecfg.to_dict()} paddings {list(ecfg.paddings)} sizes {ecfg.spatial_sizes()}")
        log(f"model {mcfg.to_dict()}; E {_count(E):,}, G {_count(G):,}, D {_count(D):,} params")
        log(f"pairs {cfg.pairs}: {len(train_rows)} train, {len(test_rows)} test, {data.image_size} px images, {data.resolution}^3 shapes; device {device}")

    preview_rows = _spread(test_rows if len(test_rows) else train_rows, cfg.n_preview)
    eval_rows = _spread(test_rows, cfg.eval_pairs)
    bn_rows = _spread(train_rows, cfg.bn_samples)

    def payload_common() -> dict:
        return dict(model_config=mcfg.to_dict(), encoder_config=ecfg.to_dict(), vaegan_config=cfg.to_dict(), step=step)

    def save_checkpoint() -> None:
        ckpt.save(
            run / "checkpoint.pt",
            dict(
                kind="vaegan-train",
                **payload_common(),
                E=_plain_state(E),
                G=_plain_state(G),
                D=_plain_state(D),
                opt_e=opt_e.state_dict(),
                opt_g=opt_g.state_dict(),
                opt_d=opt_d.state_dict(),
                rng=_rng_state(),
            ),
        )

    def eval_models() -> tuple[ImageEncoder, Generator]:
        """Copies of E and G in eval mode with BatchNorm statistics re-estimated: E's on training
        images, G's on prior latents, as the 3D-GAN loop does (training state untouched)."""
        e_eval, g_eval = copy.deepcopy(E).eval(), copy.deepcopy(G).eval()
        if len(bn_rows):
            bs = cfg.batch_size
            recalibrate_batchnorm(e_eval, (data.batch(bn_rows[i : i + bs], ecfg.image_size)[0].to(device) for i in range(0, len(bn_rows), bs)))
            z_bn = torch.randn(len(bn_rows), mcfg.z_dim, generator=step_generator(cfg.seed, step, 5)).to(device)
            recalibrate_batchnorm(g_eval, z_bn, batch_size=bs)
        return e_eval, g_eval

    def snapshot() -> dict:
        save_checkpoint()
        e_eval, g_eval = eval_models()
        ckpt.save(run / "snapshot.pt", dict(kind="vaegan-snapshot", **payload_common(), E=_plain_state(e_eval), G=_plain_state(g_eval), D=_plain_state(D)))
        extra: dict = {}
        with torch.no_grad():
            if len(eval_rows):
                ious = []
                for i in range(0, len(eval_rows), cfg.batch_size):
                    img, shp = data.batch(eval_rows[i : i + cfg.batch_size], ecfg.image_size)
                    ious.append(_shape_ious(g_eval(e_eval(img.to(device))[0]).cpu(), shp).numpy())
                extra["test_iou"] = round(float(np.concatenate(ious).mean()), 4)
            if len(preview_rows):
                from gan3d.render.raster import render_voxels, save_png, tile

                img, shp = data.batch(preview_rows, ecfg.image_size)
                rec = g_eval(e_eval(img.to(device))[0]).squeeze(1).cpu().numpy()
                size = 96
                pics = []
                for k in range(len(preview_rows)):
                    raw = np.asarray(data.images[int(preview_rows[k])])
                    pics += [_resize_rgb(raw, size), render_voxels(shp[k, 0].numpy(), size=size), render_voxels(rec[k], size=size)]
                save_png(tile(pics, ncols=3), run / f"recon_{step:06d}.png")
        if extra:
            log(json.dumps({"step": step, **extra}))
        return extra

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    keys = ("loss_d", "d_acc", "d_updated", "loss_e", "kl", "recon", "recon_iou", "loss_g", "loss_g_adv", "fake_occupancy")
    window: list[dict] = []
    t_window = time.perf_counter()
    interrupted = False
    with LoopIO(run, log, total=cfg.steps, start=step, progress=progress, quiet=quiet, on_stats=on_stats) as io:
        while step < end:
            if io.stop_requested:
                interrupted = True
                break
            pos, epoch = batch_indices(len(train_rows), cfg.batch_size, cfg.seed, step)
            img, shp = data.batch(train_rows[pos], ecfg.image_size)
            img, shp = img.to(device), shp.to(device).contiguous(memory_format=memfmt)
            z_prior = torch.randn(cfg.batch_size, mcfg.z_dim, generator=step_generator(cfg.seed, step, 1)).to(device)
            eps = torch.randn(cfg.batch_size, mcfg.z_dim, generator=step_generator(cfg.seed, step, 2)).to(device)
            noise = draw_instance_noise(cfg, step, tuple(shp.shape), stream=3)
            if noise is not None:
                noise = tuple(n.to(device).contiguous(memory_format=memfmt) for n in noise)
            st = vaegan_step(E, G, D, opt_e, opt_g, opt_d, img, shp, z_prior, eps, cfg, noise=noise)
            if not all(math.isfinite(st[k]) for k in ("loss_d", "loss_e", "loss_g")):
                raise Gan3dError(
                    f"training diverged at step {step}: {', '.join(f'{k} = {st[k]}' for k in ('loss_d', 'loss_e', 'loss_g'))}; "
                    f"the last good checkpoint is kept in {run / 'checkpoint.pt'}"
                )
            step += 1
            window.append(st)
            io.tick()
            if step % cfg.log_every == 0 or step == end:
                dt = time.perf_counter() - t_window
                rec = dict(step=step, epoch=epoch)
                rec.update({k: round(float(np.mean([w[k] for w in window])), 5) for k in keys})
                rec["samples_per_s"] = round(len(window) * cfg.batch_size / dt, 2)
                rec["time"] = round(time.time(), 1)
                io.record(rec, dict(kl=rec["kl"], iou=rec["recon_iou"], d_acc=rec["d_acc"]))
                window = []
                t_window = time.perf_counter()
            if step % cfg.snapshot_every == 0 or step == cfg.steps:
                snapshot()
    return io.finish(step=step, end=end, steps=cfg.steps, snapshot_every=cfg.snapshot_every, interrupted=interrupted, snapshot=snapshot)


def _spread(rows: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``rows``, evenly spaced (the test split is ordered by class, so its first
    rows would all be one class)."""
    if n <= 0 or len(rows) == 0:
        return rows[:0]
    if n >= len(rows):
        return rows
    return rows[np.linspace(0, len(rows) - 1, n).round().astype(np.int64)]


def _resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((size, size), Image.BILINEAR))
