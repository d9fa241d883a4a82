"""How well can the shipped one-class G represent held-out shapes at all? Invert G on test shapes
(gan3d.explore.invert: Adam on z, best of several starts) and report IoU at 0.5; compare with what
the encoder gives (gan3d eval reconstruction). An upper bound for any encoder over this G."""
import json, sys, time
import numpy as np, torch
from gan3d import checkpoint as ckpt
from gan3d.explore.common import checkpoint_path
from gan3d.explore.invert import invert

model, cls, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
d = np.load("mn5_32.npz")
names = list(d["class_names"]); c = names.index(cls)
rows = np.where((d["split"] == 1) & (d["label"] == c))[0][:n]
grids = np.unpackbits(d["packed"][rows], axis=1)[:, :32**3].reshape(-1, 32, 32, 32)
G, data = ckpt.load_generator(checkpoint_path(model))
dist = ckpt.z_prior(data)
G.eval()
res = []
t0 = time.time()
for i, g in enumerate(grids):
    r = invert(G, g.astype(bool), dist=dist, starts=4, iters=200)
    res.append(r["iou"])
    print(i, round(r["iou"], 3), flush=True)
print(json.dumps({"model": model, "class": cls, "n": len(res), "mean_iou": float(np.mean(res)), "ious": res, "seconds": time.time() - t0}))
json.dump({"model": model, "class": cls, "n": len(res), "mean_iou": float(np.mean(res)), "ious": res}, open(out, "w"), indent=1)
