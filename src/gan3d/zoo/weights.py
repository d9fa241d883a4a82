"""The zoo's weight file: one safetensors file per model, holding a checkpoint payload.

Layout (``format`` ``gan3d-zoo-weights``, version 1):

* tensors ``<module>.<state-dict key>`` for the modules ``G``, ``D`` and ``E`` of the payload, e.g.
  ``G.net.0.weight``; floating-point tensors in the module's stored dtype (float16 or float32),
  integer ones (BatchNorm's ``num_batches_tracked``) unchanged;
* metadata (safetensors' str -> str dict): ``zoo_format``, ``zoo_format_version``, ``dtypes`` (JSON
  ``{module: "float16" | "float32"}``) and every other payload entry as ``payload.<key>`` holding
  its JSON text (``kind``, ``step``, ``gan3d_version``, ``model_config``, ``train_config``,
  ``encoder_config``, ``vaegan_config``, ...).

:func:`decode` turns the bytes back into the payload :func:`gan3d.checkpoint.load` returns for the
snapshot, floating-point tensors as float32. Reading parses the safetensors JSON header and raw
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
FORMAT_VERSION = 1
MODULES = ("G", "D", "E")  # payload entries that hold a module's state dict
DTYPES = {"float16": torch.float16, "float32": torch.float32}
_SKIP = ("format", "format_version")  # the checkpoint container's own stamps, re-added by gan3d.checkpoint.load


def round_state(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating-point tensors of ``state`` cast to ``dtype`` (others as they are), contiguous."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors back to float32; ``round_state(s, float16)`` then this is the
    fp16-rounded model computed in fp32."""
    return round_state(state, torch.float32)


def encode(payload: dict[str, Any], dtypes: dict[str, str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) for ``safetensors.torch.save``; ``dtypes`` names each module's stored dtype."""
    tensors: dict[str, torch.Tensor] = {}
    meta = {"zoo_format": FORMAT, "zoo_format_version": str(FORMAT_VERSION)}
    used = {}
    for key, value in payload.items():
        if key in MODULES:
            dt = dtypes.get(key, "float32")
            used[key] = dt
            for name, t in round_state(value, DTYPES[dt]).items():
                tensors[f"{key}.{name}"] = t.detach().cpu().clone()
        elif key not in _SKIP:
            meta[f"payload.{key}"] = json.dumps(value, sort_keys=True)
    meta["dtypes"] = json.dumps(used, sort_keys=True)
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


def decode(data: bytes, where: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint payload stored in safetensors ``data`` (bytes of one zoo weight file)."""
    from safetensors.torch import load as st_load

    meta = header(data, where).get("__metadata__") or {}
    if meta.get("zoo_format") != FORMAT:
        raise Gan3dError(f"not a gan3d model file (no '{FORMAT}' stamp in its metadata)", where)
    if int(meta.get("zoo_format_version", "0")) > FORMAT_VERSION:
        raise Gan3dError(f"model file format version {meta['zoo_format_version']} is newer than this gan3d reads", where)
    try:
        tensors = st_load(data)
        values = {k[len("payload.") :]: json.loads(v) for k, v in meta.items() if k.startswith("payload.")}
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise Gan3dError(f"unreadable model file ({type(e).__name__}: {str(e).splitlines()[0][:120]})", where) from None
    payload: dict[str, Any] = dict(values)  # gan3d.checkpoint.load adds its container stamps
    for name, t in tensors.items():
        module, _, key = name.partition(".")
        if module not in MODULES or not key:
            raise Gan3dError(f"unexpected tensor {name!r} in the model file", where)
        payload.setdefault(module, {})[key] = t.float() if t.is_floating_point() else t
    for key in ("model_config", "G"):
        if key not in payload:
            raise Gan3dError(f"model file has no '{key}' entry", where)
    return payload


def stored_dtypes(data: bytes, where: str | os.PathLike) -> dict[str, str]:
    """``{module: dtype}`` as written in the file's metadata."""
    meta = header(data, where).get("__metadata__") or {}
    return json.loads(meta.get("dtypes", "{}"))
