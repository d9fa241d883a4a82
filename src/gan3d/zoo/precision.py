"""Which modules of a model may be stored in float16: only those whose fp16 rounding changes no
thresholded output.

Each check builds the module twice from the same state -- fp32 weights, and fp16-rounded weights
cast back to fp32 (so the computation stays fp32 and only the stored values differ) -- and compares
what a user would get:

* **G**: the thresholded grids (>= 0.5) of G(z) for ``n_seeds`` latents drawn from the run's prior
  (seeds ``0 .. n_seeds-1``, :func:`gan3d.sampling.latents`), and, for a 3D-VAE-GAN, of G(mu) for
  the encoder means of the test images;
* **E**: the thresholded reconstructions G(E(image)) of the run's test images (at most
  ``n_images``, spread over the test split), with G at the precision already chosen for it;
* **D**: the signs of D's logits on G's samples (fp32 G); the largest change of a logit and of any
  hidden feature is recorded too.

A module is stored in fp16 only if nothing changed (0 voxels, 0 signs). Every measurement goes
into the model card.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import numpy as np
import torch

from gan3d.zoo.weights import as_float32, round_state

THRESHOLD = 0.5  # gan3d.voxels.THRESHOLD


def rounded_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` (eval mode) whose floating-point state is rounded to fp16, held in fp32."""
    other = copy.deepcopy(module).eval()
    other.load_state_dict(as_float32(round_state(module.state_dict(), torch.float16)))
    return other


def prior_of(payload: dict[str, Any]) -> str:
    """The latent prior G was trained with: the 3D-GAN's ``train_config.z_dist``; N(0, I) for the
    3D-VAE-GAN (its D phase draws ``torch.randn``)."""
    if str(payload.get("kind", "")).startswith("vaegan"):
        return "normal"
    return str(payload.get("train_config", {}).get("z_dist", "uniform"))


class _Diff:
    """Running count of changed thresholded voxels and the largest absolute difference."""

    def __init__(self) -> None:
        self.n = 0
        self.voxels = 0
        self.changed = 0
        self.max_abs = 0.0

    def add(self, ref: torch.Tensor, new: torch.Tensor) -> None:
        self.n += ref.shape[0]
        self.voxels += ref.numel()
        self.changed += int(((ref >= THRESHOLD) != (new >= THRESHOLD)).sum())
        self.max_abs = max(self.max_abs, float((ref - new).abs().max()) if ref.numel() else 0.0)

    def report(self) -> dict[str, Any]:
        return {"n": self.n, "voxels": self.voxels, "changed_voxels": self.changed, "max_abs_diff": self.max_abs}


