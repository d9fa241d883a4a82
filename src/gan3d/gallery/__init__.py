"""``gan3d gallery``: one static HTML page per run or output folder, opened from the file system.

What the page holds: every sample as a rotatable 3D mesh (sampled from ``snapshot.pt`` with
:mod:`gan3d.sampling`, or the grids of a ``samples.npz``), each beside its nearest training shapes
when a dataset is given (:func:`gan3d.eval.generation.nearest_training`), the run's curves from
``stats.jsonl``, and the analysis outputs when present (``interpolation.npz``, ``dimensions.npz``,
``neurons.npz``, each with its ``.json``; see :mod:`gan3d.gallery.sources`).

Choice of 3D view: Plotly (the ``plotly`` package from PyPI, the ``gallery`` extra). It is a
well-kept library whose ``Mesh3d`` trace draws a triangle mesh with lighting and mouse rotation in
WebGL, its Python side writes numpy arrays as compact base64 typed arrays, and the package ships
plotly.js itself, so the page can inline the library (once, about 4.8 MB) and work offline with no
network at all; the same library draws the 2D curves and the interpolation slider. A hand-written
WebGL viewer would be ours to maintain; three.js would need an npm install step beside pip.
Meshes are gan3d's own (:func:`gan3d.io.meshing.smooth_mesh`, marching cubes), stored on the
half-voxel lattice as small integers (:mod:`gan3d.gallery.figures`). The page's loader keeps at
most 12 3D scenes drawn at a time, because browsers allow only about 16 WebGL contexts per page
(:mod:`gan3d.gallery.page`).

Modules: ``sources`` (find and read the folder's files), ``figures`` (plotly figures),
``page`` (HTML and loader), ``build`` (:func:`build_gallery`), ``cli`` (the command).
"""

__all__ = ["build_gallery"]


def __getattr__(name: str):
    # `gan3d --help` imports gallery.cli; plotly, numpy and the model code load only when used.
    if name == "build_gallery":
        from .build import build_gallery

        return build_gallery
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
