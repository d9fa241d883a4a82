"""The parts of a model card: the machine, the run's wall time and data, and the headline numbers of
``gan3d eval ... --out`` result files; and the one-line headline ``gan3d models`` shows."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from gan3d.errors import Gan3dError

# the rows of a `gan3d eval generation` result kept in a card: the samples, and the training set
# scored the same way (what a perfect model would reach)
GENERATION_ROWS = ("samples (largest component)", "samples (all components)", "train")


def machine() -> dict[str, Any]:
    """Cores, CPU model (``/proc/cpuinfo``), torch and Python versions of this machine."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def wall_time(run_dir: Path, minutes: float | None) -> dict[str, Any]:
    """``{"minutes", "source"}``: the given value, else an estimate from the run's ``stats.jsonl``
    timestamps (first to last line, extrapolated back to step 0 at the first interval's rate)."""
    if minutes is not None:
        return {"minutes": round(float(minutes), 2), "source": "given by the packager (--wall-time-min)"}
    stats = run_dir / "stats.jsonl"
    recs = []
    if stats.is_file():
        for line in stats.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "time" in rec and "step" in rec:
                recs.append(rec)
    if len(recs) < 2 or recs[-1]["step"] <= recs[0]["step"]:
        return {"minutes": None, "source": "unknown (no --wall-time-min and too few timed lines in stats.jsonl)"}
    a, b = recs[0], recs[-1]
    per_step = (b["time"] - a["time"]) / (b["step"] - a["step"])
    seconds = b["time"] - a["time"] + per_step * a["step"]
    return {
        "minutes": round(seconds / 60.0, 2),
        "source": f"estimated from stats.jsonl timestamps, steps {a['step']}-{b['step']} extrapolated to step 0 (pauses of a resumed run count)",
    }


def data_info(payload: dict[str, Any], description: str | None, paired: Any = None) -> dict[str, Any]:
    """Where the training data was, what it held (counts per class and split, when the file can
    still be read) and which split trained the model. ``paired``: the 3D-VAE-GAN run's paired folder,
    if the caller has it open already (else it is opened here)."""
    out: dict[str, Any] = {"description": description}
    if "vaegan_config" in payload:
        pairs = payload["vaegan_config"].get("pairs", "")
        classes = list(payload["vaegan_config"].get("classes") or [])
        out.update({"pairs": pairs, "split": "train images of the paired folder; test images held out", "classes": classes or "all"})
        try:
            from gan3d.data.pairs import PairedData

            pd = paired if paired is not None else PairedData(pairs)
            out.update({"images": {"train": len(pd.rows(0, classes)), "test": len(pd.rows(1, classes))}, "image_size": pd.image_size,
                        "shapes": str(pd.dataset.path), "counts": pd.dataset.counts()})
        except (Gan3dError, OSError) as e:
            out["not_read"] = str(e)
        return out
    tc = payload.get("train_config", {})
    path = tc.get("data", "")
    out.update({"path": path, "split": "train", "classes": tc.get("classes") or "all"})
    if path == "builtin":
        out["builtin_count"] = tc.get("builtin_count")
        return out
    try:
        from gan3d.data.prepared import load

        out["counts"] = load(path).counts()
    except (Gan3dError, OSError) as e:
        out["not_read"] = str(e)
    return out


