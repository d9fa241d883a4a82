"""TensorBoard event files for a run: the numbers of every stats.jsonl line and the fixed-latent
sample grid of every snapshot, written to ``RUN/tensorboard/``.

Uses ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package (the
``tensorboard`` extra: ``pip install gan3d[tensorboard]``); without it, making a writer raises one
:class:`gan3d.errors.Gan3dError` line saying so. Nothing here is imported by the training loop
unless it asks for TensorBoard output. View with ``tensorboard --logdir RUN/tensorboard``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import Gan3dError

SUBDIR = "tensorboard"
"""Folder inside the run folder that holds the event files."""

SKIP_KEYS = frozenset({"step", "time"})
"""stats.jsonl keys that are not curves: the x axis itself and the wall-clock stamp."""


class TensorBoardWriter:
    """Writes scalars and images of one run to ``run_dir/tensorboard/``.

    ``TensorBoardWriter(run_dir)``; then :meth:`scalars` per statistics line, :meth:`image` per
    snapshot, :meth:`close` at the end (also a context manager). Scalar tags are the stats.jsonl
    keys as they are (``loss_d``, ``eval_1nna_iou``, ...).
    """

    def __init__(self, run_dir: str | os.PathLike, *, flush_secs: int = 30):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise Gan3dError("TensorBoard output needs the tensorboard package: pip install tensorboard") from None
        self.log_dir = Path(run_dir) / SUBDIR
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Gan3dError(f"cannot make the TensorBoard folder ({e.strerror})", self.log_dir) from None
        self._w = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)

    def scalars(self, rec: Mapping[str, object], step: int) -> list[str]:
        """Add every finite numeric value of ``rec`` (one stats.jsonl record) at ``step``, except
        ``step`` and ``time``; booleans count as 0/1, strings, lists and None are skipped.
        Returns the tags written."""
        tags = []
        for key, value in rec.items():
            if key in SKIP_KEYS or isinstance(value, (str, bytes)) or value is None:
                continue
            if isinstance(value, (bool, np.bool_)):
                value = float(value)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
                continue
            self._w.add_scalar(str(key), float(value), global_step=int(step))
            tags.append(str(key))
        return tags

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Add one picture, ``uint8 (H, W, 3)`` RGB (e.g. the snapshot's sample grid), at ``step``."""
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
            raise ValueError(f"image {tag!r}: expected uint8 (H, W, 3), got {a.dtype} {a.shape}")
        self._w.add_image(tag, a, global_step=int(step), dataformats="HWC")

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._w.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
