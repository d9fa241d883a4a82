"""gan3d: 3D-GAN and 3D-VAE-GAN (Wu, Zhang, Xue, Freeman, Tenenbaum, NIPS 2016).

The voxel convention that every reader, writer, model and renderer follows is written down once,
in :mod:`gan3d.voxels`.
"""

__version__ = "0.1.0"
