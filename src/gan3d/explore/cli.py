"""``gan3d explore ...``: the paper's analyses of the learned representations (its Experiment 4).

Only parsing and validation here; each subcommand calls one ``*_to_dir`` function and prints
where its files went. ``add_parser(sub)`` registers ``explore`` on the top-level subparsers,
``run(args)`` runs it; errors are :class:`gan3d.errors.Gan3dError` (one line, exit 2).
"""

from __future__ import annotations

import argparse

from gan3d.errors import Gan3dError

CHECKPOINT_HELP = "a 3D-GAN snapshot.pt or checkpoint.pt, or a run folder"
OPERAND_HELP = "a seed (integer), a latent .npy of shape (z_dim,), or a voxel file (.npz/.binvox/.mat/.npy; inverted to a latent)"


def _formatter():
    from gan3d.cli.common import HelpFormatter

    return HelpFormatter


def _invert_options(p) -> None:
    g = p.add_argument_group("inversion of voxel operands")
    g.add_argument("--invert-starts", type=int, default=8, help="starts of the latent search for a voxel-file operand")
    g.add_argument("--invert-iters", type=int, default=300, help="Adam steps per start for a voxel-file operand")


def add_parser(sub) -> None:
    hf = _formatter()
    p = sub.add_parser("explore", help="analyse the learned representations: interpolate, arithmetic, dimensions, neurons, invert", formatter_class=hf)
    es = p.add_subparsers(dest="explore_cmd", required=True, metavar="{interpolate,arithmetic,dimensions,neurons,invert}")

    q = es.add_parser("interpolate", help="shapes along a path between two latents", formatter_class=hf)
    q.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    q.add_argument("--from", dest="start", required=True, help=OPERAND_HELP)
    q.add_argument("--to", dest="end", required=True, help=OPERAND_HELP)
    q.add_argument("--steps", type=int, default=8, help="frames, both ends included (>= 2)")
    q.add_argument("--method", choices=["linear", "slerp"], default=None, help="path; default: linear for a uniform prior, slerp for a normal one")
    q.add_argument("--data", default=None, help="a prepared dataset .npz: report each frame's best IoU to its training shapes")
    q.add_argument("--meshes", action="store_true", help="also write frame_XX.obj")
    q.add_argument("--keep-all", action="store_true", help="keep every component (default: the largest, as `gan3d sample`)")
    q.add_argument("--out", required=True, help="output folder")
    _invert_options(q)

    a = es.add_parser("arithmetic", help="G(z_A - z_B + z_C)", formatter_class=hf)
    a.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    for name in ("a", "b", "c"):
        a.add_argument(f"--{name}", required=True, help=OPERAND_HELP + ", or an image (.png/.jpg) with --encoder-checkpoint")
    a.add_argument("--encoder-checkpoint", default=None, help="a 3D-VAE-GAN run: image operands become the mean of its q(z|image)")
    a.add_argument("--keep-all", action="store_true", help="keep every component (default: the largest)")
    a.add_argument("--out", required=True, help="output folder")
    _invert_options(a)

    d = es.add_parser("dimensions", help="the voxels each latent dimension changes", formatter_class=hf)
    d.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    d.add_argument("--bases", type=int, default=8, help="base latents (seeds 0..bases-1, from --seed)")
    d.add_argument("--values", type=int, default=5, help="points of each dimension's sweep over the prior's range")
    d.add_argument("--top", type=int, default=8, help="dimensions shown and saved")
    d.add_argument("--dims", default=None, help="sweep only these dimensions, e.g. 0-9,17 (default: all)")
    d.add_argument("--seed", type=int, default=0, help="seed of the first base latent")
    d.add_argument("--batch-size", type=int, default=100, help="latents per forward pass (does not change the result)")
    d.add_argument("--out", required=True, help="output folder")

    n = es.add_parser("neurons", help="the training shapes that excite D's units most", formatter_class=hf)
    n.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP + " (with D)")
    n.add_argument("--data", required=True, help="a prepared dataset .npz (its training split is ranked)")
    n.add_argument("--layer", type=int, default=-2, help="index into D's convolution blocks; -2 = second-to-last")
    n.add_argument("--units", type=int, default=8, help="how many units: those whose max activation varies most over the shapes")
    n.add_argument("--unit-ids", default=None, help="these units instead, e.g. 0,5,9-11")
    n.add_argument("--top", type=int, default=6, help="top shapes per unit (m)")
    n.add_argument("--random-sets", type=int, default=200, help="random m-sets for the selectivity baseline")
    n.add_argument("--seed", type=int, default=0, help="seed of the random sets")
    n.add_argument("--split", choices=["train", "test"], default="train", help="which split to rank")
    n.add_argument("--out", required=True, help="output folder")

    v = es.add_parser("invert", help="the latent whose shape best matches a voxel grid", formatter_class=hf)
    v.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    what = v.add_mutually_exclusive_group(required=True)
    what.add_argument("--target", help="a voxel file (.npz/.binvox/.mat/.npy) at G's resolution")
    what.add_argument("--data", help="a prepared dataset: invert the first --limit shapes of each class of its --split "
                      "(how well G draws shapes it did not train on; an upper bound on a 3D-VAE-GAN's reconstruction IoU)")
    v.add_argument("--split", choices=["train", "test"], help="with --data: the split to invert (default: test)")
    v.add_argument("--classes", nargs="+", help="with --data: only these classes (default: all)")
    v.add_argument("--limit", type=int, help="with --data: shapes per class (default: 10)")
    v.add_argument("--encoder-checkpoint", help="with --data and --pairs: a 3D-VAE-GAN whose code for each shape "
                   "(the mean over its images) is the shape's first start")
    v.add_argument("--pairs", help="with --encoder-checkpoint: a paired image folder rendered from --data")
    v.add_argument("--anchor-weight", type=float, help="with --encoder-checkpoint: weight W of W * mean((z - code)^2), "
                   "which holds each search near the encoder's code (default: 0)")
    v.add_argument("--starts", type=int, default=8, help="starts drawn from the prior (seeds from --seed)")
    v.add_argument("--iters", type=int, default=300, help="Adam steps per start")
    v.add_argument("--prior-weight", type=float, default=1e-3, help="weight of mean(z^2) for a normal prior (a uniform one is kept by projection)")
    v.add_argument("--lr", type=float, default=0.1, help="Adam learning rate")
    v.add_argument("--seed", type=int, default=0, help="seed of the first start")
    v.add_argument("--out", required=True, help="output folder")


