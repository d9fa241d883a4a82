"""What every latent-space analysis needs: the checkpoint's G and prior, a fast batched forward
pass, operands given as seeds, latent files, voxel files or images, and atomic output writers.

Voxel convention as in :mod:`gan3d.voxels`: grids are ``[x, y, z]``, z up, filled at >= 0.5.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_open, atomic_path
from gan3d.models.gan import Generator

PRIOR_RANGE = {"uniform": (0.0, 1.0), "normal": (-2.0, 2.0)}
"""Range swept per latent dimension: the uniform prior's support, or +-2 std of a normal one."""

VOXEL_SUFFIXES = (".npz", ".binvox", ".mat", ".npy")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RED = (0.88, 0.16, 0.12)
BLUE = (0.62, 0.72, 0.90)


def checkpoint_path(text: str | os.PathLike) -> Path:
    """A run folder means its ``snapshot.pt`` (else ``checkpoint.pt``); a file, or the name of a
    shipped model (``gan3d models``), is taken as it is and read by :func:`gan3d.checkpoint.load`,
    which names the file when it is missing."""
    return ckpt.resolve(text)


def load_model(checkpoint: str | os.PathLike) -> tuple[Generator, str, dict]:
    """(G in eval mode on the CPU, its z prior ``"uniform"``/``"normal"``, the checkpoint dict)."""
    G, data = ckpt.load_generator(checkpoint_path(checkpoint))
    dist = ckpt.z_prior(data)
    if dist not in PRIOR_RANGE:
        raise Gan3dError(f"checkpoint has an unknown z prior {dist!r}", checkpoint)
    G.requires_grad_(False)
    return G, dist, data


# --- a faster forward pass -------------------------------------------------------------------------

_TAPS = ((3, 1), (2, 0))  # kernel taps of a stride-2, kernel-4, padding-1 transposed conv, per output parity


def _phase_weight(w: torch.Tensor) -> torch.Tensor:
    """ConvTranspose3d weight (Cin, Cout, 4, 4, 4) -> Conv3d weight (8 * Cout, Cin, 2, 2, 2).

    Output voxel ``o = 2m + p`` of the transposed convolution sums input ``m - 1 + p + t`` (t = 0, 1)
    times kernel tap ``_TAPS[p][t]``: per parity (px, py, pz) it is an ordinary 2^3 convolution of the
    input padded by one. The eight parities are stacked as output-channel blocks.
    """
    blocks = []
    for px in range(2):
        for py in range(2):
            for pz in range(2):
                k = w[:, :, list(_TAPS[px])][:, :, :, list(_TAPS[py])][:, :, :, :, list(_TAPS[pz])]
                blocks.append(k.transpose(0, 1))
    return torch.cat(blocks, 0).contiguous()


def _phase_tconv(x: torch.Tensor, wp: torch.Tensor, cout: int) -> torch.Tensor:
    """The transposed convolution of :func:`_phase_weight` as one Conv3d and an interleave.

    The convolution pads by itself (no padded copy of ``x``), and the output is allocated
    channels-last like ``y``, so the interleave copies whole channel rows and the next layer needs
    no layout conversion (benchmarks/bench_explore.py measures both against the plain version)."""
    n, s = x.shape[0], x.shape[2]
    y = F.conv3d(x, wp, padding=1)  # (N, 8 * Cout, S + 1, S + 1, S + 1)
    out = torch.empty((n, cout, 2 * s, 2 * s, 2 * s), dtype=x.dtype, device=x.device, memory_format=torch.channels_last_3d)
    b = 0
    for px in range(2):
        for py in range(2):
            for pz in range(2):
                out[:, :, px::2, py::2, pz::2] = y[:, b * cout : (b + 1) * cout, px : px + s, py : py + s, pz : pz + s]
                b += 1
    return out


class FastGenerator(nn.Module):
    """The same function as an eval-mode :class:`Generator`, faster on a CPU: each stride-2
    transposed convolution runs as one ordinary convolution over its eight output parities (up to
    4x faster for the 1-channel output layer), in channels-last layout. Differences from ``G`` are
    float rounding only (tested). Made from a Generator; any other module is used as it is."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.cfg = G.cfg
        self.z_dim = G.cfg.z_dim
        self.map_latent = G.map_latent
        self.ops: list[tuple[str, Any]] = []
        for layer in G.net:
            if isinstance(layer, nn.ConvTranspose3d) and layer.stride == (2, 2, 2) and layer.kernel_size == (4, 4, 4) and layer.padding == (1, 1, 1) and layer.bias is None:
                self.ops.append(("tconv", (_phase_weight(layer.weight.detach()), layer.weight.shape[1])))
            else:
                self.ops.append(("layer", layer))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.map_latent(z).reshape(z.shape[0], self.z_dim, 1, 1, 1)
        for kind, op in self.ops:
            if kind == "tconv":
                x = _phase_tconv(x.contiguous(memory_format=torch.channels_last_3d), *op)
            else:
                x = op(x)
        return x


def fast(G: nn.Module) -> nn.Module:
    """:class:`FastGenerator` for a :class:`Generator` in eval mode, else ``G`` itself."""
    if isinstance(G, Generator) and not G.training:
        return FastGenerator(G)
    return G


@torch.no_grad()
def occupancy(G: nn.Module, z: torch.Tensor | np.ndarray, *, batch_size: int = 100) -> np.ndarray:
    """G over latents ``z`` (N, z_dim) in batches -> float32 occupancy (N, R, R, R) in [0, 1]."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    out = [G(z[i : i + batch_size]).reshape(-1, *G_res(G)).float().numpy() for i in range(0, len(z), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *G_res(G)), np.float32)


