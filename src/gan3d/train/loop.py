"""The one training loop of gan3d: :func:`train` runs a 3D-GAN or a 3D-VAE-GAN, driven by a task.

What the two models share lives here: opening a run (new, resumed, or restarted), determinism,
the RNG state, ``config.json``, the progress bar and ``stats.jsonl``, the finite-loss check, the
checkpoint and snapshot cadence, Ctrl-C and SIGTERM, the closing lines, and data-parallel training
under ``torchrun`` (see :mod:`gan3d.train.gan` for how a batch is split over the processes; the
3D-VAE-GAN does the same). What differs is a *task* (:class:`gan3d.train.gan.GanTask`,
:class:`gan3d.train.vaegan.VaeganTask`): it builds the modules and optimizers, draws a step's
batch and runs the step, names the statistics, and makes the checkpoint payload, the snapshot
(BatchNorm re-estimated) and its preview picture. The task is picked from the config's type, or
on resume from the checkpoint's ``kind``.

Resuming (``resume``: a run folder or its ``checkpoint.pt``) keeps the run's SAVED config;
``overrides`` (field name -> value, only options the user gave) may change :data:`RESUME_FIELDS`
alone. A run folder that has a ``config.json`` but no ``checkpoint.pt`` (stopped before its first
checkpoint) is started afresh from step 0 in that folder, with that saved config.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from gan3d import __version__
from gan3d import checkpoint as ckpt
from gan3d.errors import Gan3dError
from gan3d.runtime import pick_device, set_determinism
from gan3d.train import distributed
from gan3d.train.batching import shard_of
from gan3d.train.runfolder import LoopIO, RunLog, TrainResult, _NullLog, make_run_dir, write_json
from gan3d.train.config import TrainConfig, VAEGANConfig
from gan3d.train.state import _rng_state, _set_rng_state, save_checkpoint

RESUME_FIELDS = ("steps", "device", "log_every", "snapshot_every", "keep_snapshots", "eval_every", "eval_samples", "tensorboard")
"""The config fields that ``overrides`` may change when a run is resumed."""

STALE_TEMPS = (".checkpoint.*.tmp.pt", ".snapshot.*.tmp.pt", ".stats.*.tmp.jsonl")
"""Temporary files a killed run leaves in its folder; removed when the run is opened again."""


def train(
    cfg: Any = None,
    *,
    resume: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    on_stats: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train the model ``cfg`` describes (a TrainConfig: 3D-GAN; a VAEGANConfig: 3D-VAE-GAN) in a new
    run folder, or continue the run ``resume`` (a run folder or its checkpoint.pt; ``cfg`` may then be
    None) with its saved config changed only by ``overrides`` (keys of :data:`RESUME_FIELDS`).

    ``stop_after`` ends this call once that many steps have run in total (the run is not finished and
    can be resumed). Ctrl-C or SIGTERM: the current step finishes, a checkpoint is saved and the result
    has ``interrupted=True``. Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this and they
    train one run together; the process group is started here unless it is up, and shut down on return
    if it was started here. Only rank 0's result has ``stats``.
    """
    return _train(cfg, resume=resume, overrides=overrides, extend_to=None, stop_after=stop_after,
                  progress=progress, quiet=quiet, on_stats=on_stats)


def _train(cfg, *, resume, overrides, extend_to, stop_after, progress, quiet, on_stats) -> TrainResult:
    """:func:`train`; ``extend_to`` (the old entry points): on resume, run at least this many steps."""
    group_was_up = distributed.initialized()
    try:
        start = open_run(cfg, resume=resume, overrides=overrides, extend_to=extend_to)
        return _run(start, stop_after=stop_after, progress=progress, quiet=quiet, on_stats=on_stats)
    finally:
        if not group_was_up:
            distributed.cleanup()


@dataclasses.dataclass
class Start:
    """How a call of :func:`train` begins: the task's config, and for a resumed run its checkpoint."""

    task_type: type
    cfg: Any
    run: Path | None = None  # the run folder when resuming or restarting, else None (a new folder)
    state: dict | None = None  # the training checkpoint, when resuming
    ckpt_path: Path | None = None
    tensorboard: bool = False


def _task_types() -> dict[str, type]:
    from gan3d.train.ae import AeTask
    from gan3d.train.gan import GanTask
    from gan3d.train.vaegan import VaeganTask

    return {t.kind: t for t in (GanTask, VaeganTask, AeTask)}


def _task_for_config(cfg: Any) -> type:
    types = _task_types()
    if isinstance(cfg, TrainConfig) and cfg.objective == "autoencoder":
        return types["ae-train"]
    for t in types.values():
        if isinstance(cfg, t.config_type):
            return t
    raise Gan3dError(f"not a training config: {type(cfg).__name__} (use a TrainConfig or a VAEGANConfig)")


