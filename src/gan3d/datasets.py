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
``packed``         uint8, (N, ceil(R^3 / 8))     the grids, :func:`gan3d.voxels.pack` (C order,
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
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_path
from gan3d.voxels import THRESHOLD, resize

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SPLIT_NAMES",
    "MODELNET10_CLASSES",
    "VoxelDataset",
    "prepare",
    "load",
    "from_arrays",
    "save",
    "info",
    "format_info",
    "resample",
    "augment_batch",
]

FORMAT = "gan3d-voxels"
FORMAT_VERSION = 1
SPLIT_NAMES = ("train", "test")
MODELNET10_CLASSES = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)  # fmt: skip
SUSPICIOUS_FRACTION = 0.9
"""A grid whose largest 26-connected component holds less than this fraction of its voxels is listed."""

_KEYS = (
    "format", "format_version", "resolution", "packed", "label", "class_names", "split", "rotation",
    "source_id", "source",
)  # fmt: skip
_MESH_SUFFIXES = (".off", ".obj", ".stl", ".ply")
_MAT_NAME = re.compile(r"^(?P<cls>.+)_(?P<id>\d+)_(?P<rot>\d+)$")

# ShapeNetCore v1/v2 synset ids -> class names (binvox trees named by synset).
_SHAPENET_SYNSETS = {
    "02691156": "airplane", "02747177": "trash_bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02843684": "birdhouse",
    "02871439": "bookshelf", "02876657": "bottle", "02880940": "bowl", "02924116": "bus",
    "02933112": "cabinet", "02942699": "camera", "02946921": "can", "02954340": "cap",
    "02958343": "car", "02992529": "cellphone", "03001627": "chair", "03046257": "clock",
    "03085013": "keyboard", "03207941": "dishwasher", "03211117": "display", "03261776": "earphone",
    "03325088": "faucet", "03337140": "file_cabinet", "03467517": "guitar", "03513137": "helmet",
    "03593526": "jar", "03624134": "knife", "03636649": "lamp", "03642806": "laptop",
    "03691459": "loudspeaker", "03710193": "mailbox", "03759954": "microphone",
    "03761084": "microwave", "03790512": "motorbike", "03797390": "mug", "03928116": "piano",
    "03938244": "pillow", "03948459": "pistol", "03991062": "flowerpot", "04004475": "printer",
    "04074963": "remote", "04090263": "rifle", "04099429": "rocket", "04225987": "skateboard",
    "04256520": "sofa", "04330267": "stove", "04379243": "table", "04401088": "telephone",
    "04460130": "tower", "04468005": "train", "04530566": "vessel", "04554684": "washer",
}  # fmt: skip

_PathLike = str | os.PathLike


# ----------------------------------------------------------------------------------------------
# resampling


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


# ----------------------------------------------------------------------------------------------
# the dataset


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

    def batches(
        self,
        batch_size: int,
        *,
        rng: np.random.Generator,
        augment: bool = False,
        drop_last: bool = True,
        with_labels: bool = False,
    ) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled float32 ``(B, R, R, R)`` batches (with ``with_labels``: ``(grids, labels)``).

        The order comes from ``rng.permutation``; with ``augment`` every shape is, independently,
        mirrored in x (``grid[::-1]``) with probability 1/2 and then turned about the up axis by
        k * 90 degrees, k uniform in 0..3 (``np.rot90(grid, k, axes=(0, 1))``), all drawn from
        ``rng``: the same rng state gives the same batches. With ``drop_last`` the last incomplete
        batch is skipped (a dataset smaller than ``batch_size`` is then an error).
        """
        batch_size = int(batch_size)
        if batch_size < 1:
            raise Gan3dError(f"batch size must be >= 1, got {batch_size}")
        n = len(self)
        if drop_last and n < batch_size:
            raise Gan3dError(
                f"dataset has {n} shapes, fewer than one batch of {batch_size} (use a smaller batch size)",
                self.path,
            )
        return self._batches(batch_size, rng, augment, drop_last, with_labels)

    def _batches(self, batch_size, rng, augment, drop_last, with_labels):
        n = len(self)
        order = rng.permutation(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            g = self.grids(idx)
            if augment:
                g = augment_batch(g, rng)
            yield (g, self.labels[idx].copy()) if with_labels else g

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


def augment_batch(grids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random exact symmetries of a batch ``(B, R, R, R)``: x mirror (p = 1/2), then k * 90 degrees
    about the up axis (k uniform 0..3), drawn per shape from ``rng``; returns a new array."""
    n = grids.shape[0]
    flips = rng.random(n) < 0.5
    turns = rng.integers(0, 4, size=n)
    out = np.empty_like(grids)
    for i in range(n):
        g = grids[i]
        if flips[i]:
            g = g[::-1]
        out[i] = np.rot90(g, int(turns[i]), axes=(0, 1))
    return out


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


