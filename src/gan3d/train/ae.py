"""Training the volumetric auto-encoder baseline (the paper's Fig. 2): ``gan3d train --model autoencoder``.

The run is the one training loop of :mod:`gan3d.train.loop` with :class:`AeTask`, so it has the
3D-GAN's run folder, resume, statistics, snapshots and in-training evaluation. A step encodes a
batch of training shapes with :class:`~gan3d.models.autoencoder.VoxelEncoder`, decodes it with the
preset's :class:`~gan3d.models.gan.Generator` and takes one Adam step (``lr_g``) on the mean
per-voxel binary cross-entropy, the loss of Girdhar et al.'s auto-encoder.

Its samples come from a Gaussian fitted to the codes of the training shapes, as the paper describes
the baseline. Each snapshot (and each in-training evaluation) does that fit: both networks' BatchNorm
statistics re-estimated on the training shapes, the codes of (up to ``bn_samples * 8``) training
shapes, their mean and covariance, folded into G (:func:`~gan3d.models.autoencoder.gaussian_sampler`).
The snapshot is then an ordinary sampling snapshot with a standard normal prior, which every
``gan3d sample``, ``gan3d eval generation``/``neighbours`` and ``gan3d explore`` command reads; it
has no D, so ``eval classify`` and ``explore neurons`` refuse it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gan3d import __version__
from gan3d import checkpoint as ckpt
from gan3d.models.autoencoder import VoxelEncoder, fit_gaussian, gaussian_sampler
from gan3d.models.gan import Generator, init_weights, recalibrate_batchnorm
from gan3d.train.batching import draw_batch
from gan3d.train.gan import GanTask, _save_reals
from gan3d.train.state import _count, _plain_state


def ae_step(E: torch.nn.Module, G: torch.nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor) -> dict[str, float]:
    """One reconstruction step on real shapes (N, 1, R, R, R): BCE of G(E(real)) against real."""
    recon = G(E(real))
    loss = F.binary_cross_entropy(recon.float().clamp(1e-6, 1 - 1e-6), real.float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        hard = recon.detach() >= 0.5
        truth = real >= 0.5
        inter = (hard & truth).flatten(1).sum(1).float()
        union = (hard | truth).flatten(1).sum(1).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean().item()
    return dict(loss_recon=loss.item(), recon_iou=iou, fake_occupancy=hard.float().mean().item())


class AeTask(GanTask):
    """What the training loop needs to train the auto-encoder baseline."""

    kind = "ae-train"
    not_resumable = "not an auto-encoder training checkpoint"
    finite_keys = ("loss_recon",)
    rank_keys = ("loss_recon", "recon_iou", "fake_occupancy", "real_occupancy")
    stat_keys = ("loss_recon", "recon_iou", "fake_occupancy", "real_occupancy")
    digits = (5, 4, 5, 5)

    def label(self) -> str:
        return "ae-" + super().label()

    def build(self) -> None:
        cfg = self.cfg
        self.G = Generator(self.mcfg)
        self.E = VoxelEncoder(self.mcfg)
        init_weights(self.G)
        init_weights(self.E)
        for m in (self.G, self.E):
            m.to(self.device)
            if cfg.channels_last:
                m.to(memory_format=torch.channels_last_3d)
        params = [*self.E.parameters(), *self.G.parameters()]
        self.opt = torch.optim.Adam(params, lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.E_step, self.G_step = self.E, self.G
        self.sum_over_ranks = None
        self.G_ema = None

    def load(self, state: dict, path: Path) -> None:
        ckpt.load_state(self.G, state["G"], "decoder", path)
        ckpt.load_state(self.E, state["E"], "encoder", path)
        self.opt.load_state_dict(state["opt"])

    def wrap(self, data_parallel: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        self.E_step, self.G_step = data_parallel(self.E), data_parallel(self.G)

    def header(self, run: Path) -> list[str]:
        cfg, data = self.cfg, self.data
        _save_reals(run, data, cfg)
        return [
            f"gan3d {__version__}: run folder {run}",
            f"auto-encoder baseline, preset {cfg.preset} {self.mcfg.to_dict()}  encoder {_count(self.E):,} params, decoder {_count(self.G):,} params",
            f"data {cfg.data}: {len(data)} training shapes at {data.resolution}^3; device {self.device}",
        ]

    def step(self, step: int) -> tuple[dict, int]:
        cfg = self.cfg
        batch = draw_batch(cfg, self.data, self.mcfg.z_dim, step, self.shard)
        real = torch.from_numpy(np.ascontiguousarray(batch.real)).unsqueeze(1).to(self.device).contiguous(memory_format=self.memfmt)
        st = ae_step(self.E_step, self.G_step, self.opt, real)
        st["real_occupancy"] = float(batch.real.mean())
        return st, batch.epoch

    def summarize(self, window: list[dict], step: int, samples_per_s: float) -> dict:
        rec = super().summarize(window, step, samples_per_s)
        del rec["instance_noise"]  # the auto-encoder has no D to add noise for
        return rec

    def postfix(self, rec: dict) -> dict:
        return dict(smp_s=rec["samples_per_s"], iou=rec["recon_iou"], occ=rec["fake_occupancy"])

    def fitted(self, step: int) -> tuple[Generator, VoxelEncoder, int]:
        """(the Gaussian-sampling decoder, the encoder, codes fitted), both in eval mode with
        BatchNorm re-estimated on training shapes; the training state is untouched."""
        cfg = self.cfg
        n = min(len(self.data), max(2, cfg.bn_samples * 8))
        rng = np.random.default_rng([cfg.seed, step, 6])
        idx = np.sort(rng.choice(len(self.data), size=n, replace=False))
        shapes = torch.from_numpy(np.ascontiguousarray(self.data.grids(idx), dtype=np.float32)).unsqueeze(1)
        E = copy.deepcopy(self.E)
        recalibrate_batchnorm(E, [shapes[i : i + 64].to(self.device) for i in range(0, n, 64)])
        with torch.no_grad():
            codes = torch.cat([E(shapes[i : i + 64].to(self.device)).float().cpu() for i in range(0, n, 64)])
        G = copy.deepcopy(self.G)
        recalibrate_batchnorm(G, codes.to(self.device))
        mean, chol = fit_gaussian(codes)
        return gaussian_sampler(G, mean, chol).eval(), E, n

    def eval_generator(self, step: int) -> Generator:
        return self.fitted(step)[0]

    def checkpoint_payload(self, step: int) -> dict:
        return dict(
            kind=self.kind,
            model_config=self.mcfg.to_dict(),
            train_config=self.cfg.to_dict(),
            G=_plain_state(self.G),
            E=_plain_state(self.E),
            opt=self.opt.state_dict(),
            step=step,
            epoch=step // max(1, len(self.data) // self.cfg.batch_size),
        )

    def snapshot(self, run: Path, step: int, log: Callable[[str], None]) -> Path:
        """snapshot.pt (the Gaussian-sampling decoder as G, and E) and the preview picture."""
        from gan3d.render.raster import render_grid_png
        from gan3d.train.state import save_checkpoint

        G, E, n = self.fitted(step)
        save_checkpoint(
            run / "snapshot.pt",
            dict(kind="snapshot", model_config=G.cfg.to_dict(), train_config=self.cfg.to_dict(), G=_plain_state(G), E=_plain_state(E),
                 step=step, codes_fitted=n),
        )
        with torch.no_grad():
            grids = G(self.z_preview.to(self.device)).squeeze(1).float().cpu().numpy()
        render_grid_png(grids, run / f"samples_{step:06d}.png", size=96)
        return run / f"samples_{step:06d}.png"
