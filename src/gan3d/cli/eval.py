"""``gan3d eval {classify,generation,neighbours,reconstruction}``: thin command-line
wrappers around the registered evaluations, run through :func:`gan3d.eval.registry.calc`. Options
are parsed and checked here; every result can be written as a JSON file (``--out``, atomic) and/or
appended as one line to a results ``.jsonl`` (``--results``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gan3d.cli.common import HelpFormatter as _Formatter
from gan3d.cli.common import _device, ranged
from gan3d.errors import Gan3dError


def _floats(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return vals


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _seeds(text: str) -> list[int]:
    from gan3d.runtime import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _class_checkpoint(text: str) -> tuple[str, str]:
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise argparse.ArgumentTypeError(f"expected CLASS=CHECKPOINT, got {text!r}")
    return name, path


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _common(p: argparse.ArgumentParser, checkpoint_help: str = "", required: bool = True) -> None:
    p.add_argument("--checkpoint", required=required,
                   help="snapshot.pt or checkpoint.pt of a run, a run folder, or a shipped model's name (gan3d models)" + checkpoint_help)
    p.add_argument("--data", required=True, help="prepared dataset .npz (gan3d data prepare) at the model's resolution")
    p.add_argument("--classes", nargs="+", default=None, help="use only these classes")
    p.add_argument("--out", default=None, help="write the full result as JSON to this file")
    p.add_argument("--results", default=None, help="append the result as one JSON line to this .jsonl (e.g. docs/results/x.jsonl)")
    p.add_argument("--device", type=_device, default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint: classification, generation metrics, nearest neighbours", formatter_class=_Formatter)
    esub = p.add_subparsers(dest="eval_cmd", required=True, metavar="{classify,generation,neighbours,reconstruction}")

    c = esub.add_parser(
        "classify",
        help="the paper's Table 1: linear SVM on D's features, with raw-voxel and random-D baselines",
        formatter_class=_Formatter,
        description=(
            "Features: D's last three hidden blocks (blocks 1,2,3 of a 64^3 D, as the paper; 0,1,2 of a 32^3 D), each "
            "max-pooled to POOL^3 and concatenated; standardised; LinearSVC with C chosen by stratified k-fold CV on the "
            "training split; accuracy on the test split. Baselines: raw voxels (max-pooled to --raw-resolution) and the "
            "same D at random initialisation."
        ),
    )
    _common(c)
    c.add_argument("--blocks", type=_ints, default=None, help="D blocks to use, e.g. 1,2,3 (default: the last three)")
    c.add_argument("--pool", type=_positive, default=2, help="max-pool each block's response to POOL^3")
    c.add_argument("--C-grid", dest="C_grid", type=_floats, default="0.0001,0.001,0.01,0.1,1,10", help="SVM C candidates")
    c.add_argument("--cv", type=_positive, default=5, help="cross-validation folds (training split only)")
    c.add_argument("--seed", type=ranged(int, lo=0, hi=2**31 - 1), default=0, help="seed for CV folds and the random-D baseline")
    c.add_argument("--repeats", type=ranged(int, lo=1, hi=1000), default=1,
                   help="run the protocol with seeds SEED ... SEED+REPEATS-1 (folds, random D, any --validation split) and "
                        "print each accuracy and margin as mean +- standard deviation over them")
    c.add_argument("--no-baselines", action="store_true", help="skip the raw-voxel and random-D baselines")
    c.add_argument("--raw-resolution", type=_positive, default=16, help="raw-voxel baseline: max-pool grids to this edge")
    c.add_argument("--solver", choices=["auto", "svc", "linearsvc"], default="auto", help="SVC on the precomputed linear kernel (fast; auto up to 12,000 training shapes) or LinearSVC")
    c.add_argument("--batch-size", type=_positive, default=64, help="shapes per D forward pass")
    c.add_argument("--validation", type=ranged(float, gt=0, lt=1), default=0.0, metavar="SHARE",
                   help="choose settings without the test split: hold out this share of the training split (per class, seeded) and score on it instead")
    c.add_argument("--shifted", nargs="+", choices=["reframe", "erode", "dilate"], default=[],
                   help="also score the test split re-framed to 24 of 32 voxels (the 3D ShapeNets framing), eroded or dilated by one voxel")
    c.add_argument("--invariant", nargs="+", choices=["flip", "scale", "morph"], default=[],
                   help="every feature extractor averages its features over the grid and its copies: flip (mirrored), "
                        "scale (shrunk to 0.875 and 0.75), morph (eroded and dilated by a voxel); default: none (the paper)")
    c.add_argument("--also-test", nargs="+", default=[], metavar="F.npz",
                   help="also score these prepared datasets' test splits (another voxelization of the same models, say; classes must be among the training classes)")

    g = esub.add_parser(
        "generation",
        help="distribution metrics of samples against a dataset split, with context rows",
        formatter_class=_Formatter,
    )
    _common(g)
    g.add_argument("--split", choices=["train", "test"], default="test", help="reference split")
    g.add_argument("--n-samples", type=_positive, default=None, help="samples (seeds 0..N-1; default: min(reference size, --max-samples))")
    g.add_argument("--max-samples", type=_positive, default=500, help="cap of the default sample count")
    g.add_argument("--seeds", type=_seeds, default=None, help="explicit seeds, e.g. 0-99 (overrides --n-samples)")
    g.add_argument("--components", choices=["both", "largest", "all"], default="both", help="sample rows: largest component, all components, or both")
    g.add_argument("--distances", nargs="+", default=["iou", "chamfer"], help="distances for the metrics")
    g.add_argument("--n-points", type=_positive, default=2048, help="surface points per shape for point distances")
    g.add_argument("--no-context", action="store_true", help="skip the context rows (train set, shuffled, mean shape)")
    g.add_argument("--seed", type=ranged(int, lo=0, hi=2**31 - 1), default=0, help="seed for point sampling and the context sets")
    g.add_argument("--batch-size", type=_positive, default=32, help="shapes per G forward pass")
    g.add_argument("--latent-sets", type=ranged(int, lo=1, hi=1000), default=1,
                   help="also score the samples on this many disjoint latent sets of the same size (the seeds, then shifted by their count, ...) and report each metric's mean and standard deviation over them")
    g.add_argument("--truncation", type=ranged(float, gt=0, hi=1), default=1.0, help="sample with latents pulled towards the prior's mean by psi, in (0, 1] (as gan3d sample --truncation; 1 = the prior as trained)")

    n = esub.add_parser(
        "neighbours",
        help="nearest training shapes (IoU) of generated shapes; the memorisation fraction",
        formatter_class=_Formatter,
    )
    _common(n)
    n.add_argument("--seeds", type=_seeds, default="0-15", help="one sample per seed, e.g. 0-15")
    n.add_argument("-k", type=_positive, default=3, help="neighbours per sample")
    n.add_argument("--split", choices=["train", "test"], default="train", help="split to search")
    n.add_argument("--out-png", default=None, help="picture: each sample followed by its neighbours (labelled with IoU)")
    n.add_argument("--threshold", type=ranged(float, lo=0, hi=1), default=0.9, help="a sample counts as memorised when its nearest IoU exceeds this")
    n.add_argument("--batch-size", type=_positive, default=32, help="shapes per G forward pass")
    _add_reconstruction(esub)


def _add_reconstruction(esub) -> None:
    """``gan3d eval reconstruction``'s options."""
    rc = esub.add_parser(
        "reconstruction",
        help="3D-VAE-GAN single-image reconstruction: IoU and AP per class on held-out renders, and the IKEA protocol",
        formatter_class=_Formatter,
    )
    _common(rc, "; with --per-class, the model of the classes it does not name", required=False)
    rc.add_argument(
        "--per-class",
        nargs="+",
        type=_class_checkpoint,
        default=[],
        metavar="CLASS=CHECKPOINT",
        help="score each CLASS's images with its own CHECKPOINT, as the paper's separately trained 3D-VAE-GANs "
        "(here and in --checkpoint, A+B averages two models' occupancies)",
    )
    rc.add_argument("--split", choices=["train", "test"], default="test", help="which rendered images to score (--data is a `gan3d data render` folder)")
    rc.add_argument("--max-pairs", type=ranged(int, lo=1), default=2000, help="score at most this many images (a seeded subset)")
    rc.add_argument("--ikea", default=None, help="also run the IKEA protocol on this folder (Lists/, Images/, Voxels/); "
                    "with --per-class, each IKEA class that has its own model is read by it")
    rc.add_argument("--seed", type=ranged(int, lo=0, hi=2**31 - 1), default=0, help="seed of the image subset")
    rc.add_argument("--batch-size", type=ranged(int, lo=1, hi=65536), default=32, help="images per forward pass")
    rc.add_argument(
        "--thresholds",
        nargs="+",
        type=ranged(float, gt=0, lt=1),
        default=[],
        metavar="T",
        help="also report IoU and occ/small with voxels filled at each T (AP needs no threshold; the headline stays at 0.5)",
    )
    rc.add_argument("--samples", type=ranged(int, lo=1, hi=1024), default=1,
                    help="average G over this many draws from q(z | image) instead of G at its mean (as gan3d reconstruct --samples)")
    rc.add_argument("--prior-weight", type=ranged(float, lo=0.0, hi=1.0), default=0.0,
                    help="blend this share of each model's prior shape into its reconstructions (as gan3d reconstruct --prior-weight)")


