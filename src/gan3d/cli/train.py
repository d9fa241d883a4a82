"""``gan3d train``: the 3D-GAN and the 3D-VAE-GAN.
"""

from __future__ import annotations

import json
from pathlib import Path

from gan3d.cli.common import HelpFormatter, _bool
from gan3d.errors import Gan3dError


def _add_train(sub) -> None:
    from gan3d.presets import PRESETS
    from gan3d.train.config import TrainConfig
    from gan3d.train.losses import LOSSES, Z_DISTS

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
    from gan3d.train.config import TrainConfig, make_config

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
    from gan3d.train.config import make_vaegan_config
    from gan3d.train.loop import train_vaegan

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
    from gan3d.train import distributed

    if distributed.is_main():
        print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else 0


def _resume(args) -> int:
    """``--resume``: the run keeps its saved config; the options given on the command line are
    overrides, which the training loop refuses unless they are allowed on resume or equal the saved value."""
    import dataclasses

    from gan3d.train import distributed
    from gan3d.train.config import TrainConfig, VAEGANConfig
    from gan3d.train.loop import train

    dflt = TrainConfig()
    names = sorted({f.name for c in (TrainConfig, VAEGANConfig) for f in dataclasses.fields(c)})
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    given = {k: v for k, v in given.items() if not (k in ("data", "out") and v == getattr(dflt, k))}  # parser defaults
    result = train(None, resume=args.resume, overrides=given, quiet=args.quiet)
    if distributed.is_main():
        print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else 0


def _run_train(args) -> int:
    from gan3d.train import distributed
    from gan3d.train.loop import training_loop

    if args.resume and not args.dry_run:
        return _resume(args)
    if args.model == "vaegan":
        return _run_vaegan(args)

    cfg = _train_config(args)
    if args.data != "builtin" and not Path(args.data).exists():
        raise Gan3dError("no such dataset file (make one with `gan3d data prepare`)", args.data)
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = training_loop(cfg, resume=args.resume, quiet=args.quiet)
    if distributed.is_main():
        print(f"run folder: {result.run_dir}")
    return 130 if result.interrupted else 0