def open_run(cfg: Any, *, resume=None, overrides=None, extend_to=None) -> Start:
    """Settle the task, the config and (resuming) the checkpoint of a call of :func:`train`."""
    tb = bool(getattr(cfg, "tensorboard", False))
    if resume is None:
        if cfg is None:
            raise Gan3dError("no training config given and nothing to resume")
        if overrides:
            cfg = _replace(cfg, overrides)
        return Start(_task_for_config(cfg), cfg, tensorboard=tb or bool((overrides or {}).get("tensorboard")))
    resume = Path(resume)
    if resume.is_dir() and not (resume / "checkpoint.pt").exists():
        return _restart(resume, cfg, overrides, extend_to)
    ckpt_path = ckpt.resolve(resume, prefer="checkpoint.pt")
    state = ckpt.load(ckpt_path)
    types = _task_types()
    if cfg is not None:
        task_type = _task_for_config(cfg)
        if state.get("kind") != task_type.kind:
            raise Gan3dError(task_type.not_resumable, ckpt_path)
    elif state.get("kind") in types:
        task_type = types[state["kind"]]
    else:
        raise Gan3dError("not a training checkpoint (a sampling snapshot cannot be resumed)", ckpt_path)
    saved = task_type.config_type.from_dict(state[task_type.config_key])
    if extend_to is not None and extend_to > saved.steps:
        saved = dataclasses.replace(saved, steps=extend_to)
    overrides = dict(overrides or {})
    _check_resume_overrides(overrides, saved, int(state["step"]))
    tb = bool(overrides.pop("tensorboard", None) or getattr(saved, "tensorboard", False))
    cfg = _replace(saved, overrides)
    return Start(task_type, cfg, run=ckpt_path.parent, state=state, ckpt_path=ckpt_path, tensorboard=tb)


def _check_resume_overrides(overrides: dict, saved: Any, step: int) -> None:
    """Refuse (one Gan3dError naming the flag) an override that would change a saved field other
    than :data:`RESUME_FIELDS`; a value equal to the saved one is no change and is dropped."""
    names = {f.name for f in dataclasses.fields(saved)}
    for key in [k for k, v in overrides.items() if v is None or (k in names and _same_value(getattr(saved, k), v))]:
        del overrides[key]
    for key in overrides:
        flag = "--" + key.replace("_", "-")
        if key not in RESUME_FIELDS:
            raise Gan3dError(f"{flag} cannot be changed when resuming (the run keeps its saved config)")
        if key not in names and key != "tensorboard":
            raise Gan3dError(f"{flag} does not apply to this run's model ({type(saved).__name__})")
    if overrides.get("steps") is not None and int(overrides["steps"]) < step:
        raise Gan3dError(f"--steps {overrides['steps']} is below the checkpoint's step {step}: the run cannot go back")


def _same_value(saved: Any, given: Any) -> bool:
    if given is None:
        return True
    if isinstance(saved, tuple) and isinstance(given, (list, tuple)):
        return tuple(saved) == tuple(given)
    return saved == given


def _replace(cfg: Any, overrides: dict) -> Any:
    names = {f.name for f in dataclasses.fields(cfg)}
    values = {k: v for k, v in overrides.items() if v is not None and k in names}
    try:
        return dataclasses.replace(cfg, **values)
    except (TypeError, ValueError) as e:
        raise Gan3dError(f"invalid training option: {e}") from None


def _restart(run: Path, cfg: Any, overrides: dict | None, extend_to: int | None) -> Start:
    """A run folder without a checkpoint (stopped before its first one): start it again from step 0
    in the same folder with the config saved in its ``config.json``, as a resumed run keeps its own."""
    types = _task_types()
    try:
        conf = json.loads((run / "config.json").read_text(encoding="utf-8"))
        key, task_type = next((t.config_json_key, t) for t in types.values() if t.config_json_key in conf)
        saved = task_type.config_type.from_dict(conf[key])
        task_type = _task_for_config(saved)
    except (OSError, ValueError, TypeError, StopIteration):
        raise Gan3dError("no checkpoint.pt and no readable config.json in it: not a gan3d run folder", run) from None
    if cfg is not None and _task_for_config(cfg) is not task_type:
        raise Gan3dError(_task_for_config(cfg).not_resumable, run / "config.json")
    if extend_to is not None and extend_to > saved.steps:
        saved = dataclasses.replace(saved, steps=extend_to)
    overrides = dict(overrides or {})
    _check_resume_overrides(overrides, saved, 0)
    tb = bool(overrides.pop("tensorboard", None) or getattr(saved, "tensorboard", False))
    return Start(task_type, _replace(saved, overrides), run=run, tensorboard=tb)


