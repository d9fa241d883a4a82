"""Finding, checking and loading shipped models.

The models folder (:func:`models_dir`) holds ``index.json`` -- ``{"models": {name: {"file",
"card", "sha256", "size_bytes", "kind"}}}`` -- and per model ``<name>.safetensors`` (the weights,
:mod:`gan3d.zoo.weights`) and ``<name>.json`` (the model card). :func:`load` hashes the weight file
and refuses it, with one line naming the file, unless the sha256 equals both the card's and the
index's: a damaged file, a file replaced on its own, and a card and file swapped together for
another pair are all caught.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from gan3d.errors import Gan3dError

ENV = "GAN3D_MODELS_DIR"  # another models folder instead of the package's own (used by the tests)
INDEX = "index.json"
INDEX_FORMAT = "gan3d-model-index"
CARD_FORMAT = "gan3d-model-card"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def models_dir() -> Path:
    """``$GAN3D_MODELS_DIR`` when set, else the ``models/`` folder inside the installed package."""
    env = os.environ.get(ENV)
    return Path(env) if env else Path(__file__).resolve().parent / "models"


def valid_name(text: str) -> bool:
    """A model name: letters, digits, ``_ . -``, at most 64 characters, no path separator."""
    return bool(NAME_RE.fullmatch(str(text))) and not str(text).endswith((".pt", ".safetensors", ".json"))


def read_index(folder: Path | None = None) -> dict[str, Any]:
    """The index of ``folder`` (default :func:`models_dir`); a folder without one has no models."""
    folder = models_dir() if folder is None else Path(folder)
    path = folder / INDEX
    if not path.is_file():
        return {"format": INDEX_FORMAT, "format_version": 1, "models": {}}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Gan3dError(f"unreadable model index ({e})", path) from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("models"), dict):
        raise Gan3dError(f"not a gan3d model index (no 'format: {INDEX_FORMAT}' with a 'models' table)", path)
    return index


def names() -> list[str]:
    """Names of the shipped models, sorted."""
    return sorted(read_index()["models"])


def _entry(name: str) -> dict[str, Any]:
    models = read_index()["models"]
    if name not in models:
        raise Gan3dError(f"no shipped model named {name!r} ({shipped_list()})")
    return models[name]


def shipped_list() -> str:
    """``"shipped models: a, b"`` or a note that there are none, for error messages."""
    n = names()
    return f"shipped models: {', '.join(n)}" if n else "no models are shipped in this installation"


def card_path(name: str) -> Path:
    return models_dir() / _entry(name).get("card", f"{name}.json")


def card(name: str) -> dict[str, Any]:
    """The model card of ``name`` as a dict (JSON only; the weights are not read)."""
    path = card_path(name)
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Gan3dError("model card is missing", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Gan3dError(f"unreadable model card ({e})", path) from None
    if not isinstance(c, dict) or c.get("format") != CARD_FORMAT:
        raise Gan3dError(f"not a gan3d model card (no 'format: {CARD_FORMAT}' stamp)", path)
    return c


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_verified(name: str) -> tuple[bytes, dict[str, Any], Path]:
    """(bytes of the weight file, card, path) of ``name`` after checking the file's sha256 against
    the card and the index; a mismatch is one Gan3dError naming the weight file."""
    entry = _entry(name)
    c = card(name)
    path = models_dir() / entry.get("file", f"{name}.safetensors")
    if c.get("name") != name or c.get("file") != path.name:
        raise Gan3dError(f"model card {card_path(name).name} is for {c.get('name')!r} ({c.get('file')}), not {name!r}: card and index disagree", path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Gan3dError(f"model file of {name!r} is missing", path) from None
    digest = sha256_bytes(data)
    if digest != c.get("sha256"):
        raise Gan3dError(
            f"sha256 {digest[:16]}... does not match its model card ({str(c.get('sha256'))[:16]}...): the file is damaged or was replaced; refusing to load it",
            path,
        )
    if digest != entry.get("sha256"):
        raise Gan3dError(
            f"sha256 {digest[:16]}... does not match the package's {INDEX} ({str(entry.get('sha256'))[:16]}...): weights and card were replaced together; refusing to load them",
            path,
        )
    return data, c, path


def load(name: str) -> dict[str, Any]:
    """The payload of the shipped model ``name``, as :func:`gan3d.checkpoint.load` returns it for the
    snapshot it was packaged from (kind ``snapshot`` or ``vaegan-snapshot``; G, D (and E) state
    dicts with float32 tensors; the configs as dicts; ``step``). Checked first (:func:`read_verified`)."""
    from gan3d.zoo.weights import decode

    data, c, path = read_verified(name)
    payload = decode(data, path)
    if c.get("model_config") is not None and payload.get("model_config") != c["model_config"]:
        raise Gan3dError("model config in the weights differs from the model card's", path)
    return payload


def lookup(text: str | os.PathLike) -> dict[str, Any] | None:
    """The payload of a shipped model when ``text`` is a model name that no file or folder uses,
    else None. The one place where ``--checkpoint NAME`` turns into a model."""
    s = os.fspath(text)
    if Path(s).exists() or not valid_name(s) or s not in names():
        return None
    return load(s)
