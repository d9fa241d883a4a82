"""What a gallery shows: the files found in a run or output folder, read and checked.

A folder is searched itself and one level of subfolders deep (sorted by name). Each reader here
checks the arrays' keys, shapes and dtypes and raises :class:`gan3d.errors.Gan3dError` naming the
file on anything else, so the page is never built from half-understood input. Grids follow
:mod:`gan3d.voxels` (``grid[x, y, z]``, z up, filled = True).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Gan3dError

ANALYSES = ("interpolation", "dimensions", "neurons")
"""Analysis outputs a gallery shows, each a ``NAME.npz`` with a ``NAME.json`` beside it."""


@dataclass
class Sources:
    """Files found under ``root`` (``None`` / empty when absent). ``analyses`` maps each name of
    :data:`ANALYSES` to every ``NAME.npz`` found, in search order."""

    root: Path
    snapshot: Path | None = None
    samples: Path | None = None
    stats: Path | None = None
    config: Path | None = None
    analyses: dict[str, list[Path]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.snapshot or self.samples or self.stats or any(self.analyses.values()))


def _search_dirs(root: Path) -> list[Path]:
    subs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    return [root, *subs]


def find_sources(path: str | os.PathLike) -> Sources:
    """Look for ``snapshot.pt``, ``samples.npz``, ``stats.jsonl``, ``config.json`` (first found
    wins) and the analysis files (all found) in ``path`` and its direct subfolders.

    Raises Gan3dError when ``path`` is not a folder or holds none of them.
    """
    root = Path(path)
    if not root.exists():
        raise Gan3dError("no such folder", root)
    if not root.is_dir():
        raise Gan3dError("not a folder (give a run folder or a `gan3d sample` output folder)", root)
    src = Sources(root=root, analyses={name: [] for name in ANALYSES})
    for d in _search_dirs(root):
        for attr, name in (("snapshot", "snapshot.pt"), ("samples", "samples.npz"), ("stats", "stats.jsonl"), ("config", "config.json")):
            if getattr(src, attr) is None and (d / name).is_file():
                setattr(src, attr, d / name)
        for name in ANALYSES:
            if (d / f"{name}.npz").is_file():
                src.analyses[name].append(d / f"{name}.npz")
    if src.empty():
        raise Gan3dError(
            "nothing to show: no snapshot.pt, samples.npz, stats.jsonl or analysis .npz here or one folder below", root
        )
    return src


# --- readers -------------------------------------------------------------------------------------


def _load_npz(path: Path, spec: dict[str, tuple[int | None, str]]) -> dict[str, np.ndarray]:
    """The arrays ``spec`` names: ``{key: (ndim or None, kinds)}`` with numpy dtype kinds such as
    ``"b"`` (bool), ``"iu"`` (integers), ``"f"`` (floats)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in spec if k not in z.files]
            if missing:
                raise Gan3dError(f"missing array(s) {', '.join(missing)} (has: {', '.join(z.files) or 'none'})", path)
            arrays = {k: np.asarray(z[k]) for k in spec}
    except Gan3dError:
        raise
    except Exception as e:  # BadZipFile, ValueError (pickled arrays), OSError, EOFError, ...
        raise Gan3dError(f"cannot read .npz, truncated or corrupt? ({type(e).__name__}: {e})", path) from None
    for k, (ndim, kinds) in spec.items():
        a = arrays[k]
        if ndim is not None and a.ndim != ndim:
            raise Gan3dError(f"array {k!r} has shape {a.shape}, expected {ndim} dimensions", path)
        if a.dtype.kind not in kinds:
            raise Gan3dError(f"array {k!r} has dtype {a.dtype}, expected {_kind_names(kinds)}", path)
    return arrays


def _kind_names(kinds: str) -> str:
    names = {"b": "bool", "i": "int", "u": "unsigned int", "f": "float"}
    return " or ".join(names[c] for c in kinds)