# ----------------------------------------------------------------------------------------------
# writing and loading


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


# ----------------------------------------------------------------------------------------------
# info


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
    from .sampling import format_seeds

    return format_seeds(sorted(values))


# ----------------------------------------------------------------------------------------------
# prepare: sources


@dataclass
class _Item:
    path: str
    cls: str
    split: int
    rotation: int
    source_id: str


def _has(it: Iterable) -> bool:
    for _ in it:
        return True
    return False


def _dirs(p: Path) -> list[Path]:
    try:
        return sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError as e:
        raise Gan3dError(f"cannot list directory ({e.strerror or e})", p) from e


def _files(p: Path, suffixes: Sequence[str]) -> list[Path]:
    if not p.is_dir():
        return []
    return sorted(
        c for c in p.iterdir() if c.suffix.lower() in suffixes and not c.name.startswith(".") and c.is_file()
    )


def _is_shapenets_root(root: Path) -> bool:
    return root.is_dir() and (_has(root.glob("*/*/train/*.mat")) or _has(root.glob("*/*/test/*.mat")))


def _is_mesh_root(root: Path) -> bool:
    if not root.is_dir():
        return False
    for split in SPLIT_NAMES:
        for cls in _dirs(root):
            if _files(cls / split, _MESH_SUFFIXES):
                return True
    return False


def _detect(source: Any) -> tuple[str, Path | None, str | None]:
    """(kind, root, only_class) for a source."""
    if isinstance(source, str) and source == "builtin":
        return "builtin", None, None
    p = Path(source)
    if not p.exists():
        raise Gan3dError("source not found (expected a folder, an .npz file or 'builtin')", p)
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return "npz", p, None
        raise Gan3dError(
            "unsupported source file (expected a folder tree, an .npz with X_train/y_train/X_test/y_test, "
            "or 'builtin')",
            p,
        )
    for root in (p, p / "volumetric_data"):
        if _is_shapenets_root(root):
            return "shapenets", root, None
    if _has(p.glob("*/train/*.mat")) or _has(p.glob("*/test/*.mat")):  # one class folder
        return "shapenets", p.parent, p.name
    subdirs = _dirs(p)
    for root in [p] + (subdirs if len(subdirs) == 1 else []):  # ModelNet10/ModelNet10/<class>/...
        if _is_mesh_root(root):
            return "mesh", root, None
    if _has(p.rglob("*.binvox")):
        return "binvox", p, None
    raise Gan3dError(
        "no dataset found in folder: expected <class>/30/train|test/*.mat (3D ShapeNets), "
        "<class>/train|test/*.off|obj|stl|ply (ModelNet meshes) or *.binvox files below it",
        p,
    )


def _items_shapenets(root: Path, only_class: str | None) -> list[_Item]:
    items = []
    classes = [root / only_class] if only_class else _dirs(root)
    for cdir in classes:
        resdirs = [d for d in _dirs(cdir) if d.name.isdigit()]
        if not resdirs:
            continue
        res = next((d for d in resdirs if d.name == "30"), resdirs[0]) if len(resdirs) > 1 else resdirs[0]
        for s, split in enumerate(SPLIT_NAMES):
            found = []
            for f in _files(res / split, (".mat",)):
                m = _MAT_NAME.match(f.stem)
                if m:
                    found.append(((m["id"], int(m["rot"]), f.stem), _Item(str(f), cdir.name, s, int(m["rot"]), m["id"])))
                else:
                    found.append(((f.stem, 0, f.stem), _Item(str(f), cdir.name, s, 0, f.stem)))
            items += [it for _, it in sorted(found, key=lambda t: t[0])]
    return items


def _items_mesh(root: Path) -> list[_Item]:
    items = []
    for cdir in _dirs(root):
        for s, split in enumerate(SPLIT_NAMES):
            for f in _files(cdir / split, _MESH_SUFFIXES):
                items.append(_Item(str(f), cdir.name, s, 0, f.stem))
    return items


