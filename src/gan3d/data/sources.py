"""The source kinds that ``gan3d data prepare`` reads: detecting which one a path is, listing its
items (class, split, rotation, id, file), and reading them to grids in worker processes.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from gan3d.data.prepared import SPLIT_NAMES, _row_bytes, resample
from gan3d.errors import Gan3dError
from gan3d.voxels import THRESHOLD

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
    from gan3d.io.meshfiles import read_mesh, voxelize_mesh
    from gan3d.io.voxelfiles import read_binvox, read_mat

    if kind == "shapenets":
        return resample(read_mat(path), resolution)
    if kind == "binvox":
        return resample(read_binvox(path), resolution)
    if kind == "mesh":
        vertices, faces = read_mesh(path)
        try:
            return voxelize_mesh(vertices, faces, resolution, up=mesh_up)
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


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them and reports one line (no worker tracebacks)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


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

            pool = multiprocessing.get_context().Pool(min(workers, len(tasks)), initializer=_ignore_sigint)
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
