"""3D-VAE-GAN step throughput: the fused step that `gan3d train --model vaegan` runs, against the
three separate phases of the paper's supplement (the baseline), and the encoder-only step of
`--encoder-only` (E alone against a fixed eval-mode G), timed in the same run.

Both compute the same updates (tests/test_vaegan.py checks it); the fused step shares G's forward
passes between the phases and runs one backward pass for E and G.

    python benchmarks/bench_vaegan.py [--device auto] [--threads 2] [--preset cpu32] [--encoder cpu] [--batch 32] [--seconds 20] [--contiguous]

Prints the device, samples/s of each, the ratio fused / separate and the ratio encoder-only / fused. The two are timed in
alternating rounds so that a change in the machine's load affects both alike, both on the chosen
device; on CUDA each timed round starts and ends with torch.cuda.synchronize().
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from gan3d.models.gan import build
from gan3d.presets import PRESETS
from gan3d.presets import ENCODER_PRESETS
from gan3d.models.encoder import ImageEncoder, init_encoder
from gan3d.train.config import VAEGANConfig
from gan3d.train.encoderfit import encoder_step, fix_decoder
from gan3d.train.vaegan import _recon_loss, vaegan_step

from _device import add_option, chosen, describe, sync


def make(preset: str, encoder: str, batch: int, channels_last: bool, device: torch.device):
    torch.manual_seed(0)
    p = PRESETS[preset]
    ecfg = ENCODER_PRESETS[encoder]
    mcfg = p.model
    if ecfg.z_dim != mcfg.z_dim:
        ecfg = ecfg.with_z_dim(mcfg.z_dim)
    G, D = build(mcfg)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    G.to(device, memory_format=fmt), D.to(device, memory_format=fmt)
    E = ImageEncoder(ecfg)
    init_encoder(E)
    E.to(device)
    opts = [torch.optim.Adam(m.parameters(), 1e-4, betas=(0.5, 0.999)) for m in (E, G, D)]
    r, s = mcfg.resolution, ecfg.image_size
    g = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 3, s, s, generator=g).to(device)
    shapes = (torch.rand(batch, 1, r, r, r, generator=g) > 0.9).float().to(device).contiguous(memory_format=fmt)
    noise = tuple((0.2 * torch.randn(shapes.shape, generator=g)).to(device).contiguous(memory_format=fmt) for _ in range(2))
    z = torch.randn(batch, mcfg.z_dim, generator=g).to(device)
    eps = torch.randn(batch, mcfg.z_dim, generator=g).to(device)
    cfg = VAEGANConfig(pairs="x", alpha1=1e-3, alpha2=1e-2, d_gate=1.0)
    return (E, G, D, *opts, images, shapes, z, eps, cfg), noise


def stepper(args, noise, variant: str):
    """One call of the step ``variant`` (separate, fused or encoder) on the same modules and batch."""
    if variant != "encoder":
        return lambda: vaegan_step(*args, noise=noise, fused=variant == "fused")
    E, G, _, opt_e, _, _, images, shapes, _, eps, cfg = args
    G_fixed, rec = fix_decoder(copy.deepcopy(G)), _recon_loss(cfg, None)
    return lambda: encoder_step(E, G_fixed, opt_e, images, shapes, eps, cfg, rec)


def rate(step, seconds: float, batch: int, device: torch.device) -> float:
    step()  # warm-up
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n == 0:
        step()
        n += 1
    sync(device)
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_option(ap)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--preset", default="cpu32", choices=list(PRESETS))
    ap.add_argument("--encoder", default="cpu", choices=list(ENCODER_PRESETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0, help="timing budget per variant (split in rounds)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--contiguous", action="store_true", help="plain layout instead of channels_last_3d (training's default)")
    a = ap.parse_args()
    device = chosen(Path(__file__).name, a.device)
    torch.set_num_threads(a.threads)
    args, noise = make(a.preset, a.encoder, a.batch, not a.contiguous, device)
    variants = ("separate", "fused", "encoder")
    steps = {v: stepper(args, noise, v) for v in variants}
    totals = {v: [] for v in variants}
    for _ in range(a.rounds):
        for v in variants:
            totals[v].append(rate(steps[v], a.seconds / a.rounds, a.batch, device))
    sep, fus, enc = (sum(totals[v]) / a.rounds for v in variants)
    layout = "contiguous" if a.contiguous else "channels_last_3d"
    print(f"torch {torch.__version__}, {describe(device)}, {a.threads} CPU threads, preset {a.preset}, encoder {a.encoder}, batch {a.batch}, {layout}")
    print(f"three separate phases: {sep:7.2f} samples/s")
    print(f"fused step:            {fus:7.2f} samples/s")
    print(f"encoder-only step:     {enc:7.2f} samples/s")
    print(f"ratio fused / separate: {fus / sep:.2f}")
    print(f"ratio encoder-only / fused: {enc / fus:.2f}")


if __name__ == "__main__":
    main()
