"""``gan3d data info``: counts per class and split, occupancy statistics, and the empty and
suspicious (fragmented) grids of a prepared dataset.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gan3d.data.prepared import SPLIT_NAMES, VoxelDataset, _PathLike, load

SUSPICIOUS_FRACTION = 0.9
"""A grid whose largest 26-connected component holds less than this fraction of its voxels is listed."""


def _component_stats(rows: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per packed row: filled voxels, number of 26-connected components, voxels in the largest."""
    from scipy.ndimage import label

    structure = np.ones((3, 3, 3), dtype=bool)
    n = rows.shape[0]
    filled = np.bitwise_count(rows).sum(axis=1, dtype=np.int64)
    grids = np.unpackbits(rows, axis=1, count=r**3).reshape(n, r, r, r).view(bool)
    ncomp = np.zeros(n, np.int64)
    largest = np.zeros(n, np.int64)
    for i in range(n):
        if filled[i] == 0:
            continue
        g, scale = _coarsest(grids[i])
        lab, k = label(g, structure=structure)
        ncomp[i] = k
        largest[i] = filled[i] if k == 1 else np.bincount(lab.ravel())[1:].max() * scale
    return filled, ncomp, largest


def _coarsest(g: np.ndarray) -> tuple[np.ndarray, int]:
    """Undo exact 2x voxel repetition (e.g. 32 -> 64 preparation) while it holds: the 26-connected
    components of a repeated grid are those of the coarse grid, each voxel counting 8 times."""
    scale = 1
    while g.shape[0] % 2 == 0 and g.shape[0] >= 8:
        r = g.shape[0]
        h = r // 2
        a = g.reshape(h, 2, r * r)  # pairs of x slices
        if not np.array_equal(a[:, 0], a[:, 1]):
            break
        b = np.ascontiguousarray(a[:, 0]).reshape(h, h, 2, r)  # pairs of y rows
        if not np.array_equal(b[:, :, 0], b[:, :, 1]):
            break
        c = np.ascontiguousarray(b[:, :, 0]).reshape(h, h, h, 2)  # pairs of z voxels
        if not np.array_equal(c[..., 0], c[..., 1]):
            break
        g, scale = np.ascontiguousarray(c[..., 0]), scale * 8
    return g, scale


def info(path: _PathLike | VoxelDataset, *, progress: bool = False) -> dict[str, Any]:
    """Statistics of a prepared dataset file (or a :class:`VoxelDataset`).

    Returns a dict: ``path``, ``source``, ``resolution``, ``count``, ``class_names``, ``counts``
    (``{class: {"train": n, "test": n}}``), ``rotations`` (sorted distinct values), ``occupancy``
    (``mean``/``min``/``max`` fraction of filled voxels), ``empty`` (list of dicts ``index``,
    ``source_id``, ``class``, ``split``, ``rotation``) and ``suspicious`` (the same plus
    ``components`` and ``largest_fraction``: grids whose largest 26-connected component holds less
    than 90% of their filled voxels).
    """
    ds = path if isinstance(path, VoxelDataset) else load(path)
    n, r = len(ds), ds.resolution
    filled = np.zeros(n, np.int64)
    ncomp = np.zeros(n, np.int64)
    largest = np.zeros(n, np.int64)
    chunk = max(1, (1 << 24) // (r**3))
    from tqdm import tqdm

    with tqdm(total=n, desc="checking", unit="shape", disable=not progress) as bar:
        for s in range(0, n, chunk):
            rows = ds.packed(slice(s, s + chunk))
            filled[s : s + chunk], ncomp[s : s + chunk], largest[s : s + chunk] = _component_stats(rows, r)
            bar.update(rows.shape[0])
    frac = filled / float(r**3)

    def entry(i: int) -> dict[str, Any]:
        return {
            "index": int(i),
            "source_id": str(ds.source_id[i]),
            "class": ds.class_names[int(ds.labels[i])],
            "split": SPLIT_NAMES[int(ds.split[i])],
            "rotation": int(ds.rotation[i]),
        }

    empty = [entry(i) for i in np.flatnonzero(filled == 0)]
    suspicious = []
    for i in np.flatnonzero((filled > 0) & (largest < SUSPICIOUS_FRACTION * filled)):
        e = entry(i)
        e["components"] = int(ncomp[i])
        e["largest_fraction"] = float(largest[i] / filled[i])
        suspicious.append(e)
    return {
        "path": None if ds.path is None else str(ds.path),
        "source": ds.source,
        "resolution": r,
        "count": n,
        "class_names": list(ds.class_names),
        "counts": ds.counts(),
        "rotations": sorted(int(v) for v in np.unique(ds.rotation)),
        "occupancy": {
            "mean": float(frac.mean()) if n else 0.0,
            "min": float(frac.min()) if n else 0.0,
            "max": float(frac.max()) if n else 0.0,
        },
        "empty": empty,
        "suspicious": suspicious,
    }


def format_info(d: dict[str, Any], *, limit: int | None = 20) -> str:
    """Human-readable text of an :func:`info` dict; lists at most ``limit`` grids per kind (None: all)."""
    lines = []
    if d.get("path"):
        lines.append(f"dataset: {d['path']}")
    if d.get("source"):
        lines.append(f"source: {d['source']}")
    nc = len(d["class_names"])
    lines.append(
        f"{d['count']} shapes at {d['resolution']}^3, {nc} class{'es' if nc != 1 else ''}"
        + (f", rotations {_ranges(d['rotations'])}" if d["rotations"] != [0] else "")
    )
    width = max([5] + [len(c) for c in d["class_names"]])
    lines.append(f"  {'class':<{width}}  {'train':>7} {'test':>7} {'total':>7}")
    tt = [0, 0]
    for c in d["class_names"]:
        a, b = d["counts"][c]["train"], d["counts"][c]["test"]
        tt[0] += a
        tt[1] += b
        lines.append(f"  {c:<{width}}  {a:>7} {b:>7} {a + b:>7}")
    lines.append(f"  {'total':<{width}}  {tt[0]:>7} {tt[1]:>7} {tt[0] + tt[1]:>7}")
    o = d["occupancy"]
    lines.append(
        f"occupancy (fraction of voxels filled): mean {o['mean']:.4f}, min {o['min']:.4f}, max {o['max']:.4f}"
    )

    def listing(title: str, items: list[dict[str, Any]], extra) -> None:
        lines.append(f"{title}: {len(items)}")
        shown = items if limit is None else items[:limit]
        for e in shown:
            rot = f" rotation {e['rotation']}" if e["rotation"] else ""
            lines.append(f"  #{e['index']} {e['source_id']} ({e['class']}, {e['split']}{rot}){extra(e)}")
        if len(shown) < len(items):
            lines.append(f"  ... and {len(items) - len(shown)} more")

    listing("empty grids", d["empty"], lambda e: "")
    listing(
        f"suspicious grids (largest 26-connected component < {SUSPICIOUS_FRACTION:.0%} of the filled voxels)",
        d["suspicious"],
        lambda e: f": {e['components']} components, largest {e['largest_fraction']:.1%}",
    )
    return "\n".join(lines)


def _ranges(values: Sequence[int]) -> str:
    from gan3d.runtime import format_seeds

    return format_seeds(sorted(values))