def _items_binvox(root: Path) -> list[_Item]:
    items = []
    for f in sorted(root.rglob("*.binvox")):
        rel = f.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        # <root>/<class>/<model id>/models/x.binvox; the root may also be one class folder
        # (<root>/<model id>/models/x.binvox) or hold the files directly
        in_class_folder = len(rel) == 1 or (len(rel) == 3 and rel[1] == "models")
        cls = root.resolve().name if in_class_folder else rel[0]
        cls = _SHAPENET_SYNSETS.get(cls, cls)
        sid = rel[rel.index("models", 1) - 1] if "models" in rel[1:-1] else f.stem
        items.append(_Item(str(f), cls, 0, 0, sid))
    return items


def _read_one(kind: str, path: str, resolution: int, mesh_up: str) -> np.ndarray:
    from gan3d import formats

    if kind == "shapenets":
        return resample(formats.read_mat(path), resolution)
    if kind == "binvox":
        return resample(formats.read_binvox(path), resolution)
    if kind == "mesh":
        vertices, faces = formats.read_mesh(path)
        try:
            return formats.voxelize_mesh(vertices, faces, resolution, up=mesh_up)
        except Gan3dError as e:
            raise Gan3dError(str(e), None if e.path else path) from e
    raise AssertionError(kind)


def _read_chunk(args: tuple[str, list[str], int, str]):
    """Worker: read, resample and pack a list of files. Returns ("ok", packed) or ("error", path, message)."""
    kind, paths, resolution, mesh_up = args
    out = np.empty((len(paths), _row_bytes(resolution)), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            g = _read_one(kind, path, resolution, mesh_up)
        except Gan3dError as e:
            return ("error", path, str(e) if e.path else f"{path}: {e}")
        except Exception as e:  # pragma: no cover - formats wraps library errors already
            return ("error", path, f"{path}: cannot read ({type(e).__name__}: {e})")
        out[i] = np.packbits(g.reshape(-1))
    return ("ok", out)


def _read_items(
    kind: str, items: list[_Item], resolution: int, mesh_up: str, progress: bool, workers: int
) -> np.ndarray:
    from tqdm import tqdm

    n = len(items)
    packed = np.empty((n, _row_bytes(resolution)), dtype=np.uint8)
    chunk = 4 if kind == "mesh" else 128
    tasks = [
        (kind, [it.path for it in items[s : s + chunk]], resolution, mesh_up) for s in range(0, n, chunk)
    ]
    use_pool = workers > 1 and len(tasks) > 1 and (kind == "mesh" or n >= 1000)
    pool = None
    try:
        if use_pool:
            import multiprocessing

            pool = multiprocessing.get_context().Pool(min(workers, len(tasks)))
            results = pool.imap(_read_chunk, tasks)
        else:
            results = map(_read_chunk, tasks)
        desc = {"shapenets": "reading .mat", "binvox": "reading .binvox", "mesh": "voxelizing meshes"}[kind]
        with tqdm(total=n, desc=desc, unit="file", disable=not progress) as bar:
            pos = 0
            for res in results:
                if res[0] == "error":
                    raise Gan3dError(res[2])
                k = res[1].shape[0]
                packed[pos : pos + k] = res[1]
                pos += k
                bar.update(k)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return packed


def _npz_members(path: Path) -> tuple[zipfile.ZipFile, set[str]]:
    try:
        zf = zipfile.ZipFile(path)
        names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
    except Exception as e:
        raise Gan3dError(f"not a readable npz archive ({type(e).__name__}: {e})", path) from e
    return zf, names


def _npz_small(zf: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    try:
        with zf.open(key + ".npy") as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except Exception as e:
        raise Gan3dError(f"cannot read array {key!r} ({type(e).__name__}: {e})", path) from e


def _npz_grid_chunks(zf: zipfile.ZipFile, key: str, path: Path, chunk: int) -> Iterator[np.ndarray]:
    """Stream an (N, R, R, R) array member of an npz in chunks of grids without loading all of it."""
    fmt = np.lib.format
    try:
        f = zf.open(key + ".npy")
    except Exception as e:
        raise Gan3dError(f"cannot read array {key!r} ({type(e).__name__}: {e})", path) from e
    with f:
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                shape, fortran, dtype = fmt._read_array_header(f, version)  # noqa: SLF001
        except Exception as e:
            raise Gan3dError(f"cannot read array {key!r} ({type(e).__name__}: {e})", path) from e
        if len(shape) != 4 or not (shape[1] == shape[2] == shape[3]) or shape[1] == 0:
            raise Gan3dError(f"array {key!r} has shape {shape}, expected (N, R, R, R)", path)
        if dtype.hasobject or dtype.kind not in "biuf":
            raise Gan3dError(f"array {key!r} has non-numeric dtype {dtype}", path)
        n, r = shape[0], shape[1]
        per = r**3
        if fortran:
            data = _npz_small(zf, key, path)
            for s in range(0, n, chunk):
                yield np.ascontiguousarray(data[s : s + chunk])
            return
        for s in range(0, n, chunk):
            k = min(chunk, n - s)
            want = k * per * dtype.itemsize
            try:
                buf = f.read(want)
            except Exception as e:
                raise Gan3dError(f"cannot read array {key!r} ({type(e).__name__}: {e})", path) from e
            if len(buf) != want:
                raise Gan3dError(f"array {key!r} is truncated", path)
            yield np.frombuffer(buf, dtype=dtype).reshape(k, r, r, r)


def _check_occupancy(g: np.ndarray, key: str, path: Path) -> np.ndarray:
    if g.dtype == bool:
        return g
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        raise Gan3dError(f"array {key!r} contains NaN or infinite values", path)
    lo, hi = g.min(), g.max()
    if lo < 0 or hi > 1:
        raise Gan3dError(f"array {key!r} has values outside [0, 1] (min {lo}, max {hi}); expected occupancy", path)
    return g >= THRESHOLD


# ----------------------------------------------------------------------------------------------
# prepare


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
) -> dict[str, Any]:
    """Make a prepared dataset file ``out`` from ``source`` (see the module docstring for sources).

    ``resolution``: grid size of the file. ``classes`` (names), ``splits`` (``"train"``/``"test"``)
    and ``rotations`` (3D ShapeNets rotation numbers 1..12; other sources have rotation 0) keep only
    the matching shapes. ``mesh_up``: up axis of mesh files (``"z"`` ModelNet, ``"y"`` ShapeNet).
    ``workers``: processes reading files (default: up to 2). For ``"builtin"``, ``per_class`` gives
    the (train, test) shapes per class and ``seed`` the generator seed.

    Returns a summary dict: ``path``, ``source``, ``kind``, ``resolution``, ``count``,
    ``class_names``, ``counts`` (per class and split) and ``seconds``. Raises Gan3dError for an
    unknown source, an unreadable file (naming it) or filters that match nothing.
    """
    t0 = time.perf_counter()
    r = int(resolution)
    if r != resolution or not 1 <= r <= 1024:
        raise Gan3dError(f"resolution must be an integer in 1..1024, got {resolution!r}")
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
            r, classes_l, split_set, rot_set, seed, per_class, progress, filters
        )
        src_text = f"builtin (seed {seed}, {per_class[0]} train + {per_class[1]} test per class)"
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