def _ids(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    from gan3d.runtime import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as e:
        raise Gan3dError(f"{what}: {e}") from None


def _inv(args) -> dict:
    if args.invert_starts < 1 or args.invert_iters < 0:
        raise Gan3dError("--invert-starts must be >= 1 and --invert-iters >= 0")
    return {"starts": args.invert_starts, "iters": args.invert_iters}


def run(args: argparse.Namespace) -> int:
    cmd = args.explore_cmd
    if cmd == "interpolate":
        from gan3d.explore.interpolate import interpolate_to_dir

        s = interpolate_to_dir(args.checkpoint, args.start, args.end, args.out, steps=args.steps, method=args.method,
                               data=args.data, meshes=args.meshes, keep_all=args.keep_all, invert_options=_inv(args))
        line = f"mean consecutive IoU {s['mean_consecutive_iou']:.3f}"
        if "mean_nearest_train_iou" in s:
            line += f", mean nearest-training IoU {s['mean_nearest_train_iou']:.3f}"
    elif cmd == "arithmetic":
        from gan3d.explore.arithmetic import arithmetic_to_dir

        s = arithmetic_to_dir(args.checkpoint, args.a, args.b, args.c, args.out, encoder=args.encoder_checkpoint,
                              keep_all=args.keep_all, invert_options=_inv(args))
        line = f"result has {s['voxels']['result']} voxels"
    elif cmd == "dimensions":
        from gan3d.explore.dimensions import dimensions_to_dir

        s = dimensions_to_dir(args.checkpoint, args.out, bases=args.bases, values=args.values, top=args.top,
                              dims=_ids(args.dims, "--dims"), seed=args.seed, batch_size=args.batch_size)
        line = "top dimensions " + ", ".join(f"{r['dim']} ({r['mean_changed']:.0f})" for r in s["dimensions"][: args.top])
    elif cmd == "neurons":
        from gan3d.explore.neurons import neurons_to_dir

        s = neurons_to_dir(args.checkpoint, args.data, args.out, layer=args.layer, units=args.units,
                           unit_ids=_ids(args.unit_ids, "--unit-ids"), top=args.top, random_sets=args.random_sets,
                           seed=args.seed, split=args.split)
        line = f"top-{args.top} mean pairwise IoU {s['top_mean_pairwise_iou']:.3f} vs random {s['random_mean_pairwise_iou']:.3f}"
    else:
        from gan3d.explore.invert import invert_set_to_dir, invert_to_dir

        opts = dict(starts=args.starts, iters=args.iters, prior_weight=args.prior_weight, lr=args.lr, seed=args.seed)
        if args.data is None:
            if (args.classes, args.split, args.limit, args.encoder_checkpoint, args.pairs, args.anchor_weight) != (None,) * 6:
                raise Gan3dError("--split, --classes, --limit, --encoder-checkpoint, --pairs and --anchor-weight go with --data, not --target")
            s = invert_to_dir(args.checkpoint, args.target, args.out, **opts)
            line = f"IoU {s['iou']:.3f}"
        else:
            if (args.encoder_checkpoint is None) != (args.pairs is None):
                raise Gan3dError("--encoder-checkpoint and --pairs go together")
            given = {k: v for k, v in (("split", args.split), ("limit", args.limit)) if v is not None}  # else the function's defaults
            given.update(encoder=args.encoder_checkpoint, pairs=args.pairs, anchor_weight=args.anchor_weight or 0.0)
            s = invert_set_to_dir(args.checkpoint, args.data, args.out, classes=args.classes, **given, **opts)
            line = f"mean IoU {s['mean_iou']:.3f} (" + ", ".join(f"{c} {v['mean_iou']:.3f}" for c, v in s["per_class"].items()) + ")"
    print(f"explore {cmd}: {line}; {s['seconds']} s; wrote {', '.join(s['files'])} to {args.out}")
    return 0
