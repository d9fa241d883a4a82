"""The zoo's weight file: one safetensors file per model, holding a checkpoint payload.

Layout (``format`` ``gan3d-zoo-weights``):

* tensors ``<module>.<state-dict key>`` for the modules ``G``, ``D`` and ``E`` of the payload, e.g.
  ``G.net.0.weight``; floating-point tensors in the module's stored dtype (float16 or float32),
  integer ones (BatchNorm's ``num_batches_tracked``) unchanged;
* a module stored **int8**: each floating tensor with ndim >= 2 (conv, transposed-conv, linear
  weights) is int8 ``q`` with float16 scales -- one per k^3 kernel of a 3-D conv weight
  (O, I, k, k, k) or transposed conv (I, O, k, k, k), one per output channel of a 2-D conv weight
  (O, I, k, k) (its k^2 kernels are small, so per-kernel scales would add a tenth to the file), one
  per row of a linear weight (O, I) -- stored as tensor ``Q.<module>.<key>`` (shape ``w.shape[:2]``
  for 5-D, else ``w.shape[:1]``; ``Q`` is no module, so it never collides with a state-dict key).
  scale = max|w| over the slice / 127, rounded to fp16 *before* quantizing; a zero slice (or one
  whose scale underflows fp16) gets scale 1; q = round(w / scale) clamped to [-127, 127]; read
  back as float32 ``q.float() * scale.float()``. Its 1-D and 0-D floating tensors (BatchNorm
  statistics, biases) are float16. (gan3d's modules have no int8 state of their own: every int8
  tensor is a quantized one.)
* metadata (safetensors' str -> str dict): ``zoo_format``, ``zoo_format_version``, ``dtypes`` (JSON
  ``{module: "float16" | "float32" | "int8"}``), ``omitted`` (JSON list of modules left out of the
  file, e.g. ``["D"]``; only when there are any) and every other payload entry as
  ``payload.<key>`` holding its JSON text (``kind``, ``step``, ``gan3d_version``, ``model_config``,
  ``train_config``, ``encoder_config``, ``vaegan_config``, ...).

Version: a file with an int8 module says ``zoo_format_version`` 2; every other file says 1, so
gan3d versions that read only version 1 still read fp16/fp32 files (and refuse int8 ones with one
line instead of misreading them). This reader reads both.

:func:`decode` turns the bytes back into the payload :func:`gan3d.checkpoint.load` returns for the
snapshot, floating-point tensors as float32 (:func:`stored_state` gives the very same values from
a state dict: what the precision check measures is what decode returns); a file with omitted
modules also gives ``payload["omitted"]``. Reading parses the safetensors JSON header and raw
tensor bytes only: no code runs.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import torch

from gan3d.errors import Gan3dError

FORMAT = "gan3d-zoo-weights"
FORMAT_VERSION = 2  # the newest version this reader reads; files without int8 say 1
MODULES = ("G", "D", "E")  # payload entries that hold a module's state dict
DTYPES = {"float16": torch.float16, "float32": torch.float32}
STORED = (*DTYPES, "int8")  # a module's stored dtype
SCALE = "Q."  # prefix of an int8 tensor's scales: Q.<module>.<key>
_SKIP = ("format", "format_version")  # the checkpoint container's own stamps, re-added by gan3d.checkpoint.load


def round_state(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating-point tensors of ``state`` cast to ``dtype`` (others as they are), contiguous."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors back to float32; ``round_state(s, float16)`` then this is the
    fp16-rounded model computed in fp32."""
    return round_state(state, torch.float32)


def _quantized(t: torch.Tensor) -> bool:
    """Whether an int8 module stores ``t`` as int8 + scales (floating, ndim >= 2)."""
    return t.is_floating_point() and t.ndim >= 2


