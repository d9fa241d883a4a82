"""The ``gan3d`` command: parses and validates options, then calls plain functions.

No training, sampling or data logic lives here. Every user error (gan3d.errors.Gan3dError, bad
option values) ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from gan3d import __version__
from gan3d.cli.common import EPILOG_DEMO, HelpFormatter, Parser
from gan3d.cli.data import _add_data, _run_data
from gan3d.cli.shapes import (
    _add_demo,
    _add_plot,
    _add_reconstruct,
    _add_render,
    _add_sample,
    _run_demo,
    _run_plot,
    _run_reconstruct,
    _run_render,
    _run_sample,
)
from gan3d.cli.train import _add_train, _run_train
from gan3d.errors import Gan3dError
from gan3d.gallery import cli as _gallery_cli


def _add_eval(sub) -> None:
    from gan3d.cli.eval import add_parser

    add_parser(sub)


def _run_eval(args) -> int:
    from gan3d.cli.eval import run
    from gan3d.fileio import check_output

    for name in ("out", "results", "out_png"):  # output places are checked before any evaluation
        if getattr(args, name, None):
            check_output(getattr(args, name))
    return run(args)


def _add_models(sub) -> None:
    from gan3d.zoo.cli import add_parser

    add_parser(sub)


def _run_models(args) -> int:
    from gan3d.zoo.cli import run

    return run(args)


COMMANDS = {
    "data": (_add_data, _run_data),
    "train": (_add_train, _run_train),
    "sample": (_add_sample, _run_sample),
    "render": (_add_render, _run_render),
    "reconstruct": (_add_reconstruct, _run_reconstruct),
    "eval": (_add_eval, _run_eval),
    "plot": (_add_plot, _run_plot),
    "demo": (_add_demo, _run_demo),
    "models": (_add_models, _run_models),
    "gallery": (_gallery_cli.add_parser, _gallery_cli.run),
    "explore": (lambda sub: _explore_cli().add_parser(sub), lambda args: _explore_cli().run(args)),
}


def _explore_cli():
    from gan3d.explore import cli

    return cli


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gan3d",
        description="3D-GAN (Wu et al., NIPS 2016): prepare voxel data, train, sample, export and render shapes.",
        epilog=EPILOG_DEMO,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gan3d {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.cmd][1](args)
    except Gan3dError as e:
        print(f"gan3d {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output place no writer checked (gan3d.fileio.atomic_path and make_dirs do)
        if e.filename is None:
            raise
        from gan3d.fileio import os_error

        print(f"gan3d {args.cmd}: error: {os_error(e, e.filename)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"gan3d {args.cmd}: interrupted", file=sys.stderr)
        return 130


def _close_progress_bars() -> None:
    """Close every progress bar an interrupt left open and end its line, so that the message that
    follows starts on a line of its own. A bar is left open when the interrupt arrives while it is
    being made, after its first drawing: no ``with`` block has been entered, so no ``__exit__``
    closes it, and such a bar's own ``close()`` ends without writing its newline."""
    tqdm = sys.modules.get("tqdm")
    bars = list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()))
    for bar in bars:
        bar.close()
    if bars:
        sys.stderr.write("\n")
