"""3D-GAN training: one plain ``training_loop(cfg)`` that the CLI and the tests both call.

A step is two explicit phases, each with only its own module trainable:

1. **D phase**: score a batch of real shapes and ``G(z)``; record D's accuracy on that batch
   (real scored > 0, fake scored < 0 in logit terms). D is updated only if that recorded accuracy is
   at most ``d_gate`` (the paper's 80% rule); the statistic ``d_updated`` says whether it was.
2. **G phase**: D's parameters are frozen; G is updated to make D call the same fakes real.

Every random draw of step ``s`` comes from generators seeded by ``(seed, s)`` (batch order from
``(seed, epoch)``), so a run stopped at step k and resumed reaches the same weights at step n as
one that never stopped (exactly so in deterministic CPU mode).

The run itself (folder, resume, statistics, snapshots, Ctrl-C) is the one training loop of
:mod:`gan3d.train.loop`; :class:`GanTask` is what it needs to know about the 3D-GAN.

**Data-parallel training.** Under ``torchrun --nproc_per_node=W`` (``WORLD_SIZE`` = W > 1) the same
loop trains one run with W processes (:mod:`gan3d.train.distributed`). The batch stays ``batch_size``
shapes: every process draws the step's whole batch (indices, latents, noise) exactly as a single
process would and keeps its own contiguous ``batch_size / W`` of it (:func:`draw_batch`). G and D are
wrapped in DistributedDataParallel, which averages gradients over the processes; the checkpoints
hold the plain modules, so they load and resume with any number of processes. D's gate reads the
accuracy on the whole batch (summed over the processes), so every process takes the same decision.
BatchNorm statistics stay per process (no SyncBatchNorm), as do D's minibatch-std groups and the
mode-seeking pairs. Rank 0 alone writes the run folder and shows progress; its statistics are
means over the processes. With ``WORLD_SIZE`` unset or 1 nothing of this runs.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from gan3d import __version__
from gan3d import checkpoint as ckpt
from gan3d.data.prepared import load
from gan3d.errors import Gan3dError
from gan3d.models.gan import (
    Discriminator,
    Generator,
    build,
    layer_summary,
    recalibrate_batchnorm,
    with_resolution,
)
from gan3d.runtime import draw_latents, step_generator
from gan3d.train import diffaug, distributed
from gan3d.train.batching import (
    draw_batch,
    eval_reference,
    load_training_data,
)
from gan3d.train.config import TrainConfig, model_config_for
from gan3d.train.losses import (
    contrastive_loss,
    fragment_term,
    g_loss,
    gated_d_update,
    mode_seeking_term,
    noise_std,
    rotation_loss,
    straight_through_binarize,
)
from gan3d.train.state import _count as _count
from gan3d.train.state import _plain_state


def gan_step(
    G: Generator,
    D: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    *,
    loss: str = "bce",
    d_gate: float = 0.8,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    hard_fakes: bool = False,
    mode_seeking: float = 0.0,
    augment: "tuple[diffaug.Draw, diffaug.Draw] | None" = None,
    sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rotation: "tuple[float, float, torch.Tensor, torch.Tensor] | None" = None,
    r1: float = 0.0,
    fragment: float = 0.0,
    fragment_join: int = 0,
    contrast: "tuple[float, float, diffaug.Draw, diffaug.Draw] | None" = None,
) -> dict[str, float]:
    """One training step on real shapes (N, 1, R, R, R) and latents (N, z_dim); returns statistics.

    D phase: D scores ``real`` and ``G(z)`` (detached); its accuracy on this batch is recorded, and
    D is stepped only if that accuracy is <= ``d_gate``. G phase: D frozen, G stepped on the
    generator loss for the same fakes (reusing the forward pass of the D phase).
    ``noise``: instance noise (two tensors shaped like ``real``) added to D's real and fake inputs.
    ``mode_seeking``: weight of the mode-seeking term of Mao et al. 2019 (MSGAN) in G's loss, which
    grows when two latents of the batch give similar shapes (0 = off, the paper).
    ``hard_fakes``: D sees ``G(z) >= 0.5`` as exact 0/1, like the real grids, with the gradient passed
    straight through to G's soft output; D can then no longer tell fakes by their soft values.
    ``augment``: DiffAugment draws for the reals and the fakes (:mod:`gan3d.train.diffaug`), applied
    before the noise; G's gradient passes through the fakes' transform.
    ``rotation``: (D's weight, G's weight, turns of the reals, turns of the fakes) of the
    self-supervised rotation task (Chen et al. 2019): D learns to tell which quarter turn about the up
    axis each real shape was given, every step (:func:`gated_d_update`'s ``extra``), and G's loss gains
    the same task on its (turned) fakes, so that G makes shapes whose orientation D can read. Both
    see the shapes as D's adversarial part does, augmented, without instance noise. Single process only.
    ``r1``: weight gamma of the R1 gradient penalty on D's real inputs (as D sees them: augmented,
    noise added), in every D update (:func:`gated_d_update`); the statistic ``r1`` is its value, 0 on
    steps whose gate was shut. Single process only.
    ``fragment``: weight of :func:`gan3d.train.losses.fragment_term` in G's loss, which pushes the
    voxels of G's output that lie outside its largest connected component below 0.5 (0 = off, the
    paper), or joins the pieces within ``fragment_join`` empty voxels of it; the statistic
    ``fragments`` is the share of filled voxels outside, before the step.
    ``contrast``: (weight, temperature, draws of view a, draws of view b) of D's contrastive task
    (:func:`gan3d.train.losses.contrastive_loss`) on two augmented views of the reals as they come,
    before DiffAugment and noise; like the rotation task it is stepped every time, gate open or shut,
    and G's loss does not see it. The statistic ``contrast_acc`` is the share of views that found
    their partner. Single process only.

    Data-parallel use: ``G`` and ``D`` wrapped in DistributedDataParallel, ``real`` and ``z`` this
    rank's share of the batch, and ``sum_over_ranks`` a function that sums a small tensor over all
    ranks (:func:`gan3d.distributed.all_sum`). D's accuracy, and so the gate's decision, is then that
    of the whole batch and the same on every rank. The G phase calls the plain D module, so that D's
    gradient reducer takes no part in it.
    """
    contrast_extra, contrast_acc = None, 0.0
    if contrast is not None:
        contrast_extra, contrast_acc = contrastive_loss(D, diffaug.apply(real, contrast[2]), diffaug.apply(real, contrast[3]), contrast[1])
        contrast_extra = contrast[0] * contrast_extra
    fake = G(z)
    fake_in = straight_through_binarize(fake) if hard_fakes else fake
    if augment is not None:
        layout = torch.channels_last_3d if real.is_contiguous(memory_format=torch.channels_last_3d) else torch.contiguous_format
        real = diffaug.apply(real, augment[0]).contiguous(memory_format=layout)
        fake_in = diffaug.apply(fake_in, augment[1]).contiguous(memory_format=layout)
    fake_clean = fake_in
    extra, rot_acc = None, 0.0
    if rotation is not None:
        extra, rot_acc = rotation_loss(D, real, rotation[2])
        extra = rotation[0] * extra
    if contrast_extra is not None:
        extra = contrast_extra if extra is None else extra + contrast_extra
    if noise is not None:
        fake_in = fake_in + noise[1]
    loss_d, acc_real, acc_fake, d_acc, d_updated, r1_value = gated_d_update(
        D, opt_d, real if noise is None else real + noise[0], fake_in.detach(), loss=loss, d_gate=d_gate, sum_over_ranks=sum_over_ranks,
        extra=extra, r1=r1,
    )

    D_plain = D.module if isinstance(D, DistributedDataParallel) else D
    D_plain.requires_grad_(False)
    try:
        loss_g = g_loss(loss, D_plain(fake_in))
        if mode_seeking > 0:
            loss_g = loss_g + mode_seeking * mode_seeking_term(fake, z)
        if rotation is not None and rotation[1] > 0:
            loss_g = loss_g + rotation[1] * rotation_loss(D_plain, fake_clean, rotation[3])[0]
        if fragment > 0:
            term, fragment_share = fragment_term(fake, fragment_join)
            loss_g = loss_g + fragment * term
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    finally:
        D_plain.requires_grad_(True)
    with torch.no_grad():
        fake_occupancy = (fake.detach() >= 0.5).float().mean().item()
    return dict(
        loss_d=loss_d.item(),
        loss_g=loss_g.item(),
        acc_real=acc_real,
        acc_fake=acc_fake,
        d_acc=d_acc,
        d_updated=d_updated,
        fake_occupancy=fake_occupancy,
        **({} if rotation is None else {"rot_acc": rot_acc}),
        **({} if r1 <= 0 else {"r1": r1_value}),
        **({} if fragment <= 0 else {"fragments": fragment_share}),
        **({} if contrast is None else {"contrast_acc": contrast_acc}),
    )




class GanTask:
    """What the training loop (:mod:`gan3d.train.loop`) needs to train a 3D-GAN."""

    kind = "train"  # the training checkpoint's kind
    config_type = TrainConfig
    config_key = "train_config"  # the config's key in the checkpoint
    config_json_key = "train"  # and in config.json
    not_resumable = "not a training checkpoint (a sampling snapshot cannot be resumed)"
    finite_keys = ("loss_d", "loss_g")  # a non-finite value stops the run
    rank_keys = ("loss_d", "loss_g", "fake_occupancy", "real_occupancy")  # per-process values, averaged over the processes
    stat_keys = ("loss_d", "loss_g", "acc_real", "acc_fake", "d_acc", "d_updated", "fake_occupancy", "real_occupancy")
    digits = (5, 5, 4, 4, 4, 4, 5, 5)

    def __init__(self, cfg: TrainConfig, *, device: torch.device, shard: slice, state: dict | None, ckpt_path: Path | None):
        self.cfg, self.device, self.shard = cfg, device, shard
        mcfg = model_config_for(cfg)
        self.init = None
        if state is not None:
            mcfg = ckpt.model_config(state, ckpt_path)
        elif cfg.init_from:
            given = [flag for flag, on in (("--width", cfg.width != 1.0), ("--d-width", cfg.d_width != 1.0),
                                           ("--minibatch-std", cfg.minibatch_std is not None), ("--g-output", bool(cfg.g_output)),
                                           ("--g-upsample", bool(cfg.g_upsample)), ("--d-norm", bool(cfg.d_norm))) if on]
            if given:
                raise Gan3dError(f"{', '.join(given)} cannot change a model that --init-from starts from "
                                 f"(its architecture is used): leave {'it' if len(given) == 1 else 'them'} out")
            self.init = ckpt.load(cfg.init_from)
            if self.init.get("kind") not in ("train", "snapshot"):
                raise Gan3dError(f"--init-from needs a 3D-GAN checkpoint or snapshot, not kind {self.init.get('kind')!r}", cfg.init_from)
            mcfg = dataclasses.replace(ckpt.model_config(self.init, cfg.init_from), rotation_head=cfg.rotation_loss > 0,
                                       contrast_head=cfg.contrastive > 0)
        elif cfg.resolution:
            mcfg = with_resolution(mcfg, cfg.resolution)
        self.full = None if cfg.data == "builtin" else load(cfg.data)  # loaded once: training and test views
        self.data = load_training_data(cfg, mcfg.resolution, self.full)
        if state is None and not cfg.resolution and self.data.resolution != mcfg.resolution:
            mcfg = with_resolution(mcfg, self.data.resolution)  # sizes that come from the data are read from it
        if self.data.resolution != mcfg.resolution:
            raise Gan3dError(
                f"dataset is {self.data.resolution}^3 but the model is {mcfg.resolution}^3 "
                f"(prepare the data with --resolution {mcfg.resolution}, or train with --resolution {self.data.resolution})",
                cfg.data,
            )
        self.mcfg = mcfg
        if cfg.rotation_loss > 0:  # the rotation task's accuracy on the reals joins the statistics
            self.stat_keys, self.digits = (*self.stat_keys, "rot_acc"), (*self.digits, 4)
        if cfg.r1 > 0:  # the R1 penalty's value (0 on steps whose gate was shut)
            self.stat_keys, self.digits = (*self.stat_keys, "r1"), (*self.digits, 5)
        if cfg.fragment_loss > 0:  # share of the training G's filled voxels outside its largest component
            self.stat_keys, self.digits = (*self.stat_keys, "fragments"), (*self.digits, 5)
        if cfg.contrastive > 0:  # share of the contrastive task's views that found their partner
            self.stat_keys, self.digits = (*self.stat_keys, "contrast_acc"), (*self.digits, 4)
        self.memfmt = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format

    def label(self) -> str:
        """The run folder's name after its number."""
        cfg = self.cfg
        return f"{cfg.preset}-{'builtin' if cfg.data == 'builtin' else Path(cfg.data).stem}"

    def build(self) -> None:
        """G, D and their optimizers (the global torch seed is set by the loop)."""
        cfg = self.cfg
        self.G, self.D = build(self.mcfg)
        self.G.to(self.device)
        self.D.to(self.device)
        if cfg.channels_last:
            self.G.to(memory_format=torch.channels_last_3d)
            self.D.to(memory_format=torch.channels_last_3d)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.G_step, self.D_step = self.G, self.D  # what the steps call: the plain modules, or their DDP wrappers
        self.sum_over_ranks = None
        if self.init is not None:
            self._load_init()
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if cfg.ema > 0 else None
        if self.G_ema is not None and self.init is not None and "G_ema" in self.init:
            ckpt.load_state(self.G_ema, self.init["G_ema"], "generator (moving average)", self.cfg.init_from)

    def _load_init(self) -> None:
        """G and D from ``--init-from`` (D's rotation and contrastive heads, which the checkpoint may lack, kept fresh)."""
        init, where = self.init, self.cfg.init_from
        ckpt.load_state(self.G, init["G"], "generator", where)
        if "D" not in init:
            raise Gan3dError("--init-from has no discriminator weights (a 3D-GAN's checkpoint or snapshot has)", where)
        heads = ("rotation.", "contrast.")
        fresh = {k: v for k, v in self.D.state_dict().items() if k.startswith(heads)}
        kept = {k: v for k, v in init["D"].items() if not k.startswith(heads)}
        ckpt.load_state(self.D, {**kept, **fresh}, "discriminator", where)

    def load(self, state: dict, path: Path) -> None:
        ckpt.load_state(self.G, state["G"], "generator", path)
        ckpt.load_state(self.D, state["D"], "discriminator", path)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.G_ema is not None:
            ckpt.load_state(self.G_ema, state["G_ema"], "generator (moving average)", path)

    def wrap(self, data_parallel: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        if self.cfg.rotation_loss > 0:
            raise Gan3dError("--rotation-loss trains in a single process only (not under torchrun)")
        if self.cfg.contrastive > 0:
            raise Gan3dError("--contrastive trains in a single process only (not under torchrun)")
        if self.cfg.r1 > 0:  # DistributedDataParallel does not reduce gradients taken by a double backward
            raise Gan3dError("--r1 trains in a single process only (not under torchrun)")
        self.G_step, self.D_step = data_parallel(self.G), data_parallel(self.D)
        self.sum_over_ranks = distributed.all_sum

    def config_json(self) -> dict:
        return {"train": self.cfg.to_dict(), "model": self.mcfg.to_dict()}

    def header(self, run: Path) -> list[str]:
        """Log lines of a new run (and its reals.png)."""
        cfg, data, device = self.cfg, self.data, self.device
        lines = [
            f"gan3d {__version__}: run folder {run}",
            *([f"G and D initialised from {cfg.init_from} (its step {self.init.get('step', '?')}); optimizers and step count fresh"]
              if self.init is not None else []),
            f"model {cfg.preset} {self.mcfg.to_dict()}  G {_count(self.G):,} params, D {_count(self.D):,} params",
            f"data {cfg.data}: {len(data)} training shapes at {data.resolution}^3; device {device}",
        ]
        lines += ["  " + line for line in layer_summary(self.G, self.D, device)]
        _save_reals(run, data, cfg)
        return lines

    def start(self, run: Path, log: Callable[[str], None], *, main: bool, resumed: bool) -> None:
        """Fixed latents of the preview picture and of the in-training evaluation."""
        cfg, mcfg = self.cfg, self.mcfg
        self.z_preview = torch.cat([draw_latents(1, mcfg.z_dim, cfg.z_dist, torch.Generator().manual_seed(s)) for s in range(cfg.n_preview)])
        self.eval_ref = None
        if cfg.eval_every and main:
            self.eval_ref, name = eval_reference(cfg, self.data, cfg.eval_samples, self.full)
            self.z_eval = draw_latents(cfg.eval_samples, mcfg.z_dim, cfg.z_dist, torch.Generator().manual_seed(cfg.seed + 12345))
            if not resumed:
                log(f"evaluation every {cfg.eval_every} steps: {cfg.eval_samples} samples against {len(self.eval_ref)} {name} shapes")

    def step(self, step: int) -> tuple[dict, int]:
        """One step on this process's share of step ``step``'s batch: (statistics, epoch)."""
        cfg, device = self.cfg, self.device
        batch = draw_batch(cfg, self.data, self.mcfg.z_dim, step, self.shard)
        real = torch.from_numpy(np.ascontiguousarray(batch.real)).unsqueeze(1).to(device).contiguous(memory_format=self.memfmt)
        noise = None
        if batch.noise is not None:
            noise = tuple(n.to(device).contiguous(memory_format=self.memfmt) for n in batch.noise)
        augment = self._draw_pair(cfg.diffaugment, step, 7) if cfg.diffaugment else None
        rotation = None
        if cfg.rotation_loss > 0:
            turns = torch.randint(0, 4, (2, cfg.batch_size), generator=step_generator(cfg.seed, step, 8))[:, self.shard]
            rotation = (cfg.rotation_loss, cfg.rotation_loss_g, turns[0], turns[1])
        contrast = None
        if cfg.contrastive > 0:
            contrast = (cfg.contrastive, cfg.contrastive_temperature, *self._draw_pair(cfg.contrastive_views, step, 9))
        st = gan_step(
            self.G_step, self.D_step, self.opt_g, self.opt_d, real, batch.z.to(device), loss=cfg.loss, d_gate=cfg.d_gate, noise=noise,
            hard_fakes=cfg.hard_fakes, mode_seeking=cfg.mode_seeking, augment=augment, sum_over_ranks=self.sum_over_ranks,
            rotation=rotation, r1=cfg.r1, fragment=cfg.fragment_loss, fragment_join=cfg.fragment_join, contrast=contrast,
        )
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay(cfg.ema, step))
        st["d_updated"] = float(st["d_updated"])
        st["real_occupancy"] = float(batch.real.mean())
        return st, batch.epoch

    def _draw_pair(self, ops: tuple[str, ...], step: int, stream: int) -> "tuple[diffaug.Draw, diffaug.Draw]":
        """Two batches' draws of the augmentations ``ops`` at the ``--diffaugment-*`` sizes, from step
        ``step``'s generator ``stream``, this process's rows: (reals, fakes) for DiffAugment, the two
        views for the contrastive task."""
        cfg, gen = self.cfg, step_generator(self.cfg.seed, step, stream)
        return tuple(
            diffaug.draw(ops, cfg.batch_size, self.mcfg.resolution, gen, translate=cfg.diffaugment_translate,
                         cutout=cfg.diffaugment_cutout, scale=cfg.diffaugment_scale).rows(self.shard)
            for _ in range(2)
        )

    def summarize(self, window: list[dict], step: int, samples_per_s: float) -> dict:
        """The statistics line's values: means over the steps since the last line."""
        m = np.mean([tuple(w[k] for k in self.stat_keys) for w in window], axis=0)
        rec = {k: round(float(v), d) for k, v, d in zip(self.stat_keys, m, self.digits)}
        rec["samples_per_s"] = round(samples_per_s, 2)
        rec["instance_noise"] = round(noise_std(self.cfg, step), 5)
        return rec

    def postfix(self, rec: dict) -> dict:
        return dict(smp_s=rec["samples_per_s"], d_acc=rec["d_acc"], occ=rec["fake_occupancy"])

    def evaluate(self, step: int, end: int) -> dict:
        """In-training generation metrics when they are due (``eval_every``), else nothing."""
        cfg = self.cfg
        if not (cfg.eval_every and (step % cfg.eval_every == 0 or step == end)):
            return {}
        from gan3d.eval.registry import EVALS

        return EVALS["quick_generation"](self.eval_generator(step), self.z_eval.to(self.device), self.eval_ref)

    def eval_generator(self, step: int) -> Generator:
        """A copy of G in eval mode with BatchNorm statistics re-estimated (training state untouched)."""
        cfg = self.cfg
        g_eval = copy.deepcopy(self.G if self.G_ema is None else self.G_ema)
        z_bn = draw_latents(cfg.bn_samples, self.mcfg.z_dim, cfg.z_dist, step_generator(cfg.seed, step, 5)).to(self.device)
        recalibrate_batchnorm(g_eval, z_bn)
        return g_eval.requires_grad_(True)

    def checkpoint_payload(self, step: int) -> dict:
        """checkpoint.pt's content but the RNG state (which the loop adds)."""
        return dict(
            kind="train",
            model_config=self.mcfg.to_dict(),
            train_config=self.cfg.to_dict(),
            G=_plain_state(self.G),
            D=_plain_state(self.D),
            opt_g=self.opt_g.state_dict(),
            opt_d=self.opt_d.state_dict(),
            step=step,
            epoch=step // max(1, len(self.data) // self.cfg.batch_size),
            **({} if self.G_ema is None else {"G_ema": _plain_state(self.G_ema)}),
        )

    def snapshot(self, run: Path, step: int, log: Callable[[str], None]) -> Path:
        """snapshot.pt (G with BatchNorm re-estimated, D) and the picture of the preview latents (its path)."""
        from gan3d.render.raster import render_grid_png
        from gan3d.train.state import save_checkpoint

        g_eval = self.eval_generator(step)
        save_checkpoint(
            run / "snapshot.pt",
            dict(kind="snapshot", model_config=self.mcfg.to_dict(), train_config=self.cfg.to_dict(), G=_plain_state(g_eval), D=_plain_state(self.D), step=step),
        )
        with torch.no_grad():
            grids = g_eval(self.z_preview.to(self.device)).squeeze(1).float().cpu().numpy()
        render_grid_png(grids, run / f"samples_{step:06d}.png", size=96)
        return run / f"samples_{step:06d}.png"


def ema_decay(decay: float, step: int) -> float:
    """The moving average's decay at ``step`` (0-based): ``decay``, but lower while the run is young,
    ``min(decay, (1 + step) / (10 + step))``, so that the random initial weights are soon forgotten."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(avg: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """avg <- decay * avg + (1 - decay) * model for the weights; buffers (BatchNorm statistics) copied."""
    for a, p in zip(avg.parameters(), model.parameters()):
        a.lerp_(p.detach(), 1.0 - decay)
    for a, b in zip(avg.buffers(), model.buffers()):
        a.copy_(b)


def _save_reals(run: Path, data, cfg: TrainConfig) -> None:
    """Render a fixed handful of training shapes once, for comparison with the samples."""
    from gan3d.render.raster import render_grid_png

    rng = np.random.default_rng([cfg.seed, 99])
    idx = np.sort(rng.choice(len(data), size=min(cfg.n_preview, len(data)), replace=False))
    render_grid_png(data.grids(idx), run / "reals.png", size=96)
