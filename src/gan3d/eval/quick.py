"""In-training evaluation of a 3D-GAN: generation metrics of an in-memory generator, registered as
``quick_generation`` in :data:`gan3d.eval.registry.EVALS` (the training loop calls it from there).
"""

from __future__ import annotations

import numpy as np
import torch

from gan3d.eval.metrics import coverage, iou_distance_matrix, mmd, one_nna
from gan3d.eval.registry import register


@register("quick_generation", command=False)
@torch.no_grad()
def quick_generation(G: torch.nn.Module, z: torch.Tensor, ref: np.ndarray) -> dict[str, float]:
    """IoU-distance generation metrics of ``G``'s samples for latents ``z`` (float32 (n, z_dim), on
    G's device) against the reference shapes ``ref`` (bool (m, R, R, R)), and the samples' mean
    pairwise IoU (near 1 when the generator has collapsed). ``G`` maps latents to occupancy
    (n, 1, R, R, R) in [0, 1], filled at >= 0.5; it should be in eval mode with its BatchNorm
    statistics re-estimated. Returns ``eval_*`` values in [0, 1] (1-NNA, MMD, COV, pairwise and
    best-match IoU, sample occupancy), rounded as they go into ``stats.jsonl``."""
    samples = G(z).squeeze(1).float().cpu().numpy() >= 0.5
    d_ss = iou_distance_matrix(samples, samples)
    d_rr = iou_distance_matrix(ref, ref)
    d_sr = iou_distance_matrix(samples, ref)
    off = ~np.eye(len(samples), dtype=bool)
    return {
        "eval_1nna_iou": round(float(one_nna(d_ss, d_rr, d_sr)), 4),
        "eval_mmd_iou": round(float(mmd(d_sr)), 4),
        "eval_cov_iou": round(float(coverage(d_sr)), 4),
        "eval_pairwise_iou": round(float(1.0 - d_ss[off].mean()), 4),
        "eval_best_iou": round(float(1.0 - d_sr.min(axis=1).mean()), 4),
        "eval_occupancy": round(float(samples.mean()), 5),
    }
