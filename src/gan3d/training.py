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
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from torch.nn.parallel import DistributedDataParallel

from . import __version__
from . import checkpoint as ckpt
from . import distributed
from .errors import Gan3dError
from .models import Discriminator, Generator, ModelConfig, build, layer_summary, recalibrate_batchnorm, with_resolution
from . import datasets
from .presets import get as get_preset

LOSSES = ("bce", "hinge", "lsgan")
Z_DISTS = ("uniform", "normal")


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "cpu32"  # model preset (gan3d.presets.PRESETS); its recipe fills unset fields
    data: str = "builtin"  # prepared dataset (.npz from `gan3d data prepare`) or "builtin"
    out: str = "runs"  # parent folder of the auto-numbered run folders
    # The defaults below are the paper's recipe; a preset's recipe overrides some of them.
    steps: int = 20000  # total training steps (one D phase + one G phase each)
    batch_size: int = 100  # shapes per batch
    lr_g: float = 0.0025  # generator Adam learning rate
    lr_d: float = 1e-5  # discriminator Adam learning rate
    beta1: float = 0.5  # Adam beta1 for both
    beta2: float = 0.999  # Adam beta2 for both
    d_gate: float = 0.8  # update D only if its accuracy on the batch was <= this (1.0 = always)
    loss: str = "bce"  # bce (the paper's, non-saturating for G), hinge or lsgan
    z_dist: str = "uniform"  # latent prior: uniform on [0,1]^z (paper) or standard normal
    mode_seeking: float = 0.0  # weight of MSGAN's mode-seeking term in G's loss (0 = off, the paper)
    hard_fakes: bool = False  # D sees G's output thresholded at 0.5, gradient straight through (not in the paper)
    instance_noise: float = 0.0  # std of Gaussian noise added to D's real and fake inputs (0 = off, the paper)
    noise_decay_steps: int = 0  # the noise falls linearly to 0 over this many steps (0 = constant)
    width: float = 1.0  # multiplies every hidden width of the preset
    minibatch_std: bool | None = None  # D's minibatch standard-deviation channel (None = the preset's choice)
    g_output: str = ""  # G's output activation: sigmoid (paper) or hardsigmoid ("" = the preset's choice)
    d_norm: str = ""  # D's normalisation: batch (paper) or spectral ("" = the preset's choice)
    resolution: int = 0  # model resolution; 0 = the data's resolution (builtin: the preset's)
    classes: tuple[str, ...] = ()  # train on these classes only (empty = all)
    augment: bool = False  # random 90-degree turns about the up axis and mirror flips of x
    builtin_count: int = 600  # shapes generated for --data builtin
    seed: int = 0  # seeds weights, batch order, augmentation and latents
    device: str = "auto"  # auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ...
    deterministic: bool = False  # deterministic algorithms (exact resume on CPU; slower on GPU)
    channels_last: bool = True  # channels_last_3d memory format (10-20% faster on CPU)
    log_every: int = 50  # steps per statistics line
    snapshot_every: int = 500  # steps per checkpoint + sample picture
    n_preview: int = 16  # fixed latents (seeds 0..n-1) rendered at each snapshot
    bn_samples: int = 512  # latents used to re-estimate G's BatchNorm statistics for each snapshot
    eval_every: int = 0  # steps per in-training evaluation (IoU 1-NNA/MMD/COV, sample diversity); 0 = off
    eval_samples: int = 200  # generated shapes (and at most as many reference shapes) per evaluation
    run_name: str = ""  # name the run folder (default: auto-numbered <nnnnn>-<preset>-<data>)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.z_dist not in Z_DISTS:
            raise ValueError(f"z_dist must be one of {Z_DISTS}, got {self.z_dist!r}")
        if self.eval_every < 0 or self.eval_samples < 2:
            raise ValueError("eval_every must be >= 0 and eval_samples >= 2")
        if self.eval_every and self.eval_every % self.log_every:
            raise ValueError(f"eval_every ({self.eval_every}) must be a multiple of log_every ({self.log_every})")
        for name in ("steps", "batch_size", "log_every", "snapshot_every", "builtin_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (0.0 < self.d_gate <= 1.0):
            raise ValueError(f"d_gate must be in (0, 1], got {self.d_gate}")
        if self.instance_noise < 0 or self.noise_decay_steps < 0:
            raise ValueError("instance_noise and noise_decay_steps must be >= 0")
        if self.lr_g <= 0 or self.lr_d <= 0 or self.width <= 0:
            raise ValueError("learning rates and width must be positive")
        object.__setattr__(self, "classes", tuple(self.classes))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k == "classes" else v) for k, v in d.items() if k in names})


