"""3D-GAN generator and discriminator (Wu et al., NIPS 2016), and the named model presets.

Paper architecture at 64^3: z (200) reshaped to 200x1x1x1, then five 4x4x4 transposed
convolutions, the first to 4^3 (stride 1, no padding), the rest stride 2 with padding 1 up to
8, 16, 32, 64; channels 512-256-128-64-1; BatchNorm and ReLU after each but the last; Sigmoid out.
The generator's convolutions have no bias, as in the official release. The discriminator mirrors
it: 4x4x4 stride-2 convolutions 1-64-128-256-512 with BatchNorm and LeakyReLU(0.2), then a 4x4x4
convolution to one score per shape. The discriminator returns a *logit*; the loss applies the
sigmoid (BCE-with-logits), which is the paper's cross-entropy loss in a numerically stable form.

Other resolutions (a power of two times 4) use one stride-2 layer per doubling, so a 32^3 model
has four transposed convolutions and a 16^3 one three; ``channels`` lists the hidden widths from the
z side, one per hidden layer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn


G_UPSAMPLES = ("transposed", "resize", "resize-last")
ROTATIONS = 4  # quarter turns about the up axis that D's rotation head tells apart
CONTRAST_DIMS = (256, 128)  # hidden and output width of D's contrastive projection head
FEATURE_POOL = 2  # the classification protocol's pooling: each chosen block max-pooled to 2^3


def default_blocks(n_blocks: int) -> tuple[int, ...]:
    """The hidden blocks of D whose responses are features: the last three (fewer when D has fewer),
    (1, 2, 3) at 64^3, (0, 1, 2) at 32^3."""
    return tuple(range(max(0, n_blocks - 3), n_blocks))


@dataclass(frozen=True)
class ModelConfig:
    resolution: int = 64  # edge of the cubic voxel grid; 4 * 2^k
    z_dim: int = 200  # latent size
    channels: tuple[int, ...] = (512, 256, 128, 64)  # generator hidden widths from the z side; D mirrors them
    minibatch_std: bool = False  # D sees the batch's feature spread before its last layer (not in the paper)
    g_output: str = "sigmoid"  # G's output activation: sigmoid (the paper) or hardsigmoid (reaches exact 0 and 1)
    d_norm: str = "batch"  # D's normalisation: "batch" (the paper) or "spectral" (spectral norm, no BatchNorm)
    latent_gaussian: bool = False  # G first maps z ~ N(0, I) to mean + chol @ z (buffers): the fitted prior of the auto-encoder baseline
    rotation_head: bool = False  # D also has a 4-way head that tells which quarter turn about the up axis a shape was given (not in the paper)
    contrast_head: bool = False  # D also has a projection head on its pooled features for a contrastive task (not in the paper)
    d_channels: tuple[int, ...] = ()  # D's hidden widths in the same order as ``channels``, when D is not G's mirror (empty: the mirror)
    g_upsample: str = "transposed"  # G's stride-2 layers: transposed convolutions (the paper), or "resize" / "resize-last": nearest-neighbour doubling then a 3^3 convolution, in every such layer or the output layer only

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "d_channels", tuple(int(c) for c in self.d_channels))
        if self.d_channels and (len(self.d_channels) != len(self.channels) or min(self.d_channels) < 1):
            raise ValueError(f"d_channels must be {len(self.channels)} positive widths like channels, got {self.d_channels}")
        k = math.log2(self.resolution / 4) if self.resolution >= 4 else -1
        if k < 1 or k != int(k):
            raise ValueError(f"resolution must be 4 * 2^k with k >= 1 (8, 16, 32, 64, ...), got {self.resolution}")
        if len(self.channels) != int(k):
            raise ValueError(
                f"resolution {self.resolution} needs {int(k)} hidden channel widths, got {len(self.channels)}: {self.channels}"
            )
        if self.z_dim < 1 or min(self.channels) < 1:
            raise ValueError("z_dim and channels must be positive")
        if self.g_output not in ("sigmoid", "hardsigmoid"):
            raise ValueError(f"g_output must be 'sigmoid' or 'hardsigmoid', got {self.g_output!r}")
        if self.g_upsample not in G_UPSAMPLES:
            raise ValueError(f"g_upsample must be one of {', '.join(G_UPSAMPLES)}, got {self.g_upsample!r}")
        if self.d_norm not in ("batch", "spectral"):
            raise ValueError(f"d_norm must be 'batch' or 'spectral', got {self.d_norm!r}")

    @property
    def d_widths(self) -> tuple[int, ...]:
        """D's hidden widths, ordered like ``channels`` (D runs through them in reverse)."""
        return self.d_channels or self.channels

    def scaled(self, width: float) -> "ModelConfig":
        """The same architecture with every hidden width multiplied by ``width`` (at least 1 channel)."""
        return dataclasses.replace(self, channels=tuple(max(1, round(c * width)) for c in self.channels),
                                   d_channels=tuple(max(1, round(c * width)) for c in self.d_channels))

    def d_scaled(self, width: float) -> "ModelConfig":
        """The same architecture with D's hidden widths alone multiplied by ``width`` (G kept as it is)."""
        return dataclasses.replace(self, d_channels=tuple(max(1, round(c * width)) for c in self.d_widths))

    def to_dict(self) -> dict:
        return {
            "resolution": self.resolution,
            "z_dim": self.z_dim,
            "channels": list(self.channels),
            "minibatch_std": self.minibatch_std,
            "d_norm": self.d_norm,
            "g_output": self.g_output,
            **({"latent_gaussian": True} if self.latent_gaussian else {}),  # absent from every 3D-GAN's config
            **({"rotation_head": True} if self.rotation_head else {}),  # absent unless trained with --rotation-loss
            **({"contrast_head": True} if self.contrast_head else {}),  # absent unless trained with --contrastive
            **({"d_channels": list(self.d_channels)} if self.d_channels else {}),  # absent unless trained with --d-width
            **({"g_upsample": self.g_upsample} if self.g_upsample != "transposed" else {}),  # absent unless trained with --g-upsample
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(
            resolution=int(d["resolution"]),
            z_dim=int(d["z_dim"]),
            channels=tuple(d["channels"]),
            minibatch_std=bool(d.get("minibatch_std", False)),
            d_norm=str(d.get("d_norm", "batch")),
            g_output=str(d.get("g_output", "sigmoid")),
            latent_gaussian=bool(d.get("latent_gaussian", False)),
            rotation_head=bool(d.get("rotation_head", False)),
            contrast_head=bool(d.get("contrast_head", False)),
            d_channels=tuple(d.get("d_channels", ())),
            g_upsample=str(d.get("g_upsample", "transposed")),
        )

    def resize_layer(self, i: int) -> bool:
        """Whether G's layer ``i`` (0 = the one from z) doubles by resizing then convolving."""
        last = len(self.channels)
        return i > 0 and (self.g_upsample == "resize" or (self.g_upsample == "resize-last" and i == last))


# Nearest-neighbour doubling then a 3-tap convolution (padding 1) is, along each axis, the stride-2,
# 4-tap transposed convolution (padding 1) whose taps are these sums of the 3 taps: output 2m takes
# inputs m-1 and m, output 2m+1 inputs m and m+1, each through the taps that land on its copy.
_RESIZE_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


class ResizeConv3d(nn.Module):
    """Double the grid by repeating each voxel 2^3 times, then convolve with a 3^3 kernel (no bias):
    the resize-convolution of Odena, Dumoulin and Olah (2016), whose output has no checkerboard from
    uneven kernel overlap. Computed as the equivalent 4^3 stride-2 transposed convolution with tied
    taps, so it costs what the paper's layer costs and no 8x larger grid is made. ``weight`` is
    (Cin, Cout, 3, 3, 3), laid out like a transposed convolution's."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout, 3, 3, 3))
        nn.init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = _RESIZE_TAPS.to(self.weight)
        w = torch.einsum("ai,bj,ck,xyijk->xyabc", m, m, m, self.weight)
        return nn.functional.conv_transpose3d(x, w, stride=2, padding=1)


class Generator(nn.Module):
    """z (N, z_dim) -> occupancy (N, 1, R, R, R), float in (0, 1).

    With ``cfg.latent_gaussian`` the input is first mapped to ``z_mean + z @ z_chol.T`` (two buffers,
    part of the weights): a decoder sampled from a Gaussian fitted to its codes then takes standard
    normal latents like any other gan3d generator, so every command that samples G works on it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.z_dim, *cfg.channels, 1]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            if cfg.resize_layer(i):  # Odena et al. 2016: no uneven kernel overlap, so no checkerboard
                layers.append(ResizeConv3d(cin, cout))
            else:
                stride, pad = (1, 0) if i == 0 else (2, 1)
                layers.append(nn.ConvTranspose3d(cin, cout, 4, stride, pad, bias=False))
            if i < len(widths) - 2:  # every layer but the output one
                layers += [nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
        layers.append(nn.Sigmoid() if cfg.g_output == "sigmoid" else nn.Hardsigmoid())
        self.net = nn.Sequential(*layers)
        if cfg.latent_gaussian:
            self.register_buffer("z_mean", torch.zeros(cfg.z_dim))
            self.register_buffer("z_chol", torch.eye(cfg.z_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.map_latent(z).reshape(z.shape[0], self.cfg.z_dim, 1, 1, 1))

    def map_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The latent the layers see: ``z`` itself, or with ``cfg.latent_gaussian`` mean + chol @ z."""
        if not self.cfg.latent_gaussian:
            return z
        return self.z_mean + z.reshape(z.shape[0], -1) @ self.z_chol.T


class Discriminator(nn.Module):
    """Occupancy (N, 1, R, R, R) -> logit (N,). ``features(x)`` gives every hidden layer's response.

    With ``cfg.rotation_head``, ``rotation_logits(x)`` (N, 4) says which quarter turn about the up axis
    each shape was given: a linear layer on the last hidden block's response averaged over positions,
    the self-supervised task of Chen et al. 2019 (SS-GAN), which makes D learn features a classifier
    can use. The adversarial score never sees that head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = [1, *reversed(cfg.d_widths)]
        spectral = cfg.d_norm == "spectral"
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.blocks = nn.ModuleList()
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers: list[nn.Module] = [sn(nn.Conv3d(cin, cout, 4, 2, 1, bias=spectral))]
            if not spectral:
                layers.append(nn.BatchNorm3d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.blocks.append(nn.Sequential(*layers))
        self.out = sn(nn.Conv3d(widths[-1] + int(cfg.minibatch_std), 1, 4, 1, 0))
        if cfg.rotation_head:  # made without drawing from the global RNG, and zero: D's other weights are then
            with torch.random.fork_rng(devices=[]):  # the same with or without the head for the same seed
                self.rotation = nn.Linear(widths[-1], ROTATIONS)
            nn.init.zeros_(self.rotation.weight), nn.init.zeros_(self.rotation.bias)
        if cfg.contrast_head:  # drawn inside a forked RNG too, so D's other weights stay those of the same seed
            dim = sum(widths[1 + b] * FEATURE_POOL**3 for b in default_blocks(len(widths) - 1))
            with torch.random.fork_rng(devices=[]):
                self.contrast = nn.Sequential(nn.Linear(dim, CONTRAST_DIMS[0]), nn.ReLU(inplace=True), nn.Linear(*CONTRAST_DIMS))

    def pooled_features(self, x: torch.Tensor, blocks: "tuple[int, ...] | None" = None, pool: int = FEATURE_POOL) -> torch.Tensor:
        """The classification protocol's features: each chosen hidden block's response (default: the
        last three, :func:`default_blocks`) max-pooled to ``pool^3``, flattened and concatenated in
        the order of ``blocks``, (N, sum_b C_b * pool^3)."""
        blocks = default_blocks(len(self.blocks)) if blocks is None else tuple(blocks)
        parts = {}
        for i, block in enumerate(self.blocks[: max(blocks) + 1]):
            x = block(x)
            if i in blocks:
                parts[i] = nn.functional.adaptive_max_pool3d(x, pool).flatten(1)
        return torch.cat([parts[b] for b in blocks], 1)

    def contrast_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 128) unit vectors: the projection head (needs ``cfg.contrast_head``) on :meth:`pooled_features`."""
        return nn.functional.normalize(self.contrast(self.pooled_features(x)), dim=1)

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 4) scores of the quarter turns 0..3 (needs ``cfg.rotation_head``)."""
        for block in self.blocks:
            x = block(x)
        return self.rotation(x.mean(dim=tuple(range(2, x.dim()))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.cfg.minibatch_std:
            x = append_minibatch_std(x)
        return self.out(x).reshape(x.shape[0])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Responses of each hidden block, (N, C_i, R / 2^(i+1), ...) for i = 0..len(channels)-1."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


@torch.no_grad()
def layer_summary(G: Generator, D: Discriminator, device: torch.device | str = "cpu") -> list[str]:
    """Run one latent through G and its output through D; one line per layer with its output shape.

    Fails loudly (at start-up, not mid-run) if G's output does not fit D.
    """
    lines: list[str] = []
    was = G.training, D.training
    G.eval(), D.eval()
    x = torch.rand(1, G.cfg.z_dim, device=device).reshape(1, G.cfg.z_dim, 1, 1, 1)
    for i, layer in enumerate(G.net):
        x = layer(x)
        if isinstance(layer, (nn.ConvTranspose3d, ResizeConv3d, nn.Sigmoid, nn.Hardsigmoid)):
            lines.append(f"G.net.{i:<2d} {type(layer).__name__:16s} -> {tuple(x.shape[1:])}")
    for i, block in enumerate(D.blocks):
        x = block(x)
        kind = "Conv3d+BN+LReLU" if D.cfg.d_norm == "batch" else "SNConv3d+LReLU"
        lines.append(f"D.blocks.{i} {kind:16s} -> {tuple(x.shape[1:])}")
    if D.cfg.minibatch_std:
        x = append_minibatch_std(x)
        lines.append(f"D.mbstd    {'minibatch std':16s} -> {tuple(x.shape[1:])}")
    x = D.out(x)
    lines.append(f"D.out      {'Conv3d':16s} -> {tuple(x.shape[1:])} (one logit per shape)")
    G.train(was[0]), D.train(was[1])
    return lines


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, inputs, *, batch_size: int = 64) -> None:
    """Re-estimate the module's BatchNorm running statistics as the plain average over ``inputs``
    (a tensor, split into batches of ``batch_size``, or an iterable of input batches).

    Running averages with momentum lag a network that changes quickly; eval mode (needed so that an
    output does not depend on the rest of its batch) then gives worse results than training sees.
    For G the inputs are latents; for the 3D-VAE-GAN's image encoder they are training images,
    whose early layers have channels with a mean many times their spread, so that the small lag of
    a momentum average is enough to spoil every reconstruction. Call on a copy (``copy.deepcopy``)
    to leave the training state untouched. Leaves the module in eval mode.
    """
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    module.train()
    batches = (inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)) if torch.is_tensor(inputs) else inputs
    for x in batches:
        module(x)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    module.eval()


def append_minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """(N, C, *S) -> (N, C + 1, *S): one extra channel holding, for each group of ``group`` shapes,
    the mean over features and positions of the standard deviation across the group (Karras et al.
    2018). A generator that makes the same shape for every z gives a spread D can see.
    """
    n = x.shape[0]
    g = min(group, n)
    while n % g:
        g -= 1
    y = x.float().reshape(g, n // g, *x.shape[1:])
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (n/g, C, *S)
    y = y.mean(dim=tuple(range(1, y.dim())))  # (n/g,)
    y = y.repeat(g).reshape(n, 1, *([1] * (x.dim() - 2))).expand(n, 1, *x.shape[2:])
    return torch.cat([x, y.to(x.dtype)], dim=1)


def init_weights(module: nn.Module) -> None:
    """DCGAN-style initialisation: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), biases 0.
    Spectrally normalised convolutions keep PyTorch's default initialisation. Covers the 3D models
    and the 2D image encoder alike."""
    for m in module.modules():
        if isinstance(m, ResizeConv3d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose3d)):
            if nn.utils.parametrize.is_parametrized(m, "weight"):
                continue  # spectral norm: keep PyTorch's init, which its power-iteration vectors were fitted to
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """Freshly initialised (G, D) for ``cfg``; the caller seeds torch first for reproducible weights."""
    g, d = Generator(cfg), Discriminator(cfg)
    init_weights(g)
    init_weights(d)
    return g, d


def conv_flops(cfg: ModelConfig) -> dict[str, float]:
    """Multiply-add FLOPs (2 per MAC) of one forward pass per sample, for G and D."""
    widths = [cfg.z_dim, *cfg.channels, 1]
    g = 0.0
    edge = 1
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        # a transposed convolution (a resize-convolution runs as one): every input voxel meets every kernel tap
        g += 2.0 * cin * cout * 64 * edge**3
        edge = 4 if i == 0 else edge * 2
    dwidths = [1, *reversed(cfg.d_widths)]
    d = 0.0
    edge = cfg.resolution
    for cin, cout in zip(dwidths[:-1], dwidths[1:]):
        edge //= 2
        d += 2.0 * cin * cout * 64 * edge**3
    d += 2.0 * dwidths[-1] * 64  # final 4^3 convolution to one score
    return {"G": g, "D": d}


def with_resolution(cfg: ModelConfig, resolution: int) -> ModelConfig:
    """The same model family at another resolution: drop trailing widths, or append halved ones."""
    k = math.log2(resolution / 4) if resolution >= 8 else 0
    if k < 1 or k != int(k):
        raise ValueError(f"resolution must be 4 * 2^k with k >= 1 (8, 16, 32, 64, ...), got {resolution}")
    def fit(widths):
        ch = list(widths)[: int(k)]
        while ch and len(ch) < int(k):
            ch.append(max(1, ch[-1] // 2))
        return tuple(ch)

    return dataclasses.replace(cfg, resolution=resolution, channels=fit(cfg.channels), d_channels=fit(cfg.d_channels))