def _run(start: Start, *, stop_after, progress, quiet, on_stats) -> TrainResult:
    """Open the run folder and the task, then run the steps (:func:`_steps`)."""
    cfg = start.cfg
    set_determinism(cfg.deterministic)
    ddp = distributed.launched()  # several processes under torchrun: data-parallel
    if ddp:
        shard = shard_of(cfg.batch_size, distributed.env_rank(), distributed.env_world())  # checked before any waiting
        device = distributed.init(cfg.device)
    else:
        shard = slice(None)
        device = pick_device(cfg.device)
    main = distributed.is_main() if ddp else True  # the one process that writes files, logs and shows progress
    task = start.task_type(cfg, device=device, shard=shard, state=start.state, ckpt_path=start.ckpt_path)
    torch.manual_seed(cfg.seed)  # the same weights on every rank (DDP also copies rank 0's when wrapping)
    task.build()
    run = start.run
    if run is None:
        run = _shared(lambda: make_run_dir(cfg.out, cfg.run_name, task.label()), ddp)
    elif main:
        _tidy(run, start.state)
    log = RunLog(run, quiet=quiet) if main else _NullLog()
    step = 0
    if start.state is not None:
        task.load(start.state, start.ckpt_path)
        _set_rng_state(start.state["rng"])
        step = int(start.state["step"])
        log(f"resumed {start.ckpt_path} at step {step}")
    elif main:
        if start.run is not None:
            log(f"{run} has no checkpoint.pt (stopped before its first one): started again from step 0 with its saved config")
        processes = {"processes": distributed.world()} if ddp else {}
        write_json(run / "config.json", {"gan3d_version": __version__, **task.config_json(), **processes})
        for line in task.header(run):
            log(line)
    if ddp:
        task.wrap(distributed.data_parallel)
        log(
            f"data-parallel: {distributed.world()} processes ({torch.distributed.get_backend()}), "
            f"{shard.stop - shard.start} of each batch of {cfg.batch_size} per process; BatchNorm statistics per process"
        )
    task.start(run, log, main=main, resumed=start.state is not None)
    return _steps(task, cfg, run, log, step, main=main, ddp=ddp, tensorboard=start.tensorboard,
                  stop_after=stop_after, progress=progress, quiet=quiet, on_stats=on_stats)


def _steps(task, cfg, run: Path, log, step: int, *, main, ddp, tensorboard, stop_after, progress, quiet, on_stats) -> TrainResult:
    """The steps of a run from ``step``: statistics, evaluation, snapshots and the finish."""
    board = _board(run, log) if (tensorboard and main) else None

    def snapshot() -> None:
        if main:
            save_checkpoint(run / "checkpoint.pt", {**task.checkpoint_payload(step), "rng": _rng_state()})
            picture = task.snapshot(run, step, log)
            if cfg.keep_snapshots:
                keep_snapshot(run, step)
            if board is not None and picture is not None:
                board.image("preview", _rgb(picture), step)

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    window: list[dict] = []
    t_window = time.perf_counter()
    interrupted = False
    agreed_stop = False  # data-parallel: Ctrl-C as all ranks agreed on it at the end of the last step
    with LoopIO(run, log, total=cfg.steps, start=step, progress=progress, quiet=quiet, on_stats=on_stats, main=main) as io:
        while step < end:
            if agreed_stop if ddp else io.stop_requested:
                interrupted = True
                break
            st, epoch = task.step(step)
            if ddp:  # means over the ranks, and one Ctrl-C decision for all (they must stop at the same step)
                agreed_stop = _reduce(st, task.rank_keys, io.stop_requested)
            if not all(math.isfinite(st[k]) for k in task.finite_keys):
                _diverged(run, step, st, task.finite_keys)
            step += 1
            if main:
                window.append(st)
            io.tick()
            if main and (step % cfg.log_every == 0 or step == end):
                rec = dict(step=step, epoch=epoch)
                rec.update(task.summarize(window, step, len(window) * cfg.batch_size / (time.perf_counter() - t_window)))
                rec["time"] = round(time.time(), 1)
                rec.update(task.evaluate(step, end))
                io.record(rec, task.postfix(rec))
                if board is not None:
                    board.scalars(rec, step)
                window = []
                t_window = time.perf_counter()
            if step % cfg.snapshot_every == 0 or step == cfg.steps:
                snapshot()
    result = io.finish(step=step, end=end, steps=cfg.steps, snapshot_every=cfg.snapshot_every, interrupted=interrupted, snapshot=snapshot)
    if board is not None:
        board.close()
    if ddp:
        distributed.barrier()  # the other ranks return once rank 0 has written the last files
    return result


