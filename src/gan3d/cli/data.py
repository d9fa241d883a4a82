"""``gan3d data prepare|info|render|merge|merge-pairs``.
"""

from __future__ import annotations

import json

from gan3d.cli.common import HelpFormatter, ranged
from gan3d.errors import Gan3dError
from gan3d.fileio import check_output
from gan3d.io.files import MAX_GRID_EDGE
from gan3d.render.raster import MAX_IMAGE_SIZE


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="prepare datasets and inspect them", formatter_class=HelpFormatter)
    dsub = p.add_subparsers(dest="data_cmd", required=True, metavar="{prepare,info,render,merge,merge-pairs}")
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
    pp.add_argument("--resolution", type=ranged(int, lo=1, hi=MAX_GRID_EDGE), required=True, help=f"grid edge of the prepared shapes (e.g. 32 or 64; at most {MAX_GRID_EDGE})")
    pp.add_argument("--classes", nargs="+", default=None, help="keep only these class names")
    pp.add_argument("--splits", nargs="+", choices=["train", "test"], default=None, help="keep only these splits")
    pp.add_argument("--rotations", type=ranged(int, lo=1, hi=12), nargs="+", default=None, help="3D ShapeNets: keep only these rotations (1..12)")
    pp.add_argument("--mesh-up", choices=["z", "y"], default="z", help="vertical axis of mesh sources (ModelNet: z, ShapeNet: y)")
    pp.add_argument("--validation", type=ranged(float, gt=0, lt=1), default=0.0, metavar="SHARE",
                    help="write a validation split as the test split: this share of each class's training models (seeded by --seed); the source's test split is left out")
    pp.add_argument("--builtin-count", type=ranged(int, lo=1, hi=100_000), default=100, help="builtin: training shapes per class (test: a fifth of it)")
    pp.add_argument("--seed", type=ranged(int, lo=0, hi=2**31 - 1), default=0, help="builtin: seed of the procedural shapes; with --validation, also of the held-out draw")
    pp.add_argument("--builtin-framing", choices=["floor", "cb"], default="floor",
                    help="builtin: shapes stand on the grid's floor, or are centred on every axis like binvox -cb (ModelNet10's npz)")
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
    pr.add_argument("--views", type=ranged(int, lo=1, hi=72), default=None, help="views per shape drawn from the paper's 24 azimuths x 3 elevations (default: all 72)")
    pr.add_argument("--size", type=ranged(int, lo=8, hi=MAX_IMAGE_SIZE), default=256, help=f"image edge in pixels, 8..{MAX_IMAGE_SIZE}")
    pr.add_argument("--split", choices=["train", "test"], default=None, help="render only this split (default: both)")
    pr.add_argument("--classes", nargs="+", default=None, help="render only these classes")
    pr.add_argument("--random-background", action="store_true", help="procedural random backgrounds")
    pr.add_argument("--random-color", action="store_true", help="random object colours")
    pr.add_argument("--photo", action="store_true",
                    help="photo-like images: wall and floor behind the object, random light, colour and framing, "
                         "occluders in some, camera noise (replaces --random-background and --random-color)")
    pr.add_argument("--seed", type=ranged(int, lo=0, hi=2**31 - 1), default=0, help="seed of the random views, colours and backgrounds")
    pr.add_argument("--limit", type=ranged(int, lo=1), default=None, help="render at most this many shapes")
    pm = dsub.add_parser(
        "merge",
        help="one prepared dataset from several of one resolution (classes matched by name, renamed with --rename)",
        formatter_class=HelpFormatter,
        description="e.g. gan3d data merge mn5_32.npz bookshelves_32.npz --out mn6_32.npz --rename bookshelf=bookcase",
    )
    pm.add_argument("inputs", nargs="+", help="two or more prepared datasets (.npz) of one resolution")
    pm.add_argument("--out", required=True, help="output .npz file")
    pm.add_argument("--rename", nargs="+", default=None, metavar="OLD=NEW", help="rename classes (a shared new name merges them)")
    pq = dsub.add_parser(
        "merge-pairs",
        help="one paired image folder from several rendered from one dataset (e.g. plain and photo-like renders)",
        formatter_class=HelpFormatter,
        description="e.g. gan3d data merge-pairs mn5_pairs8 mn5_photo8 --out mn5_mix8",
    )
    pq.add_argument("inputs", nargs="+", help="two or more folders from `gan3d data render` of one dataset, image size and class list")
    pq.add_argument("--out", required=True, help="output folder (must not exist)")


def _run_data(args) -> int:
    from gan3d.data.inspect import format_info, info
    from gan3d.data.prepare import prepare

    if args.data_cmd == "prepare":
        check_output(args.out)
        extra = {}
        if args.source == "builtin":
            extra = {"per_class": (args.builtin_count, max(1, args.builtin_count // 5)), "seed": args.seed,
                     "framing": args.builtin_framing}
        if args.validation:
            extra.update(validation=args.validation, seed=args.seed)
        summary = prepare(
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
    if args.data_cmd == "merge":
        from gan3d.data.merge import merge, parse_renames

        check_output(args.out)
        summary = merge(args.inputs, args.out, rename=parse_renames(args.rename))
        print(json.dumps(summary, indent=2, default=str))
        return 0
    if args.data_cmd == "merge-pairs":
        from gan3d.data.pairmerge import merge_pairs

        check_output(args.out, folder=True)
        print(json.dumps(merge_pairs(args.inputs, args.out), indent=2, default=str))
        return 0
    if args.data_cmd == "render":
        from gan3d.data.pairs import VIEWS_PAPER, render_dataset

        check_output(args.out, folder=True)
        if args.photo and (args.random_background or args.random_color):
            raise Gan3dError("--photo draws its own backgrounds and colours: drop --random-background and --random-color")

        summary = render_dataset(
            args.dataset,
            args.out,
            views=VIEWS_PAPER if args.views is None else args.views,
            size=args.size,
            split=args.split,
            classes=args.classes,
            random_background=args.random_background,
            random_color=args.random_color,
            photo=args.photo,
            seed=args.seed,
            limit=args.limit,
        )
        print(json.dumps(summary, indent=2, default=str))
        return 0
    report = info(args.file)
    print(json.dumps(report, indent=2, default=str) if args.json else format_info(report))
    return 0
