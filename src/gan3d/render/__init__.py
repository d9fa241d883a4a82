"""Pictures of shapes: :mod:`gan3d.render.raster`, :mod:`gan3d.render.rgb`, :mod:`gan3d.render.plots`.

``gan3d.render(grids)`` (the Python API, :func:`gan3d.api.render`) also works once this package is imported.
"""

import sys as _sys

from gan3d import _CallableModule

_sys.modules[__name__].__class__ = _CallableModule
