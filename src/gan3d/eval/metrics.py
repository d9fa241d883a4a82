"""Sample-quality metrics for voxel shape generators: distances between shapes and set metrics.

The set metrics are those of Achlioptas et al. 2018 ("Learning representations and generative
models for 3D point clouds") and Yang et al. 2019 (PointFlow): minimum matching distance (MMD),
coverage (COV), 1-nearest-neighbour accuracy (1-NNA) and the Jensen-Shannon divergence (JSD)
between occupancy marginals. They are computed from two distances between shapes:

* **IoU distance** ``1 - |A and B| / |A or B|`` between binary grids (filled = occupancy >= 0.5,
  see :mod:`gan3d.voxels`). Two empty grids are at distance 0; an empty and a non-empty grid at 1.
* **Chamfer distance** between point clouds sampled uniformly by area on each grid's
  marching-cubes surface (:func:`gan3d.geometry.smooth_mesh`), with coordinates divided by R so every
  shape lies in the unit cube ``[0, 1]^3`` whatever the resolution (a fixed, global scale: no
  per-shape centring or rescaling, so position and size differences count). The Chamfer distance is
  PointFlow's ``dl.mean() + dr.mean()``: the mean over the points of each cloud of the *squared*
  Euclidean distance to the nearest point of the other cloud, summed over both directions.

Empty shapes (no voxel >= 0.5) have no surface: :func:`sample_surface_points` returns NaN points for
them and :func:`chamfer_distance_matrix` puts them at distance ``+inf`` from every non-empty shape
and ``0`` from each other. Distance matrices are ``float32``; ``D_sr[i, j]`` is the distance from
sample ``i`` to reference ``j``.

Conventions for the set metrics (S = samples, R = references):

* ``MMD = mean_{r in R} min_{s in S} D(s, r)``, lower is better.
* ``COV = |{argmin_{r} D(s, r) : s in S}| / |R|``: the fraction of references that are the nearest
  reference of at least one sample (ties go to the lowest reference index; a sample whose distances
  are all ``+inf`` covers nothing), higher is better.
* ``1-NNA``: leave-one-out 1-nearest-neighbour classification over ``S u R`` (each shape labelled
  by its set, classified by its nearest *other* shape). A shape whose nearest distance is reached by
  several shapes scores the fraction of them that share its label (the expected accuracy of picking
  one of the tied neighbours at random). 50% is ideal for a generator whose samples are as
  different from the references as two independent draws of the same distribution are; 100% means
  the sets are perfectly separable. Copies score *below* 50%: a sample set identical to the
  reference set (no duplicates inside either set) scores 0%, because every shape's nearest other
  shape is its twin (distance 0) in the other set. Use a held-out reference set.
* ``JSD`` between the mean-occupancy grids of the two sets, each normalised to sum 1 (the voxel
  grid itself plays the role of Achlioptas et al.'s 28^3 grid), in **bits** (log base 2, as in
  their code), so it lies in ``[0, 1]``: 0 for equal marginals, 1 for disjoint supports.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gan3d.errors import Gan3dError
from gan3d.voxels import THRESHOLD

__all__ = [
    "iou_distance_matrix",
    "sample_surface_points",
    "sample_surface_points_batch",
    "chamfer_distance_matrix",
    "mmd",
    "coverage",
    "one_nna",
    "jsd",
    "evaluate_generation",
    "baseline_sets",
    "DISTANCES",
]


DISTANCES = ("iou", "chamfer")
"""Shape distances :func:`evaluate_generation` knows."""


"""Shape distances :func:`evaluate_generation` knows."""


_BLOCK_BYTES = 8 << 20  # working buffer of iou_distance_matrix


def _as_grids(x: Any, what: str) -> np.ndarray:
    """A batch of grids ``(n, R, R, R)`` as a bool array; a VoxelDataset is unpacked whole."""
    if hasattr(x, "grids") and hasattr(x, "resolution"):
        x = x.grids(slice(None)) if len(x) else np.zeros((0,) + (x.resolution,) * 3, dtype=bool)
    g = np.asarray(x)
    if g.ndim == 5 and g.shape[1] == 1:
        g = g[:, 0]
    if g.ndim != 4 or not (g.shape[1] == g.shape[2] == g.shape[3]):
        raise Gan3dError(f"{what}: expected a batch of cubic grids (N, R, R, R), got shape {g.shape}")
    return g if g.dtype == bool else g >= THRESHOLD


def _check_same_resolution(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise Gan3dError(
            f"{what_a} are {a.shape[1]}^3 grids but {what_b} are {b.shape[1]}^3; "
            "bring both to the same resolution first"
        )


def _packed_words(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bit-pack bool grids (n, R, R, R) into uint64 rows; also return each row's popcount (int64)."""
    n = g.shape[0]
    packed = np.packbits(g.reshape(n, -1), axis=1)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.pad(packed, [(0, 0), (0, pad)])
    words = np.ascontiguousarray(packed).view(np.uint64)
    counts = np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    return words, counts