# --- printing ------------------------------------------------------------------------------------


def _pct(v: Any) -> str:
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def format_classify(r: dict) -> str:
    rows = [k for k in ("learned", "random_D", "raw_voxels") if k in r]
    lines = [
        f"classification: {len(r['classes'])} classes, {r['n_train']} train / {r['n_test']} test shapes, "
        f"chance {_pct(r['chance']).strip()}; checkpoint step {r['checkpoint_step']}"
        + (f"; scored on {r['scored_on']}" if r.get("scored_on", "test split") != "test split" else ""),
        f"features: {r['protocol']}",
        *(
            [f"empty shapes (no filled voxel) kept: {r['empty_shapes']['train']} train, {r['empty_shapes']['test']} test"]
            if sum(r.get("empty_shapes", {}).values())
            else []
        ),
        "",
        f"{'features':12s} {'dim':>6s} {'C':>8s} {'cv acc':>7s} {'test acc':>8s}",
    ]
    for k in rows:
        e = r[k]
        lines.append(f"{k:12s} {e['dim']:6d} {e['C']:8.0e} {_pct(e['cv_accuracy'])} {_pct(e['accuracy']):>8s}")
    lines += ["", "per-class test accuracy:", f"{'class':14s}" + "".join(f" {k:>11s}" for k in rows)]
    for cname in r["classes"]:
        lines.append(f"{cname:14s}" + "".join(f" {_pct(r[k]['per_class'].get(cname)):>11s}" for k in rows))
    if r.get("shifted_tests"):
        lines += ["", "other test sets, scored by the same SVMs:", f"{'test set':22s} {'shapes':>6s}" + "".join(f" {k:>11s}" for k in rows)]
        for name, n in r["shifted_tests"].items():
            lines.append(f"{name:22s} {n:6d}" + "".join(f" {_pct(r[k]['shifted'][name]['accuracy']):>11s}" for k in rows))
    if rep := r.get("repeats"):
        keys = list(rep["mean"])
        lines += ["", f"over {rep['n']} seeds ({', '.join(map(str, rep['seeds']))}): accuracy, mean +- standard deviation (points)",
                  f"{'test set':22s}" + "".join(f" {k.replace('learned_minus_', 'learned - '):>20s}" for k in keys)]
        for name in rep["sets"]:
            cells = [f"{100 * rep['mean'][k][name]:6.1f} +- {100 * rep['sd'][k][name]:4.1f}" for k in keys]
            lines.append(f"{name:22s}" + "".join(f" {c:>20s}" for c in cells))
    return "\n".join(lines)


