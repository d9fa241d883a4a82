"""Training configs: frozen dataclasses whose fields are every option of ``gan3d train``, each with
its default (the paper's recipe), help line and valid range declared in the field's metadata
(:func:`gan3d.options.opt`), checked in ``__post_init__``; a preset's recipe fills the fields it names.
The command line builds ``gan3d train``'s options from these fields (gan3d.cli.trainopts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gan3d.models.gan import G_UPSAMPLES, ModelConfig
from gan3d.options import OptionError, check_fields, from_plain_dict, normalise_tuples, opt, to_plain_dict
from gan3d.presets import ENCODER_PRESETS, PRESETS
from gan3d.presets import get as get_preset
from gan3d.presets import get_encoder_preset
from gan3d.runtime import MAX_SEED, device_problem
from gan3d.train.diffaug import OPS as DIFFAUG_OPS
from gan3d.train.imageaug import OPS as IMAGE_AUG_OPS
from gan3d.train.losses import LOSSES, RECON_LOSSES, Z_DISTS

PRESET_NAMES = tuple(PRESETS)
ENCODER_NAMES = tuple(ENCODER_PRESETS)
MAX_WIDTH = 16.0  # --width: at most 16 times the preset's widths (paper64 x 16 is 8,192 channels)
MAX_RESOLUTION = 256  # --resolution: model grids up to 256^3
OBJECTIVES = ("gan", "autoencoder")
AUTOENCODER_FIXED = ("lr_d", "d_gate", "loss", "mode_seeking", "hard_fakes", "instance_noise", "noise_decay_steps", "minibatch_std", "d_norm",
                     "diffaugment", "diffaugment_translate", "diffaugment_cutout", "diffaugment_scale", "ema", "rotation_loss", "rotation_loss_g", "contrastive", "contrastive_temperature", "contrastive_views", "r1", "fragment_loss", "fragment_join", "init_from", "d_width")
"""TrainConfig fields that only the 3D-GAN has a use for: refused for --model autoencoder."""
TENSORBOARD_HELP = "write TensorBoard logs: statistics, sample grids, evaluation metrics"
KEEP_HELP = ("also keep each snapshot as snapshot_<step>.pt (snapshot.pt is always the latest), so that a "
             "step can be chosen afterwards on a validation split")


EMA_HELP = ("decay of an exponential moving average of G's weights (with --model vaegan, E's and G's), which snapshots, samples "
            "and evaluations use; 0 = off (paper)")


@dataclass(frozen=True)
class TrainConfig:
    # Every field is an option of `gan3d train` (--field-name); its metadata (gan3d.options.opt) holds
    # the help line, the valid range or choices and the help group. The defaults below are the paper's
    # recipe; a preset's recipe overrides some of them.
    preset: str = field(default="cpu32", metadata=opt("model and recipe preset; its recipe fills the options not given", choices=PRESET_NAMES, group="main"))
    # gan: the 3D-GAN (paper); autoencoder: the paper's Fig. 2 baseline (gan3d.train.ae). Not an option
    # of its own: `gan3d train --model autoencoder` sets it.
    objective: str = "gan"
    data: str = field(default="builtin", metadata=opt("prepared dataset .npz (gan3d data prepare), or 'builtin' (procedural furniture)", group="main"))
    out: str = field(default="runs", metadata=opt("parent folder of the auto-numbered run folders", group="main"))
    steps: int = field(default=20000, metadata=opt("total training steps (one D phase + one G phase each)", lo=1, hi=10**9, group="recipe"))
    batch_size: int = field(default=100, metadata=opt("shapes per batch", lo=1, hi=65536, group="recipe"))
    lr_g: float = field(default=0.0025, metadata=opt("generator Adam learning rate (paper: 0.0025)", gt=0, hi=1, group="recipe"))
    lr_d: float = field(default=1e-5, metadata=opt("discriminator Adam learning rate (paper: 1e-5)", gt=0, hi=1, group="recipe"))
    beta1: float = field(default=0.5, metadata=opt("Adam beta1 (paper: 0.5)", lo=0, lt=1, group="recipe"))
    beta2: float = field(default=0.999, metadata=opt("Adam beta2 (paper: 0.999)", lo=0, lt=1, group="recipe"))
    d_gate: float = field(default=0.8, metadata=opt("update D only when its batch accuracy is <= this; 1 = always (paper: 0.8)", gt=0, hi=1, group="recipe"))
    loss: str = field(default="bce", metadata=opt("GAN loss: bce (the paper's, non-saturating for G), hinge or lsgan", choices=LOSSES, group="recipe"))
    z_dist: str = field(default="uniform", metadata=opt("latent prior: uniform on [0,1]^z (paper) or standard normal", choices=Z_DISTS, group="recipe"))
    mode_seeking: float = field(default=0.0, metadata=opt("weight of the mode-seeking term (Mao et al. 2019) against collapse (paper: 0)", lo=0, hi=1000, group="recipe"))
    hard_fakes: bool = field(default=False, metadata=opt("D sees G's output thresholded at 0.5, gradient passed straight through (paper: false)", group="recipe"))
    instance_noise: float = field(default=0.0, metadata=opt("std of Gaussian noise on D's real and fake inputs (paper: 0)", lo=0, hi=100, group="recipe"))
    noise_decay_steps: int = field(default=0, metadata=opt("instance noise falls linearly to 0 over these steps (0 = constant)", lo=0, hi=10**9, group="recipe"))
    diffaugment: tuple[str, ...] = field(default=(), metadata=opt("augment D's real and fake inputs alike, differentiably (DiffAugment): any of translation, cutout, flip, scale, morph (paper: none)", choices=DIFFAUG_OPS, group="recipe"))
    diffaugment_translate: float = field(default=0.125, metadata=opt("DiffAugment translation: largest shift as a fraction of the grid edge", lo=0, hi=0.5, group="recipe"))
    diffaugment_cutout: float = field(default=0.5, metadata=opt("DiffAugment cutout: edge of the emptied cube as a fraction of the grid edge", gt=0, lt=1, group="recipe"))
    diffaugment_scale: float = field(default=0.25, metadata=opt("DiffAugment scale: shapes shrink about the centre by a factor drawn from [1 - this, 1] (0.25: down to the 3D ShapeNets framing)", gt=0, lt=1, group="recipe"))
    ema: float = field(default=0.0, metadata=opt(EMA_HELP, lo=0, lt=1, group="recipe"))
    rotation_loss: float = field(default=0.0, metadata=opt("weight of D's self-supervised rotation task (Chen et al. 2019): a head of D learns which quarter turn about the up axis a real shape was given; 0 = off (paper)", lo=0, hi=1000, group="recipe"))
    rotation_loss_g: float = field(default=0.2, metadata=opt("weight of the rotation task on G's turned fakes in G's loss (with --rotation-loss)", lo=0, hi=1000, group="recipe"))
    contrastive: float = field(default=0.0, metadata=opt("weight of D's contrastive task (SimCLR's NT-Xent, as ContraD trains a GAN's D): a projection head on D's pooled classification features learns to match two augmented views of each real shape against the rest of the batch; 0 = off (paper)", lo=0, hi=1000, group="recipe"))
    contrastive_temperature: float = field(default=0.1, metadata=opt("temperature of the contrastive task's cosine similarities (with --contrastive)", gt=0, hi=10, group="recipe"))
    contrastive_views: tuple[str, ...] = field(default=("translation", "scale", "morph", "flip"), metadata=opt("the augmentations that make the contrastive task's two views of a real shape (with --contrastive): any of translation, cutout, flip, scale, morph, at the --diffaugment-* sizes", choices=DIFFAUG_OPS, group="recipe"))
    r1: float = field(default=0.0, metadata=opt("weight gamma of the R1 gradient penalty (Mescheder et al. 2018), gamma/2 * E|grad_x D(x)|^2 on the real shapes, in every D update; 0 = off (paper)", lo=0, hi=1e4, group="recipe"))
    fragment_loss: float = field(default=0.0, metadata=opt("weight of a term in G's loss that pushes the voxels of each fake outside its largest 26-connected component below 0.5, against loose fragments; 0 = off (paper)", lo=0, hi=1e4, group="recipe"))
    fragment_join: int = field(default=0, metadata=opt("with --fragment-loss: a piece at most this many empty voxels from the largest component is joined to it instead (the empty voxels on the straight line across the gap pushed above 0.5); farther pieces are pushed below as before; 0 = every piece pushed below", lo=0, hi=MAX_RESOLUTION, group="recipe"))
    init_from: str = field(default="", metadata=opt("start G (and its moving average) and D from this trained 3D-GAN: a checkpoint.pt, snapshot.pt or shipped model's name; its architecture is used, the optimizers and the step count start afresh", group="model"))
    width: float = field(default=1.0, metadata=opt("multiply every hidden width of the preset", gt=0, hi=MAX_WIDTH, group="model"))
    d_width: float = field(default=1.0, metadata=opt("multiply D's hidden widths alone (after --width): a wider D beside a small G; 1 = D mirrors G (paper)", gt=0, hi=MAX_WIDTH, group="model"))
    minibatch_std: bool | None = field(default=None, metadata=opt("minibatch standard-deviation channel in D (default: the preset's)", group="model"))
    g_output: str = field(default="", metadata=opt("G's output activation: sigmoid (paper) or hardsigmoid, which reaches exact 0 and 1 (default: the preset's)", choices=("", "sigmoid", "hardsigmoid"), group="model"))
    g_upsample: str = field(default="", metadata=opt("G's doubling layers: transposed (paper: 4^3 transposed convolutions), resize (nearest-neighbour doubling then a 3^3 convolution, against checkerboard speckle) or resize-last (the output layer only) (default: the preset's)", choices=("", *G_UPSAMPLES), group="model"))
    d_norm: str = field(default="", metadata=opt("D's normalisation: batch (paper) or spectral norm (default: the preset's)", choices=("", "batch", "spectral"), group="model"))
    resolution: int = field(default=0, metadata=opt("model resolution (0 = the data's; builtin: the preset's)", lo=8, hi=MAX_RESOLUTION, pow2=True, zero_ok=True, group="model"))
    classes: tuple[str, ...] = field(default=(), metadata=opt("train on these classes only (default: all)", group="model"))
    augment: bool = field(default=False, metadata=opt("random quarter turns about the up axis and mirror flips of x", group="model"))
    builtin_count: int = field(default=600, metadata=opt("shapes generated for --data builtin", lo=1, hi=100_000, group="model"))
    seed: int = field(default=0, metadata=opt("seed for weights, batch order, augmentation and latents", lo=0, hi=MAX_SEED))
    device: str = field(default="auto", metadata=opt("auto (CUDA if present, else CPU), cpu, cuda, cuda:N", check=device_problem))
    deterministic: bool = field(default=False, metadata=opt("deterministic algorithms (exact resume on CPU; slower on GPU)"))
    channels_last: bool = field(default=True, metadata=opt("channels_last_3d memory format (10-20% faster on CPU)"))
    log_every: int = field(default=50, metadata=opt("steps per statistics line", lo=1, hi=10**9))
    snapshot_every: int = field(default=500, metadata=opt("steps per checkpoint and sample picture", lo=1, hi=10**9))
    keep_snapshots: bool = field(default=False, metadata=opt(KEEP_HELP))
    n_preview: int = field(default=16, metadata=opt("fixed latents (seeds 0..n-1) rendered at each snapshot", lo=1, hi=1024))
    bn_samples: int = field(default=512, metadata=opt("latents that re-estimate G's BatchNorm statistics for each snapshot", lo=1, hi=1_000_000))
    eval_every: int = field(default=0, metadata=opt("steps per in-training evaluation (IoU 1-NNA, MMD, COV, diversity); 0 = off", lo=0, hi=10**9))
    eval_samples: int = field(default=200, metadata=opt("generated and reference shapes per in-training evaluation", lo=2, hi=100_000))
    run_name: str = field(default="", metadata=opt("name the run folder (default: auto-numbered <nnnnn>-<preset>-<data>)", group="main"))
    tensorboard: bool = field(default=False, metadata=opt(TENSORBOARD_HELP))

    def __post_init__(self):
        normalise_tuples(self)
        check_fields(self)
        if self.eval_every and self.eval_every % self.log_every:
            raise OptionError("eval_every", f"({self.eval_every}) must be a multiple of log_every ({self.log_every})")
        if self.objective not in OBJECTIVES:
            raise OptionError("objective", f"must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.objective == "autoencoder" and self.z_dist != "normal":
            raise OptionError("z_dist", "must be normal for the autoencoder (it samples a Gaussian fitted to its codes)")
        if self.fragment_join and not self.fragment_loss:
            raise OptionError("fragment_join", "applies with --fragment-loss only")
        if self.contrastive > 0 and not self.contrastive_views:
            raise OptionError("contrastive_views", "needs at least one augmentation with --contrastive: two unaugmented views are the same shape")

    def to_dict(self) -> dict[str, Any]:
        return to_plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return from_plain_dict(cls, d)


def make_config(preset: str = "cpu32", **overrides: Any) -> TrainConfig:
    """A TrainConfig with the preset's recipe, then ``overrides`` (None values are ignored)."""
    p = get_preset(preset)
    recipe = dict(p.recipe)
    if overrides.get("objective") == "autoencoder":  # the auto-encoder has no D: its recipe is the rest
        recipe = {k: v for k, v in recipe.items() if k not in AUTOENCODER_FIXED}
        recipe["z_dist"] = "normal"
    values = {**recipe, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(preset=preset, **values)


def model_config_for(cfg: TrainConfig) -> ModelConfig:
    """The preset's architecture with this run's overrides (width, minibatch std, D norm, G output);
    the resolution is settled later, from ``cfg.resolution`` or the data."""
    mcfg = get_preset(cfg.preset).model
    if cfg.width != 1.0:
        mcfg = mcfg.scaled(cfg.width)
    if cfg.d_width != 1.0:
        mcfg = mcfg.d_scaled(cfg.d_width)
    overrides = {"minibatch_std": cfg.minibatch_std, "d_norm": cfg.d_norm or None, "g_output": cfg.g_output or None,
                 "g_upsample": cfg.g_upsample or None,
                 "rotation_head": True if cfg.rotation_loss > 0 else None, "contrast_head": True if cfg.contrastive > 0 else None}
    return dataclasses.replace(mcfg, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class VAEGANConfig:
    # Every field is an option of `gan3d train --model vaegan`; see TrainConfig.
    pairs: str = field(default="", metadata=opt("image/shape pairs folder from `gan3d data render` (images.npy, pairs.npz, meta.json)", group="vaegan"))
    encoder: str = field(default="cpu", metadata=opt("image encoder preset: paper (256 px, the paper's), cpu, tiny; its z_dim follows G's", choices=ENCODER_NAMES, group="vaegan"))
    preset: str = field(default="cpu32", metadata=opt("3D-GAN preset for G and D (when not initialised from a checkpoint) and the recipe", choices=PRESET_NAMES, group="main"))
    init_from: str = field(default="", metadata=opt("start G and D from a trained 3D-GAN, or E, G and D from a trained 3D-VAE-GAN (to fine-tune it on other images): a checkpoint.pt, snapshot.pt or shipped model's name (a shipped 3D-VAE-GAN has no D: D starts fresh)", group="vaegan"))
    fresh_d: bool = field(default=False, metadata=opt("with --init-from: leave its D out and start D fresh (as from a shipped 3D-VAE-GAN, which has none)", group="vaegan"))
    encoder_only: bool = field(default=False, metadata=opt("with --init-from: train E alone against its G held fixed in eval mode, the G that reconstruction runs (E's loss only: no D, no adversarial term, G unchanged) (paper: false, the three alternating steps)", group="vaegan"))
    encoder_only_z: str = field(default="sample", metadata=opt("with --encoder-only: the z that G decodes in E's loss: sample (drawn from E's Gaussian, as in the three steps) or mean (E's mean, the z reconstruction reads)", choices=("sample", "mean"), group="vaegan"))
    latent_targets: str = field(default="", metadata=opt("with --encoder-only: an invert_set.npz from `gan3d explore invert --data` over the training shapes; E's mean is regressed onto each shape's inverted code (least squares, its variance by likelihood) instead of decoding a z in the loss (default: none)", group="vaegan"))
    distill: float = field(default=0.0, metadata=opt("with --encoder-only and --distill-pairs: weight W of a teacher term, W * sum((mu - mu_teacher)^2), added to E's loss; the teacher is --init-from's E, frozen, reading each image's twin (same shape and view) in --distill-pairs, so an E learns to read photo-like renders as the plain model reads plain ones (paper: 0, no teacher)", lo=0, hi=1e6, group="vaegan"))
    distill_pairs: str = field(default="", metadata=opt("with --distill: the paired folder of the teacher's images, one for every training image's shape and view (a plain render set of the same voxel file) (default: none)", group="vaegan"))
    out: str = field(default="runs", metadata=opt("parent folder of the run folders", group="main"))
    steps: int = field(default=3000, metadata=opt("total training steps", lo=1, hi=10**9, group="recipe"))
    batch_size: int = field(default=32, metadata=opt("image/shape pairs per batch", lo=1, hi=65536, group="recipe"))
    lr_e: float = field(default=1e-4, metadata=opt("encoder Adam learning rate", gt=0, hi=1, group="vaegan"))
    lr_g: float = field(default=1e-4, metadata=opt("generator Adam learning rate", gt=0, hi=1, group="recipe"))
    lr_d: float = field(default=1e-5, metadata=opt("discriminator Adam learning rate", gt=0, hi=1, group="recipe"))
    beta1: float = field(default=0.5, metadata=opt("Adam beta1", lo=0, lt=1, group="recipe"))
    beta2: float = field(default=0.999, metadata=opt("Adam beta2", lo=0, lt=1, group="recipe"))
    alpha1: float = field(default=5.0, metadata=opt("weight of KL in E's loss (paper: 5)", lo=0, hi=1e6, group="vaegan"))
    alpha2: float = field(default=1e-4, metadata=opt("weight of the voxel-summed reconstruction error in E's and G's losses (paper: 1e-4, sized for 64^3)", lo=0, hi=1e6, group="vaegan"))
    recon_loss: str = field(default="l2", metadata=opt("per-voxel reconstruction error, summed: l2 (paper), bce, wbce (bce with filled voxels weighted) or focal", choices=RECON_LOSSES, group="vaegan"))
    recon_pos_weight: float = field(default=0.0, metadata=opt("wbce: weight of the filled voxels; 0 = (1 - p) / p for the mean occupancy p of the shapes the batches draw from (default)", lo=0, hi=1e4, group="vaegan"))
    recon_focal_gamma: float = field(default=2.0, metadata=opt("focal: the focusing exponent gamma (0 = bce)", lo=0, hi=10, group="vaegan"))
    balance_classes: bool = field(default=False, metadata=opt("draw each batch so that every class is equally likely (paper: false, pairs drawn uniformly)", group="vaegan"))
    ema: float = field(default=0.0, metadata=opt(EMA_HELP, lo=0, lt=1, group="recipe"))
    classes: tuple[str, ...] = field(default=(), metadata=opt("train on these classes only (default: all)", group="model"))
    image_augment: tuple[str, ...] = field(default=(), metadata=opt("change each training image at random without changing its shape: any of crop (zoom and shift), color (brightness, contrast, saturation), erase (a painted rectangle, as an occluder) (paper: none)", choices=IMAGE_AUG_OPS, group="vaegan"))
    d_gate: float = field(default=0.8, metadata=opt("update D only when its batch accuracy is <= this; 1 = always", gt=0, hi=1, group="recipe"))
    loss: str = field(default="bce", metadata=opt("adversarial loss", choices=LOSSES, group="recipe"))
    instance_noise: float = field(default=0.0, metadata=opt("std of Gaussian noise on D's real and fake inputs (0 = off, the paper)", lo=0, hi=100, group="recipe"))
    noise_decay_steps: int = field(default=0, metadata=opt("the noise falls linearly to 0 over this many steps (0 = constant)", lo=0, hi=10**9, group="recipe"))
    seed: int = field(default=0, metadata=opt("seed for weights, batches and latents", lo=0, hi=MAX_SEED))
    device: str = field(default="auto", metadata=opt("auto (CUDA if present, else CPU), cpu, cuda, cuda:N", check=device_problem))
    deterministic: bool = field(default=False, metadata=opt("deterministic algorithms (exact resume)"))
    channels_last: bool = field(default=True, metadata=opt("channels_last_3d memory format for G, D and the shapes (faster on CPU)"))
    log_every: int = field(default=50, metadata=opt("steps per statistics line", lo=1, hi=10**9))
    snapshot_every: int = field(default=500, metadata=opt("steps per checkpoint and sample picture", lo=1, hi=10**9))
    keep_snapshots: bool = field(default=False, metadata=opt(KEEP_HELP))
    n_preview: int = field(default=8, metadata=opt("test pairs shown (image, truth, reconstruction) at each snapshot; 0 = none", lo=0, hi=1024))
    eval_pairs: int = field(default=256, metadata=opt("test pairs (spread evenly over the test split) whose mean IoU is logged at each snapshot; 0 = none", lo=0, hi=1_000_000, group="vaegan"))
    bn_samples: int = field(default=1024, metadata=opt("training images (E) and prior latents (G) that re-estimate BatchNorm statistics for the snapshot", lo=0, hi=1_000_000))
    run_name: str = field(default="", metadata=opt("name the run folder instead of auto-numbering it", group="main"))
    tensorboard: bool = field(default=False, metadata=opt(TENSORBOARD_HELP))

    def __post_init__(self):
        normalise_tuples(self)
        check_fields(self)
        get_encoder_preset(self.encoder)
        if self.recon_pos_weight and self.recon_loss != "wbce":
            raise OptionError("recon_pos_weight", f"applies to --recon-loss wbce only, not {self.recon_loss}")
        if self.recon_focal_gamma != 2.0 and self.recon_loss != "focal":
            raise OptionError("recon_focal_gamma", f"applies to --recon-loss focal only, not {self.recon_loss}")
        if self.fresh_d and not self.init_from:
            raise OptionError("fresh_d", "applies with --init-from only")
        if self.encoder_only and not self.init_from:
            raise OptionError("encoder_only", "needs --init-from: the trained G that E is fitted to")
        if self.encoder_only_z != "sample" and not self.encoder_only:
            raise OptionError("encoder_only_z", "applies with --encoder-only only")
        if self.latent_targets and not self.encoder_only:
            raise OptionError("latent_targets", "applies with --encoder-only only")
        if self.latent_targets and self.encoder_only_z != "sample":
            raise OptionError("encoder_only_z", "does not apply with --latent-targets: no z is decoded in the loss")
        if self.distill and not (self.encoder_only and self.distill_pairs):
            raise OptionError("distill", "needs --encoder-only and --distill-pairs (the teacher's images)")
        if self.distill_pairs and not self.distill:
            raise OptionError("distill_pairs", "applies with --distill only")
        if self.distill and self.latent_targets:
            raise OptionError("distill", "does not apply with --latent-targets")

    def to_dict(self) -> dict[str, Any]:
        return to_plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAEGANConfig":
        return from_plain_dict(cls, d)


def make_vaegan_config(preset: str = "cpu32", **overrides: Any) -> VAEGANConfig:
    """A VAEGANConfig with the preset's 3D-VAE-GAN recipe, then ``overrides`` (None values ignored)."""
    p = get_preset(preset)
    values = {**p.vaegan, **{k: v for k, v in overrides.items() if v is not None}}
    return VAEGANConfig(preset=preset, **values)
