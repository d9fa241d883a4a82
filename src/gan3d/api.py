"""The Python API: gan3d from a notebook or a script, with the same results as the command line.

>>> import gan3d
>>> model = gan3d.load("runs/00000-demo-builtin")      # a run folder, a .pt file (or a shipped model's name)
>>> grids = gan3d.sample(model, range(16))              # bool (16, R, R, R); seed i gives the same shape as `gan3d sample --seeds i`
>>> gan3d.export(grids, "out", formats=("npz", "obj"))  # [Path('out/grids.npz'), Path('out/shape0000.obj'), ...]
>>> gan3d.render(grids).save("grid.png")                # a PIL image of all shapes
>>> shapes = gan3d.reconstruct(vaegan_model, ["chair.jpg"])  # bool (1, R, R, R), 3D-VAE-GAN only

Grids follow :mod:`gan3d.voxels`: ``grid[x, y, z]``, z up, objects face -y, filled = True.
``gan3d sample`` and ``gan3d reconstruct`` compute their shapes with the same functions
(:func:`gan3d.sampling.sample_occupancy`, :func:`gan3d.reconstruct.reconstruct_one`,
:func:`gan3d.sampling.postprocess`) and write them with the same writer (:func:`gan3d.io.writer.write_grids`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.voxels import THRESHOLD

__all__ = ["Model", "load", "sample", "export", "render", "reconstruct"]


@dataclass
class Model:
    """A trained model, rebuilt from its checkpoint alone; every network in eval mode on ``device``.

    ``G`` maps latents (N, z_dim) to occupancy (N, 1, R, R, R) in [0, 1]; ``D`` (when the
    checkpoint holds it) maps (N, 1, R, R, R) to logits (N,); ``E`` (3D-VAE-GAN only) maps images
    (N, 3, S, S) in [0, 1] to (mu, logvar), each (N, z_dim). ``z_dist`` is the prior G was trained
    on (``"uniform"``: U[0,1]^z, or ``"normal"``: N(0, I)). ``config`` is the training config as a
    dict, ``kind`` the checkpoint kind, ``step`` its training step, ``path`` where it was read.
    """

    G: torch.nn.Module
    D: torch.nn.Module | None
    E: torch.nn.Module | None
    model_config: Any
    encoder_config: Any | None
    config: dict
    z_dist: str
    kind: str
    step: int
    path: str
    device: torch.device

    @property
    def resolution(self) -> int:
        """R: G makes (R, R, R) grids."""
        return int(self.model_config.resolution)

    @property
    def z_dim(self) -> int:
        return int(self.model_config.z_dim)

    @property
    def image_size(self) -> int | None:
        """S: E takes (3, S, S) images (None without an encoder)."""
        return None if self.encoder_config is None else int(self.encoder_config.image_size)

    def __repr__(self) -> str:
        nets = "G" + ("+D" if self.D is not None else "") + ("+E" if self.E is not None else "")
        return f"Model({nets}, {self.resolution}^3, z {self.z_dim} {self.z_dist}, {self.kind} step {self.step}, {self.path})"


def load(path_or_name: str | os.PathLike, device: str = "auto") -> Model:
    """Read a checkpoint into a :class:`Model`: a run folder (its ``snapshot.pt``, else
    ``checkpoint.pt``), a checkpoint file, or a shipped model's name (whatever
    :func:`gan3d.checkpoint.load` accepts). ``device``: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    Loading never runs code from the file (``weights_only``); a bad file is one Gan3dError naming it."""
    from gan3d.models.encoder import EncoderConfig, ImageEncoder
    from gan3d.models.gan import Discriminator, Generator
    from gan3d.runtime import pick_device

    dev = pick_device(device)
    from gan3d.reconstruct import model_specs

    if len(model_specs(path_or_name)) > 1:
        raise Gan3dError(
            f"{path_or_name}: 'A+B' (averaged models) is read by the command line only; load each model with "
            "gan3d.load and pass them as a list, gan3d.reconstruct([a, b], images)"
        )
    path = ckpt.resolve(path_or_name)
    data = ckpt.load(path)
    mcfg = ckpt.model_config(data, path)
    G = Generator(mcfg)
    ckpt.load_state(G, data["G"], "generator", path)
    D = None
    if "D" in data:
        D = Discriminator(mcfg)
        ckpt.load_state(D, data["D"], "discriminator", path)
    E, ecfg = None, None
    if "E" in data and "encoder_config" in data:
        try:
            ecfg = EncoderConfig.from_dict(data["encoder_config"])
        except (TypeError, ValueError) as e:
            raise Gan3dError(f"checkpoint has an invalid encoder config: {e}", path) from None
        E = ImageEncoder(ecfg)
        ckpt.load_state(E, data["E"], "encoder", path)
    nets = [m.to(dev).eval() if m is not None else None for m in (G, D, E)]
    config = data.get("train_config") or data.get("vaegan_config") or {}
    return Model(
        G=nets[0], D=nets[1], E=nets[2], model_config=mcfg, encoder_config=ecfg, config=dict(config),
        z_dist=ckpt.z_prior(data), kind=str(data.get("kind", "")), step=int(data.get("step", -1)),
        path=str(path), device=dev,
    )


def _seeds(seeds: int | str | Iterable[int]) -> list[int]:
    from gan3d.runtime import parse_seeds

    if isinstance(seeds, str):
        try:
            return parse_seeds(seeds)
        except ValueError as e:
            raise Gan3dError(str(e)) from None
    if isinstance(seeds, (int, np.integer)):
        return [int(seeds)]
    out = [int(s) for s in seeds]
    if any(s < 0 for s in out):
        raise Gan3dError(f"seeds must be >= 0, got {min(out)}")
    return out


def sample(
    model: Model,
    seeds: int | str | Iterable[int],
    *,
    keep_all: bool = False,
    threshold: float = THRESHOLD,
    batch_size: int = 32,
    occupancy: bool = False,
    truncation: float = 1.0,
) -> np.ndarray:
    """One shape per seed: bool ``(N, R, R, R)`` (N = number of seeds), the same grids as
    ``gan3d sample --seeds ...`` writes for that checkpoint.

    ``seeds``: an int, an iterable of ints (``range(16)``) or a string (``"0-15,40"``). Each latent
    comes from a generator seeded with its seed alone, so seed 17 is the same shape at any batch
    size and beside any other seeds. G's occupancy is thresholded at ``threshold`` and, unless
    ``keep_all``, cut to its largest 26-connected component (the paper's post-processing).
    ``occupancy=True`` returns G's raw float32 occupancy (N, R, R, R) in [0, 1] instead.
    ``truncation`` psi in (0, 1] pulls each latent towards the prior's mean (``gan3d sample
    --truncation``): more typical shapes, less variety; 1 is the prior as trained.
    """
    from gan3d.sampling import postprocess, sample_occupancy

    s = _seeds(seeds)
    if not 0.0 < float(truncation) <= 1.0:
        raise Gan3dError(f"truncation must be in (0, 1], got {truncation}")
    occ = sample_occupancy(model.G, s, z_dist=model.z_dist, batch_size=batch_size, device=model.device, truncation=truncation)
    return occ if occupancy else postprocess(occ, keep_all=keep_all, threshold=threshold)


def _batch(grids: Any) -> np.ndarray:
    g = grids.detach().cpu().numpy() if isinstance(grids, torch.Tensor) else np.asarray(grids)
    if g.ndim == 5 and g.shape[1] == 1:
        g = g[:, 0]
    if g.ndim == 3:
        g = g[None]
    if g.ndim != 4 or not (g.shape[1] == g.shape[2] == g.shape[3]):
        raise Gan3dError(f"expected a grid (R, R, R) or a batch of grids (N, R, R, R), got shape {g.shape}")
    return g


def export(
    grids: Any,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("npz", "obj"),
    *,
    stems: Sequence[str] | None = None,
    mesh_style: str = "smooth",
) -> list[Path]:
    """Write grids (bool or [0, 1] occupancy, ``(N, R, R, R)`` or one ``(R, R, R)``) to ``out_dir``.

    ``npz`` writes all of them to ``grids.npz`` (key ``grids``, bool (N, R, R, R)); ``binvox``,
    ``obj``, ``stl`` and ``ply`` write ``<stem>.<fmt>`` per shape (no mesh for an empty grid).
    ``stems`` default to ``shape0000``, ``shape0001``, ... Returns the paths written."""
    from gan3d.io.writer import write_grids

    g = _batch(grids)
    names = list(stems) if stems is not None else [f"shape{i:04d}" for i in range(len(g))]
    if len(names) != len(g):
        raise Gan3dError(f"{len(names)} stems for {len(g)} grids")
    written = write_grids(g, out_dir, stems=names, formats=formats, mesh_style=mesh_style, npz_file="grids.npz")
    return [Path(out_dir) / name for name in written]


def render(grids: Any, *, size: int = 128, ncols: int | None = None, labels: Sequence[str] | None = None):
    """A picture of the grids (``(N, R, R, R)`` or one ``(R, R, R)``; filled at >= 0.5), each shaded
    at ``size`` x ``size`` pixels and tiled ``ncols`` per row (default ``ceil(sqrt(N))``), optionally
    labelled: a ``PIL.Image.Image`` (RGB)."""
    from PIL import Image

    from gan3d.render.raster import render_voxels, tile

    g = _batch(grids)
    if labels is not None and len(labels) != len(g):
        raise Gan3dError(f"{len(labels)} labels for {len(g)} grids")
    pictures = [render_voxels(x.astype(np.float32), size=size) for x in g]
    return Image.fromarray(tile(pictures, ncols=ncols, labels=labels))


def _prepared(images: Any, size: int) -> list[np.ndarray]:
    from gan3d.data.images import prepare_image

    if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)) or hasattr(images, "convert"):
        images = [images]
    out = []
    for im in images:
        if hasattr(im, "convert"):  # a PIL image
            im = np.asarray(im.convert("RGB"))
        a = im.detach().cpu().numpy() if isinstance(im, torch.Tensor) else im
        if isinstance(a, np.ndarray) and a.shape == (3, size, size) and a.dtype.kind == "f":
            out.append(np.ascontiguousarray(a, dtype=np.float32))  # already encoder input
        else:
            out.append(np.asarray(prepare_image(a, size=size), dtype=np.float32))
    if not out:
        raise Gan3dError("no images given")
    return out


def reconstruct(
    model: Model | Sequence[Model],
    images: Any,
    *,
    samples: int = 1,
    prior_weight: float = 0.0,
    keep_all: bool = False,
    threshold: float = THRESHOLD,
    occupancy: bool = False,
) -> np.ndarray:
    """3D shapes from single images with a 3D-VAE-GAN: bool ``(N, R, R, R)``, one per image, the
    same grids as ``gan3d reconstruct`` writes.

    ``images``: a path, a PIL image or an array, or a sequence of them. Files and pictures (H, W),
    (H, W, 3) or (H, W, 4), uint8 or float in [0, 1], are resized and centre-cropped as in training
    (:func:`gan3d.data.images.prepare_image`); a float (3, S, S) array at the encoder's size S is taken
    as it is. ``samples``: 1 uses G(mu); K > 1 averages K draws of z (seeded, reproducible).
    ``prior_weight`` L in [0, 1]: blend with the model's prior shape, ``(1 - L) * occupancy + L * P``
    (:func:`gan3d.reconstruct.prior_occupancy`; for photographs the encoder reads poorly).
    Thresholding and ``keep_all`` as in :func:`sample`; ``occupancy=True`` returns float32 occupancy.
    A list of models averages their occupancies (as ``gan3d reconstruct --checkpoint A+B``); they must
    read one image size and make one resolution.
    """
    from gan3d.reconstruct import check_averageable, check_prior_weight, reconstruct_averaged
    from gan3d.sampling import postprocess

    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise Gan3dError("no model given")
    for m in models:
        if m.E is None:
            raise Gan3dError(f"not a 3D-VAE-GAN checkpoint (kind {m.kind!r}; it has no image encoder)", m.path)
    check_averageable([(m.image_size, m.resolution, m.path) for m in models])
    if int(samples) < 1:
        raise Gan3dError(f"samples must be at least 1, got {samples}")
    prior_weight = check_prior_weight(prior_weight)
    arrays = _prepared(images, models[0].image_size)
    nets = [(m.E, m.G) for m in models]  # each on its own device
    occ = np.stack([reconstruct_averaged(nets, a, samples=int(samples), prior_weight=prior_weight)[0] for a in arrays]).astype(np.float32)
    return occ if occupancy else postprocess(occ, keep_all=keep_all, threshold=threshold)
