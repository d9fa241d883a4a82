"""Plotly figures for the gallery: one 3D scene per shape, curves, and the analysis views.

Meshes come from :func:`gan3d.io.meshing.smooth_mesh` (marching cubes) or
:func:`gan3d.io.meshing.blocky_mesh`. For a boolean grid every vertex of either mesh lies on the
half-voxel lattice, so a coordinate ``v`` (voxel units, in ``[-0.5, R + 0.5]``) is stored exactly
as the small integer ``2 v + 1``: ``uint8`` up to R = 126, ``uint16`` above. Triangle corners are
``uint16`` (``uint32`` past 65,535 vertices). plotly.py writes such numpy arrays as base64 typed
arrays, so a 32^3 chair of about 3,000 triangles costs about 40 KB of page. Every scene of a
section uses the same fixed axis range, so shapes keep their relative sizes.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..io.meshing import blocky_mesh, smooth_mesh

SAMPLE_COLOR = "#e69e73"
"""Generated shapes (the colour of gan3d's sample pictures)."""
TRAIN_COLOR = "#9eb8e6"
"""Training shapes (gan3d.render's default colour)."""
BASE_COLOR = "#bdbdbd"
"""Unchanged voxels in the analysis views."""
HIGHLIGHT_COLOR = "#d62728"
"""Changed voxels, strong responses."""

_LIGHTING = dict(ambient=0.45, diffuse=0.75, specular=0.08, roughness=0.6, fresnel=0.1)
_LIGHT_POSITION = dict(x=-0.5e5, y=-0.8e5, z=1.0e5)


def _eye(azimuth: float = 45.0, elevation: float = 25.0, distance: float = 1.75) -> dict[str, float]:
    """Plotly camera eye for gan3d's 3/4 view (azimuth 0 looks at the front, from -y; positive
    azimuth moves the camera to -x; see :mod:`gan3d.render`)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return dict(x=-distance * math.sin(az) * math.cos(el), y=-distance * math.cos(az) * math.cos(el), z=distance * math.sin(el))


def encode_mesh(vertices: np.ndarray, faces: np.ndarray) -> dict[str, np.ndarray]:
    """``vertices`` float (V, 3) on the half-voxel lattice, ``faces`` int (F, 3) -> Mesh3d arrays
    ``x, y, z`` (``2 v + 1``, uint8 or uint16) and ``i, j, k`` (uint16 or uint32)."""
    q = np.rint(2.0 * np.asarray(vertices, np.float64) + 1.0)
    if len(q) and q.min() < 0:
        raise ValueError("mesh vertices below -0.5 voxel: not a gan3d grid mesh")
    cdt = np.uint8 if (len(q) == 0 or q.max() <= 255) else np.uint16
    fdt = np.uint16 if len(q) <= 65535 else np.uint32
    f = np.asarray(faces)
    return dict(
        x=q[:, 0].astype(cdt), y=q[:, 1].astype(cdt), z=q[:, 2].astype(cdt),
        i=f[:, 0].astype(fdt), j=f[:, 1].astype(fdt), k=f[:, 2].astype(fdt),
    )  # fmt: skip


def _mesh(grid: np.ndarray, style: str) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(grid, dtype=bool)
    return smooth_mesh(g) if style == "smooth" else blocky_mesh(g)


def mesh_trace(grid: np.ndarray, *, color: str = SAMPLE_COLOR, style: str = "smooth", name: str = "", **extra):
    """One ``go.Mesh3d`` of a bool (R, R, R) grid (empty grid -> a trace with no triangles)."""
    import plotly.graph_objects as go

    v, f = _mesh(grid, style)
    return go.Mesh3d(
        **encode_mesh(v, f), color=color, name=name, flatshading=(style == "blocky"), lighting=_LIGHTING,
        lightposition=_LIGHT_POSITION, hoverinfo="skip", showscale=False, **extra,
    )  # fmt: skip


def response_trace(grid: np.ndarray, response: np.ndarray, *, name: str = ""):
    """Mesh3d of ``grid`` coloured per vertex from grey (response 0) to red (1): each vertex takes
    the largest ``response`` (float (R, R, R) in [0, 1]) among the up to 8 voxels whose centres
    surround it. Intensities are stored as uint8 0..255."""
    import plotly.graph_objects as go

    v, f = smooth_mesh(np.asarray(grid, dtype=bool))
    r = np.asarray(response, np.float32)
    n = r.shape[0]
    # vertex v sits between voxel centres floor(v - 0.5) and ceil(v - 0.5) on each axis
    lo = np.clip(np.floor(v - 0.5).astype(np.int64), 0, n - 1)
    hi = np.clip(np.ceil(v - 0.5).astype(np.int64), 0, n - 1)
    best = np.zeros(len(v), np.float32)
    for cx in (lo[:, 0], hi[:, 0]):
        for cy in (lo[:, 1], hi[:, 1]):
            for cz in (lo[:, 2], hi[:, 2]):
                best = np.maximum(best, r[cx, cy, cz])
    intensity = np.rint(np.clip(best, 0, 1) * 255).astype(np.uint8)
    return go.Mesh3d(
        **encode_mesh(v, f), intensity=intensity, intensitymode="vertex", cmin=0, cmax=255,
        colorscale=[[0.0, BASE_COLOR], [0.35, BASE_COLOR], [1.0, HIGHLIGHT_COLOR]], showscale=False,
        name=name, lighting=_LIGHTING, lightposition=_LIGHT_POSITION, hoverinfo="skip",
    )  # fmt: skip


def scene_figure(traces: Sequence[Any], resolution: int, *, size: int = 240, frames=None, extra_height: int = 0):
    """A ``go.Figure`` of one 3D scene, axes hidden, the range of the (R, R, R) grid on every axis."""
    import plotly.graph_objects as go

    hidden = dict(visible=False, range=[0, 2 * resolution + 2], autorange=False)
    fig = go.Figure(data=list(traces), frames=frames)
    fig.update_layout(
        width=size, height=size + extra_height, margin=dict(l=0, r=0, t=0, b=0), showlegend=False,
        paper_bgcolor="white", uirevision="keep",
        scene=dict(
            xaxis=hidden, yaxis=hidden, zaxis=hidden, aspectmode="cube",
            camera=dict(eye=_eye(), up=dict(x=0, y=0, z=1), center=dict(x=0, y=0, z=0)),
            domain=dict(x=[0, 1], y=[extra_height / (size + extra_height), 1]),
        ),
    )  # fmt: skip
    return fig


def shape_figure(grid: np.ndarray, *, color: str = SAMPLE_COLOR, size: int = 240):
    """One rotatable shape: bool (R, R, R) grid -> figure."""
    g = np.asarray(grid, dtype=bool)
    return scene_figure([mesh_trace(g, color=color)], g.shape[0], size=size)


def dimension_figure(base: np.ndarray, changed: np.ndarray, *, size: int = 240):
    """``base`` bool (R, R, R) with the voxels of ``changed`` bool (R, R, R) drawn as red cubes
    (those the dimension removes as well as those it adds); the rest of the base in grey."""
    b, c = np.asarray(base, bool), np.asarray(changed, bool)
    traces = [mesh_trace(b & ~c, color=BASE_COLOR, name="unchanged")]
    if c.any():
        traces.append(mesh_trace(c, color=HIGHLIGHT_COLOR, style="blocky", name="changed"))
    return scene_figure(traces, b.shape[0], size=size)


def neuron_figure(grid: np.ndarray, response: np.ndarray, *, size: int = 200):
    """A unit's top shape (bool (R, R, R)) with its response region (float (R, R, R), [0, 1]) in red."""
    g = np.asarray(grid, bool)
    return scene_figure([response_trace(g, response)], g.shape[0], size=size)


def interpolation_figure(frames: np.ndarray, t: np.ndarray, *, size: int = 360):
    """An animation through ``frames`` bool (S, R, R, R): a slider labelled by ``t`` (S,) and a
    play button; one Mesh3d per frame."""
    import plotly.graph_objects as go

    traces = [mesh_trace(f, color=SAMPLE_COLOR, name=f"t={tv:.3g}") for f, tv in zip(frames, t)]
    names = [str(i) for i in range(len(traces))]
    anim = [go.Frame(data=[tr], name=n) for tr, n in zip(traces, names)]
    fig = scene_figure([traces[0]], frames.shape[1], size=size, frames=anim, extra_height=90)
    step_args = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    fig.update_layout(
        sliders=[dict(
            active=0, x=0.03, len=0.94, y=0.0, yanchor="bottom", pad=dict(t=0, b=4),
            currentvalue=dict(prefix="t = ", xanchor="right", font=dict(size=12)),
            steps=[dict(method="animate", label=f"{tv:.2f}", args=[[n], step_args]) for n, tv in zip(names, t)],
        )],
        updatemenus=[dict(
            type="buttons", direction="left", x=0.03, y=0.0, yanchor="bottom", xanchor="left", pad=dict(b=60),
            buttons=[
                dict(label="play", method="animate",
                     args=[None, dict(mode="immediate", fromcurrent=True, frame=dict(duration=250, redraw=True), transition=dict(duration=0))]),
                dict(label="pause", method="animate", args=[[None], step_args]),
            ],
        )],
    )  # fmt: skip
    return fig


# --- curves --------------------------------------------------------------------------------------


def curve_panels(rows: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """``(title, keys)`` for each panel of :data:`gan3d.plots.PANELS` with data in ``rows``; the
    evaluation panel also takes any other numeric ``eval_*`` key."""
    from ..render.plots import PANELS

    present = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    panels = []
    for title, keys in PANELS:
        keys = [k for k in keys if k in present]
        if title.startswith("evaluation"):
            keys += sorted(k for k in present if k.startswith("eval_") and k not in keys)
        if keys:
            panels.append((title, keys))
    return panels


def curve_figure(rows: Sequence[dict], title: str, keys: Sequence[str], *, width: int = 420, height: int = 290):
    """One 2D (SVG) line chart of ``keys`` against ``step`` over stats.jsonl ``rows``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if "step" in r and isinstance(r.get(k), (int, float))]
        if pts:
            xs, ys = zip(*pts)
            fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines+markers" if len(pts) < 30 else "lines", name=k))
    fig.update_layout(
        title=dict(text=title, font=dict(size=13)), width=width, height=height, margin=dict(l=45, r=10, t=36, b=36),
        xaxis=dict(title=dict(text="step")), legend=dict(font=dict(size=10)), paper_bgcolor="white", plot_bgcolor="#f7f7f7",
    )  # fmt: skip
    return fig
