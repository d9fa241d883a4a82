"""The ``gan3d`` command: parses and validates options, then calls plain functions.

No training, sampling or data logic lives here. Every user error (gan3d.errors.Gan3dError, bad
option values) ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import Gan3dError

EPILOG_DEMO = "Quick start: gan3d demo   (train a tiny-to-small model on built-in shapes, sample, export, render)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except None: those options take the preset's value (their
    help says so) or are off."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


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


# --- gan3d data ----------------------------------------------------------------------------------


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="prepare datasets and inspect them", formatter_class=HelpFormatter)
    dsub = p.add_subparsers(dest="data_cmd", required=True, metavar="{prepare,info,render}")
    pp = dsub.add_parser(
        "prepare",
        help="build one prepared dataset (.npz, bit-packed) from a source",
        formatter_class=HelpFormatter,
        description=(
            "SOURCE is one of: a 3D ShapeNets volumetric_data tree (class/30/train|test/*.mat); a ModelNet-style "
            "mesh tree (class/train|test/*.off|obj|stl|ply); a folder tree of .binvox files (ShapeNet layout); an "
            ".npz with X_train/y_train/X_test/y_test; or 'builtin' for the procedural furniture shapes."
        ),
    )
    pp.add_argument("source", help="dataset source (see above)")
    pp.add_argument("--out", required=True, help="output .npz file")
    pp.add_argument("--resolution", type=int, required=True, help="grid edge of the prepared shapes (e.g. 32 or 64)")
    pp.add_argument("--classes", nargs="+", default=None, help="keep only these class names")
    pp.add_argument("--splits", nargs="+", choices=["train", "test"], default=None, help="keep only these splits")
    pp.add_argument("--rotations", type=int, nargs="+", default=None, help="3D ShapeNets: keep only these rotations (1..12)")
    pp.add_argument("--mesh-up", choices=["z", "y"], default="z", help="vertical axis of mesh sources (ModelNet: z, ShapeNet: y)")
    pp.add_argument("--builtin-count", type=int, default=100, help="builtin: training shapes per class (test: a fifth of it)")
    pp.add_argument("--seed", type=int, default=0, help="builtin: seed of the procedural shapes")
    pi = dsub.add_parser("info", help="counts, occupancy statistics, empty and suspicious grids", formatter_class=HelpFormatter)
    pi.add_argument("file", help="a prepared dataset (.npz)")
    pi.add_argument("--json", action="store_true", help="print JSON instead of text")
    pr = dsub.add_parser(
        "render",
        help="render every shape of a prepared dataset to RGB images: image/shape pairs for 3D-VAE-GAN",
        formatter_class=HelpFormatter,
    )
    pr.add_argument("dataset", help="a prepared dataset (.npz)")
    pr.add_argument("--out", required=True, help="output folder (images.npy, pairs.npz, meta.json)")
    pr.add_argument("--views", type=int, default=None, help="views per shape drawn from the paper's 24 azimuths x 3 elevations (default: all 72)")
    pr.add_argument("--size", type=int, default=256, help="image edge in pixels")
    pr.add_argument("--split", choices=["train", "test"], default=None, help="render only this split (default: both)")
    pr.add_argument("--classes", nargs="+", default=None, help="render only these classes")
    pr.add_argument("--random-background", action="store_true", help="procedural random backgrounds")
    pr.add_argument("--random-color", action="store_true", help="random object colours")
    pr.add_argument("--seed", type=int, default=0, help="seed of the random views, colours and backgrounds")
    pr.add_argument("--limit", type=int, default=None, help="render at most this many shapes")


def _run_data(args) -> int:
    from . import datasets

    if args.data_cmd == "prepare":
        extra = {}
        if args.source == "builtin":
            extra = {"per_class": (args.builtin_count, max(1, args.builtin_count // 5)), "seed": args.seed}
        summary = datasets.prepare(
            args.source,
            args.out,
            resolution=args.resolution,
            classes=args.classes,
            splits=args.splits,
            rotations=args.rotations,
            mesh_up=args.mesh_up,
            **extra,
        )
        print(json.dumps(summary, indent=2, default=str))
        return 0
    if args.data_cmd == "render":
        from .imaging import VIEWS_PAPER, render_dataset

        summary = render_dataset(
            args.dataset,
            args.out,
            views=VIEWS_PAPER if args.views is None else args.views,
            size=args.size,
            split=args.split,
            classes=args.classes,
            random_background=args.random_background,
            random_color=args.random_color,
            seed=args.seed,
            limit=args.limit,
        )
        print(json.dumps(summary, indent=2, default=str))
        return 0
    report = datasets.info(args.file)
    print(json.dumps(report, indent=2, default=str) if args.json else datasets.format_info(report))
    return 0


# --- gan3d train ---------------------------------------------------------------------------------


def _add_train(sub) -> None:
    from .presets import PRESETS
    from .training import LOSSES, Z_DISTS, TrainConfig

    dflt = TrainConfig()
    lines = "\n".join(f"  {k:8s} {v.help}" for k, v in PRESETS.items())
    p = sub.add_parser(
        "train",
        help="train a 3D-GAN",
        formatter_class=HelpFormatter,
        description=f"Presets (each sets the model and its recipe; any option below overrides the recipe):\n{lines}",
    )
    p.add_argument("--model", choices=["gan", "vaegan"], default="gan", help="3D-GAN, or 3D-VAE-GAN (image encoder; needs --pairs)")
    p.add_argument("--preset", choices=list(PRESETS), default=None, help=f"model and recipe preset (default {dflt.preset}; on --resume, the run's own)")
    p.add_argument("--data", default=dflt.data, help="prepared dataset .npz, or 'builtin' (procedural furniture)")
    p.add_argument("--out", default=dflt.out, help="parent folder of the auto-numbered run folders")
    p.add_argument("--run-name", default=None, help="name the run folder instead of auto-numbering it")
    p.add_argument("--resume", default=None, help="continue the run in this folder (or from this checkpoint.pt)")
    g = p.add_argument_group("recipe (unset options take the preset's value; see --dry-run)")
    g.add_argument("--steps", type=int, default=None, help="total training steps")
    g.add_argument("--batch-size", type=int, default=None, help="shapes per batch")
    g.add_argument("--lr-g", type=float, default=None, help="generator learning rate (paper: 0.0025)")
    g.add_argument("--lr-d", type=float, default=None, help="discriminator learning rate (paper: 1e-5)")
    g.add_argument("--beta1", type=float, default=None, help="Adam beta1 (paper: 0.5)")
    g.add_argument("--d-gate", type=float, default=None, help="update D only when its batch accuracy is <= this; 1 = always (paper: 0.8)")
    g.add_argument("--loss", choices=LOSSES, default=None, help="GAN loss (paper: bce)")
    g.add_argument("--z-dist", choices=Z_DISTS, default=None, help="latent prior (paper: uniform)")
    g.add_argument("--mode-seeking", type=float, default=None, help="weight of the mode-seeking term (Mao et al. 2019) against collapse (paper: 0)")
    g.add_argument("--hard-fakes", type=_bool, default=None, help="D sees G's output thresholded at 0.5, gradient passed straight through (paper: false)")
    g.add_argument("--instance-noise", type=float, default=None, help="std of Gaussian noise on D's inputs (paper: 0)")
    g.add_argument("--noise-decay-steps", type=int, default=None, help="instance noise falls linearly to 0 over these steps (0 = constant)")
    m = p.add_argument_group("model and data")
    m.add_argument("--width", type=float, default=None, help="multiply every hidden width of the preset")
    m.add_argument("--resolution", type=int, default=None, help="model resolution (default: the data's)")
    m.add_argument("--g-output", choices=["sigmoid", "hardsigmoid"], default=None, help="G's output activation: sigmoid (paper) or hardsigmoid, which reaches exact 0 and 1 (default: the preset's)")
    m.add_argument("--d-norm", choices=["batch", "spectral"], default=None, help="D's normalisation: batch (paper) or spectral norm (default: the preset's)")
    m.add_argument("--minibatch-std", type=_bool, default=None, help="minibatch standard-deviation channel in D (default: the preset's)")
    m.add_argument("--classes", nargs="+", default=None, help="train on these classes only")
    m.add_argument("--augment", type=_bool, default=None, help="random quarter turns about the up axis and x flips")
    m.add_argument("--builtin-count", type=int, default=None, help=f"shapes generated for --data builtin (default {dflt.builtin_count})")
    v = p.add_argument_group("3D-VAE-GAN (--model vaegan)")
    v.add_argument("--pairs", default=None, help="image/shape pairs folder from `gan3d data render`")
    v.add_argument("--encoder", default=None, help="image encoder preset: paper (256 px, the paper's), cpu, tiny (default: the preset's)")
    v.add_argument("--init-from", default=None, help="a trained 3D-GAN checkpoint to start G and D from")
    v.add_argument("--alpha1", type=float, default=None, help="KL weight in E's loss (paper: 5)")
    v.add_argument("--alpha2", type=float, default=None, help="reconstruction weight (paper: 1e-4, sized for 64^3)")
    v.add_argument("--recon-loss", choices=("l2", "bce"), default=None, help="per-voxel reconstruction error, summed: l2 (paper) or bce")
    v.add_argument("--lr-e", type=float, default=None, help="encoder learning rate (default: the preset's)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=None, help="seed for weights, batches and latents (default 0)")
    r.add_argument("--device", default=None, help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N")
    r.add_argument("--deterministic", type=_bool, default=None, help="deterministic algorithms (exact resume)")
    r.add_argument("--channels-last", type=_bool, default=None, help="channels_last_3d memory format")
    r.add_argument("--log-every", type=int, default=None, help=f"steps per statistics line (default {dflt.log_every})")
    r.add_argument("--snapshot-every", type=int, default=None, help=f"steps per checkpoint and sample picture (default {dflt.snapshot_every})")
    r.add_argument("--eval-every", type=int, default=None, help="steps per in-training evaluation (IoU 1-NNA, MMD, COV, diversity); 0 = off")
    r.add_argument("--eval-samples", type=int, default=None, help="generated and reference shapes per in-training evaluation (default 200)")
    r.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bar; statistics lines only in the log")


def _train_config(args):
    from .training import TrainConfig, make_config

    over = dict(
        data=args.data,
        out=args.out,
        run_name=args.run_name,
        steps=args.steps,
        batch_size=args.batch_size,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        beta1=args.beta1,
        d_gate=args.d_gate,
        loss=args.loss,
        z_dist=args.z_dist,
        mode_seeking=args.mode_seeking,
        hard_fakes=args.hard_fakes,
        instance_noise=args.instance_noise,
        noise_decay_steps=args.noise_decay_steps,
        width=args.width,
        minibatch_std=args.minibatch_std,
        d_norm=args.d_norm,
        g_output=args.g_output,
        resolution=args.resolution,
        classes=tuple(args.classes) if args.classes else None,
        augment=args.augment,
        builtin_count=args.builtin_count,
        seed=args.seed,
        device=args.device,
        deterministic=args.deterministic,
        channels_last=args.channels_last,
        log_every=args.log_every,
        snapshot_every=args.snapshot_every,
        eval_every=args.eval_every,
        eval_samples=args.eval_samples,
    )
    try:
        return make_config(args.preset or TrainConfig().preset, **over)
    except (TypeError, ValueError) as e:
        raise Gan3dError(f"invalid training option: {e}") from None


def _run_vaegan(args) -> int:
    from .vaegan import make_vaegan_config, train_vaegan

    if not args.pairs:
        raise Gan3dError("--model vaegan needs --pairs (make them with `gan3d data render`)")
    values = dict(
        pairs=args.pairs,
        encoder=args.encoder,
        preset=args.preset,
        init_from=args.init_from,
        out=args.out,
        run_name=args.run_name,
        steps=args.steps,
        batch_size=args.batch_size,
        lr_e=args.lr_e,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        beta1=args.beta1,
        alpha1=args.alpha1,
        alpha2=args.alpha2,
        recon_loss=args.recon_loss,
        d_gate=args.d_gate,
        loss=args.loss,
        instance_noise=args.instance_noise,
        noise_decay_steps=args.noise_decay_steps,
        channels_last=args.channels_last,
        seed=args.seed,
        device=args.device,
        deterministic=args.deterministic,
        log_every=args.log_every,
        snapshot_every=args.snapshot_every,
    )
    try:
        preset = values.pop("preset") or "cpu32"
        cfg = make_vaegan_config(preset, **values)
    except (TypeError, ValueError) as e:
        raise Gan3dError(f"invalid training option: {e}") from None
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = train_vaegan(cfg, resume=args.resume, quiet=args.quiet)
    print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else 0


def _run_train(args) -> int:
    from . import distributed
    from .training import training_loop

    if args.model == "vaegan":
        if distributed.launched():
            raise Gan3dError(f"multi-process training (torchrun, WORLD_SIZE={distributed.env_world()}) is supported for the 3D-GAN only, not --model vaegan")
        return _run_vaegan(args)

    cfg = _train_config(args)
    if args.data != "builtin" and not Path(args.data).exists():
        raise Gan3dError("no such dataset file (make one with `gan3d data prepare`)", args.data)
    if args.resume and args.preset:
        from . import checkpoint as ckpt

        saved = ckpt.load(_checkpoint_path(args.resume, prefer="checkpoint.pt"))
        if saved.get("train_config", {}).get("preset") != args.preset:
            raise Gan3dError(
                f"checkpoint is from preset {saved.get('train_config', {}).get('preset')!r}, not {args.preset!r}", args.resume
            )
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = training_loop(cfg, resume=args.resume, quiet=args.quiet)
    if distributed.is_main():
        print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else 0


# --- gan3d sample --------------------------------------------------------------------------------


def _add_sample(sub) -> None:
    from .sampling import FORMATS

    p = sub.add_parser("sample", help="generate shapes from a checkpoint", formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="snapshot.pt or checkpoint.pt of a run (or a run folder)")
    p.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-63 or 1,5,9-12; one shape per seed")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=["npz", "obj"], help="files to write per sample")
    p.add_argument("--mesh-style", choices=["smooth", "blocky"], default="smooth", help="marching cubes or one cube per voxel")
    p.add_argument("--keep-all", action="store_true", help="keep every component (default: only the largest, as the paper)")
    p.add_argument("--threshold", type=float, default=0.5, help="occupancy threshold")
    p.add_argument("--batch-size", type=int, default=32, help="shapes per forward pass (does not change the shapes)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def _checkpoint_path(text: str, prefer: str = "snapshot.pt") -> Path:
    p = Path(text)
    if p.is_dir():
        for name in (prefer, "checkpoint.pt", "snapshot.pt"):
            if (p / name).is_file():
                return p / name
        raise Gan3dError("folder has no snapshot.pt or checkpoint.pt", p)
    return p


def _run_sample(args) -> int:
    from .sampling import parse_seeds, sample_to_dir

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        raise Gan3dError(str(e)) from None
    summary = sample_to_dir(
        _checkpoint_path(args.checkpoint),
        seeds,
        args.out,
        formats=args.formats,
        mesh_style=args.mesh_style,
        keep_all=args.keep_all,
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"wrote {summary['n']} samples ({summary['resolution']}^3, step {summary['step']}) to {summary['out']}; picture: {summary['out']}/grid.png")
    if summary["empty_seeds"]:
        print(f"empty after thresholding: seeds {summary['empty_seeds']}")
    return 0


# --- gan3d reconstruct ----------------------------------------------------------------------------


def _add_reconstruct(sub) -> None:
    p = sub.add_parser("reconstruct", help="3D shapes from single images with a trained 3D-VAE-GAN", formatter_class=HelpFormatter)
    p.add_argument("images", nargs="+", help="JPEG or PNG files of any size (resized and centre-cropped as in training)")
    p.add_argument("--checkpoint", required=True, help="snapshot.pt of a `gan3d train --model vaegan` run (or its folder)")
    p.add_argument("--out", required=True, help="output folder: <image>.npz, .obj and a picture of input beside result")
    p.add_argument("--samples", type=int, default=1, help="mean of K draws of z (1 = the mean of q(z|image))")
    p.add_argument("--keep-all", action="store_true", help="keep every component (default: only the largest)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def _run_reconstruct(args) -> int:
    from .reconstruct import reconstruct_images

    summary = reconstruct_images(args.checkpoint, args.images, args.out, samples=args.samples, keep_all=args.keep_all, device=args.device)
    print(json.dumps(summary, indent=2, default=str))
    return 0


# --- gan3d render --------------------------------------------------------------------------------


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="render voxel or mesh files to one PNG grid", formatter_class=HelpFormatter)
    p.add_argument("files", nargs="+", help=".mat .binvox .npy .npz .off .obj .stl .ply files")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--resolution", type=int, default=64, help="voxel resolution for meshes")
    p.add_argument("--size", type=int, default=128, help="pixels per shape")
    p.add_argument("--mesh-up", choices=["z", "y"], default="z", help="vertical axis of mesh files")


def _run_render(args) -> int:
    from .render import render_files

    render_files(args.files, args.out, resolution=args.resolution, size=args.size, mesh_up=args.mesh_up)
    print(f"wrote {args.out}")
    return 0


# --- gan3d eval (gan3d.eval_cli) ------------------------------------------------------------------


def _add_eval(sub) -> None:
    from .eval_cli import add_parser

    add_parser(sub)


def _run_eval(args) -> int:
    from .eval_cli import run

    return run(args)


# --- gan3d plot ---------------------------------------------------------------------------------


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="plot a run's training curves to a PNG", formatter_class=HelpFormatter)
    p.add_argument("run", help="run folder (or its stats.jsonl)")
    p.add_argument("--out", default=None, help="output PNG (default: RUN/curves.png)")


def _run_plot(args) -> int:
    from .plots import plot_run

    run = Path(args.run)
    out = args.out or ((run if run.is_dir() else run.parent) / "curves.png")
    print(f"wrote {plot_run(run, out)}")
    return 0


# --- gan3d demo ----------------------------------------------------------------------------------


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on built-in data: train, sample, export, render, print where results are",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", default="runs", help="parent folder of the run folder")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's budget)")
    p.add_argument("--preset", default="demo", help="preset to train (the demo preset fits in a few minutes)")


def _run_demo(args) -> int:
    from .demo import run_demo

    run_demo(out=args.out, steps=args.steps, preset=args.preset)
    return 0


COMMANDS = {
    "data": (_add_data, _run_data),
    "train": (_add_train, _run_train),
    "sample": (_add_sample, _run_sample),
    "render": (_add_render, _run_render),
    "reconstruct": (_add_reconstruct, _run_reconstruct),
    "eval": (_add_eval, _run_eval),
    "plot": (_add_plot, _run_plot),
    "demo": (_add_demo, _run_demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    except KeyboardInterrupt:
        print(f"gan3d {args.cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
