"""``gan3d data merge``: one prepared dataset from several of one resolution, classes renamed at will.

The use it was made for: ModelNet10 has no bookcase, the IKEA photographs have one; the procedural
bookshelves (``gan3d data prepare builtin --classes bookshelf --builtin-framing cb``) merged into
a ModelNet10 selection as ``--rename bookshelf=bookcase`` give the six IKEA classes.

Classes are matched by name after renaming: the output lists the first input's classes in its
order, then each later input's new ones; a name that several inputs (or several renamed classes)
share becomes one class. Every shape keeps its split, rotation and source id; rows are the first
input's, then the second's, and so on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gan3d.data.prepared import SPLIT_NAMES, _write, load
from gan3d.errors import Gan3dError


def parse_renames(items: Sequence[str] | None) -> dict[str, str]:
    """``["old=new", ...]`` as a dict; a malformed or repeated item is one Gan3dError naming --rename."""
    out: dict[str, str] = {}
    for item in items or ():
        old, sep, new = str(item).partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise Gan3dError(f"--rename {item!r}: expected OLD=NEW, e.g. bookshelf=bookcase")
        if old in out:
            raise Gan3dError(f"--rename names class {old!r} twice")
        out[old] = new
    return out


def merge(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *, rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write the shapes of every prepared dataset of ``inputs`` (two or more, one resolution) to
    ``out``, classes renamed by ``rename`` (old name -> new name; see the module docstring).

    Returns a summary: ``path``, ``resolution``, ``count``, ``class_names``, ``counts`` (per class
    and split), ``inputs`` and ``seconds``. Fewer than two inputs, an unreadable input, different
    resolutions, a renamed class that no input has, or ``out`` being an input: one Gan3dError.
    """
    t0 = time.perf_counter()
    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        raise Gan3dError(f"merge needs two or more prepared datasets, got {len(paths)}")
    target = Path(out).resolve()
    for p in paths:
        if p.resolve() == target:
            raise Gan3dError("--out is one of the inputs; write the merge to a new file", p)
    datasets = [load(p) for p in paths]
    r = datasets[0].resolution
    for p, d in zip(paths[1:], datasets[1:]):
        if d.resolution != r:
            raise Gan3dError(
                f"is {d.resolution}^3 but {paths[0]} is {r}^3: prepare both at one resolution "
                f"(gan3d data prepare {p} --out NEW.npz --resolution {r})",
                p,
            )
    rename = dict(rename or {})
    known = [c for d in datasets for c in d.class_names]
    missing = [c for c in rename if c not in known]
    if missing:
        raise Gan3dError(f"--rename {missing[0]}=...: no input has a class {missing[0]!r} (classes: {', '.join(dict.fromkeys(known))})")
    names: list[str] = []
    labels = []
    for d in datasets:
        new = [rename.get(c, c) for c in d.class_names]
        names += [c for c in dict.fromkeys(new) if c not in names]
        remap = np.array([names.index(c) for c in new], dtype=np.int64)
        labels.append(remap[d.labels])
    label = np.concatenate(labels)
    split = np.concatenate([d.split for d in datasets])
    sources = [f"{p} ({d.source})" if d.source else str(p) for p, d in zip(paths, datasets)]
    renamed = ", ".join(f"{a} -> {b}" for a, b in rename.items())
    path = _write(
        out,
        resolution=r,
        packed=np.concatenate([d.packed(slice(None)) for d in datasets]),
        label=label,
        class_names=names,
        split=split,
        rotation=np.concatenate([d.rotation for d in datasets]),
        source_id=np.concatenate([d.source_id for d in datasets]),
        source="merge of " + "; ".join(sources) + (f"; renamed {renamed}" if renamed else ""),
    )
    counts = {c: {s: int(((label == k) & (split == si)).sum()) for si, s in enumerate(SPLIT_NAMES)} for k, c in enumerate(names)}
    return {
        "path": str(path),
        "resolution": int(r),
        "count": int(len(label)),
        "class_names": names,
        "counts": counts,
        "inputs": [{"path": str(p), "count": len(d), "class_names": list(d.class_names)} for p, d in zip(paths, datasets)],
        "renamed": rename,
        "seconds": time.perf_counter() - t0,
    }
