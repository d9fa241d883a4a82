"""``gan3d train``: the 3D-GAN and the 3D-VAE-GAN.

The options are the config fields (gan3d.cli.trainopts); only those the user gave are used: for a
new run they override the preset's recipe, on ``--resume`` they are the ``overrides`` of the run's
saved config (only a few may change). Every input path is checked before training, and with
``--dry-run`` nothing else happens.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from gan3d.cli.common import HelpFormatter
from gan3d.cli.trainopts import add_config_options, build_config, flag, given_options, refuse_inapplicable, with_overrides
from gan3d.errors import Gan3dError
from gan3d.fileio import check_output

# INTERFACE 1: the options that may change when a run is resumed; any other is refused.
RESUMABLE = frozenset({"steps", "device", "log_every", "snapshot_every", "eval_every", "eval_samples", "tensorboard"})
KINDS = {"train": ("gan", "train_config"), "vaegan-train": ("vaegan", "vaegan_config"), "ae-train": ("autoencoder", "train_config")}
MODEL_WORDS = {"gan": "3D-GAN", "vaegan": "3D-VAE-GAN", "autoencoder": "auto-encoder baseline"}


def _add_train(sub) -> None:
    from gan3d.presets import PRESETS

    lines = "\n".join(f"  {k:8s} {v.help}" for k, v in PRESETS.items())
    p = sub.add_parser(
        "train",
        help="train a 3D-GAN or a 3D-VAE-GAN",
        formatter_class=HelpFormatter,
        description=f"Presets (each sets the model and its recipe; any option below overrides the recipe):\n{lines}",
    )
    p.add_argument(
        "--model", choices=["gan", "vaegan", "autoencoder"], default=None,
        help="3D-GAN; 3D-VAE-GAN (image encoder; needs --pairs); or autoencoder, the paper's Fig. 2 baseline "
        "(D's trunk encodes, G decodes, sampled from a Gaussian fitted to the codes) (default: gan; on --resume, the run's)",
    )
    p.add_argument("--resume", default=None, help="continue the run in this folder (or from this checkpoint.pt) with its saved config")
    add_config_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the resolved config, check every input path, and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar; statistics lines only in the log")


def _run_train(args) -> int:
    from gan3d.train import distributed

    given = given_options(args)
    if args.resume and _not_started(args.resume):  # stopped before its first checkpoint: the loop restarts it
        result = _train(None, resume=args.resume, overrides=given, quiet=args.quiet)
        print(f"run folder: {result.run_dir}")
        return 130 if result.interrupted else 0
    if args.resume:
        cfg, overrides = _resumed_config(args.resume, args.model, given)
    else:
        model = args.model or "gan"
        cfg, overrides = _new_config(model, given), None
    check_inputs(cfg)
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = _train(None if args.resume else cfg, resume=args.resume, overrides=overrides, quiet=args.quiet)
    if distributed.is_main():
        print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else 0


def _new_config(model: str, given: dict[str, Any]) -> Any:
    """The config of a new run of ``model`` from the given options (one Gan3dError for a bad one)."""
    if model != "autoencoder":
        refuse_inapplicable(given, model)
        return build_config(model, given)
    from gan3d.train.config import AUTOENCODER_FIXED

    refuse_inapplicable(given, "gan")
    wrong = [flag(n) for n in given if n in AUTOENCODER_FIXED or (n == "z_dist" and given[n] != "normal")]
    if wrong:
        raise Gan3dError(f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to --model autoencoder (it has no D and samples a fitted Gaussian)")
    return build_config("gan", {**given, "objective": "autoencoder"})


def _not_started(text: str) -> bool:
    """A run folder with its config.json but no checkpoint.pt yet."""
    p = Path(text)
    return p.is_dir() and (p / "config.json").is_file() and not (p / "checkpoint.pt").exists()


def resume_checkpoint(text: str) -> Path:
    """The training checkpoint of a run folder (its checkpoint.pt) or the file itself."""
    p = Path(text)
    if p.is_dir():
        if not (p / "checkpoint.pt").is_file():
            raise Gan3dError("run folder has no checkpoint.pt (a run stopped before its first checkpoint cannot be resumed)", p)
        return p / "checkpoint.pt"
    if not p.exists():
        raise Gan3dError("no such run folder or checkpoint file for --resume", p)
    return p


def _resumed_config(resume: str, model: str | None, given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the run's saved config with the given options applied, those options as ``overrides``).

    The run keeps its saved config: an option outside :data:`RESUMABLE` is refused (``--preset`` only
    when it differs from the run's), and so is one the run's model does not have."""
    from gan3d import checkpoint as ckpt
    from gan3d.cli.trainopts import config_classes

    path = resume_checkpoint(resume)
    state = ckpt.load(path)
    if state.get("kind") not in KINDS:
        raise Gan3dError("not a training checkpoint (a sampling snapshot cannot be resumed)", path)
    saved_model, key = KINDS[state["kind"]]
    if model is not None and model != saved_model:
        raise Gan3dError(f"checkpoint is a {MODEL_WORDS[saved_model]} run, not --model {model}", path)
    saved_model = "gan" if saved_model == "autoencoder" else saved_model  # the same config type and options
    saved = config_classes()[saved_model].from_dict(state[key])
    overrides = dict(given)
    if "preset" in overrides:
        if overrides.pop("preset") != saved.preset:
            raise Gan3dError(f"checkpoint is from preset {saved.preset!r}, not {given['preset']!r}", resume)
    refuse_inapplicable(overrides, saved_model)
    fixed = [flag(n) for n in overrides if n not in RESUMABLE]
    if fixed:
        raise Gan3dError(f"{', '.join(fixed)} cannot be changed when resuming (the run keeps its saved config)")
    if overrides.get("steps", saved.steps) < int(state.get("step", 0)):
        raise Gan3dError(f"--steps {overrides['steps']} is below the checkpoint's step {state.get('step')}", path)
    return with_overrides(saved, overrides), overrides


def check_inputs(cfg: Any) -> None:
    """Every input path of ``cfg`` exists and is of the right kind, and ``out`` is not a file."""
    from gan3d import checkpoint as ckpt
    from gan3d.train.config import VAEGANConfig

    if isinstance(cfg, VAEGANConfig):
        if not cfg.pairs:
            raise Gan3dError("--model vaegan needs --pairs (make them with `gan3d data render`)")
        pairs = Path(cfg.pairs)
        if not pairs.is_dir():
            what = "is a file, not a paired image folder" if pairs.exists() else "no such paired image folder"
            raise Gan3dError(f"{what} for --pairs (make one with `gan3d data render`)", pairs)
        if not (pairs / "meta.json").is_file():
            raise Gan3dError("not a paired image folder for --pairs (no meta.json; make one with `gan3d data render`)", pairs)
        if cfg.init_from:
            ckpt.check_exists(cfg.init_from, "--init-from")
    elif cfg.data != "builtin":
        data = Path(cfg.data)
        if not data.exists():
            raise Gan3dError("no such dataset file (make one with `gan3d data prepare`)", data)
        if not data.is_file() or not zipfile.is_zipfile(data):
            raise Gan3dError("not a prepared dataset .npz file for --data (make one with `gan3d data prepare`)", data)
    check_output(cfg.out, folder=True)


def _train(cfg: Any, *, resume: str | None, overrides: dict[str, Any] | None, quiet: bool):
    """The one call into training (INTERFACE 1): :func:`gan3d.train.loop.train`."""
    from gan3d.train.loop import train

    return train(cfg, resume=resume, overrides=overrides, quiet=quiet)