def iou_distance_matrix(A: Any, B: Any, *, progress: bool = False) -> np.ndarray:
    """``1 - IoU`` between every grid of ``A`` (n, R, R, R) and of ``B`` (m, R, R, R): float32 (n, m).

    Grids are binarized at 0.5 (bool grids and VoxelDatasets are taken as they are). The counts are
    popcounts of the AND of bit-packed uint64 rows, in blocks of rows of ``A``;
    ``|A or B| = |A| + |B| - |A and B|``. The distance is ``1 - inter / union`` computed in float64
    and rounded to float32; two empty grids (union 0) are at distance 0, so ``1 - D`` is
    :func:`gan3d.voxels.iou` (both empty = 1) for every pair.
    """
    a = _as_grids(A, "A")
    b = _as_grids(B, "B")
    _check_same_resolution(a, b, "A", "B")
    n, m = a.shape[0], b.shape[0]
    out = np.zeros((n, m), dtype=np.float32)
    if n == 0 or m == 0:
        return out
    wa, ca = _packed_words(a)
    wb, cb = _packed_words(b)
    words = wa.shape[1]
    block = max(1, min(n, _BLOCK_BYTES // (m * words * 8)))
    buf = np.empty((block, m, words), dtype=np.uint64)
    bits = np.empty((block, m, words), dtype=np.uint8)
    from tqdm.auto import tqdm

    with tqdm(total=n, desc="IoU", unit="shape", disable=not progress, leave=False) as bar:
        for i in range(0, n, block):
            k = min(block, n - i)
            np.bitwise_and(wa[i : i + k, None, :], wb[None, :, :], out=buf[:k])
            np.bitwise_count(buf[:k], out=bits[:k])
            inter = bits[:k].sum(axis=2, dtype=np.int64)
            union = ca[i : i + k, None] + cb[None, :] - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                d = 1.0 - inter / union
            d[union == 0] = 0.0
            out[i : i + k] = d
            bar.update(k)
    return out


def _rng(rng: Any) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sample_surface_points(grid: np.ndarray, n: int = 2048, *, rng: Any) -> np.ndarray:
    """``n`` points uniformly distributed by area on the grid's surface: float32 (n, 3).

    The surface is :func:`gan3d.geometry.smooth_mesh` of the *binarized* grid (marching cubes at
    0.5, voxel ``(i, j, k)`` the cube ``[i, i+1] x [j, j+1] x [k, k+1]``); points are divided by R so
    they lie in ``[0, 1]^3``. Triangles are drawn with probability proportional to their area and
    points uniformly inside them. ``rng`` is a :class:`numpy.random.Generator` (or a seed).
    An empty grid gives ``n`` NaN points.
    """
    from gan3d.io.meshing import smooth_mesh

    g = np.asarray(grid)
    if g.ndim != 3 or not (g.shape[0] == g.shape[1] == g.shape[2]):
        raise ValueError(f"expected a cubic 3D grid (R, R, R), got shape {g.shape}")
    rng = _rng(rng)
    filled = g if g.dtype == bool else g >= THRESHOLD
    verts, faces = smooth_mesh(filled.astype(np.float32))
    if len(faces) == 0:
        return np.full((n, 3), np.nan, dtype=np.float32)
    v = verts.astype(np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    cum = np.cumsum(area)
    tri = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    tri = np.minimum(tri, len(faces) - 1)
    u = np.sqrt(rng.random(n))[:, None]
    w = rng.random(n)[:, None]
    pts = (1.0 - u) * a[tri] + u * (1.0 - w) * b[tri] + u * w * c[tri]
    return (pts / g.shape[0]).astype(np.float32)


def sample_surface_points_batch(
    grids: Any, n: int = 2048, *, rng: Any, progress: bool = False
) -> np.ndarray:
    """:func:`sample_surface_points` of every grid of a batch: float32 (N, n, 3)."""
    from tqdm.auto import tqdm

    g = _as_grids(grids, "grids")
    rng = _rng(rng)
    out = np.empty((g.shape[0], n, 3), dtype=np.float32)
    for i in tqdm(range(g.shape[0]), desc="surface points", unit="shape", disable=not progress, leave=False):
        out[i] = sample_surface_points(g[i], n, rng=rng)
    return out


def _shape_clouds(grids: np.ndarray, n: int, seed: int, progress: bool) -> np.ndarray:
    """Surface clouds (N, n, 3), each drawn with a generator seeded by ``seed`` and a hash of the
    shape's voxels: a shape gets the same cloud in whichever set and position it appears."""
    import hashlib

    from tqdm.auto import tqdm

    out = np.empty((grids.shape[0], n, 3), dtype=np.float32)
    bar = tqdm(range(grids.shape[0]), desc="surface points", unit="shape", disable=not progress, leave=False)
    for i in bar:
        digest = hashlib.blake2b(np.packbits(grids[i]).tobytes(), digest_size=16).digest()
        key = [int(seed)] + np.frombuffer(digest, dtype=np.uint32).tolist()
        out[i] = sample_surface_points(grids[i], n, rng=np.random.default_rng(np.random.SeedSequence(key)))
    return out


def _augment(x: "torch.Tensor", side: str) -> "torch.Tensor":  # noqa: F821
    """Rows whose products give squared distances: ``[p, |p|^2, 1] . [-2q, 1, |q|^2] = |p - q|^2``."""
    import torch

    sq = x.square().sum(-1, keepdim=True)
    one = torch.ones_like(sq)
    return torch.cat([x, sq, one], -1) if side == "p" else torch.cat([-2.0 * x, one, sq], -1)


def chamfer_distance_matrix(
    P: np.ndarray, Q: np.ndarray | None, *, batch: int = 4, tile: int = 64, progress: bool = False
) -> np.ndarray:
    """Chamfer distance between every cloud of ``P`` (n, k, 3) and of ``Q`` (m, l, 3): float32 (n, m).

    ``Q=None`` means ``Q = P``: only the upper triangle is computed, the result is mirrored and its
    diagonal is exactly 0.

    ``CD(X, Y) = mean_{x in X} min_{y in Y} |x - y|^2 + mean_{y in Y} min_{x in X} |x - y|^2``
    (squared distances, both directions summed: PointFlow's ``dl.mean(1) + dr.mean(1)``). A cloud
    holding any NaN stands for an empty shape: ``+inf`` from every non-empty cloud, 0 from another
    empty one.

    Computed with torch on the CPU, float32 (brute force, exact up to rounding): one cloud of ``P``
    against ``batch`` clouds of ``Q`` at a time, ``tile`` points of the ``P`` cloud per matrix
    product (the squared distances come from
    one product of ``[p, |p|^2, 1]`` with ``[-2q, 1, |q|^2]``, coordinates centred at the mean of
    all points first to limit rounding; negative rounding results are clamped to 0). Relative
    error against float64 is about 1e-5 for clouds in the unit cube.
    ``progress`` shows a tqdm bar over pairs.
    """
    import torch
    from tqdm.auto import tqdm

    P = np.asarray(P, dtype=np.float32)
    symmetric = Q is None
    Q = P if symmetric else np.asarray(Q, dtype=np.float32)
    for name, x in (("P", P), ("Q", Q)):
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name}: expected point clouds (N, k, 3), got shape {x.shape}")
    n, m = P.shape[0], Q.shape[0]
    out = np.zeros((n, m), dtype=np.float32)
    if n == 0 or m == 0:
        return out
    if P.shape[1] == 0 or Q.shape[1] == 0:
        raise ValueError("point clouds must hold at least one point")
    empty_p = np.isnan(P).any(axis=(1, 2))
    empty_q = np.isnan(Q).any(axis=(1, 2))
    out[empty_p[:, None] != empty_q[None, :]] = np.inf
    ip = np.flatnonzero(~empty_p)
    iq = np.flatnonzero(~empty_q)
    if len(ip) == 0 or len(iq) == 0:
        return out
    k, l = P.shape[1], Q.shape[1]
    centre = np.concatenate([P[ip].reshape(-1, 3), Q[iq].reshape(-1, 3)]).astype(np.float64).mean(0)
    pa = _augment(torch.from_numpy(P[ip] - centre.astype(np.float32)), "p")  # (n', k, 5)
    qa = _augment(torch.from_numpy(Q[iq] - centre.astype(np.float32)), "q")  # (m', l, 5)
    batch = max(1, int(batch))
    tile = max(1, int(tile))
    pt = pa.transpose(1, 2).contiguous()  # (n', 5, k)
    res = torch.empty(len(ip), len(iq), dtype=torch.float64)
    total = len(ip) * (len(ip) + 1) // 2 if symmetric else len(ip) * len(iq)
    with torch.no_grad(), tqdm(
        total=total, desc="Chamfer", unit="pair", disable=not progress, leave=False
    ) as bar:
        for j0 in range(0, len(iq), batch):
            qb = qa[j0 : j0 + batch]
            b = qb.shape[0]
            qf = qb.reshape(b * l, 5)  # points of b clouds of Q, one after the other
            # symmetric: rows i < j0 + b cover every pair i <= j of this block of columns
            for i in range(min(len(ip), j0 + b) if symmetric else len(ip)):
                best_q = torch.full((b * l,), float("inf"))
                sum_p = torch.zeros(b, dtype=torch.float64)
                for t0 in range(0, k, tile):
                    # (b*l, t) squared distances; this orientation (tall, thin output) is about
                    # twice as fast as its transpose for a product over 5 terms
                    d = qf @ pt[i, :, t0 : t0 + tile]
                    sum_p += d.view(b, l, -1).amin(1).clamp_min_(0).sum(1, dtype=torch.float64)
                    torch.minimum(best_q, d.amin(1), out=best_q)
                sum_q = best_q.clamp_min_(0).view(b, l).sum(1, dtype=torch.float64)
                res[i, j0 : j0 + b] = sum_p / k + sum_q / l
                bar.update(min(b, j0 + b - i) if symmetric else b)
    if symmetric:
        res = torch.triu(res, 1)
        res = res + res.T
    out[np.ix_(ip, iq)] = res.numpy().astype(np.float32)
    return out


def _matrix(D: Any, name: str) -> np.ndarray:
    d = np.asarray(D, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D distance matrix, got shape {d.shape}")
    return d


def mmd(D_sr: Any) -> float:
    """Minimum matching distance: mean over references (columns) of the smallest distance to any
    sample (rows). ``D_sr`` is (n_samples, n_ref); lower is better."""
    d = _matrix(D_sr, "D_sr")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError("mmd needs at least one sample and one reference")
    return float(d.min(axis=0).mean())


def coverage(D_sr: Any) -> float:
    """Fraction of references that are the nearest reference of at least one sample.

    ``D_sr`` is (n_samples, n_ref). Ties go to the lowest reference index; a sample at ``+inf``
    from every reference covers nothing. In [0, 1]; higher is better.
    """
    d = _matrix(D_sr, "D_sr")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError("coverage needs at least one sample and one reference")
    nearest = d.argmin(axis=1)[np.isfinite(d.min(axis=1))]
    return float(np.unique(nearest).size / d.shape[1])


def one_nna(D_ss: Any, D_rr: Any, D_sr: Any) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy over samples and references, in [0, 1].

    ``D_ss`` (n, n), ``D_rr`` (m, m), ``D_sr`` (n, m). Every shape is classified by the set of its
    nearest other shape (its own diagonal entry is ignored). When several shapes tie for nearest,
    the shape scores the fraction of them in its own set. The result is the mean score over all
    ``n + m`` shapes: 0.5 is ideal, 1.0 means the sets are separable, and values below 0.5 mean the
    samples copy the references (identical sets without duplicates score 0).
    """
    ss, rr, sr = _matrix(D_ss, "D_ss"), _matrix(D_rr, "D_rr"), _matrix(D_sr, "D_sr")
    n, m = sr.shape
    if ss.shape != (n, n) or rr.shape != (m, m):
        raise ValueError(f"inconsistent shapes: D_ss {ss.shape}, D_rr {rr.shape}, D_sr {sr.shape}")
    if n + m < 2:
        raise ValueError("1-NNA needs at least two shapes")
    full = np.block([[ss, sr], [sr.T, rr]])
    np.fill_diagonal(full, np.inf)
    label = np.r_[np.zeros(n, dtype=bool), np.ones(m, dtype=bool)]
    nearest = full.min(axis=1, keepdims=True)
    tied = full == nearest
    if np.isinf(nearest).any():  # nothing finite: every other shape is equally near
        tied[np.isinf(nearest[:, 0])] = True
        np.fill_diagonal(tied, False)
    same = (tied & (label[None, :] == label[:, None])).sum(axis=1)
    score = same / tied.sum(axis=1)
    return float(score.mean())


def _marginal(g: np.ndarray) -> np.ndarray:
    return g.reshape(g.shape[0], -1).mean(axis=0, dtype=np.float64)


def jsd(samples: Any, refs: Any) -> float:
    """Jensen-Shannon divergence, in bits, between the sets' occupancy marginals.

    Each set's mean occupancy grid (R, R, R) (binarized grids, averaged over the set) is normalised
    to sum 1; ``JSD = H((p + q) / 2) - (H(p) + H(q)) / 2`` with log base 2, in [0, 1]. Returns NaN
    when either set has no filled voxel at all.
    """
    s = _as_grids(samples, "samples")
    r = _as_grids(refs, "references")
    _check_same_resolution(s, r, "samples", "references")
    if s.shape[0] == 0 or r.shape[0] == 0:
        return float("nan")
    p, q = _marginal(s), _marginal(r)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()

    def entropy(x: np.ndarray) -> float:
        x = x[x > 0]
        return float(-(x * np.log2(x)).sum())

    value = entropy(0.5 * (p + q)) - 0.5 * (entropy(p) + entropy(q))
    return float(min(max(value, 0.0), 1.0))


def evaluate_generation(
    samples: Any,
    refs: Any,
    *,
    distances: Sequence[str] = DISTANCES,
    n_points: int = 2048,
    seed: int = 0,
    progress: bool = True,
    chamfer_batch: int = 4,
) -> dict[str, Any]:
    """MMD, COV and 1-NNA under each distance, plus the occupancy JSD, of samples against references.

    ``samples`` and ``refs`` are batches of grids (N, R, R, R) (any occupancy, binarized at 0.5) or
    VoxelDatasets of the same resolution. ``distances`` picks from ``"iou"`` and ``"chamfer"``;
    each shape's Chamfer cloud of ``n_points`` points is drawn with a generator seeded by ``seed``
    and a hash of the shape's voxels, so a shape gets the same cloud whatever set it is in (a
    reference set gets the same clouds whatever it is compared with, and a sample that copies a
    reference is at Chamfer distance 0 from it). Returns::

        {"n_samples": int, "n_ref": int, "n_empty_samples": int, "n_empty_ref": int,
         "iou": {"mmd": float, "cov": float, "1nna": float},
         "chamfer": {"mmd": float, "cov": float, "1nna": float},   # Chamfer in unit-cube units^2
         "jsd": float}

    Raises Gan3dError for an empty reference set, no samples, or mismatched resolutions.
    """
    s = _as_grids(samples, "samples")
    r = _as_grids(refs, "references")
    if r.shape[0] == 0:
        raise Gan3dError("reference set is empty")
    if s.shape[0] == 0:
        raise Gan3dError("no samples")
    _check_same_resolution(s, r, "samples", "references")
    distances = tuple(distances)
    unknown = [d for d in distances if d not in DISTANCES]
    if unknown:
        raise Gan3dError(f"unknown distance {unknown[0]!r} (choose from {', '.join(DISTANCES)})")

    def set_metrics(ss: np.ndarray, rr: np.ndarray, sr: np.ndarray) -> dict[str, float]:
        return {"mmd": mmd(sr), "cov": coverage(sr), "1nna": one_nna(ss, rr, sr)}

    result: dict[str, Any] = {
        "n_samples": int(s.shape[0]),
        "n_ref": int(r.shape[0]),
        "n_empty_samples": int((~s.reshape(s.shape[0], -1).any(axis=1)).sum()),
        "n_empty_ref": int((~r.reshape(r.shape[0], -1).any(axis=1)).sum()),
    }
    if "iou" in distances:
        result["iou"] = set_metrics(
            iou_distance_matrix(s, s, progress=progress),
            iou_distance_matrix(r, r, progress=progress),
            iou_distance_matrix(s, r, progress=progress),
        )
    if "chamfer" in distances:
        ps = _shape_clouds(s, n_points, seed, progress)
        pr = _shape_clouds(r, n_points, seed, progress)
        cd = lambda a, b: chamfer_distance_matrix(a, b, batch=chamfer_batch, progress=progress)  # noqa: E731
        result["chamfer"] = set_metrics(cd(ps, None), cd(pr, None), cd(ps, pr))
    result["jsd"] = jsd(s, r)
    return result


def baseline_sets(train_grids: Any, *, rng: Any) -> dict[str, np.ndarray]:
    """Reference rows for a results table, each an (n, R, R, R) bool batch (n = training set size):

    * ``"train"``: the training set itself (a generator that reproduces its training data);
    * ``"shuffled"``: every training shape with its voxels moved to random positions of the grid
      (a uniform random permutation of the R^3 cells per shape, from ``rng``), keeping its number
      of filled voxels: right occupancy counts, no structure;
    * ``"mean_shape"``: one shape repeated n times: the voxels where the training set's mean
      occupancy is >= 0.5; if none are, the k voxels of highest mean occupancy, k = the median
      filled count of the training shapes (ties go to the lowest C-order index).
    """
    g = _as_grids(train_grids, "training grids")
    n, r = g.shape[0], g.shape[1]
    if n == 0:
        raise Gan3dError("training set is empty")
    rng = _rng(rng)
    flat = g.reshape(n, -1)
    counts = flat.sum(axis=1)
    cells = flat.shape[1]
    shuffled = np.zeros_like(flat)
    for i in range(n):
        shuffled[i, rng.permutation(cells)[: counts[i]]] = True
    mean = flat.mean(axis=0, dtype=np.float64)
    shape = mean >= THRESHOLD
    if not shape.any():
        k = int(np.median(counts))
        shape = np.zeros(cells, dtype=bool)
        if k > 0:
            shape[np.argsort(-mean, kind="stable")[:k]] = True
    return {
        "train": g.copy(),
        "shuffled": shuffled.reshape(g.shape),
        "mean_shape": np.broadcast_to(shape.reshape(r, r, r), g.shape).copy(),
    }
