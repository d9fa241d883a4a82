"""Probe: does averaging two models' occupancy (a one-class model and the joint model it came from) score
better than either alone? Validation renders, one class at a time."""
import json, sys
import numpy as np
from gan3d.data.pairs import PairedData
from gan3d.eval.reconstruction import _predict, _score_reconstructions
from gan3d.reconstruct import load_reconstructor

pairs, out = sys.argv[1], sys.argv[2]
specs = [a.split(":") for a in sys.argv[3:]]  # class:modelA:modelB
data = PairedData(pairs)
names = list(data.class_names)
res = {}
for c, a, b in specs:
    rows = data.rows(1, [c])
    labels = data.label[rows]
    owner = np.array([None] * len(rows), dtype=object)
    pa, truth = _predict({None: [load_reconstructor(a, device="cpu")]}, owner, data, rows, 32, "cpu")
    pb, _ = _predict({None: [load_reconstructor(b, device="cpu")]}, owner, data, rows, 32, "cpu")
    r = {}
    for k, p in (("a", pa), ("b", pb), ("mean", (pa + pb) / 2), ("max", np.maximum(pa, pb))):
        s = _score_reconstructions(p, truth, labels, names)
        r[k] = (s["mean_iou"], s["mean_ap"])
    res[c] = {"a": a, "b": b, **r}
    print(c, r, flush=True)
json.dump(res, open(out, "w"), indent=1)
