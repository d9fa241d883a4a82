"""``gan3d data merge-pairs``: one paired image folder from several rendered from one voxel dataset.

The use it was made for: fine-tuning the 3D-VAE-GAN on plain and photo-like renders of the same
training shapes together (``gan3d data render ... --out plain`` and ``... --photo --out photo``), so
that the encoder learns photographs without forgetting the renders it was trained on.

Every input must pair its images with the same voxel dataset file (``shape_index`` keeps its
meaning), at one image size and with one list of classes. Rows are the first input's, then the
second's, and so on; ``view`` is renumbered into the union of the inputs' view lists. ``meta.json``
gets ``merged_from``: each input's folder, count and rendering options. The output is written under
a temporary name and renamed when whole.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gan3d.data.pairs import _PAIR_KEYS, PAIRED_FORMAT, PAIRED_FORMAT_VERSION, PairedData, check_free_space, new_folder
from gan3d.errors import Gan3dError

_CHUNK = 1024  # images copied per read/write


def _check_alike(folders: Sequence[Path], data: Sequence[PairedData]) -> None:
    first, d0 = folders[0], data[0]
    for f, d in zip(folders[1:], data[1:]):
        if d.dataset_path.resolve() != d0.dataset_path.resolve():
            raise Gan3dError(
                f"pairs its images with {d.dataset_path}, but {first} with {d0.dataset_path}: "
                "merge only folders rendered from one voxel dataset",
                f,
            )
        if d.image_size != d0.image_size:
            raise Gan3dError(f"has {d.image_size} px images but {first} has {d0.image_size} px: render both at one --size", f)
        if d.class_names != d0.class_names:
            raise Gan3dError(f"has classes {list(d.class_names)} but {first} has {list(d0.class_names)}", f)


def merge_pairs(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *, progress: bool = False) -> dict[str, Any]:
    """Write the images and pairs of every folder of ``inputs`` (two or more, see the module
    docstring) to the new folder ``out``. Returns a summary: ``path``, ``count``, ``size``,
    ``inputs`` (path and count of each), ``views`` (distinct views), ``bytes``, ``seconds``.
    Fewer than two inputs, an unreadable one, inputs that do not match, ``out`` existing or being
    an input, or too little disk: one Gan3dError naming the folder.
    """
    t0 = time.perf_counter()
    folders = [Path(p) for p in inputs]
    if len(folders) < 2:
        raise Gan3dError(f"merge-pairs needs two or more paired image folders, got {len(folders)}")
    target = Path(out)
    for f in folders:
        if f.resolve() == target.resolve():
            raise Gan3dError("--out is one of the inputs; write the merge to a new folder", f)
    if target.exists():
        raise Gan3dError("output folder already exists (choose another)", target)
    data = [PairedData(f) for f in folders]
    _check_alike(folders, data)
    views: list[tuple[float, float]] = []
    remaps = []
    for d in data:
        own = [(float(a), float(e)) for a, e in d.meta.get("views") or []]
        if len(d) and (not own or int(d.view.max()) >= len(own)):
            raise Gan3dError(f"view index out of range for the {len(own)} views of meta.json", d.folder)
        views += [v for v in own if v not in views]
        remaps.append(np.array([views.index(v) for v in own], dtype=np.int64))
    n = sum(len(d) for d in data)
    size = data[0].image_size
    need = check_free_space(target, n, size, what="merging")
    with new_folder(target) as tmp:
        _write(tmp, data, remaps, views, n, size, progress)
    return {
        "path": str(target),
        "count": int(n),
        "size": int(size),
        "inputs": [{"path": str(f), "count": len(d)} for f, d in zip(folders, data)],
        "views": len(views),
        "bytes": int(need),
        "seconds": time.perf_counter() - t0,
    }


def _write(tmp: Path, data: Sequence[PairedData], remaps, views, n: int, size: int, progress: bool) -> None:
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    at = 0
    for d in data:
        for lo in range(0, len(d), _CHUNK):
            hi = min(len(d), lo + _CHUNK)
            images[at + lo : at + hi] = d.images[lo:hi]
        at += len(d)
        if progress:
            print(f"merge-pairs: {at}/{n} images", flush=True)
    images.flush()
    del images
    arrays = {key: np.concatenate([getattr(d, key) for d in data]).astype(dt, copy=False) for key, dt in _PAIR_KEYS.items()}
    arrays["view"] = np.concatenate([r[d.view] for r, d in zip(remaps, data)])
    np.savez(tmp / "pairs.npz", **arrays)
    first = data[0].meta
    meta = {
        "format": PAIRED_FORMAT,
        "format_version": PAIRED_FORMAT_VERSION,
        "source": str(data[0].dataset_path.resolve()),
        "resolution": int(data[0].resolution),
        "class_names": list(data[0].class_names),
        "size": int(size),
        "seed": first.get("seed"),
        "count": int(n),
        "views": [[a, e] for a, e in views],
        "options": {"merged": True},
        "merged_from": [
            {"path": str(d.folder.resolve()), "count": len(d), "seed": d.meta.get("seed"), "options": d.meta.get("options")}
            for d in data
        ],
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
