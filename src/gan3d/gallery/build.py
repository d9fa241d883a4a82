"""Assemble the gallery page of a run or output folder: samples, neighbours, curves, analyses."""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Gan3dError
from . import figures
from .page import MAX_LIVE, Page, meta_table, write_page
from .sources import READERS, Sources, find_sources

DEFAULT_SEEDS = tuple(range(16))
"""Seeds sampled from a run folder's snapshot.pt when none are given."""


def samples_from_snapshot(snapshot: Path, seeds: Sequence[int], *, device: str = "cpu") -> tuple[np.ndarray, dict]:
    """One shape per seed from ``snapshot`` (``gan3d.sampling``: per-seed latents, largest
    component) -> ``(bool (N, R, R, R), {"step", "z_dist", "resolution"})``."""
    from .. import checkpoint as ckpt
    from ..runtime import latents
    from ..sampling import generate, postprocess
    from ..runtime import pick_device

    dev = pick_device(device)
    G, data = ckpt.load_generator(snapshot, device=dev)
    z_dist = data.get("train_config", {}).get("z_dist", "uniform")
    occ = generate(G, latents(list(seeds), G.cfg.z_dim, z_dist), device=dev)
    info = {"step": int(data.get("step", -1)), "z_dist": z_dist, "resolution": int(G.cfg.resolution)}
    return postprocess(occ), info


