"""``gan3d gallery PATH``: parse and check the options, then call :func:`build_gallery`."""

from __future__ import annotations

from ..errors import Gan3dError


def add_parser(sub) -> None:
    from ..cli.common import HelpFormatter

    p = sub.add_parser(
        "gallery",
        help="one static HTML page (opens offline) of a run or output folder: 3D samples, curves, analyses",
        formatter_class=HelpFormatter,
        description=(
            "PATH is a run folder (snapshot.pt, stats.jsonl, config.json) or an output folder (samples.npz of "
            "`gan3d sample`, interpolation.npz, dimensions.npz, neurons.npz); its direct subfolders are searched too. "
            "Every shape is a rotatable 3D view (plotly.js, inlined in the page once)."
        ),
    )
    p.add_argument("path", help="run folder or output folder")
    p.add_argument("--out", default=None, help="output HTML file (default: PATH/gallery.html)")
    p.add_argument("--data", default=None, help="prepared dataset .npz: show each sample's nearest training shapes")
    p.add_argument("--seeds", default=None, help="seeds, e.g. 0-15 or 1,5,9-12 (default: 0-15 from snapshot.pt, all of samples.npz)")
    p.add_argument("--neighbours", type=int, default=3, help="nearest training shapes per sample (with --data)")
    p.add_argument("--device", default="cpu", help="device that samples from snapshot.pt: cpu, auto, cuda, cuda:N")


def run(args) -> int:
    from ..runtime import parse_seeds
    from .build import build_gallery

    seeds = None
    if args.seeds is not None:
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as e:
            raise Gan3dError(f"--seeds: {e}") from None
        if not seeds:
            raise Gan3dError("--seeds: no seeds given")
    summary = build_gallery(args.path, out=args.out, data=args.data, seeds=seeds, k=args.neighbours, device=args.device)
    panels = ", ".join(f"{n} {kind}" for kind, n in summary["panels"].items())
    print(f"wrote {summary['out']} ({summary['bytes'] / 1e6:.1f} MB; panels: {panels or 'none'}) in {summary['seconds']} s")
    return 0
