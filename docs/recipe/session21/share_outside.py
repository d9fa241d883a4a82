# Share of filled voxels outside the largest component, seeds 0-99, for shipped models or snapshots (no test data):
# the figure `gan3d eval generation` reports, from gan3d.eval.generation.outside_largest.
# Run: OMP_NUM_THREADS=1 .venv/bin/python docs/recipe/session21/share_outside.py chair runs/chair-join/snapshot_002000.pt
import sys

import numpy as np

import gan3d.api as api
from gan3d.eval.generation import outside_largest

for path in sys.argv[1:]:
    occ = np.asarray(api.sample(api.load(path, device="cpu"), range(100), occupancy=True))
    o = outside_largest(occ)
    print(path, f"outside {100 * o['mean']:.2f}% over1% {round(o['over_1pct'] * o['n'])} filled {np.mean([(x > 0.5).sum() for x in occ]):.0f}")
