"""3D-GAN training: one plain ``training_loop(cfg)`` that the CLI and the tests both call.

A step is two explicit phases, each with only its own module trainable:

1. **D phase**: score a batch of real shapes and ``G(z)``; record D's accuracy on that batch
   (real scored > 0, fake scored < 0 in logit terms). D is updated only if that recorded accuracy is
   at most ``d_gate`` (the paper's 80% rule); the statistic ``d_updated`` says whether it was.
2. **G phase**: D's parameters are frozen; G is updated to make D call the same fakes real.

Every random draw of step ``s`` comes from generators seeded by ``(seed, s)`` (batch order from
``(seed, epoch)``), so a run stopped at step k and resumed reaches the same weights at step n as
one that never stopped (exactly so in deterministic CPU mode).

**Data-parallel training.** Under ``torchrun --nproc_per_node=W`` (``WORLD_SIZE`` = W > 1) the same
loop trains one run with W processes (:mod:`gan3d.distributed`). The batch stays ``batch_size``
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
import math
import os
import time
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
from gan3d.runtime import draw_latents, pick_device, set_determinism, step_generator
from gan3d.train import distributed
from gan3d.train.batching import (
    draw_batch,
    eval_reference,
    load_training_data,
    quick_eval,
    shard_of,
)
from gan3d.train.config import TrainConfig, model_config_for
from gan3d.train.losses import (
    g_loss,
    gated_d_update,
    mode_seeking_term,
    noise_std,
    straight_through_binarize,
)
from gan3d.train.runfolder import (
    LoopIO,
    RunLog,
    TrainResult,
    _NullLog,
    new_run_dir,
    write_json,
)
from gan3d.train.state import _count as _count
from gan3d.train.state import _plain_state, _rng_state, _set_rng_state, open_resume


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
    sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
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

    Data-parallel use: ``G`` and ``D`` wrapped in DistributedDataParallel, ``real`` and ``z`` this
    rank's share of the batch, and ``sum_over_ranks`` a function that sums a small tensor over all
    ranks (:func:`gan3d.distributed.all_sum`). D's accuracy, and so the gate's decision, is then that
    of the whole batch and the same on every rank. The G phase calls the plain D module, so that D's
    gradient reducer takes no part in it.
    """
    fake = G(z)
    fake_in = straight_through_binarize(fake) if hard_fakes else fake
    if noise is not None:
        fake_in = fake_in + noise[1]
    loss_d, acc_real, acc_fake, d_acc, d_updated = gated_d_update(
        D, opt_d, real if noise is None else real + noise[0], fake_in.detach(), loss=loss, d_gate=d_gate, sum_over_ranks=sum_over_ranks
    )

    D_plain = D.module if isinstance(D, DistributedDataParallel) else D
    D_plain.requires_grad_(False)
    try:
        loss_g = g_loss(loss, D_plain(fake_in))
        if mode_seeking > 0:
            loss_g = loss_g + mode_seeking * mode_seeking_term(fake, z)
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
    )