def _prepare_builtin(r, classes_l, split_set, rot_set, seed, per_class, progress, filters):
    from tqdm import tqdm

    from gan3d import procedural

    if rot_set is not None and 0 not in rot_set:
        raise _no_match(filters, "builtin (built-in shapes have no rotations)")
    kinds = procedural.resolve_classes(classes_l)
    kinds = tuple(c for c in procedural.CLASS_NAMES if c in kinds)
    counts = [int(c) for c in per_class]
    if len(counts) != 2 or min(counts) < 0:
        raise Gan3dError(f"per_class must be (train, test) counts >= 0, got {per_class!r}")
    packed_parts, labels, splits, sids = [], [], [], []
    starts = (0, 1_000_000)  # test shapes come from their own index range
    total = sum(counts[s] * len(kinds) for s in (0, 1) if split_set is None or s in split_set)
    if total == 0:
        raise _no_match(filters, "builtin", procedural.CLASS_NAMES)
    with tqdm(total=total, desc="making shapes", unit="shape", disable=not progress) as bar:
        for s in (0, 1):
            if split_set is not None and s not in split_set:
                continue
            n = counts[s] * len(kinds)
            for c0 in range(0, n, 256):
                k = min(256, n - c0)
                g, lab = procedural.make_dataset(k, r, seed=seed, classes=kinds, start=starts[s] + c0)
                packed_parts.append(_pack_rows(g))
                labels.append(lab)
                splits.append(np.full(k, s, np.uint8))
                sids += [f"builtin-{seed}-{starts[s] + c0 + j}" for j in range(k)]
                bar.update(k)
    packed = np.concatenate(packed_parts)
    label = np.concatenate(labels)
    return packed, label, list(kinds), np.concatenate(splits), np.zeros(len(label), np.int16), sids


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
