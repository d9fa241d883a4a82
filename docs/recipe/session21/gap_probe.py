# The shipped chair's pieces outside the largest component: the share at lower thresholds, and how far each piece is
# from the largest component (session 21, before rule Q). Run: OMP_NUM_THREADS=1 .venv/bin/python docs/recipe/session21/gap_probe.py
import numpy as np
from scipy import ndimage

import gan3d.api as api

occ = api.sample(api.load("chair", device="cpu"), range(100), occupancy=True)
st = ndimage.generate_binary_structure(3, 3)
for t in [0.5, 0.4, 0.3, 0.2, 0.1]:
    share = []
    for o in occ:
        lab, n = ndimage.label(o > t, structure=st)
        c = np.bincount(lab.ravel())
        c[0] = 0
        share.append(1 - c.max() / max(1, c.sum()) if n else 0.0)
    print(f"threshold {t}: outside {100 * np.mean(share):.1f}%, samples over 1% {int(np.sum(np.array(share) > 0.01))}")
gaps, vox = [], []
for o in occ:
    lab, n = ndimage.label(o > 0.5, structure=st)
    c = np.bincount(lab.ravel())
    c[0] = 0
    k = c.argmax()
    d = ndimage.distance_transform_edt(lab != k)
    for i in range(1, n + 1):
        if i != k:
            gaps.append(d[lab == i].min())
            vox.append(c[i])
gaps, vox = np.array(gaps), np.array(vox)
print(f"{len(gaps)} pieces, {vox.sum()} voxels outside")
for empty, (lo, hi) in zip(["1", "2", "3-4", "5-7", "8+"], [(1.5, 2.5), (2.5, 3.5), (3.5, 5), (5, 8), (8, 1e9)]):
    s = (gaps >= lo) & (gaps < hi)
    print(f"distance [{lo}, {hi}) (about {empty} empty voxels between): {s.sum()} pieces, {vox[s].sum()} voxels ({100 * vox[s].sum() / vox.sum():.0f}%)")
