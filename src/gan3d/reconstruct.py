"""Single-image 3D reconstruction with a trained 3D-VAE-GAN (:mod:`gan3d.vaegan`): image -> E -> z -> G.

Each image is read by :func:`gan3d.imaging.prepare_image` at the encoder's input size; the encoder
gives the mean and log-variance of a Gaussian over z. With ``samples=1`` the shape is ``G(mu)``;
with ``samples=K`` it is the mean of the K occupancy grids ``G(mu + sigma * eps_k)`` (``eps_k``
seeded by k, so the result is reproducible). With ``prior_weight=L`` > 0 that occupancy is blended with
the model's own prior shape, ``(1 - L) * occupancy + L * P`` (:func:`prior_occupancy`): where E cannot
read the image (a photograph unlike the training renders), the blend leans on what the model's shapes
share instead of one confidently wrong shape. The grid is thresholded and, unless ``keep_all``, cut
to its largest connected component (:func:`gan3d.sampling.postprocess`).
"""

from __future__ import annotations

import os
import sys as _sys
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gan3d import _CallableModule
from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.io.writer import FORMATS, check_formats, output_dir, write_grids  # noqa: F401  (FORMATS: the one format table)
from gan3d.models.encoder import EncoderConfig, ImageEncoder
from gan3d.models.gan import Generator
from gan3d.runtime import pick_device
from gan3d.voxels import SMALL, THRESHOLD


KINDS = ckpt.VAEGAN_KINDS