def make_config(preset: str = "cpu32", **overrides: Any) -> TrainConfig:
    """A TrainConfig with the preset's recipe, then ``overrides`` (None values are ignored)."""
    p = get_preset(preset)
    values = {**p.recipe, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(preset=preset, **values)


# --- devices, seeds, determinism -----------------------------------------------------------------


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present and ``name`` is auto, else CPU; an explicit name is checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Gan3dError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return dev


def set_determinism(deterministic: bool) -> None:
    """The one place that sets determinism flags."""
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A CPU torch generator for one step's draws, independent of every other step and stream."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0]))


def draw_latents(n: int, z_dim: int, dist: str, generator: torch.Generator) -> torch.Tensor:
    """(n, z_dim) float32 latents on the CPU: U[0,1] (the paper) or N(0, 1)."""
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=generator)
    return torch.randn(n, z_dim, generator=generator)


def noise_std(cfg: "TrainConfig", step: int) -> float:
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


# --- losses --------------------------------------------------------------------------------------


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
) -> tuple[torch.Tensor, float, float, float, bool]:
    """The paper's D step: score ``real_in`` and ``fake_in`` (detached, noise already added), and step
    D only if its accuracy on this batch was <= ``d_gate``. Returns (loss_d, acc_real, acc_fake,
    d_acc, d_updated). ``sum_over_ranks``: see :func:`gan_step`; the accuracy is then the whole
    batch's over all ranks."""
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
    if d_updated:
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    return loss_d, acc_real, acc_fake, d_acc, d_updated


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


def mode_seeking_term(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term: 1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps) over the batch split in halves.
    It is large when different latents give the same shape, so minimising it fights mode collapse."""
    h = fake.shape[0] // 2
    if h == 0:
        return fake.new_zeros(())
    ratio = (fake[:h] - fake[h : 2 * h]).abs().mean() / (z[:h] - z[h : 2 * h]).abs().mean()
    return 1.0 / (ratio + eps)


def straight_through_binarize(x: torch.Tensor) -> torch.Tensor:
    """``x >= 0.5`` as 0/1 in the forward pass; identity gradient in the backward pass."""
    hard = (x >= 0.5).to(x.dtype)
    return hard + (x - x.detach())


# --- data ----------------------------------------------------------------------------------------


def load_training_data(cfg: TrainConfig, model_resolution: int, full=None):
    """The training split as a datasets.VoxelDataset; builtin shapes are made at ``model_resolution``,
    a prepared file keeps its own resolution. ``full``: the prepared file, if already loaded."""
    from . import procedural

    if cfg.data == "builtin":
        grids, labels = procedural.make_dataset(cfg.builtin_count, model_resolution, seed=cfg.seed)
        ds = datasets.from_arrays(grids, labels, list(procedural.CLASS_NAMES))
    else:
        ds = (full if full is not None else datasets.load(cfg.data)).select(split="train")
    if cfg.classes:
        ds = ds.select(classes=list(cfg.classes))
    if len(ds) < cfg.batch_size:
        raise Gan3dError(f"the training data has {len(ds)} shapes, fewer than one batch of {cfg.batch_size}", cfg.data)
    return ds


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> tuple[np.ndarray, int]:
    """Indices of step ``step``'s batch: epochs are seeded permutations cut into whole batches."""
    per_epoch = n // batch_size
    epoch, pos = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch, 7]).permutation(n)
    return perm[pos * batch_size : (pos + 1) * batch_size], epoch


@dataclass
class Batch:
    """One step's inputs for one process, on the CPU."""

    real: np.ndarray  # float32 (b, R, R, R), occupancy 0/1 (augmented if the run augments)
    z: torch.Tensor  # float32 (b, z_dim) latents
    noise: tuple[torch.Tensor, torch.Tensor] | None  # instance noise for D's real and fake inputs, each float32 (b, 1, R, R, R); None when off
    epoch: int  # the epoch this step belongs to


