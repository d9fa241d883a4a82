"""``gan3d models``: list the shipped models with their headline numbers; ``show NAME`` prints a
card; ``package RUN --name NAME --command "..."`` turns a run's snapshot into a shipped model."""

from __future__ import annotations

import json

from gan3d.errors import Gan3dError


def add_parser(sub) -> None:
    from gan3d.cli.common import HelpFormatter

    p = sub.add_parser(
        "models",
        help="trained models shipped with gan3d: list them, show a model card, package a run (maintainers)",
        formatter_class=HelpFormatter,
        description="Without a subcommand: the shipped models, each with its card's headline numbers. Every "
        "--checkpoint option also takes a shipped model's name (a file or folder of that name wins).",
    )
    msub = p.add_subparsers(dest="models_cmd", metavar="{list,show,package}")
    msub.add_parser("list", help="the shipped models (the default)", formatter_class=HelpFormatter)
    s = msub.add_parser("show", help="print a model's card (JSON)", formatter_class=HelpFormatter)
    s.add_argument("name", help="a shipped model's name")
    s.add_argument("--verify", action="store_true", help="also hash the weight file and check it against the card and the index")
    k = msub.add_parser(
        "package",
        help="turn a run's snapshot.pt into NAME.safetensors + NAME.json (model card) in the models folder",
        formatter_class=HelpFormatter,
        description="Each of G, D, E is stored in float16 only if fp16 rounding changes none of its thresholded outputs "
        "(G: prior samples; E: reconstructions of the run's test images; D: logit signs on G's samples); else float32. "
        "On request only, --force-fp16 / --int8 store modules in fp16 / int8 (one fp16 scale per kernel or row; about "
        "1/4 of fp32) whatever they change, and --without D leaves D out (a 3D-VAE-GAN reconstructs without it; "
        "commands that need D then refuse the model). "
        "The measurements go into the card with the training command, config, data, steps, wall time and machine.",
    )
    k.add_argument("source", metavar="RUN_OR_SNAPSHOT", help="run folder (its snapshot.pt) or a snapshot.pt")
    k.add_argument("--name", required=True, help="model name, e.g. chair")
    k.add_argument("--command", required=True, help="the exact command that trained the run (recorded in the card)")
    k.add_argument("--data-desc", default=None, help="one line on the training data and split, for the card")
    k.add_argument("--eval", dest="evals", nargs="+", default=[], metavar="FILE.json", help="`gan3d eval ... --out` files of this snapshot")
    k.add_argument("--wall-time-min", type=float, default=None, help="training wall time in minutes (default: estimated from stats.jsonl)")
    k.add_argument("--out", default=None, help="models folder to write into (default: the package's own, or $GAN3D_MODELS_DIR)")
    k.add_argument("--seeds", type=int, default=1000, help="prior samples of the precision check (fp16 rule, --int8, --force-fp16)")
    k.add_argument("--force-fp16", nargs="+", choices=["G", "E"], default=[], metavar="MODULE",
                   help="store these modules in fp16 even where fp16 changes voxels (for a size budget); the card records the measured changes and 'forced'")
    k.add_argument("--int8", nargs="+", choices=["G", "D", "E"], default=[], metavar="MODULE",
                   help="store these modules in int8 with per-kernel fp16 scales whatever that changes (for a size budget); "
                   "the card records the measured changes and 'forced'")
    k.add_argument("--without", nargs="+", choices=["D"], default=[], metavar="MODULE",
                   help="leave D out of the file (e.g. a 3D-VAE-GAN, which reconstructs without it); the card records 'omitted'")
    k.add_argument("--images", type=int, default=256, help="test images of the 3D-VAE-GAN encoder's precision check")


SHORT = {"float16": "fp16", "float32": "fp32", "int8": "int8"}  # the "stored" column


def format_table(rows: list[dict]) -> str:
    """The ``gan3d models`` table: one row per card (plus ``ok``: the file's hash check)."""
    from gan3d.zoo.cards import headline

    head = ("name", "kind", "res", "step", "MB", "stored", "sha256", "headline")
    lines = []
    for c in rows:
        dt = " ".join([*(f"{m}:{SHORT.get(d, d)}" for m, d in c.get("dtypes", {}).items()), *(f"{m}:none" for m in c.get("omitted", []))])
        lines.append(
            (c["name"], c.get("kind", "?"), f"{c.get('model_config', {}).get('resolution', '?')}^3", str(c.get("step", "?")),
             f"{c.get('size_bytes', 0) / 1e6:.1f}", dt, c.get("_ok", "?"), headline(c))
        )
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([fmt(head), *map(fmt, lines)])


def _list() -> int:
    from gan3d.zoo import registry

    names = registry.names()
    if not names:
        print(f"no models are shipped in this installation ({registry.models_dir()})")
        return 0
    rows = []
    for name in names:
        c = dict(registry.card(name))
        try:
            registry.read_verified(name)
            c["_ok"] = "ok"
        except Gan3dError:
            c["_ok"] = "MISMATCH"
        rows.append(c)
    print(format_table(rows))
    print(f"\n{len(rows)} model(s) in {registry.models_dir()}; `gan3d models show NAME` prints a card; "
          "use a name wherever --checkpoint is asked for")
    return 0 if all(r["_ok"] == "ok" for r in rows) else 2


def run(args) -> int:
    from gan3d.zoo import registry

    cmd = args.models_cmd or "list"
    if cmd == "list":
        return _list()
    if cmd == "show":
        c = registry.card(args.name)
        if args.verify:
            registry.read_verified(args.name)
        print(json.dumps(c, indent=2))
        if args.verify:
            print(f"sha256 of {c['file']} matches the card and the index")
        return 0
    from gan3d.zoo.package import package

    c = package(
        args.source,
        name=args.name,
        command=args.command,
        data_desc=args.data_desc,
        evals=args.evals,
        wall_time_min=args.wall_time_min,
        out=args.out,
        n_seeds=args.seeds,
        n_images=args.images,
        force_fp16=args.force_fp16,
        int8=args.int8,
        without=args.without,
    )
    from gan3d.zoo.cards import headline

    out = args.out or registry.models_dir()
    print(f"wrote {out}/{c['file']} ({c['size_bytes'] / 1e6:.2f} MB, sha256 {c['sha256'][:16]}...), {out}/{c['name']}.json and {out}/index.json")
    for m, rep in c["precision"].items():
        if isinstance(rep, dict):
            print(f"  {m}: {rep['stored']}  {json.dumps({k: v for k, v in rep.items() if k != 'stored'})}")
    print(f"  headline: {headline(c)}")
    return 0
