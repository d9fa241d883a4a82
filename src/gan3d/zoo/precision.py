"""Which modules of a model may be stored in float16: only those whose fp16 rounding changes no
thresholded output; and what int8 storage (on request only) changes.

Each check builds the module twice from the same state -- fp32 weights, and the weights as the
file would store them (fp16-rounded, or int8-quantized with per-kernel scales,
:func:`gan3d.zoo.weights.stored_state`) read back as fp32 (so the computation stays fp32 and only
the stored values differ) -- and compares what a user would get:

* **G**: the thresholded grids (>= 0.5) of G(z) for ``n_seeds`` latents drawn from the run's prior
  (seeds ``0 .. n_seeds-1``, :func:`gan3d.sampling.latents`), and, for a 3D-VAE-GAN, of G(mu) for
  the encoder means of the test images;
* **E**: the thresholded reconstructions G(E(image)) of the run's test images (at most
  ``n_images``, spread over the test split), with G at the precision already chosen for it;
* **D**: the signs of D's logits on G's samples (fp32 G); the largest change of a logit and of any
  hidden feature is recorded too.

A module is stored in fp16 only if nothing changed (0 voxels, 0 signs), unless forced to fp16
(``force_fp16``); a module named in ``int8`` is stored int8 whatever it changes (never by the rule
alone). A forced or int8 module that changed something is marked ``"forced": true``. Every
measurement goes into the model card.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import numpy as np
import torch

from gan3d.zoo.weights import stored_state

THRESHOLD = 0.5  # gan3d.voxels.THRESHOLD


def rounded_copy(module: torch.nn.Module, dtype: str = "float16") -> torch.nn.Module:
    """A copy of ``module`` (eval mode) whose floating-point state is as a file storing it in
    ``dtype`` ("float16", "int8", "float32") reads back, held in fp32."""
    other = copy.deepcopy(module).eval()
    other.load_state_dict(stored_state(module.state_dict(), dtype))
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


def _pick(m: str, changed: int, int8: tuple[str, ...], force_fp16: tuple[str, ...]) -> dict[str, Any]:
    """``{"stored": dtype}`` of module ``m`` given what its candidate copy changed, plus ``"forced":
    True`` when it is stored so although something changed."""
    if m in int8:
        return {"stored": "int8", **({"forced": True} if changed else {})}
    if changed == 0:
        return {"stored": "float16"}
    return {"stored": "float16", "forced": True} if m in force_fp16 else {"stored": "float32"}


def _build(payload: dict[str, Any], key: str, where: str = "the snapshot") -> torch.nn.Module:
    """Module ``key`` (G, D or E) of ``payload`` in fp32, eval mode."""
    from gan3d import checkpoint as ckpt
    from gan3d.models.gan import Discriminator, Generator

    if key == "E":
        from gan3d.models.encoder import EncoderConfig, ImageEncoder

        m = ImageEncoder(EncoderConfig.from_dict(payload["encoder_config"]))
    else:
        m = (Generator if key == "G" else Discriminator)(ckpt.model_config(payload, where))
    ckpt.load_state(m, payload[key], {"G": "generator", "D": "discriminator", "E": "encoder"}[key], where)
    return m.eval()


def choose(
    payload: dict[str, Any],
    *,
    n_seeds: int = 1000,
    images: torch.Tensor | None = None,
    images_note: str = "",
    batch_size: int = 50,
    force_fp16: tuple[str, ...] = (),
    int8: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> tuple[dict[str, str], dict[str, Any]]:
    """The stored dtype of each module of ``payload`` and the measurements behind it.

    ``images``: float32 (N, 3, S, S) test images in [0, 1] for a 3D-VAE-GAN (None: E stays fp32,
    or int8 if asked, with ``images_note`` saying why it was not measured). ``force_fp16``: modules
    stored in fp16 whatever they change; ``int8``: modules stored int8 whatever they change (the
    report keeps the measured changes and says ``forced``; for a size budget). ``skip``: modules
    left out of the file (not measured). Returns ``({module: "float16" | "float32" | "int8"}, report)``.
    """
    from gan3d.runtime import latents

    G32 = _build(payload, "G")
    dist = prior_of(payload)
    z = latents(list(range(int(n_seeds))), G32.cfg.z_dim, dist)
    report = {"G": _choose_g(payload, G32, z, dist, images, batch_size, int8, force_fp16)}
    Gs = report["G"].pop("_module")
    if "E" in payload and "E" not in skip:
        report["E"] = _choose_e(payload, G32, Gs, images, images_note, batch_size, int8, force_fp16)
    if "D" in payload and "D" not in skip:
        D32 = _build(payload, "D")
        with torch.no_grad():
            rep = discriminator_outputs(D32, rounded_copy(D32, "int8" if "D" in int8 else "float16"), (G32(zb) for zb in _batches(z, batch_size)))
        report["D"] = {**_pick("D", rep["sign_changes"], int8, ()), "on_G_samples": rep}
    return {m: r["stored"] for m, r in report.items()}, report


def _choose_g(payload, G32, z, dist, images, batch_size, int8, force_fp16) -> dict[str, Any]:
    """G's report (with ``"_module"``: G as stored, for E's check)."""
    cand = rounded_copy(G32, "int8" if "G" in int8 else "float16")
    rep: dict[str, Any] = {"prior_samples": {"z_dist": dist, "seeds": f"0-{len(z) - 1}", **generator_outputs(G32, cand, _batches(z, batch_size))}}
    if "E" in payload and images is not None and len(images):
        E32 = _build(payload, "E")
        with torch.no_grad():
            mu = torch.cat([E32(b)[0] for b in _batches(images, batch_size)])
        rep["reconstructions"] = generator_outputs(G32, cand, _batches(mu, batch_size))
    pick = _pick("G", sum(v["changed_voxels"] for v in rep.values()), int8, force_fp16)
    return {"stored": pick["stored"], **rep, **{k: v for k, v in pick.items() if k != "stored"},
            "_module": G32 if pick["stored"] == "float32" else cand}


def _choose_e(payload, G32, Gs, images, images_note, batch_size, int8, force_fp16) -> dict[str, Any]:
    """E's report: G(E(image)) with E and G as stored against all-fp32, on the test images."""
    if images is None or not len(images):
        return {"stored": "int8" if "E" in int8 else "float32", "not_measured": images_note or "no test images"}
    E32 = _build(payload, "E")
    rep = encoder_outputs(E32, rounded_copy(E32, "int8" if "E" in int8 else "float16"), Gs, G32, _batches(images, batch_size))
    pick = _pick("E", rep["changed_voxels"], int8, force_fp16)
    return {"stored": pick["stored"], "test_images": rep, **{k: v for k, v in pick.items() if k != "stored"}}
