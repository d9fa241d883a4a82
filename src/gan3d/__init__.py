"""gan3d: 3D-GAN and 3D-VAE-GAN (Wu, Zhang, Xue, Freeman, Tenenbaum, NIPS 2016).

The voxel convention that every reader, writer, model and renderer follows is written down once,
in :mod:`gan3d.voxels`. The Python API (:mod:`gan3d.api`) is available from the package itself --
``gan3d.load``, ``gan3d.sample``, ``gan3d.export``, ``gan3d.render``, ``gan3d.reconstruct`` and
``gan3d.Model`` -- and is imported on first use, so ``import gan3d`` stays cheap (no torch).
"""

__version__ = "0.1.0"

import types as _types

_API = ("Model", "load", "sample", "export", "render", "reconstruct")


class _CallableModule(_types.ModuleType):
    """A submodule that is also the API function of its name: ``gan3d.render`` (the rendering
    package) and ``gan3d.reconstruct`` (the module) can be called as :func:`gan3d.api.render` and
    :func:`gan3d.api.reconstruct`, whichever of the two Python finds under that attribute."""

    def __call__(self, *args, **kwargs):
        from gan3d import api

        return getattr(api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


def __getattr__(name: str):
    if name in _API:
        from gan3d import api

        return getattr(api, name)
    raise AttributeError(f"module 'gan3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