def training_loop(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    on_stats: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a 3D-GAN as ``cfg`` says, in a new run folder or (``resume``) in an existing one.

    ``resume`` is a run folder or a training checkpoint; the run continues in that checkpoint's
    folder with its own config (``cfg`` is ignored except ``steps``, which may extend the run).
    ``stop_after`` ends this call after that many steps have run in total (tests use it to stop
    a run part-way). Ctrl-C saves a checkpoint and returns with ``interrupted=True``.

    Under ``torchrun`` with ``WORLD_SIZE`` > 1 every process calls this and they train the run
    together (see the module docstring); the process group is started here unless it is already up,
    and shut down on return if it was started here. Only rank 0's result has ``stats``.
    """
    group_was_up = distributed.initialized()
    try:
        return _training_loop(cfg, resume=resume, stop_after=stop_after, progress=progress, quiet=quiet, on_stats=on_stats)
    finally:
        if not group_was_up:
            distributed.cleanup()


def _training_loop(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None,
    stop_after: int | None,
    progress: bool,
    quiet: bool,
    on_stats: Callable[[dict], None] | None,
) -> TrainResult:
    """The body of :func:`training_loop`."""
    state = None
    if resume is not None:
        state, ckpt_path, cfg = open_resume(
            resume, cfg, kind="train", config_key="train_config", what="not a training checkpoint (a sampling snapshot cannot be resumed)"
        )
        run = ckpt_path.parent
    set_determinism(cfg.deterministic)
    ddp = distributed.launched()  # several processes under torchrun: data-parallel
    if ddp:
        shard = shard_of(cfg.batch_size, distributed.env_rank(), distributed.env_world())  # checked before any waiting
        device = distributed.init(cfg.device)
    else:
        shard = slice(None)
        device = pick_device(cfg.device)
    main = distributed.is_main() if ddp else True  # the one process that writes files, logs and shows progress

    mcfg = model_config_for(cfg)
    if state is not None:
        mcfg = ckpt.model_config(state, ckpt_path)
    elif cfg.resolution:
        mcfg = with_resolution(mcfg, cfg.resolution)
    full = None if cfg.data == "builtin" else load(cfg.data)  # loaded once: training and test views
    data = load_training_data(cfg, mcfg.resolution, full)
    if state is None and not cfg.resolution and data.resolution != mcfg.resolution:
        mcfg = with_resolution(mcfg, data.resolution)  # sizes that come from the data are read from it
    if data.resolution != mcfg.resolution:
        raise Gan3dError(
            f"dataset is {data.resolution}^3 but the model is {mcfg.resolution}^3 "
            f"(prepare the data with --resolution {mcfg.resolution}, or train with --resolution {data.resolution})",
            cfg.data,
        )

    if state is None:
        run = new_run_dir(cfg) if not ddp else _new_run_dir_on_main(cfg)
    log = RunLog(run, quiet=quiet) if main else _NullLog()
    torch.manual_seed(cfg.seed)  # the same weights on every rank (DDP also copies rank 0's when wrapping)
    G, D = build(mcfg)
    G.to(device)
    D.to(device)
    if cfg.channels_last:
        G.to(memory_format=torch.channels_last_3d)
        D.to(memory_format=torch.channels_last_3d)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    step = 0
    if state is not None:
        ckpt.load_state(G, state["G"], "generator", ckpt_path)
        ckpt.load_state(D, state["D"], "discriminator", ckpt_path)
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        _set_rng_state(state["rng"])
        step = int(state["step"])
        log(f"resumed {ckpt_path} at step {step}")
    elif main:
        processes = {"processes": distributed.world()} if ddp else {}
        write_json(run / "config.json", {"gan3d_version": __version__, "train": cfg.to_dict(), "model": mcfg.to_dict(), **processes})
        log(f"gan3d {__version__}: run folder {run}")
        log(f"model {cfg.preset} {mcfg.to_dict()}  G {_count(G):,} params, D {_count(D):,} params")
        log(f"data {cfg.data}: {len(data)} training shapes at {data.resolution}^3; device {device}")
        for line in layer_summary(G, D, device):
            log("  " + line)
        _save_reals(run, data, cfg)
    G_step, D_step = G, D  # what the steps call: the plain modules, or their DDP wrappers
    if ddp:
        G_step, D_step = _data_parallel(G, device), _data_parallel(D, device)
        log(
            f"data-parallel: {distributed.world()} processes ({torch.distributed.get_backend()}), "
            f"{shard.stop - shard.start} of each batch of {cfg.batch_size} per process; BatchNorm statistics per process"
        )

    memfmt = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    z_preview = torch.cat([draw_latents(1, mcfg.z_dim, cfg.z_dist, torch.Generator().manual_seed(s)) for s in range(cfg.n_preview)])

    def save_checkpoint() -> None:
        payload = dict(
            kind="train",
            model_config=mcfg.to_dict(),
            train_config=cfg.to_dict(),
            G=_plain_state(G),
            D=_plain_state(D),
            opt_g=opt_g.state_dict(),
            opt_d=opt_d.state_dict(),
            step=step,
            epoch=step // max(1, len(data) // cfg.batch_size),
            rng=_rng_state(),
        )
        ckpt.save(run / "checkpoint.pt", payload)

    def eval_generator() -> Generator:
        """A copy of G in eval mode with BatchNorm statistics re-estimated (training state untouched)."""
        g_eval = copy.deepcopy(G)
        z_bn = draw_latents(cfg.bn_samples, mcfg.z_dim, cfg.z_dist, step_generator(cfg.seed, step, 5)).to(device)
        recalibrate_batchnorm(g_eval, z_bn)
        return g_eval

    eval_ref = None
    if cfg.eval_every and main:
        eval_ref, eval_ref_name = eval_reference(cfg, data, cfg.eval_samples, full)
        z_eval = draw_latents(cfg.eval_samples, mcfg.z_dim, cfg.z_dist, torch.Generator().manual_seed(cfg.seed + 12345))
        if state is None:
            log(f"evaluation every {cfg.eval_every} steps: {cfg.eval_samples} samples against {len(eval_ref)} {eval_ref_name} shapes")

    def snapshot() -> None:
        if not main:
            return
        save_checkpoint()
        from gan3d.render.raster import render_grid_png

        g_eval = eval_generator()
        ckpt.save(
            run / "snapshot.pt",
            dict(kind="snapshot", model_config=mcfg.to_dict(), train_config=cfg.to_dict(), G=_plain_state(g_eval), D=_plain_state(D), step=step),
        )
        with torch.no_grad():
            grids = g_eval(z_preview.to(device)).squeeze(1).float().cpu().numpy()
        render_grid_png(grids, run / f"samples_{step:06d}.png", size=96)

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    window: list[tuple[float, ...]] = []
    t_window = time.perf_counter()
    interrupted = False
    agreed_stop = False  # data-parallel: Ctrl-C as all ranks agreed on it at the end of the last step
    with LoopIO(run, log, total=cfg.steps, start=step, progress=progress, quiet=quiet, on_stats=on_stats, main=main) as io:
        while step < end:
            if agreed_stop if ddp else io.stop_requested:
                interrupted = True
                break
            batch = draw_batch(cfg, data, mcfg.z_dim, step, shard)
            real_np, epoch = batch.real, batch.epoch
            real = torch.from_numpy(np.ascontiguousarray(real_np)).unsqueeze(1).to(device).contiguous(memory_format=memfmt)
            z = batch.z.to(device)
            noise = None
            if batch.noise is not None:
                noise = tuple(n.to(device).contiguous(memory_format=memfmt) for n in batch.noise)
            st = gan_step(
                G_step, D_step, opt_g, opt_d, real, z, loss=cfg.loss, d_gate=cfg.d_gate, noise=noise, hard_fakes=cfg.hard_fakes,
                mode_seeking=cfg.mode_seeking, sum_over_ranks=distributed.all_sum if ddp else None,
            )
            ld, lg = st["loss_d"], st["loss_g"]
            occ_fake, occ_real = st["fake_occupancy"], float(real_np.mean())
            if ddp:  # means over the ranks, and one Ctrl-C decision for all (they must stop at the same step)
                tot = distributed.all_sum(torch.tensor([ld, lg, occ_fake, occ_real, float(io.stop_requested)], dtype=torch.float64))
                ld, lg, occ_fake, occ_real = (float(v) / distributed.world() for v in tot[:4])
                agreed_stop = bool(tot[4] > 0)
            if not (math.isfinite(ld) and math.isfinite(lg)):
                raise Gan3dError(
                    f"training diverged at step {step}: loss_d = {ld}, loss_g = {lg}; "
                    f"the last good checkpoint is kept in {run / 'checkpoint.pt'} (try lower learning rates)"
                )
            step += 1
            if main:
                window.append((ld, lg, st["acc_real"], st["acc_fake"], st["d_acc"], float(st["d_updated"]), occ_fake, occ_real))
            io.tick()
            if main and (step % cfg.log_every == 0 or step == end):
                dt = time.perf_counter() - t_window
                m = np.mean(window, axis=0)
                rec = dict(
                    step=step,
                    epoch=epoch,
                    loss_d=round(float(m[0]), 5),
                    loss_g=round(float(m[1]), 5),
                    acc_real=round(float(m[2]), 4),
                    acc_fake=round(float(m[3]), 4),
                    d_acc=round(float(m[4]), 4),
                    d_updated=round(float(m[5]), 4),
                    fake_occupancy=round(float(m[6]), 5),
                    real_occupancy=round(float(m[7]), 5),
                    samples_per_s=round(len(window) * cfg.batch_size / dt, 2),
                    instance_noise=round(noise_std(cfg, step), 5),
                    time=round(time.time(), 1),
                )
                if cfg.eval_every and (step % cfg.eval_every == 0 or step == end):
                    rec.update(quick_eval(eval_generator(), z_eval.to(device), eval_ref))
                io.record(rec, dict(smp_s=rec["samples_per_s"], d_acc=rec["d_acc"], occ=rec["fake_occupancy"]))
                window = []
                t_window = time.perf_counter()
            if step % cfg.snapshot_every == 0 or step == cfg.steps:
                snapshot()
    result = io.finish(step=step, end=end, steps=cfg.steps, snapshot_every=cfg.snapshot_every, interrupted=interrupted, snapshot=snapshot)
    if ddp:
        distributed.barrier()  # the other ranks return once rank 0 has written the last files
    return result


def _new_run_dir_on_main(cfg: TrainConfig) -> Path:
    """:func:`new_run_dir` made by rank 0 alone and shared with every rank, as is its error if any."""
    made: tuple[str, str] = ("", "")
    if distributed.is_main():
        try:
            made = ("ok", str(new_run_dir(cfg)))
        except Gan3dError as e:
            made = ("error", str(e))
    kind, text = distributed.broadcast_object(made)
    if kind == "error":
        raise Gan3dError(text)
    return Path(text)


def _data_parallel(module: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """``module`` wrapped for data-parallel training: backward averages its gradients over the ranks.
    BatchNorm running statistics are not synchronised in the forward pass; each rank keeps its own
    and rank 0's are saved."""
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)


def _save_reals(run: Path, data, cfg: TrainConfig) -> None:
    """Render a fixed handful of training shapes once, for comparison with the samples."""
    from gan3d.render.raster import render_grid_png

    rng = np.random.default_rng([cfg.seed, 99])
    idx = np.sort(rng.choice(len(data), size=min(cfg.n_preview, len(data)), replace=False))
    render_grid_png(data.grids(idx), run / "reals.png", size=96)
