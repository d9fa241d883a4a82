"""Named presets: a model architecture and the training recipe that goes with it, in one registry.

The CLI offers ``PRESETS``' keys as choices for ``--preset``; every recipe value is also an option
that a run can override, and the run folder records what was used.

* ``paper64``: the paper's 64^3 model and recipe (Adam beta1 0.5, lr 0.0025 for G and 1e-5 for D,
  batch 100, z ~ U[0,1]^200, D updated only when its accuracy on the batch was <= 80%).
* ``cpu32``: a 32^3 model at a quarter of the paper's widths with a recipe found by experiment on
  this project's 2-core CPU machines (docs/recipe/README.md has the evidence). It learns varied,
  recognisable chairs from the 3D ShapeNets chairs in well under an hour.
* ``demo``: cpu32 at half width, sized so ``gan3d demo`` trains, samples and renders in minutes.
* ``tiny``: a 16^3 model for tests; trains in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import ModelConfig


@dataclass(frozen=True)
class Preset:
    model: ModelConfig  # architecture
    recipe: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields this preset sets
    help: str = ""  # one line for --help


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

PRESETS: dict[str, Preset] = {
    "paper64": Preset(
        model=ModelConfig(resolution=64, z_dim=200, channels=(512, 256, 128, 64)),
        recipe=dict(PAPER_RECIPE, steps=20000),
        help="the paper's 64^3 model and recipe (about 1 sample/s on a 2-core CPU)",
    ),
    "cpu32": Preset(
        model=ModelConfig(resolution=32, z_dim=200, channels=(128, 64, 32), minibatch_std=True),
        recipe=CPU_RECIPE,
        help="32^3, widths 128-64-32, a recipe found on a 2-core CPU (docs/recipe): learns chairs in under an hour",
    ),
    "demo": Preset(
        model=ModelConfig(resolution=32, z_dim=200, channels=(64, 32, 16), minibatch_std=True),
        recipe=dict(CPU_RECIPE, steps=1500, noise_decay_steps=1500),
        help="cpu32 at half width with cpu32's recipe: the README's few-minute main job",
    ),
    "tiny": Preset(
        model=ModelConfig(resolution=16, z_dim=32, channels=(16, 8)),
        recipe=dict(lr_g=0.002, lr_d=0.0005, beta1=0.5, batch_size=16, d_gate=0.8, loss="bce", z_dist="uniform", steps=200),
        help="16^3, for tests and smoke runs: trains in seconds",
    ),
}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
