import sys, json, numpy as np, torch
from pathlib import Path
from gan3d.data.pairs import PairedData
from gan3d.reconstruct import load_reconstructor
from gan3d.eval.reconstruction import _score_reconstructions
ck, pairs = sys.argv[1], sys.argv[2]
E, G, meta = load_reconstructor(ck, device=torch.device("cpu"))
data = PairedData(Path(pairs)); rows = data.rows(1)
P, F, T = [], [], []
with torch.no_grad():
    for i in range(0, len(rows), 32):
        im, sh = data.batch(rows[i:i+32], E.cfg.image_size)
        P.append(G(E(im)[0]).squeeze(1).numpy())
        F.append(G(E(torch.flip(im, dims=[-1]))[0]).squeeze(1).numpy())
        T.append(sh.squeeze(1).numpy() >= 0.5)
P, F, T = map(np.concatenate, (P, F, T))
lab = data.dataset.labels[data.shape_index[rows]]; names = list(data.dataset.class_names)
res = {}
for name, pred in [("plain", P), ("flip_only_x", np.flip(F, 1)), ("avg_x", (P + np.flip(F, 1)) / 2), ("avg_noflip", (P + F) / 2), ("avg_y", (P + np.flip(F, 2)) / 2)]:
    r = _score_reconstructions(np.ascontiguousarray(pred), T, lab, names)
    res[name] = r
    print(name, r["mean_iou"], r["mean_ap"], r["small"], {k: (v["iou"], v["ap"]) for k, v in r["per_class"].items()}, flush=True)
json.dump(res, open(sys.argv[3], "w"), indent=1)
