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
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import checkpoint as ckpt
from . import datasets
from .errors import Gan3dError
from .models import Discriminator, Generator, build, init_weights, recalibrate_batchnorm, with_resolution
from .presets import get as get_preset
from .training import (
    LOSSES,
    LoopIO,
    RunLog,
    TrainResult,
    _plain_state,
    _rng_state,
    _set_rng_state,
    batch_indices,
    draw_instance_noise,
    gated_d_update,
    make_run_dir,
    open_resume,
    g_loss,
    pick_device,
    set_determinism,
    step_generator,
    write_json,
)

# --- the encoder ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int = 256  # edge of the square RGB input
    z_dim: int = 200  # latent size; the last layer has 2 * z_dim channels (mean and log-variance)
    channels: tuple[int, ...] = (64, 128, 256, 512, 400)  # output widths of every convolution
    kernels: tuple[int, ...] = (11, 5, 5, 5, 8)
    strides: tuple[int, ...] = (4, 2, 2, 2, 1)

    def __post_init__(self):
        for name in ("channels", "kernels", "strides"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        n = len(self.channels)
        if n < 1 or len(self.kernels) != n or len(self.strides) != n:
            raise ValueError("channels, kernels and strides must have the same (non-zero) length")
        if self.z_dim < 1 or min(self.channels) < 1 or min(self.kernels) < 1 or min(self.strides) < 1:
            raise ValueError("z_dim, channels, kernels and strides must be positive")
        if self.channels[-1] != 2 * self.z_dim:
            raise ValueError(f"the last layer must have 2 * z_dim = {2 * self.z_dim} channels, got {self.channels[-1]}")
        sizes = self.spatial_sizes()
        if sizes[-1] != 1:
            raise ValueError(f"image_size {self.image_size} with these layers gives {sizes[-1]}x{sizes[-1]} output, not 1x1 ({sizes})")

    @property
    def paddings(self) -> tuple[int, ...]:
        """``ceil((k - s) / 2)`` for every strided layer (exact division by the stride when the
        size is a multiple of it), 0 for the last layer (a full-size 'dense' convolution)."""
        pads = [max(0, math.ceil((k - s) / 2)) for k, s in zip(self.kernels[:-1], self.strides[:-1])]
        return (*pads, 0)

    def spatial_sizes(self) -> list[int]:
        """Spatial edge after each layer."""
        out, x = [], int(self.image_size)
        for k, s, p in zip(self.kernels, self.strides, self.paddings):
            x = (x + 2 * p - k) // s + 1
            out.append(x)
        return out

    def with_z_dim(self, z_dim: int) -> "EncoderConfig":
        return dataclasses.replace(self, z_dim=int(z_dim), channels=(*self.channels[:-1], 2 * int(z_dim)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


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


class ImageEncoder(nn.Module):
    """RGB image (N, 3, S, S) in [0, 1] -> (mu, logvar), each (N, z_dim)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        widths = [3, *cfg.channels]
        layers: list[nn.Module] = []
        last = len(cfg.channels) - 1
        for i, (cin, cout, k, s, p) in enumerate(zip(widths[:-1], widths[1:], cfg.kernels, cfg.strides, cfg.paddings)):
            if i < last:
                layers += [nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            else:
                layers.append(nn.Conv2d(cin, cout, k, s, p, bias=True))
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.cfg.image_size
        if img.dim() != 4 or img.shape[1] != 3 or img.shape[2] != s or img.shape[3] != s:
            raise ValueError(f"encoder expects (N, 3, {s}, {s}) images, got {tuple(img.shape)}")
        out = self.net(img).reshape(img.shape[0], 2 * self.cfg.z_dim)
        return out[:, : self.cfg.z_dim], out[:, self.cfg.z_dim :]


def init_encoder(E: nn.Module) -> None:
    """DCGAN-style initialisation, the same as G and D get (:func:`gan3d.models.init_weights`)."""
    init_weights(E)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None, *, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """``mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` drawn on the CPU from ``generator`` (or given)."""
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps.to(mu.device, mu.dtype)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dimensions: (N,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


RECON_LOSSES = ("l2", "bce")


def reconstruction_loss(recon: torch.Tensor, shapes: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Per-voxel error summed over voxels, averaged over the batch: squared L2 (``l2``, the paper's)
    or binary cross-entropy of G's occupancy probabilities (``bce``)."""
    if kind == "l2":
        per_voxel = (recon - shapes).pow(2)
    elif kind == "bce":
        eps = 1e-6  # G's sigmoid can reach 0 or 1 in float32
        per_voxel = F.binary_cross_entropy(recon.clamp(eps, 1 - eps), shapes, reduction="none")
    else:
        raise ValueError(f"reconstruction loss must be one of {RECON_LOSSES}, got {kind!r}")
    return per_voxel.reshape(recon.shape[0], -1).sum(dim=1).mean()


# --- one training step ---------------------------------------------------------------------------


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
    """IoU at 0.5 of each reconstruction (N, 1, R, R, R) with its shape: (N,) (0 when both are empty)."""
    pred, true = recon.detach() >= 0.5, shapes >= 0.5
    inter = (pred & true).flatten(1).sum(1).float()
    union = (pred | true).flatten(1).sum(1).float().clamp_min(1)
    return inter / union


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


# --- paired data ---------------------------------------------------------------------------------


class PairedData:
    """A paired image/shape folder (``images.npy``, ``pairs.npz``, ``meta.json``) read lazily:
    images stay in a memory map and shapes bit-packed; :meth:`batch` reads only one batch."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        self.folder = folder
        for name in ("images.npy", "pairs.npz", "meta.json"):
            if not (folder / name).is_file():
                raise Gan3dError(f"not a paired image/shape folder (no {name})", folder)
        try:
            self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            self.images = np.load(folder / "images.npy", mmap_mode="r")
            with np.load(folder / "pairs.npz") as z:
                self.shape_index = np.asarray(z["shape_index"], dtype=np.int64)
                self.split = np.asarray(z["split"], dtype=np.int64)
        except (OSError, ValueError, KeyError) as e:
            raise Gan3dError(f"cannot read the paired folder ({type(e).__name__}: {e})", folder) from None
        im = self.images
        if im.ndim != 4 or im.shape[3] != 3 or im.shape[1] != im.shape[2] or im.dtype != np.uint8:
            raise Gan3dError(f"images.npy must be (N, S, S, 3) uint8, got {im.shape} {im.dtype}", folder)
        if len(self.shape_index) != len(im) or len(self.split) != len(im):
            raise Gan3dError(f"pairs.npz has {len(self.shape_index)} rows but images.npy {len(im)}", folder)
        dpath = Path(self.meta.get("dataset") or self.meta.get("source") or "")  # absolute path of the voxel file
        if not dpath.is_file() and (folder / dpath.name).is_file():
            dpath = folder / dpath.name  # a moved folder that carries its dataset along
        self.dataset = datasets.load(dpath)
        if len(self.shape_index) and (self.shape_index.min() < 0 or self.shape_index.max() >= len(self.dataset)):
            raise Gan3dError(f"shape_index out of range for the {len(self.dataset)} shapes of {dpath}", folder)
        self.resolution = self.dataset.resolution
        self.image_size = int(im.shape[1])

    def __len__(self) -> int:
        return len(self.shape_index)

    def rows(self, split: int) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def batch(self, rows: np.ndarray, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 images (B, 3, image_size, image_size) in [0, 1] and shapes (B, 1, R, R, R)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # read the memmap in file order
        raw = np.empty((len(rows), *self.images.shape[1:]), np.uint8)
        raw[order] = self.images[rows[order]]
        img = torch.from_numpy(raw).permute(0, 3, 1, 2).float().div_(255.0)
        if img.shape[-1] != image_size:
            img = F.interpolate(img, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
            img = img.clamp_(0.0, 1.0)
        shapes = torch.from_numpy(self.dataset.grids(self.shape_index[rows])).unsqueeze(1)
        return img.contiguous(), shapes


# --- configuration and the loop ------------------------------------------------------------------


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
                from .render import render_voxels, save_png, tile

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


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _resize_rgb(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((size, size), Image.BILINEAR))