def load_reconstructor(checkpoint: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[ImageEncoder, Generator, dict]:
    """(E, G, meta) in eval mode on ``device`` from a 3D-VAE-GAN snapshot or training checkpoint
    (a run folder means its ``snapshot.pt``). ``meta``: kind, step and the configs as dicts."""
    path = ckpt.resolve(checkpoint)
    data = ckpt.load(path)
    if data.get("kind") not in KINDS or "E" not in data or "encoder_config" not in data:
        raise Gan3dError(f"not a 3D-VAE-GAN checkpoint (kind {data.get('kind')!r}; it has no image encoder)", path)
    try:
        ecfg = EncoderConfig.from_dict(data["encoder_config"])
    except (TypeError, ValueError) as e:
        raise Gan3dError(f"checkpoint has an invalid encoder config: {e}", path) from None
    E = ImageEncoder(ecfg)
    G = Generator(ckpt.model_config(data, path))
    ckpt.load_state(E, data["E"], "encoder", path)
    ckpt.load_state(G, data["G"], "generator", path)
    meta = {k: data.get(k) for k in ("kind", "step", "model_config", "encoder_config", "vaegan_config")}
    meta["path"] = str(path)
    return E.to(device).eval(), G.to(device).eval(), meta


ENSEMBLE_SEP = "+"


def model_specs(spec: str | os.PathLike) -> list[str]:
    """The models of ``spec``: ``"A+B"`` names two 3D-VAE-GANs whose occupancies are averaged (each a
    checkpoint, run folder or shipped name); a spec that is itself an existing path is one model."""
    text = str(spec)
    if Path(text).exists() or ENSEMBLE_SEP not in text:
        return [text]
    parts = text.split(ENSEMBLE_SEP)
    if any(not p for p in parts):
        raise Gan3dError(f"an empty model name in {text!r} (models are joined by {ENSEMBLE_SEP!r})")
    return parts


def load_reconstructors(spec: str | os.PathLike, *, device: str | torch.device = "cpu") -> list[tuple[ImageEncoder, Generator, dict]]:
    """:func:`load_reconstructor` of each model of ``spec`` (:func:`model_specs`); averaged models must read
    images of one size and make grids of one resolution (else a Gan3dError naming the odd one)."""
    models = [load_reconstructor(m, device=device) for m in model_specs(spec)]
    check_averageable([(E.cfg.image_size, G.cfg.resolution, meta["path"]) for E, G, meta in models])
    return models


def check_averageable(models: Sequence[tuple[int, int, str | os.PathLike]]) -> None:
    """Models given as (image size, resolution, path) can be averaged only if they agree on both: else a
    Gan3dError naming the first odd one."""
    size0, res0, path0 = models[0]
    for size, res, path in models[1:]:
        if (size, res) != (size0, res0):
            raise Gan3dError(f"cannot be averaged with {path0}: {size} px images and {res}^3 grids against "
                             f"{size0} px and {res0}^3", path)


PRIOR_SEEDS = 64  # prior latents whose mean shape is the model's prior shape (--prior-weight)
_PRIORS: "weakref.WeakKeyDictionary[Generator, tuple[int, torch.Tensor]]" = weakref.WeakKeyDictionary()


def check_prior_weight(prior_weight: float) -> float:
    """``prior_weight`` as a float in [0, 1], else a Gan3dError naming ``--prior-weight``."""
    w = float(prior_weight)
    if not 0.0 <= w <= 1.0:
        raise Gan3dError(f"--prior-weight must be between 0 and 1, got {prior_weight}")
    return w


@torch.no_grad()
def prior_occupancy(G: Generator) -> torch.Tensor:
    """The model's prior shape, float (1, 1, R, R, R) on G's device: the mean of ``G(z)`` over the N(0, I)
    latents of seeds 0..PRIOR_SEEDS-1 (what the model's shapes share; for a one-class model, its class's
    typical shape as G draws it). Kept per G while its weights are unchanged (their in-place version)."""
    from gan3d.runtime import latents

    version = sum(p._version for p in G.parameters())
    kept = _PRIORS.get(G)
    if kept is not None and kept[0] == version:
        return kept[1]
    device = next(G.parameters()).device
    prior = G(latents(list(range(PRIOR_SEEDS)), G.cfg.z_dim, "normal").to(device)).mean(0, keepdim=True)
    _PRIORS[G] = (version, prior)
    return prior


def posterior_occupancy(
    E: ImageEncoder, G: Generator, images: torch.Tensor, samples: int = 1, prior_weight: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(occupancy (N, 1, R, R, R), mu, logvar) for a batch of images: ``G(mu)`` with ``samples == 1``, else
    the mean of ``G(mu + sigma * eps_k)`` over K = ``samples`` draws ``eps_k`` from a generator seeded 0 (the
    same draws for every image, so a batch gives what each image gives alone). ``prior_weight`` L > 0:
    that occupancy times (1 - L) plus L times :func:`prior_occupancy`."""
    mu, logvar = E(images)
    if samples == 1:
        occ = G(mu)
    else:
        eps = torch.randn(int(samples), mu.shape[1], generator=torch.Generator().manual_seed(0)).to(mu.device)
        z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps[None]  # (N, K, z)
        occ = G(z.reshape(-1, z.shape[-1]))
        occ = occ.reshape(mu.shape[0], int(samples), *occ.shape[1:]).mean(1)
    if prior_weight:
        occ = (1.0 - prior_weight) * occ + prior_weight * prior_occupancy(G).to(occ.dtype)
    return occ, mu, logvar


def average_occupancy(models: Sequence[tuple], images: torch.Tensor, *, samples: int = 1, prior_weight: float = 0.0) -> torch.Tensor:
    """:func:`posterior_occupancy` of a batch of images, averaged over ``models`` (``(E, G, ...)`` tuples,
    their images at one size): what ``A+B`` scores."""
    return torch.stack([posterior_occupancy(E, G, images, samples, prior_weight)[0] for E, G, *_ in models]).mean(0)


def reconstruct_averaged(
    models: Sequence[tuple], image: np.ndarray, *, samples: int = 1, prior_weight: float = 0.0,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`reconstruct_one` averaged over ``models`` (``(E, G, ...)`` tuples), each on ``device`` or,
    if None, on its encoder's own: the mean occupancy, and the first model's ``mu`` and ``logvar``. One
    model gives exactly its own :func:`reconstruct_one`."""
    each = [reconstruct_one(E, G, image, samples=samples, prior_weight=prior_weight,
                            device=next(E.parameters()).device if device is None else device)
            for E, G, *_ in models]
    return np.mean([occ for occ, _, _ in each], axis=0), each[0][1], each[0][2]


def _stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique with ``_1``, ``_2``, ... when two inputs share one."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}_{n}")
    return out


@torch.no_grad()
def reconstruct_one(
    E: ImageEncoder, G: Generator, image: np.ndarray, *, samples: int = 1, prior_weight: float = 0.0,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One prepared image (float32 (3, S, S) in [0, 1], :func:`gan3d.data.images.prepare_image`)
    -> (occupancy float32 (R, R, R) in [0, 1], mu float32 (z,), logvar float32 (z,)).

    ``samples == 1``: ``G(mu)``; otherwise the mean occupancy of ``G(mu + sigma * eps_k)`` for
    ``samples`` draws ``eps_k`` from a generator seeded 0 (reproducible); ``prior_weight`` as
    :func:`posterior_occupancy`. What ``gan3d reconstruct`` and :func:`gan3d.reconstruct` both compute."""
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).unsqueeze(0).to(device)
    occ, mu, logvar = posterior_occupancy(E, G, img, samples, prior_weight)
    return occ[0, 0].float().cpu().numpy(), mu[0].cpu().numpy(), logvar[0].cpu().numpy()


TYPICAL_SEEDS = 32  # prior samples whose median size is "the model's typical shape"


@torch.no_grad()
def _typical_filled(G: Generator, *, keep_all: bool, threshold: float, device) -> float:
    """Median filled voxels of G's own shapes for the N(0, I) latents of seeds 0..TYPICAL_SEEDS-1, made
    as the reconstructions are (threshold, largest component): what a reconstruction's size is
    checked against (a photo unlike the training renders can give a fragment of a few dozen voxels)."""
    from gan3d.runtime import latents
    from gan3d.sampling import postprocess

    z = latents(list(range(TYPICAL_SEEDS)), G.cfg.z_dim, "normal").to(device)
    grids = postprocess(G(z).squeeze(1).float().cpu().numpy(), keep_all=keep_all, threshold=threshold)
    return float(np.median(grids.reshape(len(grids), -1).sum(1)))


@torch.no_grad()
def reconstruct_images(
    checkpoint: str | os.PathLike,
    image_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    samples: int = 1,
    prior_weight: float = 0.0,
    keep_all: bool = False,
    threshold: float = THRESHOLD,
    device: str = "auto",
    formats: Sequence[str] = ("npz", "obj"),
    mesh_style: str = "smooth",
    picture_size: int = 256,
) -> dict:
    """Reconstruct a shape from each image and write, per image ``<stem>``: ``<stem>.npz``
    (``grid`` bool (R,R,R), ``occupancy`` float16, ``mu``, ``logvar``), a mesh per mesh format
    (skipped, and listed under ``empty``, when the grid is empty), and ``<stem>.png`` (the input
    image beside the rendered shape). Every image is read before anything is written, so a bad
    image (a Gan3dError naming it) leaves ``out_dir`` untouched. Returns a summary dict; each image's
    ``small`` says whether its shape has under ``SMALL`` (a quarter) of the filled voxels of the
    model's typical shape (:func:`_typical_filled`, ``typical_filled_voxels``).

    ``checkpoint`` ``"A+B"`` (:func:`model_specs`): the occupancy is the mean of the models' (a shape
    ensemble); ``mu`` and ``logvar`` are A's, the typical size the mean of theirs; ``averaged`` lists them.
    ``prior_weight`` L > 0 blends each model's occupancy with its prior shape (:func:`posterior_occupancy`)."""
    from gan3d.data.images import prepare_image
    from gan3d.sampling import postprocess

    check_formats(formats)
    if int(samples) < 1:
        raise Gan3dError(f"samples must be at least 1, got {samples}")
    prior_weight = check_prior_weight(prior_weight)
    paths = [Path(p) for p in image_paths]
    if not paths:
        raise Gan3dError("no images given")
    dev = pick_device(device)
    models = load_reconstructors(checkpoint, device=dev)
    E, G, meta = models[0]
    size = E.cfg.image_size
    prepared = [np.asarray(prepare_image(p, size=size), dtype=np.float32) for p in paths]

    typical = float(np.mean([_typical_filled(g, keep_all=keep_all, threshold=threshold, device=dev) for _, g, _ in models]))
    out = output_dir(out_dir)
    written: list[str] = []
    results = []
    empty = []
    from gan3d.render.raster import render_voxels, save_png, tile

    for path, stem, arr in zip(paths, _stems(paths), prepared):
        occ_np, mu, logvar = reconstruct_averaged(models, arr, samples=samples, prior_weight=prior_weight, device=dev)
        grid = postprocess(occ_np[None], keep_all=keep_all, threshold=threshold)[0]
        files = write_grids(
            grid[None], out, stems=[stem], formats=formats, occupancy=occ_np[None], mesh_style=mesh_style,
            extra={"mu": mu[None], "logvar": logvar[None], "source": [np.asarray(str(path))]},
        )
        if not grid.any():
            empty.append(stem)
        shown = np.clip(np.rint(arr.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
        if shown.shape[0] != picture_size:
            from PIL import Image

            shown = np.asarray(Image.fromarray(shown).resize((picture_size, picture_size), Image.BILINEAR))
        picture = tile([shown, render_voxels(grid, size=picture_size)], ncols=2)
        save_png(picture, out / f"{stem}.png")
        files.append(f"{stem}.png")
        written += files
        filled = int(grid.sum())
        results.append({"image": str(path), "stem": stem, "occupancy": float(grid.mean()), "filled_voxels": filled,
                        "small": bool(filled < SMALL * typical), "files": files})
    return {
        "out": str(out),
        "checkpoint": meta["path"],
        "step": int(meta.get("step") or -1),
        **({"averaged": [{"checkpoint": m["path"], "step": m.get("step")} for _, _, m in models]} if len(models) > 1 else {}),
        "resolution": int(G.cfg.resolution),
        "samples": int(samples),
        "prior_weight": prior_weight,
        "images": results,
        "typical_filled_voxels": typical,
        "small": [r["stem"] for r in results if r["small"]],
        "empty": empty,
        "files": written,
    }


_sys.modules[__name__].__class__ = _CallableModule  # gan3d.reconstruct(model, images) is gan3d.api.reconstruct
