"""``gan3d models package``: a run's ``snapshot.pt`` -> ``NAME.safetensors`` + ``NAME.json`` (the
model card) + an updated ``index.json`` in a models folder. A maintainer's tool: the result is what
``gan3d.zoo.load(NAME)`` reads.

Each module is stored in float16 only when fp16 rounding changes none of its thresholded outputs
(:mod:`gan3d.zoo.precision`), else in float32; on request (``force_fp16``, ``int8``) in fp16 or int8
whatever it changes, the card recording the measured changes. ``without`` leaves a module out of
the file (a 3D-VAE-GAN reconstructs without D); the card says ``"omitted"``. The file is read back
and compared with the snapshot before the card is written. Every file is written to a temporary
name and renamed; the index last.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from gan3d import __version__
from gan3d.errors import Gan3dError
from gan3d.eval.registry import jsonable
from gan3d.fileio import atomic_open, atomic_path
from gan3d.zoo import cards, precision, registry, weights

KINDS = ("snapshot", "vaegan-snapshot")


def _snapshot_path(source: str | os.PathLike) -> Path:
    p = Path(source)
    if p.is_dir():
        p = p / "snapshot.pt"
        if not p.is_file():
            raise Gan3dError("run folder has no snapshot.pt", source)
    elif not p.is_file():
        raise Gan3dError("no such run folder or snapshot file", source)
    return p


def _test_images(payload: dict[str, Any], n: int) -> tuple[torch.Tensor | None, str, dict[str, Any], Any]:
    """Up to ``n`` test images of a 3D-VAE-GAN run's paired folder at the encoder's size, spread
    over the test split (of the run's ``--classes`` only, if it had them): (images or None, why not,
    where they came from, the opened folder or None, which the card's data section reads again)."""
    pairs = payload.get("vaegan_config", {}).get("pairs", "")
    classes = list(payload.get("vaegan_config", {}).get("classes") or [])
    try:
        from gan3d.data.pairs import PairedData, spread

        data = PairedData(pairs)
        rows = spread(data.rows(1, classes), n)
    except (Gan3dError, OSError) as e:
        return None, f"test images not readable: {e}", {}, None
    if not len(rows):
        return None, f"no test images in {pairs}", {}, data
    images, _ = data.batch(rows, int(payload["encoder_config"]["image_size"]))
    return images, "", {"pairs": str(pairs), "split": "test", "n": len(rows), **({"classes": classes} if classes else {})}, data


def _check_roundtrip(data: bytes, payload: dict[str, Any], dtypes: dict[str, str], where: Path) -> None:
    """The written file decodes to the snapshot's payload (tensors as stored: fp16-rounded or
    int8-dequantized, exactly what the precision check measured; modules not in ``dtypes`` absent)."""
    back = weights.decode(data, where)
    for key, value in payload.items():
        if key in weights.MODULES and key not in dtypes:
            if key in back:
                raise Gan3dError(f"written file holds {key}, which was to be left out", where)
        elif key in weights.MODULES:
            want = weights.stored_state(value, dtypes[key])
            got = back.get(key, {})
            if set(got) != set(want) or any(not torch.equal(got[k], want[k].to(got[k].dtype)) for k in want):
                raise Gan3dError(f"written file does not read back as the snapshot's {key}", where)
        elif key not in weights._SKIP and back.get(key) != json.loads(json.dumps(value)):  # stamps: checkpoint.load adds them
            raise Gan3dError(f"written file does not read back the snapshot's {key!r}", where)


def _check_modules(payload: dict[str, Any], int8: Sequence[str], without: Sequence[str]) -> None:
    """``--int8`` and ``--without`` name modules the snapshot has; G is never left out."""
    for opt, names in (("--int8", int8), ("--without", without)):
        for m in names:
            if m not in weights.MODULES or m not in payload:
                raise Gan3dError(f"{opt} {m}: the snapshot has no module {m!r} (it has {', '.join(k for k in weights.MODULES if k in payload)})")
    if "G" in without or set(int8) & set(without):
        raise Gan3dError("--without: G cannot be left out, and a module left out cannot be stored int8 too")


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on the models folder (flock on the directory itself, so no lock file is left),
    so that two packagers writing into one folder do not lose each other's index entry. Where flock is
    missing (Windows), no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _update_index(out: Path, name: str, entry: dict[str, Any]) -> None:
    with _folder_lock(out):  # read, change and replace the index as one step
        index = registry.read_index(out)
        index["models"][name] = entry
        index["models"] = dict(sorted(index["models"].items()))
        with atomic_open(out / registry.INDEX, "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")


def _n_parameters(state: dict[str, torch.Tensor]) -> int:
    """Learned values in a state dict: everything but BatchNorm statistics and spectral-norm vectors."""
    buffers = ("running_mean", "running_var", "num_batches_tracked", "_u", "_v")
    return int(sum(v.numel() for k, v in state.items() if not k.endswith(buffers)))


def _sample_occupancy(payload: dict[str, Any], seeds: Sequence[int] = tuple(range(100))) -> dict[str, Any]:
    """Occupancy (filled fraction) of G's samples for ``seeds`` with the largest component kept, as
    ``gan3d sample`` makes them: the range a shipped generator's samples are expected in."""
    from gan3d.checkpoint import model_config, z_prior
    from gan3d.models.gan import Generator
    from gan3d.runtime import latents
    from gan3d.sampling import generate, postprocess

    G = Generator(model_config(payload))
    G.load_state_dict(payload["G"])
    grids = postprocess(generate(G.eval(), latents(list(seeds), G.cfg.z_dim, z_prior(payload))))
    occ = grids.reshape(len(grids), -1).mean(axis=1)
    return {"seeds": f"{seeds[0]}-{seeds[-1]}", "largest_component": True, "occupancy_min": float(occ.min()),
            "occupancy_mean": float(occ.mean()), "occupancy_max": float(occ.max()), "empty": int((occ == 0).sum())}


# long function: one linear recipe (load, check, choose precision, write, verify, card) whose steps share the payload; each step is a call
def package(
    source: str | os.PathLike,
    *,
    name: str,
    command: str,
    data_desc: str | None = None,
    evals: Sequence[str | os.PathLike] = (),
    wall_time_min: float | None = None,
    out: str | os.PathLike | None = None,
    n_seeds: int = 1000,
    n_images: int = 256,
    force_fp16: Sequence[str] = (),
    int8: Sequence[str] = (),
    without: Sequence[str] = (),
) -> dict[str, Any]:
    """Package the snapshot of ``source`` (a run folder or a ``snapshot.pt``) as model ``name`` in
    ``out`` (default :func:`gan3d.zoo.models_dir`). ``command``: the exact training command;
    ``evals``: ``gan3d eval ... --out`` JSON files of this snapshot; ``force_fp16`` / ``int8``: modules
    stored so whatever they change; ``without``: modules left out of the file. Returns the card."""
    from gan3d import checkpoint as ckpt

    if not registry.valid_name(name):
        raise Gan3dError(f"invalid model name {name!r}: use letters, digits, '_', '.', '-' (at most 64, no file suffix)")
    if not str(command).strip():
        raise Gan3dError("--command must give the exact training command of the run")
    path = _snapshot_path(source)
    payload = ckpt.load(path)
    if payload.get("kind") not in KINDS:
        raise Gan3dError(f"not a sampling snapshot (kind {payload.get('kind')!r}); package the run's snapshot.pt", path)
    _check_modules(payload, int8, without)
    step = int(payload.get("step", -1))
    metrics = cards.read_evals(evals, step)  # before any work: a wrong file fails fast
    out = Path(out) if out is not None else registry.models_dir()
    run_dir = path.parent

    images, note, image_src, paired = (None, "", {}, None)
    if "E" in payload:  # E's check needs the run's test images (its pairs folder)
        images, note, image_src, paired = _test_images(payload, n_images)
    with torch.random.fork_rng(devices=[]):
        dtypes, measured = precision.choose(payload, n_seeds=n_seeds, images=images, images_note=note, force_fp16=tuple(force_fp16),
                                           int8=tuple(int8), skip=tuple(without))
    if image_src:
        measured["E"]["test_images"]["source"] = image_src

    tensors, meta = weights.encode(payload, dtypes, omit=tuple(without))
    from safetensors.torch import save_file

    weight_path = out / f"{name}.safetensors"
    with atomic_path(weight_path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        data = tmp.read_bytes()
        _check_roundtrip(data, payload, dtypes, weight_path)
    digest = registry.sha256_bytes(data)

    samples = _sample_occupancy({**payload, "G": weights.stored_state(payload["G"], dtypes["G"])})  # G as shipped
    config_file = run_dir / "config.json"
    run_config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else None
    modules = [k for k in weights.MODULES if k in dtypes]
    omitted = json.loads(meta.get("omitted", "[]"))  # --without, or already left out of a repackaged model
    card = {
        "format": registry.CARD_FORMAT,
        "format_version": 1,
        "name": name,
        "kind": payload["kind"],
        "file": weight_path.name,
        "sha256": digest,
        "size_bytes": len(data),
        "dtypes": dtypes,
        **({"omitted": omitted} if omitted else {}),
        "parameters": {k: _n_parameters(payload[k]) for k in modules},
        "step": step,
        "model_config": payload["model_config"],
        **({"encoder_config": payload["encoder_config"]} if "encoder_config" in payload else {}),
        "metrics": metrics,
        "samples": samples,
        "training": {
            "command": command,
            "config": run_config if run_config is not None else {k: payload[k] for k in ("train_config", "vaegan_config") if k in payload},
            "config_source": str(config_file.resolve()) if run_config is not None else "the snapshot (no config.json beside it)",
            "data": cards.data_info(payload, data_desc, paired),
            "steps": step,
            "wall_time": cards.wall_time(run_dir, wall_time_min),
            "z_dist": precision.prior_of(payload),
            "gan3d_version": payload.get("gan3d_version"),
            "machine": cards.machine(),
        },
        "precision": {
            "rule": "a module is stored in float16 only if fp16-rounded weights (computed in fp32) change no thresholded "
            "(>= 0.5) output voxel: G on the seeds' prior samples (and a 3D-VAE-GAN's test reconstructions), E on "
            "G(E(test image)), D on the signs of its logits on G's samples; otherwise float32. On request only "
            "(--force-fp16, --int8) a module is stored in fp16 or in int8 (one fp16 scale per kernel / row) whatever "
            "it changes: the changes below are then measured the same way against fp32, 'forced' where any",
            **measured,
        },
        "packaged": {
            "gan3d_version": __version__,
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": str(path.resolve()),
        },
        "usage": (f"gan3d reconstruct IMAGE --checkpoint {name} --out recon" if "E" in payload
                  else f"gan3d sample --checkpoint {name} --seeds 0-15 --out samples"),
    }
    with atomic_open(out / f"{name}.json", "w") as f:
        json.dump(jsonable(card), f, indent=2)
        f.write("\n")
    _update_index(out, name, {"file": weight_path.name, "card": f"{name}.json", "sha256": digest, "size_bytes": len(data), "kind": payload["kind"]})
    return card
