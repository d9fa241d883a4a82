"""Timings of the data, geometry and rendering paths, each beside a simple baseline measured in
the same run, so the figure is a ratio that holds on another machine too.

    python benchmarks/bench_data.py [--data ../shared/data] [--device auto]

Everything timed here runs on the CPU (numpy, scipy, trimesh and CPU torch): ``--device`` is
accepted and checked like the other benchmarks' so one command line fits all four, and the output
says that the device does not apply.

* preparing the 3D ShapeNets chair tree (10,668 .mat files) at 64^3, against the plain loop of
  scipy.io.loadmat over the same files (the floor any reader pays);
* voxelizing a 20,480-face sphere at 64^3, against trimesh's own surface voxelizer + fill;
* rendering 64 shapes at 64^3 at 128 px, against one numpy pass over the same voxels
  (a lower bound: touching each voxel once);
* 1,000 x 1,000 IoU distances at 32^3 (bit-packed popcount) against float32 matrix products.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import numpy as np

from _device import add_option, chosen


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    add_option(ap)
    args = ap.parse_args()
    device = chosen(Path(__file__).name, args.device)
    data = Path(args.data)
    print(f"--device {args.device} ({device}) does not apply: data preparation, voxelizing, rendering and IoU distances all run on the CPU")

    from gan3d.data.prepare import prepare

    from gan3d.io.voxelfiles import read_binvox

    from gan3d.io.meshfiles import voxelize_mesh

    from gan3d.eval import metrics

    from gan3d.render import raster as render

    mat_root = data / "3dshapenets-chair-30" / "volumetric_data"
    if mat_root.is_dir():
        import scipy.io

        files = sorted(glob.glob(str(mat_root / "chair" / "30" / "*" / "*.mat")))
        t_base, _ = timed(lambda: [scipy.io.loadmat(f)["instance"] for f in files])
        with tempfile.TemporaryDirectory() as d:
            t_prep, summary = timed(prepare, mat_root, Path(d) / "c.npz", resolution=64, progress=False)
        print(f"prepare {summary['count']} .mat at 64^3: {t_prep:.1f} s; bare loadmat loop {t_base:.1f} s; ratio {t_prep / t_base:.2f}")

    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=5)
    t_ours, _ = timed(voxelize_mesh, sphere.vertices, sphere.faces, 64)
    scaled = sphere.copy()
    scaled.apply_scale(32 / np.ptp(sphere.bounds, axis=0).max())
    t_tri, _ = timed(lambda: scaled.voxelized(pitch=1.0).fill())
    print(f"voxelize 20,480 faces at 64^3: {t_ours:.3f} s; trimesh voxelized+fill {t_tri:.3f} s; ratio {t_ours / t_tri:.2f}")

    rng = np.random.default_rng(0)
    binvox = sorted(glob.glob(str(data / "shapenet-chair-binvox-64" / "chair" / "*" / "models" / "*.binvox")))
    grids = np.stack([read_binvox(f) for f in binvox] * (64 // max(1, len(binvox)) + 1))[:64] if binvox else rng.random((64, 64, 64, 64)) > 0.97
    t_render, _ = timed(lambda: [render.render_voxels(g, size=128) for g in grids])
    t_touch, _ = timed(lambda: [np.argwhere(g).sum() for g in grids])
    print(f"render 64 shapes at 64^3, 128 px: {t_render:.2f} s; one numpy pass over the voxels {t_touch:.3f} s; ratio {t_render / t_touch:.0f}")

    a = rng.random((1000, 32, 32, 32)) > 0.9
    t_iou, _ = timed(metrics.iou_distance_matrix, a, a)
    import torch

    fa = torch.from_numpy(a.reshape(1000, -1).astype(np.float32))
    t_mm, _ = timed(lambda: fa @ fa.T)
    print(f"IoU distances 1000 x 1000 at 32^3: {t_iou:.2f} s; float32 matmul of the same bits {t_mm:.2f} s; ratio {t_iou / t_mm:.2f}")


if __name__ == "__main__":
    main()