def draw_batch(cfg: TrainConfig, data, z_dim: int, step: int, shard: slice = slice(None)) -> Batch:
    """Step ``step``'s batch of ``cfg.batch_size`` shapes, latents and noise, or the rows ``shard`` of it.

    Every draw is made for the whole batch from the step's own generators and then cut, so the
    shards of :func:`shard_of` for ranks 0..W-1, put together, are exactly the single-process batch.
    ``data``: the training datasets.VoxelDataset; only the shard's shapes are unpacked (all of the
    batch when augmenting, since augmentation draws per shape).
    """
    idx, epoch = batch_indices(len(data), cfg.batch_size, cfg.seed, step)
    if cfg.augment:
        real = datasets.augment_batch(data.grids(idx), np.random.default_rng([cfg.seed, step, 3]))[shard]
    else:
        real = data.grids(idx[shard])
    z = draw_latents(cfg.batch_size, z_dim, cfg.z_dist, step_generator(cfg.seed, step, 1))[shard]
    noise = draw_instance_noise(cfg, step, (cfg.batch_size, 1, *real.shape[1:]), stream=2)
    if noise is not None:
        noise = tuple(n[shard] for n in noise)
    return Batch(real=real, z=z, noise=noise, epoch=epoch)


def shard_of(batch_size: int, rank: int, world: int) -> slice:
    """Rows of the batch that process ``rank`` of ``world`` trains on: a contiguous ``batch_size / world``."""
    if batch_size % world:
        raise Gan3dError(
            f"batch size {batch_size} does not split evenly over {world} processes; use a multiple of {world} (--batch-size)"
        )
    b = batch_size // world
    return slice(rank * b, (rank + 1) * b)


# --- evaluation during training ------------------------------------------------------------------


def eval_reference(cfg: "TrainConfig", train_data, n: int, full=None) -> tuple[np.ndarray, str]:
    """Reference shapes for in-training evaluation: the held-out test split of the prepared file
    ``full`` when it has at least 32 shapes, else training shapes. At most ``n``, a fixed seeded subset."""
    ref, name = train_data, "train"
    if full is not None:
        try:
            test = full.select(split="test")
            if cfg.classes:
                test = test.select(classes=list(cfg.classes))
            if len(test) >= 32:
                ref, name = test, "test"
        except Gan3dError:
            pass
    idx = np.sort(np.random.default_rng([cfg.seed, 11]).choice(len(ref), size=min(n, len(ref)), replace=False))
    return ref.grids(idx) >= 0.5, name


@torch.no_grad()
def quick_eval(G: Generator, z: torch.Tensor, ref: np.ndarray) -> dict[str, float]:
    """IoU-distance generation metrics of G's samples for latents ``z`` against ``ref`` (bool
    (m,R,R,R)), plus the samples' mean pairwise IoU (near 1 when the generator has collapsed)."""
    from .metrics import coverage, iou_distance_matrix, mmd, one_nna

    samples = G(z).squeeze(1).float().cpu().numpy() >= 0.5
    d_ss = iou_distance_matrix(samples, samples)
    d_rr = iou_distance_matrix(ref, ref)
    d_sr = iou_distance_matrix(samples, ref)
    off = ~np.eye(len(samples), dtype=bool)
    return {
        "eval_1nna_iou": round(float(one_nna(d_ss, d_rr, d_sr)), 4),
        "eval_mmd_iou": round(float(mmd(d_sr)), 4),
        "eval_cov_iou": round(float(coverage(d_sr)), 4),
        "eval_pairwise_iou": round(float(1.0 - d_ss[off].mean()), 4),
        "eval_best_iou": round(float(1.0 - d_sr.min(axis=1).mean()), 4),
        "eval_occupancy": round(float(samples.mean()), 5),
    }


# --- the run folder ------------------------------------------------------------------------------


def make_run_dir(out: str | os.PathLike, run_name: str, label: str) -> Path:
    """``<out>/<run_name>`` (which must be new or empty), else ``<out>/<nnnnn>-<label>`` numbered one
    past the highest existing run."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    if run_name:
        run = root / run_name
        if run.exists() and any(run.iterdir()):
            raise Gan3dError("run folder exists and is not empty (use --resume to continue it)", run)
        run.mkdir(exist_ok=True)
        return run
    nums = [int(p.name.split("-")[0]) for p in root.iterdir() if p.is_dir() and p.name.split("-")[0].isdigit()]
    run = root / f"{max(nums, default=-1) + 1:05d}-{label}"
    run.mkdir()
    return run


def new_run_dir(cfg: TrainConfig) -> Path:
    """``<out>/<nnnnn>-<preset>-<data>`` for a 3D-GAN run (or ``<out>/<run_name>``)."""
    data_name = "builtin" if cfg.data == "builtin" else Path(cfg.data).stem
    return make_run_dir(cfg.out, cfg.run_name, f"{cfg.preset}-{data_name}")


class RunLog:
    """Writes lines to stdout (through tqdm when a bar is open) and to ``log.txt``."""

    def __init__(self, run: Path, quiet: bool = False):
        self.file = open(run / "log.txt", "a", encoding="utf-8")
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        self.file.write(msg + "\n")
        self.file.flush()
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stdout)

    def close(self) -> None:
        self.file.close()


class _NullLog:
    """RunLog's stand-in on the ranks other than 0 of a data-parallel run: writes nothing."""

    def __call__(self, msg: str) -> None:
        pass

    def close(self) -> None:
        pass


