"""Training configs: frozen dataclasses whose fields are every option of ``gan3d train``, each with
its default (the paper's recipe) and a one-line comment; a preset's recipe fills the fields it names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gan3d.models.gan import ModelConfig
from gan3d.presets import get as get_preset
from gan3d.presets import get_encoder_preset
from gan3d.train.losses import LOSSES, RECON_LOSSES, Z_DISTS


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


def model_config_for(cfg: TrainConfig) -> ModelConfig:
    """The preset's architecture with this run's overrides (width, minibatch std, D norm, G output);
    the resolution is settled later, from ``cfg.resolution`` or the data."""
    mcfg = get_preset(cfg.preset).model
    if cfg.width != 1.0:
        mcfg = mcfg.scaled(cfg.width)
    overrides = {"minibatch_std": cfg.minibatch_std, "d_norm": cfg.d_norm or None, "g_output": cfg.g_output or None}
    return dataclasses.replace(mcfg, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class VAEGANConfig:
    pairs: str = ""  # paired image/shape folder (images.npy, pairs.npz, meta.json)
    encoder: str = "cpu"  # encoder preset (ENCODER_PRESETS); its z_dim follows G's
    preset: str = "cpu32"  # 3D-GAN preset for G and D when not initialised from a checkpoint
    init_from: str = ""  # a trained 3D-GAN checkpoint: G and D start from its weights
    out: str = "runs"  # parent folder of the run folders
    steps: int = 3000
    batch_size: int = 32
    lr_e: float = 1e-4  # encoder Adam learning rate
    lr_g: float = 1e-4  # generator Adam learning rate
    lr_d: float = 1e-5  # discriminator Adam learning rate
    beta1: float = 0.5
    beta2: float = 0.999
    alpha1: float = 5.0  # weight of KL in E's loss (the paper's)
    alpha2: float = 1e-4  # weight of the voxel-summed reconstruction error in E's and G's losses (the paper's)
    recon_loss: str = "l2"  # per-voxel reconstruction error: l2 (the paper's) or bce
    d_gate: float = 0.8  # update D only if its accuracy on the batch was <= this
    loss: str = "bce"  # adversarial loss (gan3d.training.LOSSES)
    instance_noise: float = 0.0  # std of Gaussian noise on D's real and fake inputs (0 = off, the paper)
    noise_decay_steps: int = 0  # the noise falls linearly to 0 over this many steps (0 = constant)
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    channels_last: bool = True  # channels_last_3d memory format for G, D and the shapes (faster on CPU)
    log_every: int = 50
    snapshot_every: int = 500
    n_preview: int = 8  # test pairs shown (image, truth, reconstruction) at each snapshot; 0 = none
    eval_pairs: int = 256  # test pairs (spread evenly over the test split) whose mean IoU is logged at each snapshot; 0 = none
    bn_samples: int = 1024  # training images (E) and prior latents (G) that re-estimate BatchNorm statistics for the snapshot
    run_name: str = ""

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("steps", "batch_size", "log_every", "snapshot_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (0.0 < self.d_gate <= 1.0):
            raise ValueError(f"d_gate must be in (0, 1], got {self.d_gate}")
        if min(self.lr_e, self.lr_g, self.lr_d) <= 0 or self.alpha1 < 0 or self.alpha2 < 0:
            raise ValueError("learning rates must be positive and alphas non-negative")
        if self.recon_loss not in RECON_LOSSES:
            raise ValueError(f"recon_loss must be one of {RECON_LOSSES}, got {self.recon_loss!r}")
        if self.instance_noise < 0 or self.noise_decay_steps < 0:
            raise ValueError("instance_noise and noise_decay_steps must be >= 0")
        if self.n_preview < 0 or self.eval_pairs < 0 or self.bn_samples < 0:
            raise ValueError("n_preview, eval_pairs and bn_samples must be >= 0")
        get_encoder_preset(self.encoder)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAEGANConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def make_vaegan_config(preset: str = "cpu32", **overrides: Any) -> VAEGANConfig:
    """A VAEGANConfig with the preset's 3D-VAE-GAN recipe, then ``overrides`` (None values ignored)."""
    p = get_preset(preset)
    values = {**p.vaegan, **{k: v for k, v in overrides.items() if v is not None}}
    return VAEGANConfig(preset=preset, **values)
