"""``gan3d sample``, ``reconstruct``, ``render``, ``plot`` and ``demo``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gan3d.cli.common import HelpFormatter, _device, ranged
from gan3d.io.files import MAX_GRID_EDGE
from gan3d.render.raster import MAX_IMAGE_SIZE
from gan3d.errors import Gan3dError
from gan3d.fileio import check_output


def _add_sample(sub) -> None:
    from gan3d.sampling import FORMATS

    p = sub.add_parser("sample", help="generate shapes from a checkpoint", formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="snapshot.pt or checkpoint.pt of a run, a run folder, or a shipped model's name (gan3d models)")
    p.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-63 or 1,5,9-12; one shape per seed")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=["npz", "obj"], help="files to write per sample")
    p.add_argument("--mesh-style", choices=["smooth", "blocky"], default="smooth", help="marching cubes or one cube per voxel")
    p.add_argument("--keep-all", action="store_true", help="keep every component (default: only the largest, as the paper)")
    p.add_argument("--threshold", type=ranged(float, gt=0, lt=1), default=0.5, help="occupancy threshold, in (0, 1)")
    p.add_argument("--truncation", type=ranged(float, gt=0, hi=1), default=1.0, help="pull each latent towards the prior's mean by this factor psi, in (0, 1]: lower gives more typical, cleaner shapes and less variety (1 = the prior as trained)")
    p.add_argument("--batch-size", type=ranged(int, lo=1, hi=65536), default=32, help="shapes gathered per step (memory only): G always runs on 8 latents at a time, so every shape is bit-identical at any batch size on one device and thread count")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N")


def _run_sample(args) -> int:
    from gan3d.runtime import parse_seeds
    from gan3d.sampling import sample_to_dir

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        raise Gan3dError(f"--seeds: {e}") from None
    check_output(args.out, folder=True)
    summary = sample_to_dir(
        args.checkpoint,
        seeds,
        args.out,
        formats=args.formats,
        mesh_style=args.mesh_style,
        keep_all=args.keep_all,
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device,
        truncation=args.truncation,
    )
    print(f"wrote {summary['n']} samples ({summary['resolution']}^3, step {summary['step']}) to {summary['out']}; picture: {summary['out']}/grid.png")
    if summary["empty_seeds"]:
        print(f"empty after thresholding: seeds {summary['empty_seeds']}")
    return 0


def _add_reconstruct(sub) -> None:
    p = sub.add_parser("reconstruct", help="3D shapes from single images with a trained 3D-VAE-GAN", formatter_class=HelpFormatter)
    p.add_argument("images", nargs="+", help="JPEG or PNG files of any size (resized and centre-cropped as in training)")
    p.add_argument("--checkpoint", required=True, help="snapshot.pt of a `gan3d train --model vaegan` run, its folder, or a shipped model's name; "
                   "A+B averages the occupancies of two such models")
    p.add_argument("--out", required=True, help="output folder: <image>.npz, .obj and a picture of input beside result")
    p.add_argument("--samples", type=ranged(int, lo=1, hi=10000), default=1, help="mean of K draws of z (1 = the mean of q(z|image))")
    p.add_argument("--prior-weight", type=ranged(float, lo=0.0, hi=1.0), default=0.0,
                   help="blend L of the model's prior shape (the mean of its shapes for 64 fixed prior latents) into each "
                   "reconstruction: (1 - L) * G(z) + L * prior; softens what E cannot read in a photograph (paper: 0)")
    p.add_argument("--keep-all", action="store_true", help="keep every component (default: only the largest)")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N")


def _run_reconstruct(args) -> int:
    from gan3d.reconstruct import reconstruct_images

    check_output(args.out, folder=True)
    summary = reconstruct_images(args.checkpoint, args.images, args.out, samples=args.samples, prior_weight=args.prior_weight, keep_all=args.keep_all, device=args.device)
    print(json.dumps(summary, indent=2, default=str))
    for r in summary["images"]:
        if r["small"]:
            print(f"note: {r['image']}: {r['filled_voxels']} filled voxels, under a quarter of the model's typical shape "
                  f"({summary['typical_filled_voxels']:.0f}, the median of its own samples): likely a fragment; a tighter "
                  "crop or a plainer background may help", file=sys.stderr)
    return 0


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render voxel or mesh files to one PNG grid", formatter_class=HelpFormatter)
    p.add_argument("files", nargs="+", help=".mat .binvox .npy .npz .off .obj .stl .ply files")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--resolution", type=ranged(int, lo=1, hi=MAX_GRID_EDGE), default=64, help=f"voxel resolution for meshes, at most {MAX_GRID_EDGE}")
    p.add_argument("--size", type=ranged(int, lo=8, hi=MAX_IMAGE_SIZE), default=128, help=f"pixels per shape, 8..{MAX_IMAGE_SIZE}")
    p.add_argument("--mesh-up", choices=["z", "y"], default="z", help="vertical axis of mesh files")


def _run_render(args) -> int:
    from gan3d.render.raster import render_files

    check_output(args.out)
    render_files(args.files, args.out, resolution=args.resolution, size=args.size, mesh_up=args.mesh_up)
    print(f"wrote {args.out}")
    return 0


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="plot a run's training curves to a PNG", formatter_class=HelpFormatter)
    p.add_argument("run", help="run folder (or its stats.jsonl)")
    p.add_argument("--out", default=None, help="output PNG (default: RUN/curves.png)")


def _run_plot(args) -> int:
    from gan3d.render.plots import plot_run

    run = Path(args.run)
    out = check_output(args.out or ((run if run.is_dir() else run.parent) / "curves.png"))
    print(f"wrote {plot_run(run, out)}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on built-in data: train, sample, export, render, print where results are",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", default="runs", help="parent folder of the run folder")
    p.add_argument("--steps", type=ranged(int, lo=1, hi=10**9), default=None, help="training steps (default: the demo's budget)")
    p.add_argument("--preset", default="demo", help="preset to train (the demo preset fits in a few minutes)")


def _run_demo(args) -> int:
    from gan3d.demo import run_demo

    run_demo(out=args.out, steps=args.steps, preset=args.preset)
    return 0