@torch.no_grad()
def generator_outputs(G32, G16, latents: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Thresholded-output comparison of two generators over batches of latents (B, z_dim)."""
    d = _Diff()
    for z in latents:
        d.add(G32(z), G16(z))
    return d.report()


@torch.no_grad()
def encoder_outputs(E32, E16, G, G32, images: Iterable[torch.Tensor]) -> dict[str, Any]:
    """G(E16(img)) against the all-fp32 G32(E32(img)) over batches of images (B, 3, S, S)."""
    d = _Diff()
    for img in images:
        d.add(G32(E32(img)[0]), G(E16(img)[0]))
    return d.report()


@torch.no_grad()
def discriminator_outputs(D32, D16, shapes: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Logit signs (>= 0 is "real") and the largest logit / hidden-feature change over batches of
    shapes (B, 1, R, R, R), the same batches for both (D's minibatch-std channel sees the batch)."""
    n = flips = 0
    max_logit = max_feat = 0.0
    for x in shapes:
        a, b = D32(x), D16(x)
        n += a.shape[0]
        flips += int(((a >= 0) != (b >= 0)).sum())
        max_logit = max(max_logit, float((a - b).abs().max()))
        for fa, fb in zip(D32.features(x), D16.features(x)):
            max_feat = max(max_feat, float((fa - fb).abs().max()))
    return {"n": n, "sign_changes": flips, "max_abs_logit_diff": max_logit, "max_abs_feature_diff": max_feat}


def _batches(x: torch.Tensor, size: int):
    return (x[i : i + size] for i in range(0, len(x), size))


def choose(
    payload: dict[str, Any],
    *,
    n_seeds: int = 1000,
    images: torch.Tensor | None = None,
    images_note: str = "",
    batch_size: int = 50,
    force_fp16: tuple[str, ...] = (),
) -> tuple[dict[str, str], dict[str, Any]]:
    """The stored dtype of each module of ``payload`` and the measurements behind it.

    ``images``: float32 (N, 3, S, S) test images in [0, 1] for a 3D-VAE-GAN (None: E stays fp32,
    with ``images_note`` saying why). ``force_fp16``: modules stored in fp16 whatever they change (the
    report keeps the measured changes and says ``forced``; for a size budget). Returns ``({module: "float16" | "float32"}, report)``.
    """
    from gan3d import checkpoint as ckpt
    from gan3d.models.gan import Discriminator, Generator
    from gan3d.runtime import latents

    where = "the snapshot"
    mcfg = ckpt.model_config(payload, where)
    G32 = Generator(mcfg)
    ckpt.load_state(G32, payload["G"], "generator", where)
    G32.eval()
    G16 = rounded_copy(G32)
    dist = prior_of(payload)
    z = latents(list(range(int(n_seeds))), mcfg.z_dim, dist)
    dtypes: dict[str, str] = {}
    report: dict[str, Any] = {}

    g_rep: dict[str, Any] = {"prior_samples": {"z_dist": dist, "seeds": f"0-{int(n_seeds) - 1}", **generator_outputs(G32, G16, _batches(z, batch_size))}}
    E32 = E16 = None
    if "E" in payload:
        from gan3d.models.encoder import EncoderConfig, ImageEncoder

        E32 = ImageEncoder(EncoderConfig.from_dict(payload["encoder_config"]))
        ckpt.load_state(E32, payload["E"], "encoder", where)
        E32.eval()
        if images is not None and len(images):
            with torch.no_grad():
                mu = torch.cat([E32(b)[0] for b in _batches(images, batch_size)])
            g_rep["reconstructions"] = generator_outputs(G32, G16, _batches(mu, batch_size))
    changed = sum(v["changed_voxels"] for v in g_rep.values())
    dtypes["G"] = "float16" if changed == 0 or "G" in force_fp16 else "float32"
    report["G"] = {"stored": dtypes["G"], **g_rep, **({"forced": True} if changed and "G" in force_fp16 else {})}

    if E32 is not None:
        if images is None or not len(images):
            dtypes["E"] = "float32"
            report["E"] = {"stored": "float32", "not_measured": images_note or "no test images"}
        else:
            G = G16 if dtypes["G"] == "float16" else G32
            E16 = rounded_copy(E32)
            rep = encoder_outputs(E32, E16, G, G32, _batches(images, batch_size))
            dtypes["E"] = "float16" if rep["changed_voxels"] == 0 or "E" in force_fp16 else "float32"
            report["E"] = {"stored": dtypes["E"], "test_images": rep, **({"forced": True} if rep["changed_voxels"] and "E" in force_fp16 else {})}

    if "D" in payload:
        D32 = Discriminator(mcfg)
        ckpt.load_state(D32, payload["D"], "discriminator", where)
        D32.eval()
        D16 = rounded_copy(D32)
        with torch.no_grad():
            shapes = (G32(zb) for zb in _batches(z, batch_size))
            rep = discriminator_outputs(D32, D16, shapes)
        dtypes["D"] = "float16" if rep["sign_changes"] == 0 else "float32"
        report["D"] = {"stored": dtypes["D"], "on_G_samples": rep}
    return dtypes, report


def spread(rows: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``rows``, evenly spaced over them (all of them when there are fewer)."""
    rows = np.asarray(rows)
    if len(rows) <= n:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, n).round().astype(np.int64))]
