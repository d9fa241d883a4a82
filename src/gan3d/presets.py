"""Named presets: a model architecture and the training recipe that goes with it, in one registry.

The CLI offers ``PRESETS``' keys as choices for ``--preset``; every recipe value is also an option
that a run can override, and the run folder records what was used.

* ``paper64``: the paper's 64^3 model and recipe (Adam beta1 0.5, lr 0.0025 for G and 1e-5 for D,
  batch 100, z ~ U[0,1]^200, D updated only when its accuracy on the batch was <= 80%).
* ``cpu32``: a 32^3 model at a quarter of the paper's widths with a recipe found by experiment on
  this project's 2-core CPU machines (docs/recipe/README.md has the evidence). It learns varied,
  recognisable chairs from the 3D ShapeNets chairs in well under an hour.
* ``gpu64``: the cpu32 family at the paper's 64^3: cpu32's recipe and minibatch-std channel with one
  more block in front, widths 256-128-64-32 (half the paper's). For a GPU, where a 64^3 run with the
  recipe that works here is affordable.
* ``demo``: cpu32 at half width, sized so ``gan3d demo`` trains, samples and renders in minutes.
* ``tiny``: a 16^3 model for tests; trains in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gan3d.models.encoder import EncoderConfig
from gan3d.models.gan import ModelConfig


@dataclass(frozen=True)
class Preset:
    model: ModelConfig  # architecture
    recipe: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields this preset sets
    help: str = ""  # one line for --help
    vaegan: dict[str, Any] = field(default_factory=dict)  # VAEGANConfig fields for `train --model vaegan`


PAPER_RECIPE = dict(lr_g=0.0025, lr_d=1e-5, beta1=0.5, batch_size=100, d_gate=0.8, loss="bce", z_dist="uniform")


# Found by experiment on 2-core CPUs (docs/recipe/README.md): the paper's gate and a weak D, with a
# normal latent, a minibatch-std channel in D, decaying instance noise and a small mode-seeking term
# against the collapse that the paper's recipe shows at this scale.
CPU_RECIPE = dict(
    lr_g=1e-3,
    lr_d=1e-4,
    beta1=0.5,
    batch_size=32,
    d_gate=0.8,
    loss="bce",
    z_dist="normal",
    instance_noise=0.2,
    noise_decay_steps=3000,
    mode_seeking=0.1,
    steps=3000,
)


# The 3D-VAE-GAN as the paper gives it: alpha1 = 5, alpha2 = 1e-4, the 3D-GAN's learning rates and
# batch, the 256 px encoder. The paper does not give E's learning rate.
PAPER_VAEGAN_RECIPE = dict(
    encoder="paper", alpha1=5.0, alpha2=1e-4, recon_loss="l2", lr_e=1e-4, lr_g=0.0025, lr_d=1e-5, beta1=0.5, batch_size=100, d_gate=0.8, loss="bce"
)


# Found by experiment on 2-core CPUs (docs/recipe/README.md, runs V1-V4): the paper's alpha1 / alpha2
# ratio pushes E to the prior (no reconstruction at all); this one keeps the KL weight a tenth of the
# voxel-summed L2 weight, with cpu32's weak gated D and decaying instance noise.
CPU_VAEGAN_RECIPE = dict(
    encoder="cpu",
    alpha1=1e-3,
    alpha2=1e-2,
    recon_loss="l2",
    lr_e=5e-4,
    lr_g=5e-4,
    lr_d=1e-4,
    beta1=0.5,
    batch_size=32,
    d_gate=0.8,
    loss="bce",
    instance_noise=0.2,
    noise_decay_steps=3000,
    steps=3000,
)


PRESETS: dict[str, Preset] = {
    "paper64": Preset(
        model=ModelConfig(resolution=64, z_dim=200, channels=(512, 256, 128, 64)),
        recipe=dict(PAPER_RECIPE, steps=20000),
        help="the paper's 64^3 model and recipe (about 1 sample/s on a 2-core CPU)",
        vaegan=dict(PAPER_VAEGAN_RECIPE, steps=20000),
    ),
    "cpu32": Preset(
        model=ModelConfig(resolution=32, z_dim=200, channels=(128, 64, 32), minibatch_std=True),
        recipe=CPU_RECIPE,
        help="32^3, widths 128-64-32, a recipe found on a 2-core CPU (docs/recipe): learns chairs in under an hour",
        vaegan=CPU_VAEGAN_RECIPE,
    ),
    "gpu64": Preset(
        model=ModelConfig(resolution=64, z_dim=200, channels=(256, 128, 64, 32), minibatch_std=True),
        recipe=CPU_RECIPE,
        help="64^3, widths 256-128-64-32, cpu32's recipe: the recipe found here at the paper's resolution, for a GPU",
        vaegan=CPU_VAEGAN_RECIPE,
    ),
    "demo": Preset(
        model=ModelConfig(resolution=32, z_dim=200, channels=(64, 32, 16), minibatch_std=True),
        recipe=dict(CPU_RECIPE, steps=1500, noise_decay_steps=1500),
        help="cpu32 at half width with cpu32's recipe: the README's few-minute main job",
        vaegan=dict(CPU_VAEGAN_RECIPE, steps=1500, noise_decay_steps=1500),
    ),
    "tiny": Preset(
        model=ModelConfig(resolution=16, z_dim=32, channels=(16, 8)),
        recipe=dict(lr_g=0.002, lr_d=0.0005, beta1=0.5, batch_size=16, d_gate=0.8, loss="bce", z_dist="uniform", steps=200),
        help="16^3, for tests and smoke runs: trains in seconds",
        vaegan=dict(encoder="tiny", alpha1=1e-3, alpha2=1e-2, lr_e=1e-3, lr_g=1e-3, lr_d=1e-3, batch_size=16, steps=200),
    ),
}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


ENCODER_PRESETS: dict[str, EncoderConfig] = {
    # the paper's: 256 -> 64 -> 32 -> 16 -> 8 -> 1 (paddings 4-2-2-2-0)
    "paper": EncoderConfig(256, 200, (64, 128, 256, 512, 400), (11, 5, 5, 5, 8), (4, 2, 2, 2, 1)),
    # the same layer pattern on 128 px at half the widths, for cpu32's z_dim 200: 128 -> 32 -> 16 -> 8 -> 4 -> 1
    "cpu": EncoderConfig(128, 200, (32, 64, 128, 256, 400), (11, 5, 5, 5, 4), (4, 2, 2, 2, 1)),
    # for tests, matched to the tiny 3D-GAN's z_dim 32: 32 -> 16 -> 8 -> 4 -> 1
    "tiny": EncoderConfig(32, 32, (8, 16, 32, 64), (5, 3, 3, 4), (2, 2, 2, 1)),
}


def get_encoder_preset(name: str) -> EncoderConfig:
    try:
        return ENCODER_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown encoder preset {name!r}; choose one of {', '.join(ENCODER_PRESETS)}") from None
