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
