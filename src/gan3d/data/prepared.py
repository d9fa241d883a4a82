"""Prepared voxel datasets: making them from what users have, inspecting them, and loading them.

File format
-----------
A prepared dataset is one **uncompressed** ``.npz`` archive (``numpy.savez``) holding:

=================  ============================  =================================================
key                dtype, shape                  meaning
=================  ============================  =================================================
``format``         str, ()                       always ``"gan3d-voxels"``
``format_version`` int64, ()                     ``1``
``resolution``     int64, ()                     grid size R; every shape is an (R, R, R) grid
``packed``         uint8, (N, ceil(R^3 / 8))     the grids, ``np.packbits`` of each flat grid (C order,
                                                 numpy bit order, bit set = voxel filled)
``label``          int64, (N,)                   class index into ``class_names``
``class_names``    str, (C,)                     class names, in label order
``split``          uint8, (N,)                   0 train, 1 test
``rotation``       int16, (N,)                   1..12 for 3D ShapeNets volumes, 0 when none
``source_id``      str, (N,)                     model id (3D ShapeNets, ShapeNet) or file stem
``source``         str, ()                       what the file was prepared from
=================  ============================  =================================================

Grids follow gan3d's voxel convention (:mod:`gan3d.voxels`). Files are written atomically
(:func:`gan3d.fileio.atomic_path`). A 64^3 shape takes 32 KiB; :class:`VoxelDataset` keeps the packed
bits in memory and unpacks only the shapes a batch needs.

Sources :func:`prepare` reads
-----------------------------
1. a 3D ShapeNets ``volumetric_data`` tree: ``<class>/30/{train,test}/<class>_<model id>_<rot>.mat``
   (point at ``volumetric_data``, its parent, or one class folder), read with
   :func:`gan3d.formats.read_mat`;
2. a ModelNet-style mesh tree ``<class>/{train,test}/*.off`` (also ``.obj .stl .ply``), voxelized
   with :func:`gan3d.formats.voxelize_mesh` at the target resolution (``mesh_up`` names the meshes'
   up axis);
3. a tree of ``.binvox`` files, e.g. ShapeNet's ``<class>/<model id>/models/*.binvox``: the class is
   the first folder below the root (ShapeNetCore synset ids are turned into names), the source id
   the folder before ``models`` or else the file stem; everything goes to the train split;
4. an ``.npz`` with ``X_train``/``y_train``/``X_test``/``y_test`` (either pair may be missing), like
   the ModelNet10 archive: class names from a ``class_names`` array if present, ModelNet10's names
   when there are 10 classes, else ``class_0``, ``class_1``, ...; a prepared gan3d file works too;
5. ``"builtin"``: the procedural furniture of :mod:`gan3d.procedural`.

Grids are brought to the target resolution by :func:`resample`: 3D ShapeNets' 30^3 volumes are
first padded by one voxel to 32^3 (the release's own preparation), then
:func:`gan3d.voxels.resize` (32 -> 64 repeats each voxel 2x per axis).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path
from gan3d.voxels import THRESHOLD, resize

FORMAT = "gan3d-voxels"


FORMAT_VERSION = 1


SPLIT_NAMES = ("train", "test")


_KEYS = (
    "format", "format_version", "resolution", "packed", "label", "class_names", "split", "rotation",
    "source_id", "source",
)  # fmt: skip


_PathLike = str | os.PathLike


def resample(grid: np.ndarray, resolution: int) -> np.ndarray:
    """Bring one cubic grid to ``resolution``^3 (bool) with :func:`gan3d.voxels.resize`
    (30 -> 32 pads, 32 -> 64 repeats voxels 2x, 30 -> 64 does both, 64 -> 32 takes 2^3 block
    means, other ratios interpolate)."""
    return resize(grid, int(resolution))


def _pack_rows(grids: np.ndarray) -> np.ndarray:
    g = np.asarray(grids)
    if g.dtype != bool:
        g = g >= THRESHOLD
    return np.packbits(g.reshape(g.shape[0], -1), axis=1)


def _row_bytes(resolution: int) -> int:
    return (resolution**3 + 7) // 8


def _split_index(split: str | int, where: Any = None) -> int:
    if isinstance(split, (int, np.integer)) and not isinstance(split, bool) and int(split) in (0, 1):
        return int(split)
    if isinstance(split, str) and split.lower() in SPLIT_NAMES:
        return SPLIT_NAMES.index(split.lower())
    raise Gan3dError(f"unknown split {split!r} (expected 'train' or 'test')", where)


class VoxelDataset:
    """Binary shapes kept bit-packed in memory, unpacked a batch at a time.

    Made by :func:`load` (a prepared file), :func:`from_arrays` or :meth:`select` (a view of another
    dataset through an index array; the packed bits are shared). ``labels`` index ``class_names``
    (the full list of the file; selections do not renumber classes).
    """

    def __init__(
        self,
        packed: np.ndarray,
        resolution: int,
        labels: np.ndarray,
        class_names: Sequence[str],
        split: np.ndarray,
        rotation: np.ndarray,
        source_id: np.ndarray,
        *,
        source: str = "",
        path: _PathLike | None = None,
        index: np.ndarray | None = None,
    ):
        self._packed = packed
        self._resolution = int(resolution)
        self._all_labels = labels
        self._class_names = tuple(str(c) for c in class_names)
        self._all_split = split
        self._all_rotation = rotation
        self._all_source_id = source_id
        self.source = str(source)
        self.path = None if path is None else Path(path)
        self._index = np.arange(packed.shape[0]) if index is None else np.asarray(index, dtype=np.int64)
        self.labels = self._all_labels[self._index]
        self.split = self._all_split[self._index]
        self.rotation = self._all_rotation[self._index]
        self.source_id = self._all_source_id[self._index]
        for a in (self.labels, self.split, self.rotation, self.source_id):
            a.flags.writeable = False

    # -- attributes

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def indices(self) -> np.ndarray:
        """Rows of the underlying file this dataset (view) holds, in order."""
        return self._index.copy()

    def __len__(self) -> int:
        return int(self._index.size)

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return (
            f"VoxelDataset({len(self)} shapes at {self.resolution}^3, "
            f"{len(self.class_names)} classes{where})"
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """``{class name: {"train": n, "test": n}}`` for every class of ``class_names``."""
        c = len(self.class_names)
        table = np.zeros((c, 2), dtype=np.int64)
        np.add.at(table, (self.labels, self.split.astype(np.int64)), 1)
        return {
            name: {"train": int(table[k, 0]), "test": int(table[k, 1])} for k, name in enumerate(self.class_names)
        }

    # -- views

    def _class_indices(self, classes: str | int | Iterable[str | int]) -> list[int]:
        if isinstance(classes, (str, int, np.integer)):
            classes = [classes]
        out = []
        for c in classes:
            if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= int(c) < len(self.class_names):
                    raise Gan3dError(
                        f"class index {c} out of range 0..{len(self.class_names) - 1}", self.path
                    )
                out.append(int(c))
            elif str(c) in self.class_names:
                out.append(self.class_names.index(str(c)))
            else:
                raise Gan3dError(
                    f"unknown class {str(c)!r} (classes: {', '.join(self.class_names)})", self.path
                )
        return out

    def select(
        self, *, split: str | int | None = None, classes: str | int | Iterable[str | int] | None = None
    ) -> VoxelDataset:
        """A view holding only ``split`` (``"train"``/``"test"``/0/1) and ``classes`` (names or indices).

        Raises Gan3dError when nothing is left.
        """
        keep = np.ones(len(self), dtype=bool)
        what = []
        if split is not None:
            s = _split_index(split, self.path)
            keep &= self.split == s
            what.append(f"split {SPLIT_NAMES[s]}")
        if classes is not None:
            ks = self._class_indices(classes)
            keep &= np.isin(self.labels, ks)
            what.append("classes " + ", ".join(self.class_names[k] for k in ks))
        if not keep.any():
            raise Gan3dError(f"no shapes match {' and '.join(what) or 'the selection'}", self.path)
        return self._view(self._index[keep])

    def _view(self, index: np.ndarray) -> VoxelDataset:
        """Another view of the same packed arrays, holding the file rows in ``index``."""
        return VoxelDataset(
            self._packed,
            self._resolution,
            self._all_labels,
            self._class_names,
            self._all_split,
            self._all_rotation,
            self._all_source_id,
            source=self.source,
            path=self.path,
            index=index,
        )

    def subset(self, indices: Any) -> VoxelDataset:
        """A view of the given positions (array of ints, bool mask or slice) of this dataset."""
        pos = np.arange(len(self))[indices]
        return self._view(self._index[np.atleast_1d(pos)])

    # -- data

    def packed(self, indices: Any) -> np.ndarray:
        """Packed rows (n, ceil(R^3/8)) uint8 of the given positions."""
        pos = np.atleast_1d(np.arange(len(self))[indices])
        return self._packed[self._index[pos]]

    def grids(self, indices: Any) -> np.ndarray:
        """float32 ``(n, R, R, R)`` occupancy (0/1) of the given positions, unpacking only those.

        ``indices``: an int, a sequence/array of ints (negative counts from the end), a bool mask or
        a slice; an int gives n = 1.
        """
        rows = self.packed(indices)
        r = self._resolution
        bits = np.unpackbits(rows, axis=1, count=r**3)
        return bits.reshape(rows.shape[0], r, r, r).astype(np.float32)

    def save(self, path: _PathLike, *, source: str | None = None) -> Path:
        """Write this dataset (or view) as a prepared file; returns the path."""
        return _write(
            path,
            resolution=self._resolution,
            packed=self._packed[self._index],
            label=self.labels,
            class_names=self.class_names,
            split=self.split,
            rotation=self.rotation,
            source_id=self.source_id,
            source=self.source if source is None else source,
        )


def from_arrays(
    grids: np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    *,
    split: Sequence[int] | np.ndarray | None = None,
    rotation: Sequence[int] | np.ndarray | None = None,
    source_id: Sequence[str] | np.ndarray | None = None,
    source: str = "arrays",
) -> VoxelDataset:
    """An in-memory :class:`VoxelDataset` from grids ``(N, R, R, R)`` (bool, 0/1 or [0, 1], filled >= 0.5).

    Defaults: all labels 0 of one class ``"shape"``, all train, rotation 0, source ids ``"0", "1", ...``.
    """
    g = np.asarray(grids)
    if g.ndim != 4 or not (g.shape[1] == g.shape[2] == g.shape[3]) or g.shape[1] == 0:
        raise Gan3dError(f"grids must have shape (N, R, R, R), got {g.shape}")
    n, r = g.shape[0], g.shape[1]
    packed = np.empty((n, _row_bytes(r)), dtype=np.uint8)
    for s in range(0, n, 256):
        packed[s : s + 256] = _pack_rows(g[s : s + 256])
    label = np.zeros(n, np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if class_names is None:
        class_names = ["shape"] if n == 0 or label.max() == 0 else [f"class_{k}" for k in range(label.max() + 1)]
    arrays = dict(
        packed=packed,
        resolution=np.int64(r),
        label=label,
        class_names=np.asarray([str(c) for c in class_names], dtype=str),
        split=np.zeros(n, np.uint8) if split is None else np.asarray([_split_index(s) for s in split], np.uint8),
        rotation=np.zeros(n, np.int16) if rotation is None else np.asarray(rotation, dtype=np.int16),
        source_id=(
            np.asarray([str(i) for i in range(n)], dtype=str)
            if source_id is None
            else np.asarray([str(s) for s in source_id], dtype=str)
        ),
        source=np.asarray(source),
        format=np.asarray(FORMAT),
        format_version=np.int64(FORMAT_VERSION),
    )
    return _dataset_from(arrays, None)


def _write(
    path: _PathLike,
    *,
    resolution: int,
    packed: np.ndarray,
    label: np.ndarray,
    class_names: Sequence[str],
    split: np.ndarray,
    rotation: np.ndarray,
    source_id: Sequence[str] | np.ndarray,
    source: str,
) -> Path:
    path = Path(path)
    n = packed.shape[0]
    arrays = {
        "format": np.asarray(FORMAT),
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
        "resolution": np.asarray(int(resolution), dtype=np.int64),
        "packed": np.ascontiguousarray(packed, dtype=np.uint8),
        "label": np.asarray(label, dtype=np.int64).reshape(n),
        "class_names": np.asarray([str(c) for c in class_names], dtype=str).reshape(len(class_names)),
        "split": np.asarray(split, dtype=np.uint8).reshape(n),
        "rotation": np.asarray(rotation, dtype=np.int16).reshape(n),
        "source_id": np.asarray([str(s) for s in source_id], dtype=str).reshape(n),
        "source": np.asarray(str(source)),
    }
    _validate(arrays, path)  # never write a file load() would refuse
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def save(dataset: VoxelDataset, path: _PathLike) -> Path:
    """Write ``dataset`` (or a view of one) as a prepared file (atomically); returns the path."""
    return dataset.save(path)


def _validate(a: dict[str, np.ndarray], p: Path | None) -> None:
    """Check a prepared file's arrays; Gan3dError naming ``p`` on the first problem."""

    def bad(msg: str) -> Gan3dError:
        return Gan3dError(f"not a valid gan3d voxel dataset: {msg}", p)

    fmt = a["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise bad(f"format is {str(fmt)[:40]!r}, expected {FORMAT!r}")
    for k in ("format_version", "resolution"):
        if a[k].shape != () or a[k].dtype.kind not in "iu":
            raise bad(f"{k} must be an integer scalar")
    version = int(a["format_version"])
    if version > FORMAT_VERSION:
        raise Gan3dError(
            f"dataset format version {version} is newer than this gan3d understands ({FORMAT_VERSION}); "
            "upgrade gan3d or prepare the data again",
            p,
        )
    if version < 1:
        raise bad(f"format_version {version}")
    r = int(a["resolution"])
    if r < 1 or r > 1024:
        raise bad(f"resolution {r}")
    packed = a["packed"]
    if packed.ndim != 2 or packed.dtype != np.uint8 or packed.shape[1] != _row_bytes(r):
        raise bad(
            f"packed has shape {packed.shape} {packed.dtype}, expected (N, {_row_bytes(r)}) uint8 for {r}^3 grids"
        )
    n = packed.shape[0]
    names = a["class_names"]
    if names.ndim != 1 or names.dtype.kind != "U" or names.size == 0:
        raise bad(f"class_names must be a non-empty 1-D string array (got {names.dtype} {names.shape})")
    for k, kind in (("label", "iu"), ("split", "iu"), ("rotation", "iu"), ("source_id", "U")):
        v = a[k]
        if v.shape != (n,) or v.dtype.kind not in kind:
            raise bad(f"{k} has shape {v.shape} {v.dtype}, expected ({n},) to match {n} shapes")
    if n and (a["label"].min() < 0 or a["label"].max() >= names.size):
        raise bad(f"labels outside 0..{names.size - 1}")
    if n and a["split"].max() > 1:
        raise bad("split values other than 0 (train) and 1 (test)")
    if a["source"].shape != () or a["source"].dtype.kind != "U":
        raise bad("source must be a string")


def _dataset_from(a: dict[str, np.ndarray], p: Path | None) -> VoxelDataset:
    _validate(a, p)
    return VoxelDataset(
        a["packed"],
        int(a["resolution"]),
        a["label"].astype(np.int64, copy=False),
        [str(c) for c in a["class_names"]],
        a["split"].astype(np.uint8, copy=False),
        a["rotation"].astype(np.int16, copy=False),
        a["source_id"],
        source=str(a["source"]),
        path=p,
    )


def _read_arrays(path: _PathLike) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.exists():
        raise Gan3dError("dataset file not found", p)
    if not p.is_file():
        raise Gan3dError("dataset path is not a file", p)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise Gan3dError(f"cannot read dataset file ({e.strerror or e})", p) from e
    if magic[:2] != b"PK":
        raise Gan3dError("not a gan3d voxel dataset (not an .npz archive)", p)
    try:
        with np.load(p, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise Gan3dError("not a gan3d voxel dataset (a .npy array, expected a prepared .npz)", p)
            files = set(z.files)
            missing = [k for k in _KEYS if k not in files]
            if missing:
                hint = ""
                if {"X_train", "y_train"} <= files or {"X_test", "y_test"} <= files:
                    hint = "; it is a raw X_train/y_train archive: prepare it first (gan3d prepare)"
                raise Gan3dError(
                    f"not a gan3d voxel dataset (missing keys: {', '.join(missing)}){hint}", p
                )
            return {k: z[k] for k in _KEYS}
    except Gan3dError:
        raise
    except Exception as e:  # BadZipFile, ValueError, OSError, EOFError, zlib.error, ...
        raise Gan3dError(
            f"cannot read dataset file, truncated or corrupt? ({type(e).__name__}: {e})", p
        ) from e


def load(path: _PathLike) -> VoxelDataset:
    """Load and validate a prepared dataset file (see the module docstring).

    Raises Gan3dError naming the file when it is missing, unreadable, truncated, of another format
    or version, or its arrays have wrong shapes or values.
    """
    p = Path(path)
    return _dataset_from(_read_arrays(p), p)