def keep_snapshot(run: Path, step: int) -> Path:
    """Copy ``run/snapshot.pt`` to ``run/snapshot_<step>.pt`` through a temporary file (one that
    :data:`STALE_TEMPS` clears), so a kept snapshot is never half-written."""
    dst = run / f"snapshot_{step:06d}.pt"
    tmp = run / f".snapshot.{step:06d}.tmp.pt"
    try:
        shutil.copyfile(run / "snapshot.pt", tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        why = "no space left on the device (disk full)" if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else (e.strerror or str(e))
        raise Gan3dError(f"could not keep {dst.name}: {why}", dst) from None
    return dst


def _reduce(st: dict, keys: tuple[str, ...], stop: bool) -> bool:
    """Replace ``st[k]`` for ``keys`` by their means over the ranks; True if any rank asked to stop."""
    tot = distributed.all_sum(torch.tensor([float(st[k]) for k in keys] + [float(stop)], dtype=torch.float64))
    for k, v in zip(keys, tot[: len(keys)]):
        st[k] = float(v) / distributed.world()
    return bool(tot[len(keys)] > 0)


def _diverged(run: Path, step: int, st: dict, keys: tuple[str, ...]) -> None:
    values = ", ".join(f"{k} = {st[k]}" for k in keys)
    kept = run / "checkpoint.pt"
    where = f"the last good checkpoint is kept in {kept}" if kept.is_file() else "no checkpoint was written yet"
    raise Gan3dError(f"training diverged at step {step}: {values}; {where} (try lower learning rates)")


def _shared(make: Callable[[], Path], ddp: bool) -> Path:
    """``make()`` run by rank 0 alone and its result (or its Gan3dError) shared with every rank."""
    if not ddp:
        return make()
    made: tuple[str, str] = ("", "")
    if distributed.is_main():
        try:
            made = ("ok", str(make()))
        except Gan3dError as e:
            made = ("error", str(e))
    kind, text = distributed.broadcast_object(made)
    if kind == "error":
        raise Gan3dError(text)
    return Path(text)


def _tidy(run: Path, state: dict | None) -> None:
    """An existing run folder opened again: remove temporary files a killed run left, and trim
    ``stats.jsonl`` to the checkpoint's step (everything, on a restart without a checkpoint)."""
    for pattern in STALE_TEMPS:
        for p in run.glob(pattern):
            p.unlink(missing_ok=True)
    stats = run / "stats.jsonl"
    if not stats.is_file():
        return
    last = int(state["step"]) if state is not None else 0
    lines = stats.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [line for line in lines if _line_step(line) is not None and _line_step(line) <= last]
    if len(keep) != len(lines):
        from gan3d.fileio import atomic_open

        with atomic_open(stats, "w") as f:
            f.writelines(keep)


def _line_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _board(run: Path, log):
    """A TensorBoard writer for the run (``gan3d.tensorboard``), or None when that is not available."""
    try:
        from gan3d.tensorboard import TensorBoardWriter
    except ImportError as e:
        log(f"--tensorboard: not available ({e}); statistics go to stats.jsonl only")
        return None
    return TensorBoardWriter(run)



def _rgb(path: Path):
    """The picture at ``path`` as a uint8 (H, W, 3) array."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def training_loop(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    quiet: bool = False,
    on_stats: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a 3D-GAN as ``cfg`` says (:func:`gan3d.train.loop.train`), in a new run folder or
    (``resume``: a run folder or a training checkpoint) in an existing one, which keeps its saved
    config except ``steps``, which ``cfg.steps`` may extend. ``stop_after`` ends this call after
    that many steps have run in total. Ctrl-C saves a checkpoint and returns with ``interrupted=True``.
    """

    return _train(cfg, resume=resume, overrides=None, extend_to=cfg.steps if (resume is not None and cfg is not None) else None,
                  stop_after=stop_after, progress=progress, quiet=quiet, on_stats=on_stats)


def train_vaegan(
    cfg: VAEGANConfig,
    *,
    resume: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    quiet: bool = True,
    on_stats: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a 3D-VAE-GAN as ``cfg`` says (:func:`gan3d.train.loop.train`), in a new run folder or
    (``resume``: a run folder or its ``checkpoint.pt``) in an existing one, whose saved config is used
    (``cfg.steps`` may extend it). ``stop_after`` ends the call once that many steps have run in
    total. Ctrl-C saves and returns."""

    return _train(cfg, resume=resume, overrides=None, extend_to=cfg.steps if (resume is not None and cfg is not None) else None,
                  stop_after=stop_after, progress=progress, quiet=quiet, on_stats=on_stats)
