"""Image input: any JPEG or PNG (or an array) turned into the square RGB float image an encoder
takes, resized and centre-cropped as training images were.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from gan3d.errors import Gan3dError

MIN_IMAGE_SIDE = 16
"""Images smaller than this on either side are rejected by :func:`prepare_image`."""


def prepare_image(path_or_array: Any, *, size: int = 256) -> np.ndarray:
    """A photograph as network input: ``float32 (3, size, size)`` in ``[0, 1]``.

    Reads any image PIL reads (JPEG, PNG, ...), applies its EXIF orientation, converts grayscale,
    palette, CMYK and 16-bit images to RGB and composites transparency over white, scales the short
    side to ``size`` (bicubic) and crops the centre square. Also takes an ``(H, W)``, ``(H, W, 3)``
    or ``(H, W, 4)`` array (uint8, or float in [0, 1]). An unreadable, empty or truncated file, or
    an image smaller than :data:`MIN_IMAGE_SIDE` pixels on a side, raises Gan3dError naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = int(size)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    where = None
    if isinstance(path_or_array, (str, os.PathLike)):
        where = Path(path_or_array)
        if not where.is_file():
            raise Gan3dError("no such image file", where)
        try:
            with Image.open(where) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                img = _to_rgb(im)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            what = "empty file" if where.stat().st_size == 0 else f"unreadable image ({type(e).__name__}: {e})"
            raise Gan3dError(what, where) from None
    else:
        img = _array_to_pil(path_or_array)
    w, h = img.size
    if min(w, h) < MIN_IMAGE_SIDE:
        raise Gan3dError(f"image too small ({w}x{h}; at least {MIN_IMAGE_SIDE} px on each side)", where)
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _to_rgb(im):
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a * 255.0 if a.max() <= 1.0 else a
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _array_to_pil(a: Any):
    from PIL import Image

    arr = np.asarray(a)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # channels-first input
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise Gan3dError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {arr.shape}")
    if arr.size == 0:
        raise Gan3dError(f"image too small ({arr.shape}; at least {MIN_IMAGE_SIDE} px on each side)")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if np.issubdtype(np.asarray(a).dtype, np.floating) and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        im = Image.fromarray(arr, "L")
    elif arr.shape[2] == 3:
        im = Image.fromarray(arr, "RGB")
    else:
        im = Image.fromarray(arr, "RGBA")
    return _to_rgb(im)
