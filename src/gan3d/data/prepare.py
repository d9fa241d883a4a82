"""``gan3d data prepare``: one prepared dataset (:mod:`gan3d.data.prepared`) from any source kind
of :mod:`gan3d.data.sources`, filtered by class, split and rotation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from gan3d.data.prepared import (
    SPLIT_NAMES,
    _pack_rows,
    _PathLike,
    _row_bytes,
    _split_index,
    _write,
    load,
    resample,
)
from gan3d.data.sources import (
    _SHAPENET_SYNSETS,
    _check_occupancy,
    _detect,
    _items_binvox,
    _items_mesh,
    _items_shapenets,
    _npz_grid_chunks,
    _npz_members,
    _npz_small,
    _read_items,
)
from gan3d.errors import Gan3dError
from gan3d.io.files import MAX_GRID_EDGE

MODELNET10_CLASSES = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)  # fmt: skip


def _as_list(v: Any) -> list | None:
    if v is None:
        return None
    if isinstance(v, (str, int, np.integer)):
        return [v]
    return list(v)


def _no_match(filters: dict[str, Any], source: Any, available: Sequence[str] | None = None) -> Gan3dError:
    parts = [f"--{k} {','.join(str(x) for x in v)}" for k, v in filters.items() if v is not None]
    extra = f" (classes available: {', '.join(available)})" if available else ""
    return Gan3dError(f"no shapes match {' '.join(parts) or 'the source'} in {source}{extra}")


def _check_classes(wanted: list | None, available: Sequence[str], source: Any) -> set[str] | None:
    """Class filter as names; accepts names (or ShapeNet synset ids) present in ``available``."""
    if wanted is None:
        return None
    names = set()
    inverse = {v: k for k, v in _SHAPENET_SYNSETS.items()}
    for c in wanted:
        c = str(c)
        if c in available:
            names.add(c)
        elif c in _SHAPENET_SYNSETS and _SHAPENET_SYNSETS[c] in available:
            names.add(_SHAPENET_SYNSETS[c])
        elif c in inverse and inverse[c] in available:
            names.add(inverse[c])
        else:
            raise Gan3dError(
                f"no class {c!r} in {source} (classes: {', '.join(available) or 'none'})"
            )
    return names


# long function: validates every filter once, then dispatches to one importer per source kind; mostly argument checks with their one-line messages
def prepare(
    source: _PathLike,
    out: _PathLike,
    *,
    resolution: int,
    classes: Iterable[str] | str | None = None,
    splits: Iterable[str] | str | None = None,
    rotations: Iterable[int] | int | None = None,
    mesh_up: str = "z",
    progress: bool = True,
    workers: int | None = None,
    seed: int = 0,
    per_class: tuple[int, int] = (100, 20),
    framing: str = "floor",
    validation: float = 0.0,
) -> dict[str, Any]:
    """Make a prepared dataset file ``out`` from ``source`` (see the module docstring for sources).

    ``resolution``: grid size of the file. ``classes`` (names), ``splits`` (``"train"``/``"test"``)
    and ``rotations`` (3D ShapeNets rotation numbers 1..12; other sources have rotation 0) keep only
    the matching shapes. ``mesh_up``: up axis of mesh files (``"z"`` ModelNet, ``"y"`` ShapeNet).
    ``workers``: processes reading files (default: up to 2). For ``"builtin"``, ``per_class`` gives
    the (train, test) shapes per class, ``seed`` the generator seed and ``framing`` where the shapes
    sit (:data:`gan3d.data.procedural.FRAMINGS`: ``"cb"`` centres them like ModelNet10's ``-cb`` grids).
    ``validation`` (0 < v < 1): the file's test split is instead a validation split, a stratified share
    ``v`` of the source's training models chosen by ``seed`` (all rotations of a model on one side,
    :func:`gan3d.data.holdout.validation_mask`), and the source's test split is left out, so that
    settings can be chosen on a file whose test split says nothing of the real one.

    Returns a summary dict: ``path``, ``source``, ``kind``, ``resolution``, ``count``,
    ``class_names``, ``counts`` (per class and split) and ``seconds``. Raises Gan3dError for an
    unknown source, an unreadable file (naming it) or filters that match nothing.
    """
    t0 = time.perf_counter()
    r = int(resolution)
    if r != resolution or not 1 <= r <= MAX_GRID_EDGE:
        raise Gan3dError(f"resolution must be an integer in 1..{MAX_GRID_EDGE}, got {resolution!r}")
    classes_l = _as_list(classes)
    split_l = _as_list(splits)
    split_set = None if split_l is None else {_split_index(s) for s in split_l}
    rot_l = _as_list(rotations)
    rot_set = None if rot_l is None else {int(x) for x in rot_l}
    filters = {"classes": classes_l, "splits": split_l, "rotations": rot_l}
    if mesh_up not in ("z", "y"):
        raise Gan3dError(f"unknown mesh up axis {mesh_up!r} (expected 'z' or 'y')")
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    kind, root, only_class = _detect(source)
    src_text = "builtin" if kind == "builtin" else str(Path(source).resolve())

    if kind == "builtin":
        packed, label, names, split, rotation, sid = _prepare_builtin(
            r, classes_l, split_set, rot_set, seed, per_class, progress, filters, framing
        )
        src_text = f"builtin (seed {seed}, {per_class[0]} train + {per_class[1]} test per class, framing {framing})"
    elif kind == "npz":
        packed, label, names, split, rotation, sid, src_text = _prepare_npz(
            root, r, classes_l, split_set, rot_set, progress, filters, src_text
        )
    else:
        if kind == "shapenets":
            items = _items_shapenets(root, only_class)
        elif kind == "mesh":
            items = _items_mesh(root)
        else:
            items = _items_binvox(root)
        available = sorted({it.cls for it in items})
        keep_cls = _check_classes(classes_l, available, source)
        items = [
            it
            for it in items
            if (keep_cls is None or it.cls in keep_cls)
            and (split_set is None or it.split in split_set)
            and (rot_set is None or it.rotation in rot_set)
        ]
        if not items:
            raise _no_match(filters, source, available)
        names = sorted({it.cls for it in items})
        label = np.array([names.index(it.cls) for it in items], dtype=np.int64)
        split = np.array([it.split for it in items], dtype=np.uint8)
        rotation = np.array([it.rotation for it in items], dtype=np.int16)
        sid = [it.source_id for it in items]
        packed = _read_items(kind, items, r, mesh_up, progress, int(workers))

    if validation:
        packed, label, split, rotation, sid, src_text = _carve(packed, label, split, rotation, sid, src_text, validation, seed)
    path = _write(
        out,
        resolution=r,
        packed=packed,
        label=label,
        class_names=names,
        split=split,
        rotation=rotation,
        source_id=sid,
        source=src_text,
    )
    counts = {
        c: {s: int(((label == k) & (split == si)).sum()) for si, s in enumerate(SPLIT_NAMES)}
        for k, c in enumerate(names)
    }
    return {
        "path": str(path),
        "source": src_text,
        "kind": kind,
        "resolution": r,
        "count": int(packed.shape[0]),
        "class_names": list(names),
        "counts": counts,
        "seconds": time.perf_counter() - t0,
    }


def _carve(packed, label, split, rotation, sid, src_text, validation, seed):
    """The training split alone, a validation share of it moved to the test split."""
    from gan3d.data.holdout import validation_mask

    train = np.flatnonzero(np.asarray(split) == 0)
    if len(train) == 0:
        raise Gan3dError("--validation needs training shapes, and the filters left none")
    label, sid = np.asarray(label)[train], [sid[i] for i in train]
    held = validation_mask(label, validation, seed, groups=sid)
    text = f"{src_text}; test split = validation: {validation:g} of the training models (seed {seed}), the source's test split left out"
    return packed[train], label, held.astype(np.uint8), np.asarray(rotation)[train], sid, text


def _prepare_builtin(r, classes_l, split_set, rot_set, seed, per_class, progress, filters, framing="floor"):
    from tqdm import tqdm

    from gan3d.data.procedural import CLASS_NAMES, FRAMINGS, make_dataset, resolve_classes

    if framing not in FRAMINGS:
        raise Gan3dError(f"unknown framing {framing!r} (expected {' or '.join(FRAMINGS)})")
    if rot_set is not None and 0 not in rot_set:
        raise _no_match(filters, "builtin (built-in shapes have no rotations)")
    kinds = resolve_classes(classes_l)
    kinds = tuple(c for c in CLASS_NAMES if c in kinds)
    counts = [int(c) for c in per_class]
    if len(counts) != 2 or min(counts) < 0:
        raise Gan3dError(f"per_class must be (train, test) counts >= 0, got {per_class!r}")
    packed_parts, labels, splits, sids = [], [], [], []
    starts = (0, 1_000_000)  # test shapes come from their own index range
    total = sum(counts[s] * len(kinds) for s in (0, 1) if split_set is None or s in split_set)
    if total == 0:
        raise _no_match(filters, "builtin", CLASS_NAMES)
    with tqdm(total=total, desc="making shapes", unit="shape", disable=not progress) as bar:
        for s in (0, 1):
            if split_set is not None and s not in split_set:
                continue
            n = counts[s] * len(kinds)
            for c0 in range(0, n, 256):
                k = min(256, n - c0)
                g, lab = make_dataset(k, r, seed=seed, classes=kinds, start=starts[s] + c0, framing=framing)
                packed_parts.append(_pack_rows(g))
                labels.append(lab)
                splits.append(np.full(k, s, np.uint8))
                sids += [f"builtin-{seed}-{starts[s] + c0 + j}" for j in range(k)]
                bar.update(k)
    packed = np.concatenate(packed_parts)
    label = np.concatenate(labels)
    return packed, label, list(kinds), np.concatenate(splits), np.zeros(len(label), np.int16), sids


# long function: a streaming read of X_train/X_test in chunks (memory bound for 512^3 inputs) with its checks inline
def _prepare_npz(path, r, classes_l, split_set, rot_set, progress, filters, src_text):
    from tqdm import tqdm

    zf, members = _npz_members(path)
    with zf:
        if {"format", "packed"} <= members:  # a prepared gan3d file: filter / resample it
            ds = load(path)
            names = list(ds.class_names)
            keep = np.ones(len(ds), bool)
            if classes_l is not None:
                keep &= np.isin(ds.labels, [names.index(c) for c in _check_classes(classes_l, names, path)])
            if split_set is not None:
                keep &= np.isin(ds.split, list(split_set))
            if rot_set is not None:
                keep &= np.isin(ds.rotation, list(rot_set))
            if not keep.any():
                raise _no_match(filters, path, names)
            ds = ds.subset(keep)
            used = sorted(set(ds.labels.tolist()))
            remap = np.full(len(names), -1, np.int64)
            remap[used] = np.arange(len(used))
            packed = np.empty((len(ds), _row_bytes(r)), np.uint8)
            with tqdm(total=len(ds), desc="resampling", unit="shape", disable=not progress) as bar:
                for s in range(0, len(ds), 256):
                    g = ds.grids(slice(s, s + 256))
                    if ds.resolution != r:
                        g = np.stack([resample(x, r) for x in g])
                    packed[s : s + g.shape[0]] = _pack_rows(g)
                    bar.update(g.shape[0])
            return (
                packed, remap[ds.labels], [names[k] for k in used], ds.split.copy(), ds.rotation.copy(),
                list(ds.source_id), ds.source or src_text,
            )  # fmt: skip

        pairs = [(s, f"X_{n}", f"y_{n}") for s, n in enumerate(SPLIT_NAMES) if f"X_{n}" in members]
        for _, xk, yk in pairs:
            if yk not in members:
                raise Gan3dError(f"npz archive has {xk} but no {yk}", path)
        if not pairs:
            raise Gan3dError(
                f"npz archive has no X_train/y_train or X_test/y_test arrays (arrays: {', '.join(sorted(members))})",
                path,
            )
        ys = {}
        for s, xk, yk in pairs:
            y = _npz_small(zf, yk, path)
            if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
                raise Gan3dError(f"array {yk!r} must be non-negative integer labels of shape (N,)", path)
            ys[s] = y.astype(np.int64)
        n_classes = max(int(y.max()) + 1 if y.size else 0 for y in ys.values())
        if "class_names" in members:
            names_all = [str(c) for c in _npz_small(zf, "class_names", path)]
            if len(names_all) < n_classes:
                raise Gan3dError(f"class_names lists {len(names_all)} names but labels go up to {n_classes - 1}", path)
        elif n_classes == 10:
            names_all = list(MODELNET10_CLASSES)
        else:
            names_all = [f"class_{k}" for k in range(n_classes)]
        keep_cls = _check_classes(classes_l, names_all, path)
        keep_idx = [k for k, c in enumerate(names_all) if keep_cls is None or c in keep_cls]
        if rot_set is not None and 0 not in rot_set:
            raise _no_match(filters, f"{path} (its grids have no rotations)")
        pairs = [p for p in pairs if split_set is None or p[0] in split_set]
        sel = {s: np.flatnonzero(np.isin(ys[s], keep_idx)) for s, _, _ in pairs}
        total = sum(v.size for v in sel.values())
        if total == 0:
            raise _no_match(filters, path, names_all)
        used = sorted(set(np.concatenate([ys[s][sel[s]] for s in sel]).tolist()))
        remap = np.full(len(names_all), -1, np.int64)
        remap[used] = np.arange(len(used))
        packed = np.empty((total, _row_bytes(r)), np.uint8)
        label, split, sid = [], [], []
        pos = 0
        with tqdm(total=total, desc="reading npz", unit="shape", disable=not progress) as bar:
            for s, xk, yk in pairs:
                y = ys[s]
                rows = 0
                for g in _npz_grid_chunks(zf, xk, path, 256):
                    idx = np.arange(rows, rows + g.shape[0])
                    rows += g.shape[0]
                    if rows > y.size:
                        break
                    want = np.isin(y[idx], used)
                    if not want.any():
                        continue
                    g = _check_occupancy(g[want], xk, path)
                    if g.shape[1] != r:
                        g = np.stack([resample(x, r) for x in g])
                    packed[pos : pos + g.shape[0]] = _pack_rows(g)
                    pos += g.shape[0]
                    label.append(remap[y[idx[want]]])
                    split.append(np.full(g.shape[0], s, np.uint8))
                    sid += [f"{SPLIT_NAMES[s]}_{i}" for i in idx[want]]
                    bar.update(g.shape[0])
                if rows != y.size:
                    raise Gan3dError(f"{xk} holds {rows} grids but {yk} has {y.size} labels", path)
        label_a = np.concatenate(label)
        return (
            packed, label_a, [names_all[k] for k in used], np.concatenate(split),
            np.zeros(total, np.int16), sid, src_text,
        )  # fmt: skip