def _flatten(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}/" if not isinstance(v, (int, float)) else f"{prefix}{k}"))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip("/")] = float(d)
    return out


def format_generation(r: dict) -> str:
    skip = {"n_samples", "n_ref", "n_empty_ref"}  # the same in every row, or in the header
    flat = {name: {k: v for k, v in _flatten(row).items() if k not in skip} for name, row in r["rows"].items()}
    cols: list[str] = []
    for f in flat.values():
        cols += [c for c in f if c not in cols]
    width = max(len(n) for n in flat) if flat else 10
    lines = [
        f"generation: {r['n_samples']} samples (seeds {r['seeds']}) vs {r['n_reference']} {r['reference']['split']} shapes; "
        f"checkpoint step {r['checkpoint_step']}; empty samples: {r['empty_samples']}"
        + (f"; latents truncated to psi {r['truncation']:g}" if r.get("truncation", 1.0) != 1.0 else "")
        + (f"; {r['n_reference_empty_dropped']} empty reference shapes left out" if r.get("n_reference_empty_dropped") else ""),
        "",
        *(
            [f"raw samples' filled voxels outside their largest component: mean {100 * o['mean']:.2f}%, median {100 * o['median']:.2f}%, "
             f"max {100 * o['max']:.1f}%; {100 * o['over_1pct']:.0f}% of samples over 1%"]
            if (o := r.get("outside_largest")) and o.get("n")
            else []
        ),
        f"{'set':{width}s}" + "".join(f" {c:>12s}" for c in cols),
    ]
    for name, f in flat.items():
        lines.append(f"{name:{width}s}" + "".join(f" {f[c]:12.4g}" if c in f else f" {'-':>12s}" for c in cols))
    if ls := r.get("latent_sets"):
        lines += ["", f"over {ls['n_sets']} latent sets (seeds {', '.join(ls['seeds'])}): mean +- standard deviation"]
        for name, means in ls["mean"].items():
            lines.append(f"{name:{width}s} " + ", ".join(f"{k} {v:.4g} +- {ls['sd'][name][k]:.2g}" for k, v in means.items()))
    return "\n".join(lines)