def G_res(G: nn.Module) -> tuple[int, int, int]:
    r = int(G.cfg.resolution)
    return (r, r, r)


def shapes(G: nn.Module, z, *, keep_all: bool = True, batch_size: int = 100) -> np.ndarray:
    """bool (N, R, R, R): G(z) thresholded at 0.5; unless ``keep_all``, each cut to its largest
    26-connected component as :func:`gan3d.sampling.postprocess` does."""
    from gan3d.sampling import postprocess

    return postprocess(occupancy(G, z, batch_size=batch_size), keep_all=keep_all)


# --- operands ----------------------------------------------------------------------------------------


def read_target(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """A voxel file (.npz/.binvox/.mat/.npy) as bool (R, R, R); Gan3dError unless R == ``resolution``."""
    from gan3d.io.voxelfiles import read_voxels

    p = Path(path)
    if not p.is_file():
        raise Gan3dError("no such voxel file", p)
    grid = read_voxels(p)
    if grid.shape != (resolution,) * 3:
        raise Gan3dError(f"voxel grid is {grid.shape[0]}^3 but the generator makes {resolution}^3 shapes", p)
    return grid


def read_latent(path: str | os.PathLike, z_dim: int) -> np.ndarray | None:
    """A ``.npy`` holding one latent: float32 (z_dim,). None when the file holds a 3D grid instead;
    Gan3dError for any other shape."""
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as e:  # numpy raises many types for truncated or foreign files
        raise Gan3dError(f"not a readable .npy file ({type(e).__name__})", p) from None
    if arr.ndim == 3:
        return None
    arr = np.asarray(arr).reshape(-1) if arr.ndim == 2 and arr.shape[0] == 1 else np.asarray(arr)
    if arr.ndim != 1 or arr.shape[0] != z_dim:
        raise Gan3dError(f"latent has shape {tuple(np.shape(arr))}, the generator needs ({z_dim},)", p)
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise Gan3dError("latent is not all finite numbers", p)
    return arr.astype(np.float32)


def check_out_dir(path: str | os.PathLike) -> Path:
    """``--out`` as a Path; Gan3dError if it exists and is not a folder (nothing is made)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise Gan3dError("--out exists and is not a folder", p)
    return p


def out_dir(path: str | os.PathLike) -> Path:
    p = check_out_dir(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


def save_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def save_json(path: Path, obj: dict) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def colored(grid: np.ndarray, red: np.ndarray) -> np.ndarray:
    """float (R, R, R, 3): blue voxels, red where ``red``; for :func:`render_voxels`'s voxel_colors."""
    out = np.empty((*grid.shape, 3), np.float64)
    out[...] = BLUE
    out[red] = RED
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool grids (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def check_positive(name: str, value: int, minimum: int = 1) -> int:
    if int(value) < minimum:
        raise Gan3dError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


@torch.no_grad()
def encode_image(path: Path, encoder: str | None, z_dim: int) -> np.ndarray:
    """float32 (z_dim,): the mean of q(z | image) of a 3D-VAE-GAN encoder checkpoint."""
    if not encoder:
        raise Gan3dError("an image operand needs --encoder-checkpoint (a 3D-VAE-GAN run)", path)
    from gan3d.data.images import prepare_image
    from gan3d.reconstruct import load_reconstructor

    E, _, _ = load_reconstructor(checkpoint_path(encoder))
    if int(E.cfg.z_dim) != z_dim:
        raise Gan3dError(f"encoder's z has {E.cfg.z_dim} dimensions, the generator's {z_dim}", encoder)
    img = np.asarray(prepare_image(path, size=E.cfg.image_size), dtype=np.float32)
    mu, _ = E(torch.from_numpy(img).unsqueeze(0))
    return mu[0].float().numpy()


# --- outputs ------------------------------------------------------------------------------------------
