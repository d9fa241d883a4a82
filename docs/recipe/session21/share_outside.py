# Share of filled voxels outside the largest component, seeds 0-99, for shipped models or snapshots (no test data).
# Run: OMP_NUM_THREADS=1 .venv/bin/python docs/recipe/session21/share_outside.py chair runs/chair-join/snapshot_002000.pt
import sys, numpy as np, gan3d.api as api
from scipy import ndimage
st = ndimage.generate_binary_structure(3, 3)
for path in sys.argv[1:]:
    occ = api.sample(api.load(path, device="cpu"), range(100), occupancy=True)
    share = []
    for o in occ:
        lab, n = ndimage.label(o > 0.5, structure=st); c = np.bincount(lab.ravel()); c[0] = 0
        share.append(1 - c.max() / max(1, c.sum()) if n else 0.0)
    print(path, f"outside {100*np.mean(share):.2f}% over1% {np.sum(np.array(share)>0.01)} filled {np.mean([(o>0.5).sum() for o in occ]):.0f}")