def format_neighbours(r: dict) -> str:
    lines = [
        f"nearest {r['split']} shapes by IoU ({r['n_pool']} searched), checkpoint step {r['checkpoint_step']}",
        f"memorised (nearest IoU > {r['threshold']}): {_pct(r['memorised_fraction']).strip()} of {len(r['samples'])} samples; "
        f"nearest IoU mean {r['nearest_iou']['mean']:.3f}, median {r['nearest_iou']['median']:.3f}, max {r['nearest_iou']['max']:.3f}",
        "",
    ]
    for s in r["samples"]:
        nb = "  ".join(f"{n['iou']:.3f} {n['class']}/{n['source_id']}" for n in s["neighbours"])
        lines.append(f"seed {s['seed']:>5d}: {nb}")
    if r.get("png"):
        lines.append(f"picture: {r['png']}")
    return "\n".join(lines)


def _classify_kwargs(args) -> dict:
    return dict(
        classes=args.classes,
        blocks=args.blocks,
        pool=args.pool,
        C_grid=args.C_grid if isinstance(args.C_grid, list) else _floats(args.C_grid),
        cv=args.cv,
        seed=args.seed,
        baselines=not args.no_baselines,
        raw_resolution=args.raw_resolution,
        solver=args.solver,
        shifts=tuple(args.shifted),
        validation=args.validation,
        also_test=tuple(args.also_test),
        invariant=tuple(args.invariant),
        repeats=args.repeats,
    )


def _generation_kwargs(args) -> dict:
    return dict(
        n_samples=args.n_samples,
        max_samples=args.max_samples,
        split=args.split,
        classes=args.classes,
        keep_all={"both": None, "largest": False, "all": True}[args.components],
        seeds=args.seeds,
        distances=tuple(args.distances),
        n_points=args.n_points,
        context_rows=not args.no_context,
        seed=args.seed,
        truncation=args.truncation,
        latent_sets=args.latent_sets,
    )


def _neighbours_kwargs(args) -> dict:
    return dict(
        seeds=args.seeds if isinstance(args.seeds, list) else _seeds(args.seeds),
        k=args.k,
        split=args.split,
        classes=args.classes,
        out_png=args.out_png,
        threshold=args.threshold,
    )


def _reconstruction_kwargs(args) -> dict:
    per_class = dict(args.per_class)
    if len(per_class) < len(args.per_class):
        raise Gan3dError("--per-class names a class twice")
    return dict(split=args.split, max_pairs=args.max_pairs, ikea=args.ikea, seed=args.seed, classes=args.classes, thresholds=args.thresholds,
                per_class=per_class, samples=args.samples, prior_weight=args.prior_weight)


def run(args) -> int:
    """``gan3d eval NAME``: the registered evaluation NAME through :func:`gan3d.eval.registry.calc`,
    with NAME's own options (:data:`KWARGS`) and its printed summary (:data:`FORMATTERS`)."""
    from gan3d.eval.registry import calc

    name = args.eval_cmd
    if name not in KWARGS:  # pragma: no cover - argparse restricts the choices
        raise Gan3dError(f"unknown evaluation {name!r}")
    kwargs = KWARGS[name](args)
    kwargs.update(device=args.device, batch_size=args.batch_size, progress=not args.quiet)
    result = calc(name, args.checkpoint, args.data, out=args.out, results=args.results, argv=sys.argv[1:], **kwargs)
    print(FORMATTERS[name](result))
    if args.out:
        print(f"wrote {args.out}")
    if args.results:
        print(f"appended to {args.results}")
    return 0