def _cubic(path: Path, key: str, a: np.ndarray, lead: int) -> int:
    """Check that the last three axes of ``a`` are one cube (R, R, R) with R >= 2; return R."""
    shape = a.shape[lead:]
    if len(shape) != 3 or len(set(shape)) != 1 or shape[0] < 2:
        raise Gan3dError(f"array {key!r} has shape {a.shape}: its last three axes must be one cube (R, R, R)", path)
    if a.shape[:lead] and min(a.shape[:lead]) == 0:
        raise Gan3dError(f"array {key!r} is empty (shape {a.shape})", path)
    return int(shape[0])


def _same_r(path: Path, rs: dict[str, int]) -> int:
    if len(set(rs.values())) != 1:
        raise Gan3dError(f"arrays disagree on the grid size: {rs}", path)
    return next(iter(rs.values()))


def read_meta(npz: Path) -> dict[str, Any]:
    """The ``.json`` beside an analysis ``.npz`` (``{}`` when there is none); must be a JSON object."""
    path = npz.with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Gan3dError(f"not valid JSON ({e})", path) from None
    if not isinstance(meta, dict):
        raise Gan3dError("expected a JSON object", path)
    return meta


def read_samples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``samples.npz`` of ``gan3d sample`` -> ``(grids bool (N, R, R, R), seeds int64 (N,))``."""
    a = _load_npz(path, {"grids": (4, "b"), "seeds": (1, "iu")})
    _cubic(path, "grids", a["grids"], 1)
    if len(a["seeds"]) != len(a["grids"]):
        raise Gan3dError(f"{len(a['grids'])} grids but {len(a['seeds'])} seeds", path)
    return a["grids"], a["seeds"].astype(np.int64)


def read_interpolation(path: Path) -> dict[str, Any]:
    """``interpolation.npz``: ``frames`` bool (S, R, R, R), ``t`` float (S,) -> dict plus ``meta``."""
    a = _load_npz(path, {"frames": (4, "b"), "t": (1, "iuf")})
    _cubic(path, "frames", a["frames"], 1)
    if len(a["t"]) != len(a["frames"]):
        raise Gan3dError(f"{len(a['frames'])} frames but {len(a['t'])} values of t", path)
    return {"frames": a["frames"], "t": a["t"].astype(np.float64), "meta": read_meta(path)}


def read_dimensions(path: Path) -> dict[str, Any]:
    """``dimensions.npz``: ``base`` bool (R, R, R), ``top`` int (k,), ``changed`` bool (k, R, R, R)."""
    a = _load_npz(path, {"base": (3, "b"), "top": (1, "iu"), "changed": (4, "b")})
    _same_r(path, {"base": _cubic(path, "base", a["base"], 0), "changed": _cubic(path, "changed", a["changed"], 1)})
    if len(a["top"]) != len(a["changed"]):
        raise Gan3dError(f"{len(a['top'])} dimensions in 'top' but {len(a['changed'])} grids in 'changed'", path)
    return {"base": a["base"], "top": a["top"].astype(np.int64), "changed": a["changed"], "meta": read_meta(path)}


def read_neurons(path: Path) -> dict[str, Any]:
    """``neurons.npz``: ``units`` int (U,), ``top_shapes`` bool (U, m, R, R, R), ``response``
    float (U, m, R, R, R) in [0, 1] (float16 as written; returned as float32)."""
    a = _load_npz(path, {"units": (1, "iu"), "top_shapes": (5, "b"), "response": (5, "f")})
    _cubic(path, "top_shapes", a["top_shapes"], 2)
    if a["response"].shape != a["top_shapes"].shape:
        raise Gan3dError(f"'response' has shape {a['response'].shape} but 'top_shapes' {a['top_shapes'].shape}", path)
    if len(a["units"]) != len(a["top_shapes"]):
        raise Gan3dError(f"{len(a['units'])} units but {len(a['top_shapes'])} rows of top shapes", path)
    resp = a["response"].astype(np.float32)
    if not np.isfinite(resp).all() or resp.min() < 0 or resp.max() > 1:
        raise Gan3dError("'response' must hold finite values in [0, 1]", path)
    return {"units": a["units"].astype(np.int64), "top_shapes": a["top_shapes"], "response": resp, "meta": read_meta(path)}


READERS = {"interpolation": read_interpolation, "dimensions": read_dimensions, "neurons": read_neurons}