def write_json(path: Path, obj: Any) -> None:
    from .fileio import atomic_open

    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def model_config_for(cfg: TrainConfig) -> ModelConfig:
    """The preset's architecture with this run's overrides (width, minibatch std, D norm, G output);
    the resolution is settled later, from ``cfg.resolution`` or the data."""
    mcfg = get_preset(cfg.preset).model
    if cfg.width != 1.0:
        mcfg = mcfg.scaled(cfg.width)
    overrides = {"minibatch_std": cfg.minibatch_std, "d_norm": cfg.d_norm or None, "g_output": cfg.g_output or None}
    return dataclasses.replace(mcfg, **{k: v for k, v in overrides.items() if v is not None})


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    stats: list[dict]


class LoopIO:
    """What every training loop shares around its steps: Ctrl-C turned into a flag (the loop
    finishes its step, saves and returns), the progress bar, the ``stats.jsonl`` writer, and the
    closing lines. Use as a context manager; ``finish`` writes the last snapshot and log lines.
    ``main=False`` (ranks other than 0 of a data-parallel run): no bar and no ``stats.jsonl``."""

    def __init__(self, run: Path, log: "RunLog", *, total: int, start: int, progress: bool, quiet: bool,
                 on_stats: Callable[[dict], None] | None, main: bool = True):
        self.run, self.log, self.on_stats = run, log, on_stats
        self.stop_requested = False
        self.stats: list[dict] = []
        self.bar = None
        if progress and not quiet and main:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stdout)
        self._file = open(run / "stats.jsonl", "a", encoding="utf-8") if main else None
        self._old_handler = signal.signal(signal.SIGINT, self._on_sigint) if _main_thread() else None

    def _on_sigint(self, signum, frame) -> None:
        self.stop_requested = True

    def __enter__(self) -> "LoopIO":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        if self._file is not None:
            self._file.close()
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def record(self, rec: dict, postfix: dict) -> None:
        """Append one statistics line; show ``postfix`` on the bar, or log the line without a bar."""
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        self.stats.append(rec)
        if self.on_stats is not None:
            self.on_stats(rec)
        if self.bar is not None:
            self.bar.set_postfix(**postfix)
        else:
            self.log(json.dumps(rec))

    def finish(self, *, step: int, end: int, steps: int, snapshot_every: int, interrupted: bool,
               snapshot: Callable[[], None]) -> TrainResult:
        """Snapshot a step that no snapshot covered (an interruption or ``stop_after``), write the
        closing line and close the log."""
        if interrupted or (step == end and step % snapshot_every != 0 and step != steps):
            snapshot()
        if interrupted:
            self.log(f"interrupted: saved {self.run / 'checkpoint.pt'} at step {step}; continue with --resume {self.run}")
        else:
            self.log(f"done at step {step}: {self.run / 'snapshot.pt'}")
        self.log.close()
        return TrainResult(run_dir=self.run, step=step, interrupted=interrupted, stats=self.stats)


def open_resume(resume: str | os.PathLike, cfg: Any, *, kind: str, config_key: str, what: str) -> tuple[dict, Path, Any]:
    """Load the training checkpoint of a run folder (or the file itself), check its ``kind``, and
    return it with its path and the run's saved config; ``cfg.steps`` may extend the run."""
    resume = Path(resume)
    ckpt_path = resume / "checkpoint.pt" if resume.is_dir() else resume
    state = ckpt.load(ckpt_path)
    if state.get("kind") != kind:
        raise Gan3dError(what, ckpt_path)
    saved = type(cfg).from_dict(state[config_key])
    return state, ckpt_path, dataclasses.replace(saved, steps=max(cfg.steps, saved.steps))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _plain_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with contiguous tensors, so checkpoints do not depend on the memory format."""
    return {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}


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
    full = None if cfg.data == "builtin" else datasets.load(cfg.data)  # loaded once: training and test views
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
        from .render import render_grid_png

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


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _save_reals(run: Path, data, cfg: TrainConfig) -> None:
    """Render a fixed handful of training shapes once, for comparison with the samples."""
    from .render import render_grid_png

    rng = np.random.default_rng([cfg.seed, 99])
    idx = np.sort(rng.choice(len(data), size=min(cfg.n_preview, len(data)), replace=False))
    render_grid_png(data.grids(idx), run / "reals.png", size=96)