def format_reconstruction(r: dict) -> str:
    from gan3d.voxels import SMALL

    base = r.get("baselines", {}).get("class_mean")
    head = f"{'class':14s} {'n':>6s} {'IoU':>7s} {'AP':>7s} {'occ':>6s} {'small':>6s}"
    own = "each class by its own model" if r["checkpoint_step"] is None and r.get("per_class_checkpoints") else f"checkpoint step {r['checkpoint_step']}"
    lines = [f"reconstruction on {r['n_images']} {r['split']} images, {own}" + (f", mean of {r['samples']} posterior draws" if r.get("samples") else "")
             + (f", blended with the prior shape at {r['prior_weight']:g}" if r.get("prior_weight") else "")]
    if r.get("averaged"):
        lines.append("  averaged: " + ", ".join(f"{m['checkpoint']} (step {m['step']})" for m in r["averaged"]))
    for name, c in r.get("per_class_checkpoints", {}).items():
        models = c.get("averaged") or [c]
        lines.append(f"  {name}: its own model{'s, averaged' if len(models) > 1 else ''}, "
                     + ", ".join(f"{m['checkpoint']} (step {m['step']})" for m in models))
    if base:
        lines.append(f"{'':43s}  class-mean oracle")
        head += f" {'IoU':>7s} {'AP':>7s}"
    lines.append(head)
    pct = (lambda x: "-" if x is None or x != x else f"{100 * x:.0f}%")  # NaN when a class has no filled truth
    for name, v in r["per_class"].items():
        row = f"{name:14s} {v['n']:6d} {v['iou']:7.3f} {v['ap']:7.2f} {pct(v.get('occupancy_ratio')):>6s} {pct(v.get('small')):>6s}"
        if base:
            b = base["per_class"][name]
            row += f" {b['iou']:7.3f} {b['ap']:7.2f}"
        lines.append(row)
    row = f"{'mean':14s} {'':6s} {r['mean_iou']:7.3f} {r['mean_ap']:7.2f} {'':6s} {pct(r.get('small')):>6s}"
    if base:
        row += f" {base['mean_iou']:7.3f} {base['mean_ap']:7.2f}"
    lines.append(row)
    lines.append(f"occ: a reconstruction's filled voxels (at 0.5) over its class's median true shape, median over images; "
                 f"small: share of reconstructions under {SMALL:g} of that")
    for t, v in r.get("thresholds", {}).items():
        lines.append(f"filled at {t}: mean IoU {v['mean_iou']:.3f}, small {pct(v['small'])}; "
                     + ", ".join(f"{name} {c['iou']:.3f} ({pct(c.get('occupancy_ratio'))})" for name, c in v["per_class"].items()))
    if "ikea" in r:
        ik = r["ikea"]
        lines.append("IKEA average precision (%), ours vs the paper's 3D-VAE-GAN (separately trained); occ, small as above:")
        for name, ap in ik["ap"].items():
            occ = ik.get("occupancy", {}).get(name, {})
            lines.append(f"  {name:10s} {ap if ap is not None else float('nan'):7.2f} {ik['paper'].get(name, float('nan')):7.1f}"
                         + (f" {pct(occ.get('occupancy_ratio')):>6s} {pct(occ.get('small')):>6s}" if occ else ""))
        if ik.get("no_model"):
            lines.append(f"  not scored (no model for them; give --checkpoint): {', '.join(ik['no_model'])}")
    return "\n".join(lines)


KWARGS = {
    "classify": _classify_kwargs,
    "generation": _generation_kwargs,
    "neighbours": _neighbours_kwargs,
    "reconstruction": _reconstruction_kwargs,
}
"""Per evaluation: its options from the parsed arguments (the shared ones are added by :func:`run`)."""

FORMATTERS = {
    "classify": format_classify,
    "generation": format_generation,
    "neighbours": format_neighbours,
    "reconstruction": format_reconstruction,
}
"""Per evaluation: the text printed for its result."""
