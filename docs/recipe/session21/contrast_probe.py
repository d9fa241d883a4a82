"""Does D's contrastive task know the shapes it was trained on better than unseen ones? (a probe, no training)

For a snapshot trained with ``--contrastive``, draws two views of each shape (the training run's
``--contrastive-views`` at the default sizes) and measures the share of views whose nearest other
embedding is their partner, in batches of 32, over shapes of the training split (which the GAN saw,
and which any ``eval classify --validation`` split is carved from) and of the test split (never seen).
A large gap means the task memorises training instances, so a validation split carved from the
training split flatters this lever.

    python contrast_probe.py runs/mn10-con4/snapshot_001000.pt modelnet10_32.npz --batches 30
"""
import argparse

import torch

from gan3d.checkpoint import load_discriminator
from gan3d.data.prepared import load
from gan3d.train import diffaug
from gan3d.train.losses import contrastive_loss


def partner_accuracy(D, view, ops, batches: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    accs = []
    for _ in range(batches):
        idx = torch.randperm(len(view), generator=gen)[:32].numpy()
        x = torch.as_tensor(view.grids(idx), dtype=torch.float32).unsqueeze(1)
        a, b = (diffaug.apply(x, diffaug.draw(ops, len(idx), x.shape[-1], gen)) for _ in range(2))
        with torch.no_grad():
            accs.append(contrastive_loss(D, a, b, 0.1)[1])
    return sum(accs) / len(accs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("snapshot")
    p.add_argument("data")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--views", nargs="+", default=["translation", "scale", "morph", "flip"])
    a = p.parse_args()
    torch.manual_seed(0)
    D, _ = load_discriminator(a.snapshot)
    D.train()  # as in training: BatchNorm on the batch's own statistics
    ds = load(a.data)
    for split in ("train", "test"):
        view = ds.select(split=split)
        acc = partner_accuracy(D, view, tuple(a.views), a.batches, seed=1)
        print(f"{split}: {len(view)} shapes, partner accuracy {acc:.3f} (chance {1 / 63:.3f})")


if __name__ == "__main__":
    main()
