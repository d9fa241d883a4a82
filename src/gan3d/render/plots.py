"""Training curves from a run's ``stats.jsonl`` (matplotlib, imported only here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path


def read_stats(run: str | os.PathLike) -> list[dict]:
    """The statistics lines of a run folder (or of a stats.jsonl file) as dicts."""
    path = Path(run)
    if path.is_dir():
        path = path / "stats.jsonl"
    if not path.is_file():
        raise Gan3dError("no stats.jsonl here", path)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise Gan3dError(f"line {n} is not JSON", path) from None
    if not rows:
        raise Gan3dError("stats.jsonl has no lines yet", path)
    return rows


PANELS = (
    ("losses", ("loss_d", "loss_g")),
    ("discriminator accuracy", ("acc_real", "acc_fake", "d_acc", "d_updated")),
    ("occupancy (fraction of voxels >= 0.5)", ("fake_occupancy", "real_occupancy")),
    ("evaluation (IoU distance)", ("eval_1nna_iou", "eval_mmd_iou", "eval_cov_iou", "eval_pairwise_iou", "eval_best_iou")),
)


def plot_run(run: str | os.PathLike, out: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write a PNG of the run's curves against the training step; one panel per statistic group."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Gan3dError("plotting needs matplotlib: pip install matplotlib") from None
    rows = read_stats(run)
    panels = [(name, [k for k in keys if any(k in r for r in rows)]) for name, keys in PANELS]
    panels = [(name, keys) for name, keys in panels if keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        for k in keys:
            pts = [(r["step"], r[k]) for r in rows if k in r and r[k] is not None]
            if pts:
                ax.plot(*zip(*pts), label=k, linewidth=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title or (Path(run).name if Path(run).is_dir() else Path(run).parent.name), fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
