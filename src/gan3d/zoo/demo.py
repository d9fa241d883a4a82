"""The first part of ``gan3d demo``: shapes from the shipped ``chair`` model, when it is shipped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from gan3d.zoo import registry


def sample_shipped(out: str | Path, *, name: str = "chair", seeds: Sequence[int] = tuple(range(16))) -> dict[str, Any] | None:
    """Sample ``seeds`` from the shipped model ``name`` into ``<out>/shipped-<name>/``: a PNG grid,
    one ``.obj`` per non-empty shape and ``samples.npz``. Returns
    :func:`gan3d.sampling.sample_to_dir`'s summary plus ``seconds``, or None when no model of that
    name is shipped."""
    from gan3d.sampling import sample_to_dir

    if name not in registry.names():
        return None
    t0 = time.perf_counter()
    summary = sample_to_dir(name, list(seeds), Path(out) / f"shipped-{name}", formats=["npz", "obj"], device="cpu")
    summary["seconds"] = time.perf_counter() - t0
    summary["name"] = name
    return summary
