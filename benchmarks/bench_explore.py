"""`gan3d explore dimensions` speed: the sweep (dimension_changes) through G itself, through the
parity-decomposed generator as it was first written (explicit zero-padding copy, output in the
default layout: the baseline), and through today's FastGenerator (the convolution pads, the output
is channels-last), timed in the same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_explore.py [--checkpoint chair] [--bases 8] [--rounds 1] [--batch-size 100] [--no-G]

Prints seconds per variant, the ratio baseline / today, and whether the changed-voxel counts of
every (base, dimension) are the same for all variants (the result must not change). Variants run in
alternating order per round, so a change of the machine's load affects them alike.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from gan3d.explore.common import PRIOR_RANGE, FastGenerator, load_model
from gan3d.explore.dimensions import dimension_changes
from gan3d.runtime import latents


class PaddedCopyGenerator(FastGenerator):
    """The first FastGenerator: pads a copy of x, interleaves into a default-layout output."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.map_latent(z).reshape(z.shape[0], self.z_dim, 1, 1, 1)
        for kind, op in self.ops:
            if kind != "tconv":
                x = op(x)
                continue
            wp, cout = op
            x = x.contiguous(memory_format=torch.channels_last_3d)
            n, s = x.shape[0], x.shape[2]
            y = F.conv3d(F.pad(x, (1, 1) * 3), wp)
            out = x.new_empty(n, cout, 2 * s, 2 * s, 2 * s)
            b = 0
            for px in range(2):
                for py in range(2):
                    for pz in range(2):
                        out[:, :, px::2, py::2, pz::2] = y[:, b * cout : (b + 1) * cout, px : px + s, py : py + s, pz : pz + s]
                        b += 1
            x = out
        return x


class Plain(torch.nn.Module):
    """G itself, hidden from ``fast()`` so that dimension_changes runs it as it is."""

    def __init__(self, G):
        super().__init__()
        self.G, self.cfg = G, G.cfg

    def forward(self, z):
        return self.G(z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="chair")
    ap.add_argument("--bases", type=int, default=8)
    ap.add_argument("--values", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--no-G", action="store_true", help="skip the sweep through G itself")
    args = ap.parse_args()
    G, dist, ck = load_model(args.checkpoint)
    z_dim = int(G.cfg.z_dim)
    bases = latents(range(args.bases), z_dim, dist).numpy()
    values = np.linspace(*PRIOR_RANGE[dist], args.values)
    dims = list(range(z_dim))
    variants = {"baseline (padded copy)": PaddedCopyGenerator(G), "today (FastGenerator)": FastGenerator(G)}
    if not args.no_G:
        variants["G itself"] = Plain(G)
    print(f"checkpoint {args.checkpoint} (step {ck.get('step')}), {args.bases} bases x {z_dim} dims x {args.values} values, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"load {os.getloadavg()[0]:.2f}")
    with torch.no_grad():  # warm-up: the first call of each builds its convolution primitives
        for m in variants.values():
            m(torch.from_numpy(bases[:1]).repeat(args.batch_size, 1))
    seconds = {k: [] for k in variants}
    counts = {}
    names = list(variants)
    for r in range(args.rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            c, _, _ = dimension_changes(variants[k], bases, values, dims, batch_size=args.batch_size)
            seconds[k].append(time.perf_counter() - t0)
            counts.setdefault(k, c)
            print(f"  round {r + 1} {k}: {seconds[k][-1]:.1f} s", flush=True)
    for k in names:
        print(f"{k}: {np.median(seconds[k]):.1f} s (median of {args.rounds})")
    base, new = np.median(seconds[names[0]]), np.median(seconds[names[1]])
    print(f"ratio baseline / today: {base / new:.2f}x; load now {os.getloadavg()[0]:.2f}")
    ref = counts[names[0]]
    for k in names[1:]:
        diff = int((counts[k] != ref).sum())
        print(f"counts {k} vs baseline: {'identical' if diff == 0 else f'{diff} of {ref.size} (base, dim) counts differ'}"
              f" (max |difference| {int(np.abs(counts[k] - ref).max())})")


if __name__ == "__main__":
    main()