def _r(v: Any, nd: int = 4) -> Any:
    return round(float(v), nd) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def eval_summary(result: dict[str, Any], source: str) -> tuple[str, dict[str, Any]]:
    """(kind, headline numbers) of one ``gan3d eval`` JSON result: ``generation`` (1-NNA, COV, MMD
    per distance, JSD, per row), ``classify`` (SVM test accuracy of learned D, random D, raw
    voxels), ``reconstruction`` (IoU and AP per class and mean, the class-mean oracle's means) or
    ``neighbours`` (memorised fraction, nearest IoU)."""
    base = {"source": source, "checkpoint_step": result.get("checkpoint_step"), "dataset": result.get("dataset")}
    if "rows" in result:
        rows = {}
        for name in GENERATION_ROWS:
            if name in result["rows"]:
                row = result["rows"][name]
                rows[name] = {d: {k: _r(row[d][k]) for k in ("1nna", "cov", "mmd") if k in row[d]}
                              for d in result.get("distances", []) if isinstance(row.get(d), dict)}
                if "jsd" in row:
                    rows[name]["jsd"] = _r(row["jsd"])
        return "generation", {**base, "n_samples": result.get("n_samples"), "n_reference": result.get("n_reference"),
                              "reference_split": result.get("reference", {}).get("split"), "seeds": result.get("seeds"), "rows": rows}
    if "learned" in result:
        acc = {k: _r(result[k]["accuracy"]) for k in ("learned", "random_D", "raw_voxels") if k in result}
        return "classify", {**base, "svm_accuracy": acc, "n_train": result.get("n_train"), "n_test": result.get("n_test"),
                            "classes": result.get("classes"), "protocol": result.get("protocol")}
    if "per_class" in result and "mean_iou" in result:
        out = {**base, "split": result.get("split"), "n_images": result.get("n_images"),
               "per_class": {k: {"iou": _r(v["iou"]), "ap": _r(v["ap"], 2), "n": v.get("n")} for k, v in result["per_class"].items()},
               "mean_iou": _r(result["mean_iou"]), "mean_ap": _r(result["mean_ap"], 2)}
        oracle = result.get("baselines", {}).get("class_mean")
        if oracle:
            out["class_mean_oracle"] = {"mean_iou": _r(oracle["mean_iou"]), "mean_ap": _r(oracle["mean_ap"], 2)}
        if "ikea" in result:
            out["ikea_ap"] = result["ikea"].get("ap")
        return "reconstruction", out
    if "memorised_fraction" in result:
        return "neighbours", {**base, "memorised_fraction": _r(result["memorised_fraction"]),
                              "nearest_iou": {k: _r(v) for k, v in result["nearest_iou"].items()}, "split": result.get("split")}
    raise Gan3dError("not a `gan3d eval ... --out` result (no generation rows, classify accuracies or reconstruction scores)", source)


def read_evals(files, step: int) -> dict[str, Any]:
    """Headline numbers of each ``--eval`` file, by kind; a result from another step is refused."""
    metrics: dict[str, Any] = {}
    for f in files:
        path = Path(f)
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise Gan3dError("no such evaluation file", path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise Gan3dError(f"unreadable evaluation file ({e})", path) from None
        if not isinstance(result, dict):
            raise Gan3dError("not a `gan3d eval ... --out` result (not a JSON object)", path)
        kind, summary = eval_summary(result, path.name)
        got = summary.get("checkpoint_step")
        if got is not None and int(got) != int(step):
            raise Gan3dError(f"evaluation is of step {got}, but the snapshot being packaged is of step {step}", path)
        if kind in metrics:
            raise Gan3dError(f"a second {kind} evaluation (the first was {metrics[kind]['source']}); give one per kind", path)
        metrics[kind] = summary
    return metrics


def headline(card: dict[str, Any]) -> str:
    """One line of the card's main numbers, for the ``gan3d models`` table."""
    m = card.get("metrics", {})
    parts = []
    g = m.get("generation")
    if g:
        row = g["rows"].get("samples (largest component)") or next(iter(g["rows"].values()), {})
        iou = row.get("iou", {})
        if iou:
            parts.append(f"1-NNA {iou.get('1nna', float('nan')):.2f} COV {iou.get('cov', float('nan')):.2f} "
                         f"MMD {iou.get('mmd', float('nan')):.3f} (IoU, {g.get('n_samples')} vs {g.get('reference_split')})")
    c = m.get("classify")
    if c:
        a = c["svm_accuracy"]
        extra = ", ".join(f"{k} {100 * a[k]:.1f}%" for k in ("random_D", "raw_voxels") if k in a)
        parts.append(f"SVM {100 * a['learned']:.1f}%" + (f" ({extra})" if extra else ""))
    r = m.get("reconstruction")
    if r:
        parts.append(f"IoU {r['mean_iou']:.3f} AP {r['mean_ap']:.1f} ({r.get('n_images')} {r.get('split')} images)")
    nb = m.get("neighbours")
    if nb:
        parts.append(f"memorised {100 * nb['memorised_fraction']:.0f}%")
    return "; ".join(parts) if parts else "no evaluation in the card"
