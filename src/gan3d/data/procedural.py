"""The built-in dataset: furniture made of boxes and cylinders, generated in code.

The main job needs no download: :func:`make_dataset` makes any number of shapes of the classes in
:data:`CLASS_NAMES` at any resolution. Every shape is an assembly of axis-aligned boxes and
cylinders whose proportions are drawn at random (a chair's width, seat height, back height, leg
thickness, round or square legs, armrests or not, ...), then rasterised analytically: a voxel is
filled when its centre lies inside one of the primitives.

The shapes follow gan3d's voxel convention (:mod:`gan3d.voxels`): they stand on the bottom of the
grid (z = 0, axis 2 up), face -y (chair, sofa and bed backs, bookshelf back panels are at large y),
and are framed like ``binvox -cb``: centred in x and y, the longest side of the bounding box spans
the whole grid. ``binvox -cb`` (ModelNet10's 32^3 npz) also centres z, so a shape wider than tall
floats half way up; ``framing="cb"`` does that too (a bookshelf wider than tall, about one in nine). Parts are made at least ~1.25 voxels thick (cylinders at least 1.5 voxels across)
at the requested resolution and always overlap the part they rest on by a full voxel, so every
shape is one 6-connected component at any resolution.

Determinism: shape ``i`` of seed ``s`` is made from ``np.random.default_rng([s, i])`` and its class
is ``classes[i % len(classes)]``, so it is the same whatever the number of shapes asked for.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np

from gan3d.errors import Gan3dError

__all__ = ["CLASS_NAMES", "FRAMINGS", "make_shape", "make_dataset", "resolve_classes"]


CLASS_NAMES: tuple[str, ...] = ("chair", "table", "stool", "bed", "bookshelf", "cabinet", "sofa")
"""Classes of the built-in dataset, in label order."""


FRAMINGS = ("floor", "cb")
"""``floor``: standing on z = 0 (the default); ``cb``: centred on all three axes, as ``binvox -cb``."""


_MIN_THICKNESS = 1.25  # voxels; any interval this long contains a voxel centre


_MIN_RADIUS = 0.78  # voxels; a disc this wide always contains a voxel centre (needs > sqrt(2)/2)


# A primitive is ("box", x0, x1, y0, y1, z0, z1) or ("cyl", axis, c0, c1, radius, a0, a1):
# a cylinder along ``axis`` whose centre line sits at (c0, c1) in the other two axes (in order)
# and spans [a0, a1] along the axis.
_Prim = tuple


class _Builder:
    """Collects primitives in world units (metres); ``t(v)`` / ``r(v)`` enforce minimum sizes."""

    def __init__(self, rng: np.random.Generator, tmin: float):
        self.rng = rng
        self.tmin = tmin
        self.prims: list[_Prim] = []

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def t(self, v: float) -> float:
        """A thickness at least ``_MIN_THICKNESS`` voxels."""
        return max(v, self.tmin)

    def r(self, v: float) -> float:
        """A radius at least ``_MIN_RADIUS`` voxels."""
        return max(v, self.tmin * _MIN_RADIUS / _MIN_THICKNESS)

    def box(self, x0, x1, y0, y1, z0, z1) -> None:
        self.prims.append(("box", x0, x1, y0, y1, z0, z1))

    def cbox(self, cx, cy, wx, wy, z0, z1) -> None:
        """Box centred at (cx, cy) with widths wx, wy."""
        self.box(cx - wx / 2, cx + wx / 2, cy - wy / 2, cy + wy / 2, z0, z1)

    def vcyl(self, cx, cy, radius, z0, z1) -> None:
        self.prims.append(("cyl", 2, cx, cy, radius, z0, z1))

    def leg(self, cx, cy, width, z0, z1, round_: bool) -> None:
        if round_:
            self.vcyl(cx, cy, self.r(width / 2), z0, z1)
        else:
            self.cbox(cx, cy, width, width, z0, z1)


def _chair(b: _Builder) -> None:
    W, D, H = b.u(0.40, 0.60), b.u(0.38, 0.55), b.u(0.38, 0.50)
    ts, tb, tl = b.t(b.u(0.03, 0.08)), b.t(b.u(0.03, 0.07)), b.t(b.u(0.03, 0.06))
    Hb = b.u(0.30, 0.60)
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    b.box(x0, x1, y0, y1, H - ts, H)  # seat
    # legs
    if b.p(0.2):  # office chair: column and a cross base
        rc = b.r(b.u(0.025, 0.05))
        b.vcyl(0.0, 0.0, rc, 0.0, H)
        L, wb, hb = b.u(0.22, 0.32), b.t(b.u(0.03, 0.06)), b.t(b.u(0.03, 0.06))
        b.cbox(0.0, 0.0, 2 * L, wb, 0.0, hb)
        b.cbox(0.0, 0.0, wb, 2 * L, 0.0, hb)
    else:
        round_ = b.p(0.35)
        inset = b.u(0.0, 0.04)
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.leg(sx * (W / 2 - inset - tl / 2), sy * (D / 2 - inset - tl / 2), tl, 0.0, H, round_)
        if b.p(0.3):  # stretchers between front and back legs
            hs, ws = b.u(0.08, 0.2), b.t(b.u(0.015, 0.03))
            for sx in (-1, 1):
                cx = sx * (W / 2 - inset - tl / 2)
                b.box(cx - ws / 2, cx + ws / 2, -(D / 2 - inset), D / 2 - inset, hs, hs + ws)
    # back, at +y, standing on the seat
    top = H + Hb
    if b.p(0.6):
        bi = b.u(0.0, 0.05)
        b.box(x0 + bi, x1 - bi, y1 - tb, y1, H - ts, top)
    else:  # posts, top rail and slats
        tp = b.t(b.u(0.03, 0.06))
        tr = b.t(b.u(0.04, 0.12))
        b.box(x0, x0 + tp, y1 - tb, y1, H - ts, top)
        b.box(x1 - tp, x1, y1 - tb, y1, H - ts, top)
        b.box(x0, x1, y1 - tb, y1, top - tr, top)
        n = int(b.rng.integers(0, 5))
        for k in range(n):
            cx = x0 + tp + (k + 1) * (W - 2 * tp) / (n + 1)
            wsl = b.t(b.u(0.02, 0.05))
            b.box(cx - wsl / 2, cx + wsl / 2, y1 - tb, y1, H - ts, top)
    # armrests
    if b.p(0.35):
        ha = b.u(0.15, 0.8 * Hb)
        wa, ta = b.t(b.u(0.03, 0.07)), b.t(b.u(0.025, 0.05))
        ya = y0 + b.u(0.0, 0.08)
        tpost = b.t(b.u(0.025, 0.05))
        for side in (-1, 1):
            xa0 = x0 if side < 0 else x1 - wa
            b.box(xa0, xa0 + wa, ya, y1, H + ha - ta, H + ha)  # rest
            b.box(xa0, xa0 + wa, ya, ya + tpost, H - ts, H + ha)  # front post
            b.box(xa0, xa0 + wa, y1 - tb, y1, H - ts, H + ha)  # rear post


def _table(b: _Builder) -> None:
    round_top = b.p(0.4)
    H, tt = b.u(0.55, 0.80), b.t(b.u(0.03, 0.07))
    if round_top:
        R = b.u(0.35, 0.65)
        b.vcyl(0.0, 0.0, R, H - tt, H)
    else:
        W = b.u(0.6, 1.6)
        D = b.u(0.5, min(W, 1.0))
        b.box(-W / 2, W / 2, -D / 2, D / 2, H - tt, H)
    if b.p(0.6 if round_top else 0.2):  # one central leg on a foot
        rc = b.r(b.u(0.04, 0.10))
        b.vcyl(0.0, 0.0, rc, 0.0, H)
        hf = b.t(b.u(0.02, 0.06))
        if b.p(0.5):
            b.vcyl(0.0, 0.0, b.r(b.u(0.18, 0.35)), 0.0, hf)
        else:
            L, w = b.u(0.2, 0.4), b.t(b.u(0.04, 0.08))
            b.cbox(0.0, 0.0, 2 * L, w, 0.0, hf)
            b.cbox(0.0, 0.0, w, 2 * L, 0.0, hf)
        return
    tl = b.t(b.u(0.03, 0.08))
    leg_round = b.p(0.4)
    if round_top:
        ax = ay = R / math.sqrt(2) - tl / 2 - 0.01 - b.u(0.0, 0.1)
    else:
        inset = b.u(0.0, 0.08)
        ax, ay = W / 2 - inset - tl / 2, D / 2 - inset - tl / 2
    ax, ay = max(ax, tl), max(ay, tl)
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.leg(sx * ax, sy * ay, tl, 0.0, H, leg_round)
    if b.p(0.5):  # apron under the top, between the legs
        ha, wa = b.t(b.u(0.05, 0.12)), b.t(b.u(0.015, 0.03))
        ex, ey = ax + tl / 2, ay + tl / 2
        for s in (-1, 1):
            b.box(-ex, ex, s * ay - wa / 2, s * ay + wa / 2, H - tt - ha, H)
            b.box(s * ax - wa / 2, s * ax + wa / 2, -ey, ey, H - tt - ha, H)
    if not round_top and b.p(0.25):  # lower shelf, reaching the legs' outer faces
        hs, ts = b.u(0.08, 0.25), b.t(b.u(0.02, 0.04))
        b.box(-ax - tl / 2, ax + tl / 2, -ay - tl / 2, ay + tl / 2, hs, hs + ts)


def _stool(b: _Builder) -> None:
    H, ts = b.u(0.45, 0.80), b.t(b.u(0.03, 0.07))
    round_seat = b.p(0.6)
    R = b.u(0.15, 0.25)
    if round_seat:
        b.vcyl(0.0, 0.0, R, H - ts, H)
    else:
        b.cbox(0.0, 0.0, 2 * R, 2 * R, H - ts, H)
    if b.p(0.25):  # pedestal
        b.vcyl(0.0, 0.0, b.r(b.u(0.025, 0.05)), 0.0, H)
        b.vcyl(0.0, 0.0, b.r(b.u(0.12, 0.22)), 0.0, b.t(b.u(0.02, 0.05)))
        return
    tl = b.t(b.u(0.025, 0.05))
    leg_round = b.p(0.5)
    if round_seat and b.p(0.4):  # three legs
        d = max(R - tl * 0.75 - 0.01 - b.u(0.0, 0.05), tl)
        for k in range(3):
            a = math.pi / 2 + k * 2 * math.pi / 3
            b.leg(d * math.cos(a), d * math.sin(a), tl, 0.0, H, leg_round)
        return
    a = R / math.sqrt(2) - tl / 2 - 0.005 if round_seat else R - tl / 2 - b.u(0.0, 0.04)
    a = max(a, tl)
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.leg(sx * a, sy * a, tl, 0.0, H, leg_round)
    if b.p(0.5):  # foot rest ring
        hf, w = b.u(0.12, 0.3), b.t(b.u(0.015, 0.03))
        e = a + tl / 2
        for s in (-1, 1):
            b.box(-e, e, s * a - w / 2, s * a + w / 2, hf, hf + w)
            b.box(s * a - w / 2, s * a + w / 2, -e, e, hf, hf + w)


def _bed(b: _Builder) -> None:
    W, L = b.u(0.9, 1.9), b.u(1.9, 2.2)
    hf = b.u(0.2, 0.4)  # frame top
    hl = b.u(0.05, 0.15) if b.p(0.5) else 0.0
    tf = b.t(b.u(0.04, 0.08))
    x0, x1, y0, y1 = -W / 2, W / 2, -L / 2, L / 2
    if hl > 0:
        tl = b.t(b.u(0.04, 0.08))
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.cbox(sx * (W / 2 - tl / 2), sy * (L / 2 - tl / 2), tl, tl, 0.0, hl + tf)
    b.box(x0, x1, y0, y1, hl, hf)  # frame / box spring
    mi = b.u(0.0, 0.04)
    tm = b.u(0.12, 0.3)
    b.box(x0 + mi, x1 - mi, y0 + mi, y1 - mi, hf - tf, hf + tm)  # mattress
    th = b.t(b.u(0.04, 0.1))
    b.box(x0, x1, y1 - th, y1, 0.0 if b.p(0.6) else hl, hf + tm + b.u(0.2, 0.8))  # headboard at +y
    if b.p(0.4):
        b.box(x0, x1, y0, y0 + th, 0.0 if b.p(0.5) else hl, hf + b.u(0.05, 0.4))  # footboard
    if b.p(0.7):  # pillows
        n = 1 if W < 1.3 or b.p(0.3) else 2
        pw, pd, ph = (W - 2 * mi) / n - 0.06, b.u(0.3, 0.45), b.t(b.u(0.06, 0.14))
        top = hf + tm
        for k in range(n):
            cx = x0 + mi + (k + 0.5) * (W - 2 * mi) / n
            b.box(cx - pw / 2, cx + pw / 2, y1 - th - pd, y1 - th + b.tmin, top - b.tmin, top + ph)


def _bookshelf(b: _Builder) -> None:
    W, D, H = b.u(0.4, 1.2), b.u(0.25, 0.45), b.u(0.8, 2.0)
    tp = b.t(b.u(0.015, 0.04))
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    b.box(x0, x0 + tp, y0, y1, 0.0, H)
    b.box(x1 - tp, x1, y0, y1, 0.0, H)
    b.box(x0, x1, y0, y1, H - tp, H)
    kick = b.u(0.03, 0.1) if b.p(0.5) else 0.0
    b.box(x0, x1, y0, y1, kick, kick + tp)
    if kick > 0:
        b.box(x0, x1, y0, y0 + tp, 0.0, kick + tp)
    if b.p(0.8):
        b.box(x0, x1, y1 - tp, y1, 0.0, H)  # back panel
    n = int(b.rng.integers(1, 6))
    lo, hi = kick + tp, H - tp
    si = b.u(0.0, 0.03)
    for k in range(n):
        z = lo + (k + 1) * (hi - lo) / (n + 1)
        b.box(x0, x1, y0 + si, y1, z - tp / 2, z + tp / 2)
    if W > 0.7 and b.p(0.35):  # vertical divider
        cx = b.u(-W / 5, W / 5)
        b.box(cx - tp / 2, cx + tp / 2, y0 + si, y1, kick, H)


def _cabinet(b: _Builder) -> None:
    W, D, H = b.u(0.4, 1.4), b.u(0.35, 0.6), b.u(0.5, 1.2)
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    hl = b.u(0.05, 0.2) if b.p(0.4) else 0.0
    if hl > 0:
        tl = b.t(b.u(0.03, 0.06))
        round_ = b.p(0.5)
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.leg(sx * (W / 2 - tl), sy * (D / 2 - tl), tl, 0.0, hl + b.tmin, round_)
    b.box(x0, x1, y0, y1, hl, H)  # body
    if b.p(0.5):  # overhanging top
        o, tt = b.u(0.01, 0.04), b.t(b.u(0.02, 0.04))
        b.box(x0 - o, x1 + o, y0 - o, y1, H - b.tmin, H + tt)
    rows = int(b.rng.integers(1, 5))
    cols = 1 if W < 0.7 else int(b.rng.integers(1, 3))
    hw, hh, hd = b.u(0.04, 0.15), b.t(b.u(0.015, 0.03)), b.t(b.u(0.015, 0.03))
    for i in range(rows):
        z = hl + (H - hl) * (i + 0.7) / rows
        for j in range(cols):
            cx = x0 + (j + 0.5) * W / cols
            b.box(cx - hw / 2, cx + hw / 2, y0 - hd, y0 + b.tmin, z - hh / 2, z + hh / 2)  # handle


def _sofa(b: _Builder) -> None:
    W, D = b.u(1.4, 2.3), b.u(0.75, 1.0)
    hs, ht = b.u(0.38, 0.48), b.u(0.7, 0.95)  # seat height, back top
    tb = b.t(b.u(0.12, 0.25))
    x0, x1, y0, y1 = -W / 2, W / 2, -D / 2, D / 2
    hl = b.u(0.04, 0.12) if b.p(0.5) else 0.0
    if hl > 0:
        tl = b.t(b.u(0.03, 0.06))
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.cbox(sx * (W / 2 - tl), sy * (D / 2 - tl), tl, tl, 0.0, hl + b.tmin)
    hbase = hs - b.u(0.1, 0.18)
    b.box(x0, x1, y0, y1, hl, hbase)  # base
    b.box(x0, x1, y1 - tb, y1, hl, ht)  # back at +y
    wa = 0.0
    if b.p(0.85):  # arms
        wa, ha = b.t(b.u(0.08, 0.25)), b.u(0.5, 0.7)
        ha = min(ha, ht)
        b.box(x0, x0 + wa, y0, y1, hl, ha)
        b.box(x1 - wa, x1, y0, y1, hl, ha)
    # seat cushions and back cushions between the arms
    n = int(b.rng.integers(1, 4))
    cx0, cx1 = x0 + wa, x1 - wa
    cd = b.u(0.0, 0.05)
    for k in range(n):
        a = cx0 + k * (cx1 - cx0) / n
        c = cx0 + (k + 1) * (cx1 - cx0) / n
        b.box(a, c, y0 + cd, y1 - tb + b.tmin, hbase - b.tmin, hs)
        if b.p(0.6):
            tc = b.t(b.u(0.08, 0.15))
            b.box(a, c, y1 - tb - tc, y1 - tb + b.tmin, hs - b.tmin, ht - b.u(0.0, 0.08))
    if b.p(0.15):  # chaise longue on one side, towards the front
        side = -1 if b.p(0.5) else 1
        ext, wc = b.u(0.4, 0.7), b.u(0.5, 0.8)
        xa, xb = (x0, x0 + wc) if side < 0 else (x1 - wc, x1)
        b.box(xa, xb, y0 - ext, y0 + b.tmin, 0.0, hs)


_BUILDERS: dict[str, Callable[[_Builder], None]] = {
    "chair": _chair,
    "table": _table,
    "stool": _stool,
    "bed": _bed,
    "bookshelf": _bookshelf,
    "cabinet": _cabinet,
    "sofa": _sofa,
}


assert tuple(_BUILDERS) == CLASS_NAMES


def _bounds(prims: Sequence[_Prim]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for p in prims:
        if p[0] == "box":
            plo = np.array([p[1], p[3], p[5]])
            phi = np.array([p[2], p[4], p[6]])
        else:
            _, axis, c0, c1, rad, a0, a1 = p
            others = [k for k in range(3) if k != axis]
            plo, phi = np.empty(3), np.empty(3)
            plo[axis], phi[axis] = a0, a1
            plo[others[0]], phi[others[0]] = c0 - rad, c0 + rad
            plo[others[1]], phi[others[1]] = c1 - rad, c1 + rad
        lo = np.minimum(lo, plo)
        hi = np.maximum(hi, phi)
    return lo, hi


def _index_range(a: float, b: float, r: int) -> tuple[int, int]:
    """Indices i (clipped to [0, r)) whose voxel centre i + 0.5 lies in [a, b]; as a half-open range."""
    i0 = max(0, math.ceil(a - 0.5 - 1e-9))
    i1 = min(r, math.floor(b - 0.5 + 1e-9) + 1)
    return i0, i1


def _rasterise(prims: Sequence[_Prim], r: int, scale: float, shift: np.ndarray) -> np.ndarray:
    grid = np.zeros((r, r, r), dtype=bool)
    for p in prims:
        if p[0] == "box":
            lo = np.array([p[1], p[3], p[5]]) * scale + shift
            hi = np.array([p[2], p[4], p[6]]) * scale + shift
            (a0, a1), (b0, b1), (c0, c1) = (_index_range(lo[k], hi[k], r) for k in range(3))
            if a0 < a1 and b0 < b1 and c0 < c1:
                grid[a0:a1, b0:b1, c0:c1] = True
            continue
        _, axis, q0, q1, rad, s0, s1 = p
        others = [k for k in range(3) if k != axis]
        q0 = q0 * scale + shift[others[0]]
        q1 = q1 * scale + shift[others[1]]
        rad = rad * scale
        s0 = s0 * scale + shift[axis]
        s1 = s1 * scale + shift[axis]
        sl = [slice(None)] * 3
        ia0, ia1 = _index_range(s0, s1, r)
        i00, i01 = _index_range(q0 - rad, q0 + rad, r)
        i10, i11 = _index_range(q1 - rad, q1 + rad, r)
        if not (ia0 < ia1 and i00 < i01 and i10 < i11):
            continue
        u = np.arange(i00, i01) + 0.5 - q0
        v = np.arange(i10, i11) + 0.5 - q1
        disc = (u[:, None] ** 2 + v[None, :] ** 2) <= rad * rad + 1e-9
        sl[axis] = slice(ia0, ia1)
        sl[others[0]] = slice(i00, i01)
        sl[others[1]] = slice(i10, i11)
        shape = [1, 1, 1]
        shape[others[0]], shape[others[1]] = disc.shape
        block = grid[tuple(sl)]
        block |= disc.reshape(shape)
    return grid


def _check_kind(kind: str) -> str:
    if kind not in _BUILDERS:
        raise Gan3dError(f"unknown built-in class {kind!r} (classes: {', '.join(CLASS_NAMES)})")
    return kind


def make_shape(kind: str, rng: np.random.Generator, resolution: int, framing: str = "floor") -> np.ndarray:
    """One random shape of class ``kind`` as a bool ``(R, R, R)`` grid (see the module docstring).

    Draws its proportions from ``rng``; the same rng state always gives the same shape, at every
    resolution the same proportions. ``framing``: one of :data:`FRAMINGS`.
    """
    if framing not in FRAMINGS:
        raise Gan3dError(f"unknown framing {framing!r} (expected {' or '.join(FRAMINGS)})")
    builder = _BUILDERS[_check_kind(kind)]
    r = int(resolution)
    if r != resolution or r < 8:
        raise Gan3dError(f"resolution must be an integer >= 8, got {resolution!r}")
    state = rng.bit_generator.state
    tmin = 0.0
    for _ in range(3):  # parts thick enough at the final scale: the scale depends on the parts
        rng.bit_generator.state = state
        b = _Builder(rng, tmin)
        builder(b)
        lo, hi = _bounds(b.prims)
        scale = r / float((hi - lo).max())
        tmin = _MIN_THICKNESS / scale
    shift = np.array(
        [r / 2 - (lo[0] + hi[0]) / 2 * scale, r / 2 - (lo[1] + hi[1]) / 2 * scale,
         -lo[2] * scale if framing == "floor" else r / 2 - (lo[2] + hi[2]) / 2 * scale]
    )
    return _rasterise(b.prims, r, scale, shift)


def resolve_classes(classes: Iterable[str | int] | None) -> tuple[str, ...]:
    """Built-in class names from names or indices into :data:`CLASS_NAMES` (None: all of them)."""
    if classes is None:
        return CLASS_NAMES
    out = []
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= int(c) < len(CLASS_NAMES):
                raise Gan3dError(f"built-in class index {c} out of range 0..{len(CLASS_NAMES) - 1}")
            c = CLASS_NAMES[int(c)]
        out.append(_check_kind(str(c)))
    if not out:
        raise Gan3dError("no built-in classes selected")
    if len(set(out)) != len(out):
        raise Gan3dError(f"built-in classes listed twice: {', '.join(out)}")
    return tuple(out)


def make_dataset(
    n: int,
    resolution: int,
    *,
    seed: int = 0,
    classes: Iterable[str | int] | None = None,
    start: int = 0,
    framing: str = "floor",
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` built-in shapes: ``(grids bool (n, R, R, R), labels int64 (n,))``.

    Shape ``i`` (``i = start .. start + n - 1``) is of class ``classes[i % len(classes)]`` and made
    from ``np.random.default_rng([seed, i])``; labels index ``classes`` (default
    :data:`CLASS_NAMES`, given as names or indices into it). ``framing``: see :func:`make_shape`.
    """
    kinds = resolve_classes(classes)
    n = int(n)
    if n < 0:
        raise Gan3dError(f"number of shapes must be >= 0, got {n}")
    r = int(resolution)
    grids = np.empty((n, r, r, r), dtype=bool)
    labels = np.empty(n, dtype=np.int64)
    for j in range(n):
        i = start + j
        k = i % len(kinds)
        grids[j] = make_shape(kinds[k], np.random.default_rng([int(seed), i]), r, framing)
        labels[j] = k
    return grids, labels
