"""Trained models shipped inside the package ("the zoo"): weights as safetensors, each with a JSON
model card, listed in ``models/index.json``.

* :func:`names`, :func:`card`, :func:`load` -- read side (:mod:`gan3d.zoo.registry`). ``load(name)``
  returns the same dict ``gan3d.checkpoint.load(snapshot.pt)`` gives for that kind, so every
  ``--checkpoint`` also takes a shipped model's name.
* :func:`gan3d.zoo.package.package` -- the maintainer's tool behind ``gan3d models package``.

``GAN3D_MODELS_DIR`` points the registry at another folder (tests use it); unset, it is the
``models/`` folder of this package.
"""

from gan3d.zoo.registry import card, load, models_dir, names

__all__ = ["card", "load", "models_dir", "names"]
