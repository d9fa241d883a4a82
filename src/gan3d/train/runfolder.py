"""The run folder: its name, its log, ``config.json``, ``stats.jsonl`` and the loop's I/O around the
steps (progress bar, Ctrl-C, closing lines).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gan3d.errors import Gan3dError


def make_run_dir(out: str | os.PathLike, run_name: str, label: str) -> Path:
    """``<out>/<run_name>`` (which must be new or empty), else ``<out>/<nnnnn>-<label>`` numbered one
    past the highest existing run."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    if run_name:
        run = root / run_name
        if run.exists() and any(run.iterdir()):
            if (run / "config.json").is_file() and not (run / "checkpoint.pt").exists():
                raise Gan3dError(
                    f"run folder holds a run stopped before its first checkpoint: start it again with --resume {run} "
                    "(it keeps its saved config), or choose another --run-name", run)
            raise Gan3dError("run folder exists and is not empty (use --resume to continue it)", run)
        run.mkdir(exist_ok=True)
        return run
    nums = [int(p.name.split("-")[0]) for p in root.iterdir() if p.is_dir() and p.name.split("-")[0].isdigit()]
    run = root / f"{max(nums, default=-1) + 1:05d}-{label}"
    run.mkdir()
    return run


class RunLog:
    """Writes lines to stdout (through tqdm when a bar is open) and to ``log.txt``."""

    def __init__(self, run: Path, quiet: bool = False):
        self.file = open(run / "log.txt", "a", encoding="utf-8")
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        self.file.write(msg + "\n")
        self.file.flush()
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stdout)

    def close(self) -> None:
        self.file.close()


class _NullLog:
    """RunLog's stand-in on the ranks other than 0 of a data-parallel run: writes nothing."""

    def __call__(self, msg: str) -> None:
        pass

    def close(self) -> None:
        pass


def write_json(path: Path, obj: Any) -> None:
    from gan3d.fileio import atomic_open

    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    stats: list[dict]


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run cleanly: the step finishes, a checkpoint is saved, the call returns."""


class LoopIO:
    """What the training loop does around its steps: Ctrl-C and SIGTERM (what schedulers and
    ``docker stop`` send) turned into a flag (the loop finishes its step, saves and returns), the progress bar, the ``stats.jsonl`` writer, and the
    closing lines. Use as a context manager; ``finish`` writes the last snapshot and log lines.
    ``main=False`` (ranks other than 0 of a data-parallel run): no bar and no ``stats.jsonl``."""

    def __init__(self, run: Path, log: "RunLog", *, total: int, start: int, progress: bool, quiet: bool,
                 on_stats: Callable[[dict], None] | None, main: bool = True):
        self.run, self.log, self.on_stats = run, log, on_stats
        self.stop_requested = False
        self.stats: list[dict] = []
        self.bar = None
        if progress and not quiet and main:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stdout)
        self._file = open(run / "stats.jsonl", "a", encoding="utf-8") if main else None
        self._old_handlers = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS} if _main_thread() else {}

    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def __enter__(self) -> "LoopIO":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        if self._file is not None:
            self._file.close()
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def record(self, rec: dict, postfix: dict) -> None:
        """Append one statistics line; show ``postfix`` on the bar, or log the line without a bar."""
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        self.stats.append(rec)
        if self.on_stats is not None:
            self.on_stats(rec)
        if self.bar is not None:
            self.bar.set_postfix(**postfix)
        else:
            self.log(json.dumps(rec))

    def finish(self, *, step: int, end: int, steps: int, snapshot_every: int, interrupted: bool,
               snapshot: Callable[[], None]) -> TrainResult:
        """Snapshot a step that no snapshot covered (an interruption or ``stop_after``), write the
        closing line and close the log."""
        if interrupted or (step == end and step % snapshot_every != 0 and step != steps):
            snapshot()
        if interrupted:
            self.log(f"interrupted: saved {self.run / 'checkpoint.pt'} at step {step}; continue with --resume {self.run}")
        else:
            self.log(f"done at step {step}: {self.run / 'snapshot.pt'}")
        self.log.close()
        return TrainResult(run_dir=self.run, step=step, interrupted=interrupted, stats=self.stats)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
