"""Reading and writing voxel grids and meshes in the formats users have, in gan3d's voxel convention.

Every reader returns grids in the convention of :mod:`gan3d.voxels`: a cubic ``bool`` array
``grid[x, y, z]`` of shape ``(R, R, R)``, axis 2 up, objects facing -y (a chair's back at large y).
What each source needs to get there:

* ModelNet10 npz (``binvox -cb`` grids) and plain ``.npy``/``.npz`` grids: already in the convention.
* ``.binvox``: the run-length decoded bytes, reshaped in C order to ``(d, d, d)``, are kept as they
  are. binvox stores voxels with y fastest, then z, then x, so this raw order is
  ``array[x, z_binvox, y_binvox]``: binvox's (and ShapeNet's) up axis y lands on our axis 2 and
  ShapeNet chair backs (+z in the mesh frame) land on +y. :func:`write_binvox` writes the inverse,
  so ``read_binvox(write_binvox(g))`` is exact.
* 3D ShapeNets ``.mat`` volumes (key ``instance``, 30^3): axis 2 is already up, but rotation 1 of
  the release has the back at +x. :func:`read_mat` turns every volume by +90 degrees about the up
  axis (``np.rot90(v, 1, axes=(0, 1))``, +x goes to +y), so rotation 1 faces -y like the other
  sources; rotation ``r`` then lies ``(r - 1) * 30`` degrees from the convention.
* Meshes (``.off .obj .stl .ply``) are voxelized solid by :func:`voxelize_mesh`; ``mesh_up`` names
  the mesh's vertical axis (``"z"`` for ModelNet OFF, ``"y"`` for ShapeNet OBJ).

Every reader raises :class:`gan3d.errors.Gan3dError` (one line, naming the file) for a missing,
empty, truncated or malformed file, a wrong key or a wrong shape; library exceptions are wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.fileio import atomic_open
from gan3d.io.files import (
    DEFAULT_MESH_RESOLUTION,
    MAX_GRID_EDGE,
    MESH_SUFFIXES,
    VOXEL_SUFFIXES,
    _check_file,
    _PathLike,
    _read_bytes,
    _to_grid,
)
from gan3d.io.meshfiles import read_mesh, voxelize_mesh
from gan3d.voxels import THRESHOLD, resize


def read_mat(path: _PathLike, *, key: str = "instance") -> np.ndarray:
    """Read a 3D ShapeNets volume (MATLAB v5 ``.mat``, e.g. key ``instance``, (30, 30, 30) int8 0/1).

    Returns a bool ``(R, R, R)`` grid in gan3d's convention: the stored volume (axis 2 already up)
    turned +90 degrees about the up axis, ``np.rot90(v, 1, axes=(0, 1))``, so that rotation 1 of the
    release (back at +x as stored) has its back at +y. Raises Gan3dError for a missing, empty,
    truncated or non-MAT file, a missing ``key`` (the message lists the keys present), or an array
    that is not a cubic 3D occupancy grid.
    """
    import scipy.io

    p = _check_file(path)
    try:
        data = scipy.io.loadmat(str(p))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5)
        raise Gan3dError(f"unsupported MAT file version ({e}); save it as MATLAB v5 (-v7 or older)", p) from e
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, ... on broken files
        raise Gan3dError(f"not a readable MAT file ({type(e).__name__}: {e})", p) from e
    keys = sorted(k for k in data if not k.startswith("__"))
    if not keys:
        raise Gan3dError("MAT file holds no variables (empty or truncated)", p)
    if key not in data:
        raise Gan3dError(f"no variable {key!r} in MAT file (variables: {', '.join(keys) or 'none'})", p)
    grid = _to_grid(data[key], p, f"variable {key!r}")
    return np.ascontiguousarray(np.rot90(grid, 1, axes=(0, 1)))


@dataclass(frozen=True)
class BinvoxHeader:
    """Header of a ``.binvox`` file.

    ``dims`` is the grid size per axis as written on the ``dim`` line; ``translate`` and ``scale``
    map voxel indices back to the model's coordinates (binvox's ``-cb``/normalization), defaulting to
    (0, 0, 0) and 1.0 when the lines are absent. ``data_offset`` is the byte offset of the
    run-length data.
    """

    dims: tuple[int, int, int]
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    data_offset: int = 0


_MAX_HEADER_LINES = 64


def _parse_binvox_header(raw: bytes, p: Path) -> BinvoxHeader:
    pos = 0

    def next_line() -> str | None:
        nonlocal pos
        end = raw.find(b"\n", pos)
        if end < 0:
            return None
        line = raw[pos:end]
        pos = end + 1
        try:
            return line.decode("ascii").strip()
        except UnicodeDecodeError:
            raise Gan3dError("malformed binvox header (non-ASCII header line)", p) from None

    first = next_line()
    if first is None or not first.startswith("#binvox"):
        raise Gan3dError("not a binvox file (first line must be '#binvox 1')", p)
    dims = None
    translate = (0.0, 0.0, 0.0)
    scale = 1.0
    for _ in range(_MAX_HEADER_LINES):
        line = next_line()
        if line is None:
            raise Gan3dError("truncated binvox header (no 'data' line)", p)
        if not line or line.startswith("#"):
            continue
        word, *rest = line.split()
        try:
            if word == "data":
                break
            if word == "dim":
                if len(rest) != 3:
                    raise ValueError
                dims = tuple(int(v) for v in rest)
            elif word == "translate":
                if len(rest) != 3:
                    raise ValueError
                translate = tuple(float(v) for v in rest)
            elif word == "scale":
                if len(rest) != 1:
                    raise ValueError
                scale = float(rest[0])
            else:
                raise Gan3dError(f"malformed binvox header (unknown line {line[:40]!r})", p)
        except ValueError:
            raise Gan3dError(f"malformed binvox header line {line[:40]!r}", p) from None
    else:
        raise Gan3dError("malformed binvox header (no 'data' line)", p)
    if dims is None:
        raise Gan3dError("malformed binvox header (no 'dim' line)", p)
    if dims[0] <= 0 or not (dims[0] == dims[1] == dims[2]):
        raise Gan3dError(f"binvox grid is not cubic (dim {dims[0]} {dims[1]} {dims[2]})", p)
    if dims[0] > MAX_GRID_EDGE:
        raise Gan3dError(f"binvox grid {dims[0]}^3 is larger than the {MAX_GRID_EDGE}^3 gan3d reads", p)
    return BinvoxHeader(dims=dims, translate=translate, scale=scale, data_offset=pos)  # type: ignore[arg-type]


def read_binvox_header(path: _PathLike) -> BinvoxHeader:
    """Parse only the header of a ``.binvox`` file (see :class:`BinvoxHeader`)."""
    p = _check_file(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(4096)
    except OSError as e:
        raise Gan3dError(f"cannot read file ({e.strerror or e})", p) from e
    return _parse_binvox_header(raw, p)


def read_binvox(path: _PathLike, *, with_header: bool = False) -> np.ndarray | tuple[np.ndarray, BinvoxHeader]:
    """Read a ``.binvox`` file into a bool ``(d, d, d)`` grid.

    The grid is the C-order reshape of the run-length decoded voxels, i.e. binvox's raw order
    ``array[x, z_binvox, y_binvox]``, which *is* gan3d's ``(x, y, z)`` with binvox's y as up (axis 2):
    ShapeNet models voxelized by binvox come out upright with chair backs at +y. With
    ``with_header=True`` returns ``(grid, BinvoxHeader)``.

    Raises Gan3dError for a missing or empty file, a bad first line, a missing or non-cubic ``dim``,
    run values other than 0/1, or run lengths that do not sum exactly to d^3 (truncated or overlong
    data).
    """
    p = _check_file(path)
    raw = _read_bytes(p)
    header = _parse_binvox_header(raw, p)
    d = header.dims[0]
    n = d**3
    data = np.frombuffer(raw, dtype=np.uint8, offset=header.data_offset)
    if data.size % 2:
        raise Gan3dError(f"truncated binvox data (odd number of bytes, {data.size}, after the header)", p)
    values = data[0::2]
    counts = data[1::2].astype(np.int64)
    total = int(counts.sum())
    if total != n:
        kind = "truncated" if total < n else "overlong"
        raise Gan3dError(f"{kind} binvox data: runs cover {total} voxels, expected {d}^3 = {n}", p)
    if values.size and values.max() > 1:
        raise Gan3dError(f"malformed binvox data: run value {int(values.max())} (expected 0 or 1)", p)
    grid = np.repeat(values.astype(bool), counts).reshape(d, d, d)
    return (grid, header) if with_header else grid


def _run_length_encode(flat: np.ndarray) -> bytes:
    """binvox RLE of a 1D bool array: (value, count) byte pairs, runs split to at most 255."""
    flat = flat.astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [flat.size])))
    vals = flat[starts]
    pieces = (lengths + 254) // 255  # runs of at most 255
    vals = np.repeat(vals, pieces)
    counts = np.full(vals.size, 255, dtype=np.int64)
    last = np.cumsum(pieces) - 1
    counts[last] = lengths - 255 * (pieces - 1)
    out = np.empty(2 * vals.size, dtype=np.uint8)
    out[0::2] = vals
    out[1::2] = counts
    return out.tobytes()


def write_binvox(
    path: _PathLike,
    grid: np.ndarray,
    *,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float = 1.0,
) -> None:
    """Write a cubic ``(d, d, d)`` grid (bool, 0/1 or [0, 1] occupancy, filled at >= 0.5) as binvox.

    Inverse of :func:`read_binvox`: the grid is written in binvox's raw order unchanged, so reading
    it back returns the same grid. The file is written atomically.
    """
    g = np.asarray(grid)
    if g.ndim != 3 or not (g.shape[0] == g.shape[1] == g.shape[2]) or g.shape[0] == 0:
        raise Gan3dError(f"cannot write a grid of shape {g.shape} as binvox (expected (d, d, d))", path)
    g = g >= THRESHOLD
    d = g.shape[0]
    t = tuple(float(v) for v in translate)
    if len(t) != 3:
        raise Gan3dError("binvox translate must have 3 values", path)
    header = (
        f"#binvox 1\ndim {d} {d} {d}\ntranslate {t[0]!r} {t[1]!r} {t[2]!r}\nscale {float(scale)!r}\ndata\n"
    ).encode("ascii")
    with atomic_open(path, "wb") as f:
        f.write(header)
        f.write(_run_length_encode(g.reshape(-1)))


def read_array(path: _PathLike, *, key: str | None = None) -> np.ndarray:
    """Read one grid from ``.npy`` or ``.npz`` as a bool ``(R, R, R)`` array (already our convention).

    For ``.npz`` give ``key``, or leave it None when the archive holds exactly one array. The array
    must be cubic 3D, numeric (or bool), finite and within [0, 1]; filled is >= 0.5. Pickled object
    arrays are refused.
    """
    p = _check_file(path)
    suffix = p.suffix.lower()
    _refuse_large_arrays(p)
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as e:
        raise Gan3dError(f"not a readable numpy file ({type(e).__name__}: {e})", p) from e
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = sorted(loaded.files)
            if key is None:
                if len(names) != 1:
                    raise Gan3dError(
                        f"npz archive holds {len(names)} arrays ({', '.join(names) or 'none'}); pass key=", p
                    )
                key = names[0]
            if key not in names:
                raise Gan3dError(f"no array {key!r} in npz archive (arrays: {', '.join(names) or 'none'})", p)
            try:
                arr = loaded[key]
            except Exception as e:
                raise Gan3dError(f"cannot read array {key!r} ({type(e).__name__}: {e})", p) from e
        return _to_grid(arr, p, f"array {key!r}")
    if suffix == ".npz":
        raise Gan3dError("not an npz archive", p)
    return _to_grid(loaded, p, "array")


def _array_headers(p: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the arrays in a ``.npy`` file or ``.npz`` archive, read from their headers only
    (empty if the file is neither; :func:`read_array` then reports it)."""
    import zipfile

    fmt = np.lib.format

    def shape_of(f) -> tuple[int, ...]:
        version = fmt.read_magic(f)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        return tuple(reader(f)[0])

    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                out = {}
                for name in zf.namelist():
                    if name.endswith(".npy"):
                        with zf.open(name) as f:
                            out[name[:-4]] = shape_of(f)
                return out
        with open(p, "rb") as f:
            return {"array": shape_of(f)}
    except Exception:  # not numpy, or a broken header: np.load reports it
        return {}


