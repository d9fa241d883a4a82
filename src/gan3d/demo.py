"""The main job on the built-in data: train a small 3D-GAN on procedural furniture, sample shapes
from it, export meshes and voxel files, render pictures, and say where everything is.
"""

from __future__ import annotations

import time
from pathlib import Path

from gan3d.sampling import sample_to_dir
from gan3d.train.config import make_config
from gan3d.train.gan import training_loop


def run_demo(*, out: str = "runs", steps: int | None = None, preset: str = "demo") -> Path:
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
    print(f"more samples: gan3d sample --checkpoint {run / 'snapshot.pt'} --seeds 0-63 --out {run / 'more'}")
    return run
