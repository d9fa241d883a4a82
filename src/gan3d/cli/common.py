"""What every ``gan3d`` subcommand's parser shares: the help formatter and option types.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG_DEMO = "Quick start: gan3d demo   (train a tiny-to-small model on built-in shapes, sample, export, render)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except None: those options take the preset's value (their
    help says so) or are off."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``gan3d CMD: error: argument --x: ...``) and
    exit code 2, like every other gan3d error; ``--help`` shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _bool(text: str) -> bool:
    t = text.lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _existing(text: str) -> str:
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return text


def ranged(kind: type = int, **bounds):
    """An argparse type: an ``int`` or finite ``float`` within ``bounds`` (gan3d.options.opt's
    ``lo``/``hi``/``gt``/``lt``/``pow2``; none: any), checked at parse time, before anything is written."""
    import math

    from gan3d.options import check_value, describe, opt

    meta = opt("", **bounds)

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            within = f" {describe(meta)}" if bounds else ""
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}{within}, got {text!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        try:
            check_value("value", v, meta)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {describe(meta)}, got {text}") from None
        return v

    parse.__name__ = kind.__name__
    return parse


def _device(text: str) -> str:
    """An argparse type: a device name (auto, cpu, cuda, cuda:N); only the spelling is checked."""
    from gan3d.runtime import device_problem

    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is {problem}")
    return text

