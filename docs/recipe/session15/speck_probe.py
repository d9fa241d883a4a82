# Where the shipped chair's voxels outside the largest component lie: piece sizes, and the share at other thresholds (session 15).
# Run: OMP_NUM_THREADS=1 .venv/bin/python docs/recipe/session15/speck_probe.py
import numpy as np, gan3d.api as api
from scipy import ndimage
m = api.load("chair", device="cpu")
occ = api.sample(m, range(100), occupancy=True)
st = ndimage.generate_binary_structure(3, 3)
sizes_all=[]; outside=[]; nsmall=[]; prob_out=[]; prob_in=[]
for o in occ:
    f = o > 0.5
    lab, n = ndimage.label(f, structure=st)
    c = np.bincount(lab.ravel()); c[0]=0
    k = c.argmax()
    others = np.sort(c[1:][np.arange(1,n+1)!=k])[::-1]
    sizes_all += others.tolist()
    outside.append(others.sum()/max(1,f.sum()))
    out_mask = f & (lab != k)
    if out_mask.any(): prob_out.append(o[out_mask].mean())
    prob_in.append(o[lab==k].mean())
sizes=np.array(sizes_all)
print("mean outside %.3f median %.4f" % (np.mean(outside), np.median(outside)))
print("n other comps", len(sizes), "size quantiles", np.percentile(sizes,[50,75,90,99]) if len(sizes) else None)
for lo,hi in [(1,1),(2,3),(4,10),(11,50),(51,10**6)]:
    s=sizes[(sizes>=lo)&(sizes<=hi)]; print(f"comps size {lo}-{hi}: {len(s)}, voxels {s.sum()}")
print("mean prob outside voxels %.3f, inside %.3f" % (np.mean(prob_out), np.mean(prob_in)))
# would a higher threshold reduce specks? 
for t in [0.5,0.6,0.7]:
    fr=[]
    for o in occ:
        f=o>t; lab,n=ndimage.label(f,structure=st)
        c=np.bincount(lab.ravel()); c[0]=0
        fr.append(1-c.max()/max(1,f.sum()) if n else 0)
    print("threshold",t,"outside %.3f"%np.mean(fr), "mean filled", np.mean([(o>t).sum() for o in occ]))
