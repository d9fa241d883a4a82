"""``gan3d train``'s options, generated from the fields of TrainConfig and VAEGANConfig.

Each config field is one option ``--field-name`` whose help, type and choices come from the field's
metadata (:func:`gan3d.options.opt`); every option's argparse default is None, meaning "not given",
so only what the user typed reaches the config, and an option that belongs to the other model only
is refused instead of dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from gan3d.cli.common import _bool, ranged
from gan3d.errors import Gan3dError

GROUPS = {
    "main": None,  # the parser's own options
    "recipe": "recipe (options not given take the preset's value; see --dry-run)",
    "model": "model and data (3D-GAN)",
    "vaegan": "3D-VAE-GAN (--model vaegan)",
    "run": "run",
}
MODEL_NAMES = {"gan": "the 3D-GAN", "vaegan": "--model vaegan"}


def config_classes() -> dict[str, type]:
    from gan3d.train.config import TrainConfig, VAEGANConfig

    return {"gan": TrainConfig, "vaegan": VAEGANConfig}


def option_fields() -> dict[str, dict[str, dataclasses.Field]]:
    """field name -> {model: Field} over both configs, in declaration order (3D-GAN fields first)."""
    out: dict[str, dict[str, dataclasses.Field]] = {}
    for model, cls in config_classes().items():
        for f in dataclasses.fields(cls):
            if "help" in f.metadata:
                out.setdefault(f.name, {})[model] = f
    return out


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _recipe_fields() -> set[str]:
    from gan3d.presets import PRESETS

    return {k for p in PRESETS.values() for k in (*p.recipe, *p.vaegan)}


def _default_text(name: str, by_model: dict[str, dataclasses.Field], recipe: set[str]) -> str:
    help_text = next(iter(by_model.values())).metadata["help"]
    if "default" in help_text:
        return ""
    if name in recipe:
        return " (default: the preset's)"
    shown = {m: f.default for m, f in by_model.items() if f.default not in ("", (), None)}
    if not shown:
        return ""
    values = list(dict.fromkeys(_show(v) for v in shown.values()))
    if len(values) == 1:
        return f" (default: {values[0]})"
    return f" (default: {_show(shown['gan'])}; --model vaegan: {_show(shown['vaegan'])})"


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """Add one option per config field to ``p``, in help groups (see :data:`GROUPS`)."""
    groups = {key: (p if title is None else p.add_argument_group(title)) for key, title in GROUPS.items()}
    recipe = _recipe_fields()
    for name, by_model in option_fields().items():
        f = next(iter(by_model.values()))
        meta, kind = f.metadata, _kind(f)
        kw: dict[str, Any] = {"default": None, "dest": name}
        if kind in ("bool", "bool | None"):
            kw.update(type=_bool, nargs="?", const=True, metavar="true|false")  # --augment = --augment true
        elif kind in ("int", "float"):
            kw["type"] = ranged(int if kind == "int" else float)  # the range is the config's own check
        elif kind.startswith("tuple"):
            kw.update(nargs="+", metavar=name.upper())  # the help text names the choices in words
        if meta.get("choices"):
            kw["choices"] = [c for c in meta["choices"] if c != ""]
        help_text = meta["help"] + _default_text(name, by_model, recipe)
        only = "" if len(by_model) == 2 else f" [{MODEL_NAMES[next(iter(by_model))]} only]"
        groups[meta.get("group", "run")].add_argument(flag(name), help=(help_text + only).replace("%", "%%"), **kw)


def _kind(f: dataclasses.Field) -> str:
    from gan3d.options import kind_of

    return kind_of(f)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user gave on the command line (argparse default None = not given)."""
    out = {}
    for name in option_fields():
        v = getattr(args, name, None)
        if v is not None:
            out[name] = tuple(v) if isinstance(v, list) else v
    return out


def refuse_inapplicable(given: dict[str, Any], model: str) -> None:
    """One Gan3dError naming every given option that the chosen model's config does not have."""
    fields = option_fields()
    wrong = [flag(n) for n in given if model not in fields[n]]
    if wrong:
        verb = "does" if len(wrong) == 1 else "do"
        target = "--model vaegan" if model == "vaegan" else "the 3D-GAN"
        raise Gan3dError(f"{', '.join(wrong)} {verb} not apply to {target}")


def build_config(model: str, given: dict[str, Any]):
    """The config of ``model`` from its preset's recipe and the given options; a bad value is one
    Gan3dError naming its option."""
    from gan3d.options import OptionError
    from gan3d.train.config import make_config, make_vaegan_config

    values = dict(given)
    preset = values.pop("preset", None) or "cpu32"
    make = make_config if model == "gan" else make_vaegan_config
    try:
        return make(preset, **values)
    except OptionError as e:
        raise Gan3dError(f"{flag(e.name)} {e.message}") from None
    except (TypeError, ValueError) as e:
        raise Gan3dError(f"invalid training option: {e}") from None


def with_overrides(cfg: Any, overrides: dict[str, Any]):
    """``cfg`` with ``overrides`` replacing its fields, every value checked (Gan3dError naming the option)."""
    from gan3d.options import OptionError

    try:
        return dataclasses.replace(cfg, **overrides)
    except OptionError as e:
        raise Gan3dError(f"{flag(e.name)} {e.message}") from None
