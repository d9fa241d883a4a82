"""What the analyses accept as a latent: a seed, a saved latent, a voxel file through inversion, or an
image through a 3D-VAE-GAN encoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from torch import nn

from gan3d.errors import Gan3dError
from gan3d.explore.common import (
    IMAGE_SUFFIXES,
    VOXEL_SUFFIXES,
    encode_image,
    read_latent,
    read_target,
)
from gan3d.explore.invert import invert


def resolve_operand(
    spec: str, G: nn.Module, dist: str, *, what: str, encoder: str | None = None, invert_options: dict | None = None
) -> tuple[np.ndarray, dict]:
    """One latent from ``spec``: a seed (integer), a latent ``.npy`` of shape (z_dim,), a voxel file
    (inverted with :func:`gan3d.explore.invert.invert`) or an image (the mean of a 3D-VAE-GAN
    encoder's q(z|image); needs ``encoder``). Returns (float32 (z_dim,), a JSON-able description)."""
    from gan3d.runtime import latents

    z_dim = int(G.cfg.z_dim)
    text = str(spec).strip()
    if re.fullmatch(r"\d+", text):
        return latents([int(text)], z_dim, dist)[0].numpy(), {"kind": "seed", "seed": int(text)}
    p = Path(text)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise Gan3dError(f"{what}: not a seed (non-negative integer) and no such file", p)
    if suffix == ".npy":
        z = read_latent(p, z_dim)
        if z is not None:
            return z, {"kind": "latent", "path": str(p)}
    if suffix in VOXEL_SUFFIXES:
        target = read_target(p, int(G.cfg.resolution))
        res = invert(G, target, dist=dist, **(invert_options or {}))
        return res["z"], {"kind": "voxels", "path": str(p), "inversion_iou": res["iou"]}
    if suffix in IMAGE_SUFFIXES:
        return encode_image(p, encoder, z_dim), {"kind": "image", "path": str(p), "encoder": str(encoder)}
    raise Gan3dError(
        f"{what}: unknown operand type {p.suffix or '(no suffix)'!r} (a seed, .npy latent, "
        f"{'/'.join(VOXEL_SUFFIXES)} voxels, or {'/'.join(IMAGE_SUFFIXES)} image)",
        p,
    )