def _pick_seeds(path: Path, grids: np.ndarray, have: np.ndarray, want: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    if want is None:
        return grids, have
    pos = {int(s): i for i, s in enumerate(have)}
    missing = [s for s in want if s not in pos]
    if missing:
        raise Gan3dError(f"--seeds: seed(s) {missing[:8]} are not in this file (it has {len(have)} seeds)", path)
    idx = [pos[s] for s in want]
    return grids[idx], have[idx]


def _load_samples(src: Sources, seeds: Sequence[int] | None, device: str) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    from .sources import read_samples

    if src.snapshot is not None:
        use = list(seeds) if seeds is not None else list(DEFAULT_SEEDS)
        grids, info = samples_from_snapshot(src.snapshot, use, device=device)
        return grids, np.asarray(use, np.int64), {**info, "from": str(src.snapshot)}
    if src.samples is not None:
        grids, have = read_samples(src.samples)
        grids, have = _pick_seeds(src.samples, grids, have, seeds)
        return grids, have, {"from": str(src.samples), "resolution": int(grids.shape[1])}
    if seeds is not None:
        raise Gan3dError("--seeds given but there is no snapshot.pt or samples.npz to take samples from", src.root)
    return None, None, {}


def _neighbours(data: str | os.PathLike, grids: np.ndarray, k: int):
    from ..data.prepared import load
    from ..eval.generation import nearest_training

    ds = load(data)
    if ds.resolution != grids.shape[1]:
        raise Gan3dError(f"--data holds {ds.resolution}^3 shapes but the samples are {grids.shape[1]}^3", data)
    try:
        pool = ds.select(split="train")
    except Gan3dError:
        raise Gan3dError("--data has no training shapes to compare with", data) from None
    idx, iou = nearest_training(grids, pool, k)
    return pool, idx, iou


def _seed_caption(grid: np.ndarray, seed: int) -> str:
    return f"seed {seed}" if grid.any() else f"seed {seed} (empty)"


def _sample_section(page: Page, grids, seeds, neigh) -> None:
    if neigh is None:
        body = "".join(page.panel(figures.shape_figure(g), kind="sample", caption=_seed_caption(g, s)) for g, s in zip(grids, seeds))
        page.section(f"Samples ({len(grids)})", f'<div class="grid">{body}</div>', sid="samples")
        return
    pool, idx, iou = neigh
    rows = []
    for i, (g, s) in enumerate(zip(grids, seeds)):
        cells = [page.panel(figures.shape_figure(g, size=200), kind="sample", caption=_seed_caption(g, s))]
        nb = pool.grids(idx[i]) >= 0.5
        for j in range(idx.shape[1]):
            cls = pool.class_names[int(pool.labels[idx[i, j]])]
            cap = f"IoU {iou[i, j]:.2f} · {cls} {pool.source_id[idx[i, j]]}"
            cells.append(page.panel(figures.shape_figure(nb[j], color=figures.TRAIN_COLOR, size=200), kind="neighbour", caption=cap))
        rows.append(f'<div class="row">{"".join(cells)}</div>')
    note = (
        f"Each sample (orange) beside its {idx.shape[1]} nearest training shapes by IoU (blue), "
        f"from {len(pool)} training shapes; best IoU mean {iou[:, 0].mean():.2f}, max {iou[:, 0].max():.2f}."
    )
    page.section(f"Samples ({len(grids)}) and their nearest training shapes", "".join(rows), sid="samples", note=note)


def _curves_section(page: Page, stats: Path) -> None:
    from ..render.plots import read_stats

    try:
        rows = read_stats(stats)
    except Gan3dError as e:
        page.section("Training curves", "", sid="curves", note=str(e))
        return
    body = "".join(page.panel(figures.curve_figure(rows, t, keys), kind="curve", gl=False) for t, keys in figures.curve_panels(rows))
    last = rows[-1]
    note = f"{len(rows)} lines of {stats}; last at step {last.get('step', '?')}."
    page.section("Training curves", f'<div class="grid">{body}</div>', sid="curves", note=note)


def _analysis_body(page: Page, name: str, a: dict[str, Any]) -> str:
    if name == "interpolation":
        fig = figures.interpolation_figure(a["frames"], a["t"])
        cap = f"{len(a['t'])} frames, t from {a['t'][0]:.2g} to {a['t'][-1]:.2g}"
        return f'<div class="grid">{page.panel(fig, kind="interpolation", caption=cap)}</div>'
    if name == "dimensions":
        cells = [page.panel(figures.shape_figure(a["base"], color=figures.BASE_COLOR, size=220), kind="dimension-base", caption="base shape")]
        for d, ch in zip(a["top"], a["changed"]):
            cap = f"dimension {int(d)}: {int(ch.sum())} voxels change"
            cells.append(page.panel(figures.dimension_figure(a["base"], ch, size=220), kind="dimension", caption=cap))
        return f'<div class="grid">{"".join(cells)}</div>'
    rows = []
    for u, shapes, resp in zip(a["units"], a["top_shapes"], a["response"]):
        cells = [page.panel(figures.neuron_figure(g, r), kind="neuron", caption=f"unit {int(u)} · top {j + 1}") for j, (g, r) in enumerate(zip(shapes, resp))]
        rows.append(f'<div class="row"><div class="rowlabel">unit {int(u)}</div>{"".join(cells)}</div>')
    return "".join(rows)


_ANALYSIS_TITLES = {
    "interpolation": ("Latent interpolation", "Drag the slider or press play to move through the frames."),
    "dimensions": ("Latent dimensions", "The base shape, then per top dimension the voxels that change when it moves, in red."),
    "neurons": ("Discriminator units", "Per unit its top shapes; red marks where the unit responds (response 0 grey to 1 red)."),
}


def _analysis_sections(page: Page, src: Sources) -> dict[str, int]:
    shown = {}
    for name, paths in src.analyses.items():
        for n, path in enumerate(paths):
            a = READERS[name](path)
            title, note = _ANALYSIS_TITLES[name]
            body = f'<p class="meta">{html.escape(str(path))}</p>{meta_table(a["meta"])}{_analysis_body(page, name, a)}'
            suffix = f" ({path.parent.name})" if len(paths) > 1 else ""
            page.section(title + suffix, body, sid=f"{name}-{n}" if n else name, note=note)
        shown[name] = len(paths)
    return shown


def _header(page: Page, src: Sources, info: dict) -> None:
    import json

    bits = {"folder": str(src.root.resolve())}
    if info.get("from"):
        bits["samples from"] = info["from"]
    if "step" in info:
        bits["step"] = info["step"]
    if src.config is not None:
        try:
            cfg = json.loads(src.config.read_text())
            bits.update({k: v for k, v in cfg.get("train", {}).items() if k in ("preset", "data", "steps", "batch_size")})
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            bits["config.json"] = "unreadable"
    bits["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    page.raw(f"<h1>{html.escape(page.title)}</h1>{meta_table(bits)}")


def build_gallery(
    path: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    seeds: Sequence[int] | None = None,
    k: int = 3,
    device: str = "cpu",
    max_live: int = MAX_LIVE,
) -> dict[str, Any]:
    """Write one static HTML page for the run or output folder ``path`` (default ``out``:
    ``path/gallery.html``) and return a summary: ``{"out", "bytes", "panels": {kind: n},
    "analyses": {name: files shown}, "n_samples", "seconds"}``.

    Samples: from ``snapshot.pt`` (``seeds``, default 0-15) or else ``samples.npz`` (all, or
    ``seeds``). ``data``: a prepared dataset; each sample is shown beside its ``k`` nearest
    training shapes by IoU. ``max_live``: 3D views the page keeps drawn at once (see
    :mod:`gan3d.gallery.page`). Raises Gan3dError on a missing folder, a folder with nothing to show,
    seeds that are not there, or malformed files.
    """
    t0 = time.perf_counter()
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise Gan3dError("the gallery needs plotly: pip install plotly (or pip install gan3d[gallery])") from None
    src = find_sources(path)
    if int(k) < 1:
        raise Gan3dError(f"--neighbours must be at least 1, got {k}")
    grids, seed_arr, info = _load_samples(src, seeds, device)
    neigh = None
    if data is not None:
        if grids is None:
            raise Gan3dError("--data given but there are no samples (no snapshot.pt or samples.npz) to compare", src.root)
        neigh = _neighbours(data, grids, int(k))
    page = Page(f"gan3d gallery: {src.root.resolve().name}", max_live=max_live)
    _header(page, src, info)
    if grids is not None:
        _sample_section(page, grids, seed_arr, neigh)
    if src.stats is not None:
        _curves_section(page, src.stats)
    analyses = _analysis_sections(page, src)
    target = Path(out) if out is not None else src.root / "gallery.html"
    write_page(page, target)
    return {
        "out": str(target),
        "bytes": target.stat().st_size,
        "panels": dict(page.counts),
        "analyses": analyses,
        "n_samples": 0 if grids is None else int(len(grids)),
        "seconds": round(time.perf_counter() - t0, 2),
    }