def _refuse_large_arrays(p: Path) -> None:
    """Gan3dError if an array of ``p`` holds more than MAX_GRID_EDGE^3 values, before loading it."""
    for name, shape in _array_headers(p).items():
        if int(np.prod(shape, dtype=object)) > MAX_GRID_EDGE**3:
            raise Gan3dError(
                f"array {name!r} of shape {shape} is larger than the {MAX_GRID_EDGE}^3 grid gan3d reads", p
            )


def write_array(path: _PathLike, grid: np.ndarray, *, key: str = "grid") -> None:
    """Write a cubic grid as bool ``.npy``, or as compressed ``.npz`` under ``key``; atomic."""
    p = Path(path)
    g = np.asarray(grid)
    if g.ndim != 3 or not (g.shape[0] == g.shape[1] == g.shape[2]):
        raise Gan3dError(f"cannot write a grid of shape {g.shape} (expected (R, R, R))", p)
    g = g >= THRESHOLD
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise Gan3dError(f"unknown array suffix {p.suffix!r} (expected .npy or .npz)", p)
    with atomic_open(p, "wb") as f:
        if suffix == ".npy":
            np.save(f, g)
        else:
            np.savez_compressed(f, **{key: g})


def read_voxels(
    path: _PathLike,
    *,
    resolution: int | None = None,
    key: str | None = None,
    mesh_up: str = "z",
) -> np.ndarray:
    """Read any supported file as a bool ``(R, R, R)`` grid in gan3d's convention.

    Grids (:data:`VOXEL_SUFFIXES`: ``.mat`` via :func:`read_mat`, ``.binvox``, ``.npy``/``.npz`` via
    :func:`read_array`) keep their size unless ``resolution`` is given, in which case they are
    resampled with :func:`gan3d.voxels.resize`. Meshes (:data:`MESH_SUFFIXES`) are voxelized solid at
    ``resolution`` (default :data:`DEFAULT_MESH_RESOLUTION`) with ``up=mesh_up``. ``key`` selects the
    variable of a ``.mat`` (default ``instance``) or the array of an ``.npz``. Raises Gan3dError
    naming the file for an unknown suffix or any reading problem.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if resolution is not None and (int(resolution) != resolution or not 1 <= resolution <= MAX_GRID_EDGE):
        raise Gan3dError(f"resolution must be an integer in 1..{MAX_GRID_EDGE}, got {resolution!r}", p)
    if suffix in MESH_SUFFIXES:
        vertices, faces = read_mesh(p)
        try:
            return voxelize_mesh(
                vertices, faces, DEFAULT_MESH_RESOLUTION if resolution is None else resolution, up=mesh_up
            )
        except Gan3dError as e:
            if e.path is None:
                raise Gan3dError(str(e), p) from e
            raise
    if suffix == ".mat":
        grid = read_mat(p) if key is None else read_mat(p, key=key)
    elif suffix == ".binvox":
        grid = read_binvox(p)
    elif suffix in (".npy", ".npz"):
        grid = read_array(p, key=key)
    else:
        known = ", ".join(VOXEL_SUFFIXES + MESH_SUFFIXES)
        raise Gan3dError(f"unknown file type {p.suffix or '(no suffix)'!r} (expected one of {known})", p)
    if resolution is not None and resolution != grid.shape[0]:
        grid = resize(grid, int(resolution))
    return grid
