"""The main job on the built-in data: first shapes from the shipped ``chair`` model (when one is
shipped), then train a small 3D-GAN on procedural furniture, sample shapes from it, export meshes
and voxel files, render pictures, and say where everything is."""

from __future__ import annotations

import time
from pathlib import Path

from gan3d.sampling import sample_to_dir
from gan3d.train.config import make_config
from gan3d.train.loop import training_loop


def run_demo(*, out: str = "runs", steps: int | None = None, preset: str = "demo") -> Path:
    shipped = _shipped_chair(out)
    t0 = time.perf_counter()
    cfg = make_config(preset, data="builtin", out=out, steps=steps)
    print(f"gan3d demo: training preset '{preset}' on built-in procedural furniture for {cfg.steps} steps")
    result = training_loop(cfg)
    run = result.run_dir
    samples = run / "samples"
    summary = sample_to_dir(run / "snapshot.pt", list(range(32)), samples, formats=["npz", "binvox", "obj", "stl"])
    dt = time.perf_counter() - t0
    print()
    print(f"done in {dt / 60:.1f} min. Results:")
    print(f"  run folder        {run}  (config.json, log.txt, stats.jsonl, checkpoint.pt, snapshot.pt)")
    print(f"  training shapes   {run / 'reals.png'}")
    print(f"  samples per snapshot  {run}/samples_*.png")
    print(f"  32 final samples  {samples / 'grid.png'}")
    print(f"  meshes and voxels {samples}/seed*.obj|stl|binvox, all grids in {samples / 'samples.npz'}")
    print(f"  mean occupancy of the samples: {summary['mean_occupancy']:.3f}")
    if shipped:
        where = Path(shipped["out"])
        print(f"  shipped chair model, 16 samples  {where / 'grid.png'}  (meshes {where}/seed*.obj, grids {where / 'samples.npz'})")
    print(f"more samples: gan3d sample --checkpoint {run / 'snapshot.pt'} --seeds 0-63 --out {run / 'more'}")
    return run


def _shipped_chair(out: str) -> dict | None:
    """Seeds 0-15 of the shipped ``chair`` model into ``<out>/shipped-chair/``, or one line saying
    that none is shipped."""
    from gan3d.errors import Gan3dError
    from gan3d.zoo.demo import sample_shipped

    try:
        summary = sample_shipped(out, name="chair")
    except Gan3dError as e:  # a damaged shipped model must not stop the rest of the demo
        print(f"gan3d demo: the shipped chair model was refused ({e}); skipping its samples")
        return None
    if summary is None:
        print("gan3d demo: no trained chair model is shipped in this installation; skipping its samples")
        return None
    where = Path(summary["out"])
    print(f"gan3d demo: 16 chairs from the shipped model (step {summary['step']}) in {summary['seconds']:.1f} s:")
    print(f"  picture {where / 'grid.png'}, meshes {where}/seed*.obj, grids {where / 'samples.npz'}")
    try:  # the gallery needs the optional plotly package
        from gan3d.gallery.build import build_gallery

        page = build_gallery(where)
        print(f"  gallery {page['out']} (open it in a browser: every chair as a rotatable 3D mesh)")
    except (ImportError, Gan3dError) as e:
        print(f"  no gallery ({e})")
    print()
    return summary
