"""Held-out IoU of a 3D-VAE-GAN snapshot, per class, as the recipe search (docs/recipe, runs V1-V5)
measured it: E's BatchNorm statistics re-estimated on 1,024 training images and G's on 1,024 prior
latents (what `gan3d train --model vaegan` snapshots now do themselves), then IoU at 0.5 on 400 test
images spread evenly over the test split.

    python docs/recipe/vaegan_snapshot_iou.py RUN/snapshot.pt [PAIRS_FOLDER]
"""
import sys, torch, numpy as np
torch.set_num_threads(1)
from gan3d import checkpoint as ckpt
from gan3d.models.gan import Generator, recalibrate_batchnorm
from gan3d.models.encoder import ImageEncoder, EncoderConfig
from gan3d.data.pairs import PairedData
from gan3d.train.vaegan import _spread
snap = ckpt.load(sys.argv[1])
mcfg = ckpt.model_config(snap, sys.argv[1]); ecfg = EncoderConfig.from_dict(snap["encoder_config"])
G = Generator(mcfg); G.load_state_dict(snap["G"]); E = ImageEncoder(ecfg); E.load_state_dict(snap["E"])
data = PairedData(sys.argv[2] if len(sys.argv) > 2 else "/work/data/mn5_pairs4")
te = _spread(data.rows(1), 400); tr = _spread(data.rows(0), 1024)
recalibrate_batchnorm(E, (data.batch(tr[i:i+32], ecfg.image_size)[0] for i in range(0, len(tr), 32)))
recalibrate_batchnorm(G, torch.randn(1024, mcfg.z_dim, generator=torch.Generator().manual_seed(0)), batch_size=32)
labels = data.dataset.labels[data.shape_index[te]]
ious = []
with torch.no_grad():
    for i in range(0, len(te), 32):
        img, shp = data.batch(te[i:i+32], ecfg.image_size)
        p, t = G(E(img)[0]) >= 0.5, shp >= 0.5
        ious.append(((p & t).flatten(1).sum(1).float() / (p | t).flatten(1).sum(1).float().clamp_min(1)).numpy())
ious = np.concatenate(ious)
print(sys.argv[1], "step", snap["step"], "test IoU", round(ious.mean(), 4), {data.dataset.class_names[c]: round(ious[labels == c].mean(), 3) for c in np.unique(labels)})
