"""Checkpoints: tensors and plain values only, so ``torch.load(path, weights_only=True)`` reads them
and loading never runs code.

Two kinds, both written to a temporary file and renamed into place:

* a **training state** (``kind == "train"``): G, D, both optimizers, step, epoch, RNG states,
  model and training configs as dicts, package version; ``gan3d train --resume`` continues from it.
* a **snapshot** (``kind == "snapshot"``): G (and D) weights plus the configs; all that sampling,
  export and evaluation need.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gan3d import __version__
from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path
from gan3d.models.gan import Discriminator, Generator, ModelConfig

FORMAT = "gan3d-checkpoint"


FORMAT_VERSION = 1


def save(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and version stamps) atomically to ``path``."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "gan3d_version": __version__, **payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


RUN_FILES = ("snapshot.pt", "checkpoint.pt")
"""What a run folder holds: the sampling snapshot and the training state (for resume)."""


def resolve(text: str | os.PathLike, *, prefer: str = "snapshot.pt") -> Path:
    """THE turning of "a run folder or a checkpoint file" into a checkpoint path.

    A folder gives its ``prefer`` file (``"snapshot.pt"`` for sampling and evaluation,
    ``"checkpoint.pt"`` for resuming), else whichever of ``snapshot.pt`` / ``checkpoint.pt`` it
    holds; a folder with neither is a Gan3dError naming it. Anything else is returned as it is: a
    file, or a path that does not exist, which :func:`load` then reports as missing (or, once
    shipped models exist, reads as the shipped model of that name).
    """
    p = Path(text)
    if p.is_dir():
        for name in (prefer, *RUN_FILES):
            if (p / name).is_file():
                return p / name
        raise Gan3dError("folder has no snapshot.pt or checkpoint.pt", p)
    return p


def _missing_text(path: Path, option: str = "") -> str:
    from gan3d.zoo import registry

    extra = "" if path.exists() else f", and no shipped model of that name ({registry.shipped_list()})"
    return f"no such checkpoint file{f' for {option}' if option else ''}{extra}"


def check_exists(path: str | os.PathLike, option: str) -> None:
    """Before any work: ``path`` is a checkpoint file or a shipped model's name (what :func:`load`
    takes), else one Gan3dError naming it and ``option``. A folder is refused with a hint."""
    from gan3d.zoo import registry

    p = Path(path)
    if p.is_dir():
        raise Gan3dError(f"is a folder, not a checkpoint file for {option} (give its checkpoint.pt or snapshot.pt)", p)
    if not p.is_file() and str(path) not in registry.names():
        raise Gan3dError(_missing_text(p, option), p)


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; any problem is one Gan3dError naming the file.

    ``path`` may also be the name of a shipped model (``gan3d models``) when no file or folder of
    that name exists: its payload, the same dict as its snapshot's (:func:`gan3d.zoo.load`)."""
    path = Path(path)
    if not path.is_file():
        from gan3d.zoo import registry

        shipped = registry.lookup(path)
        if shipped is not None:
            return {"format": FORMAT, "format_version": FORMAT_VERSION, **shipped}
        raise Gan3dError(_missing_text(path), path)
    if path.stat().st_size == 0:
        raise Gan3dError("checkpoint file is empty", path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise Gan3dError(f"not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Gan3dError("not a gan3d checkpoint (no 'format: gan3d-checkpoint' stamp)", path)
    if int(data.get("format_version", -1)) > FORMAT_VERSION:
        raise Gan3dError(
            f"checkpoint format version {data['format_version']} is newer than this gan3d reads ({FORMAT_VERSION})", path
        )
    for key in ("model_config", "G"):
        if key not in data:
            raise Gan3dError(f"checkpoint has no '{key}' entry", path)
    return data


VAEGAN_KINDS = ("vaegan-snapshot", "vaegan-train")
"""Checkpoint kinds of the 3D-VAE-GAN (they also hold the image encoder E)."""


def z_prior(data: dict[str, Any]) -> str:
    """The latent prior G was trained on: ``"uniform"`` (U[0,1]^z) or ``"normal"`` (N(0, I)).

    A 3D-GAN checkpoint names it in ``train_config["z_dist"]`` (default uniform, the paper's); the
    3D-VAE-GAN always draws its prior latents from N(0, I)."""
    if data.get("kind") in VAEGAN_KINDS:
        return "normal"
    return str((data.get("train_config") or {}).get("z_dist", "uniform"))


def model_config(data: dict[str, Any], path: str | os.PathLike = "") -> ModelConfig:
    try:
        return ModelConfig.from_dict(data["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise Gan3dError(f"checkpoint has an invalid model config: {e}", path or None) from None


def load_state(module: torch.nn.Module, state: dict, what: str, path: str | os.PathLike) -> None:
    """``module.load_state_dict(state)`` with a one-line error when shapes or keys differ."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()
        detail = " ".join(s.strip() for s in first[1:3]) if len(first) > 1 else first[0]
        raise Gan3dError(f"{what} weights do not fit the model: {detail[:200]}", path) from None


def load_generator(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """Generator in eval mode on ``device`` rebuilt from the checkpoint alone, and the checkpoint dict."""
    data = load(path)
    g = Generator(model_config(data, path))
    load_state(g, data["G"], "generator", path)
    return g.to(device).eval(), data


def require_discriminator(data: dict[str, Any], path: str | os.PathLike) -> None:
    """One Gan3dError naming ``path`` when checkpoint ``data`` has no D: a shipped model packaged
    without it (``gan3d models package --without D``) says so."""
    if "D" in data:
        return
    if "D" in (data.get("omitted") or ()):
        raise Gan3dError("this model was shipped without its discriminator D (packaged with --without D), "
                         "which this command needs; use the run's snapshot.pt instead", path)
    raise Gan3dError("checkpoint has no discriminator weights", path)


def load_discriminator(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[Discriminator, dict]:
    data = load(path)
    require_discriminator(data, path)
    d = Discriminator(model_config(data, path))
    load_state(d, data["D"], "discriminator", path)
    return d.to(device).eval(), data