def scale_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the scales of an int8 tensor of ``shape``: one per k^3 kernel of a 5-D (3-D conv)
    weight, one per slice over the first dim otherwise (2-D conv output channels, linear rows)."""
    return tuple(shape[:2]) if len(shape) == 5 else tuple(shape[:1])


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 q, float16 scales) of a floating tensor with ndim >= 2 (see the module docstring)."""
    w = w.detach().float()
    dims = tuple(range(len(scale_shape(w.shape)), w.ndim))
    scale = (w.abs().amax(dim=dims) / 127).half()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # zero (or fp16-underflowing) slices
    q = torch.round(w / _broadcast(scale, w.ndim)).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def _broadcast(scale: torch.Tensor, ndim: int) -> torch.Tensor:
    return scale.float().reshape(*scale.shape, *([1] * (ndim - scale.ndim)))


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 ``q * scale``, each scale over its slice: what decode returns for an int8 tensor."""
    return q.float() * _broadcast(scale, q.ndim)


def stored_state(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """``state`` as a file storing it in ``dtype`` ("float16", "float32", "int8") reads back:
    floating tensors as float32, bit for bit what :func:`decode` returns."""
    if dtype != "int8":
        return as_float32(round_state(state, DTYPES[dtype]))
    return {k: dequantize(*quantize(v)) if _quantized(v) else (v.half().float() if v.is_floating_point() else v).contiguous()
            for k, v in state.items()}


def _module_tensors(module: str, state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """The file's tensors for one module's state dict stored in ``dtype``."""
    if dtype != "int8":
        return {f"{module}.{k}": t.detach().cpu().clone() for k, t in round_state(state, DTYPES[dtype]).items()}
    out = {}
    for k, v in state.items():
        if _quantized(v):
            out[f"{module}.{k}"], out[f"{SCALE}{module}.{k}"] = quantize(v.cpu())
        else:
            out[f"{module}.{k}"] = (v.half() if v.is_floating_point() else v).detach().cpu().contiguous().clone()
    return out


def encode(payload: dict[str, Any], dtypes: dict[str, str], omit: tuple[str, ...] = ()) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) for ``safetensors.torch.save``; ``dtypes`` names each module's stored
    dtype; the modules in ``omit`` are left out of the file (and named in its metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    meta = {"zoo_format": FORMAT}
    used = {}
    for key, value in payload.items():
        if key in MODULES and key not in omit:
            used[key] = dtypes.get(key, "float32")
            tensors.update(_module_tensors(key, value, used[key]))
        elif key not in _SKIP and key not in MODULES and key != "omitted":
            meta[f"payload.{key}"] = json.dumps(value, sort_keys=True)
    meta["zoo_format_version"] = str(2 if "int8" in used.values() else 1)
    meta["dtypes"] = json.dumps(used, sort_keys=True)
    gone = [m for m in MODULES if (m in omit and m in payload) or m in (payload.get("omitted") or ())]  # kept when repackaged
    if gone:
        meta["omitted"] = json.dumps(gone)
    return tensors, meta


def header(data: bytes, where: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of safetensors ``data`` (an 8-byte little-endian length, then the JSON)."""
    if len(data) < 8:
        raise Gan3dError("not a safetensors file (shorter than its 8-byte header length)", where)
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise Gan3dError(f"not a safetensors file (header of {n} bytes in a {len(data)}-byte file)", where)
    try:
        head = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Gan3dError(f"not a safetensors file (unreadable header: {e})", where) from None
    if not isinstance(head, dict):
        raise Gan3dError("not a safetensors file (header is not a JSON object)", where)
    return head


def _version(meta: dict[str, str], where: str | os.PathLike) -> int:
    text = meta.get("zoo_format_version", "0")
    if not str(text).isdigit():
        raise Gan3dError(f"model file has an invalid format version {text!r}", where)
    if int(text) > FORMAT_VERSION:
        raise Gan3dError(f"model file format version {text} is newer than this gan3d reads (up to {FORMAT_VERSION})", where)
    return int(text)


def _value(name: str, t: torch.Tensor, scales: dict[str, torch.Tensor], where: str | os.PathLike) -> torch.Tensor:
    """The float32 (or integer) value of file tensor ``name``; an int8 one with its scales."""
    if t.dtype != torch.int8:
        return t.float() if t.is_floating_point() else t
    s = scales.pop(name, None)
    if s is None:
        raise Gan3dError(f"int8 tensor {name!r} has no scale tensor '{SCALE}{name}'", where)
    if t.ndim < 2 or s.dtype != torch.float16 or tuple(s.shape) != scale_shape(t.shape):
        raise Gan3dError(f"damaged scale tensor '{SCALE}{name}': {s.dtype} {tuple(s.shape)} for an int8 tensor of shape "
                         f"{tuple(t.shape)} (float16 {scale_shape(t.shape)} expected)", where)
    return dequantize(t, s)


def decode(data: bytes, where: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint payload stored in safetensors ``data`` (bytes of one zoo weight file)."""
    from safetensors.torch import load as st_load

    meta = header(data, where).get("__metadata__") or {}
    if meta.get("zoo_format") != FORMAT:
        raise Gan3dError(f"not a gan3d model file (no '{FORMAT}' stamp in its metadata)", where)
    _version(meta, where)
    try:
        tensors = st_load(data)
        values = {k[len("payload.") :]: json.loads(v) for k, v in meta.items() if k.startswith("payload.")}
        omitted = json.loads(meta.get("omitted", "[]"))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise Gan3dError(f"unreadable model file ({type(e).__name__}: {str(e).splitlines()[0][:120]})", where) from None
    payload: dict[str, Any] = dict(values)  # gan3d.checkpoint.load adds its container stamps
    scales = {k[len(SCALE) :]: t for k, t in tensors.items() if k.startswith(SCALE)}
    for name, t in tensors.items():
        module, _, key = name.partition(".")
        if name.startswith(SCALE):
            continue
        if module not in MODULES or not key:
            raise Gan3dError(f"unexpected tensor {name!r} in the model file", where)
        payload.setdefault(module, {})[key] = _value(name, t, scales, where)
    if scales:
        raise Gan3dError(f"scale tensor '{SCALE}{next(iter(scales))}' has no int8 tensor in the model file", where)
    for key in ("model_config", "G"):
        if key not in payload:
            raise Gan3dError(f"model file has no '{key}' entry", where)
    if omitted:
        payload["omitted"] = [str(m) for m in omitted]
    return payload


def stored_dtypes(data: bytes, where: str | os.PathLike) -> dict[str, str]:
    """``{module: dtype}`` as written in the file's metadata."""
    meta = header(data, where).get("__metadata__") or {}
    return json.loads(meta.get("dtypes", "{}"))
