"""Helper of docs/explore/make.sh.

    collect.py targets DATA FOLDER N     the first N test shapes of DATA as bool .npy: FOLDER/test00.npy ...
    collect.py summary DATA OUTDIR N     OUTDIR/summary.json, summary.md and inversions.png from the
                                         JSON files the analyses wrote under OUTDIR and OUTDIR/times.tsv

Every number comes from the analyses' own JSON files, except the comparison for inversion: each
test shape's best IoU to a training shape of DATA, computed here.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

PICTURE_CHAIRS = 8  # inversions shown in inversions.png


def fail(msg: str) -> None:
    print(f"collect.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def test_grids(data: str, n: int) -> np.ndarray:
    from gan3d.data import prepared as datasets
    from gan3d.errors import Gan3dError

    try:
        test = datasets.load(data).select(split="test")
    except Gan3dError as e:
        fail(str(e))
    if len(test) < n:
        fail(f"{data}: the test split has {len(test)} shapes, fewer than the {n} asked for")
    return test.grids(np.arange(n)) >= 0.5


def write_targets(data: str, folder: str, n: int) -> None:
    from gan3d.fileio import atomic_path

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    for i, g in enumerate(test_grids(data, n)):
        with atomic_path(d / f"test{i:02d}.npy") as tmp:
            np.save(tmp, g)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: cannot read the analysis output ({type(e).__name__})")


def read_times(path: Path) -> dict[str, dict]:
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        name, sec, load = line.split("\t")
        rows[name] = {"wall_seconds": float(sec), "loadavg_1min": float(load)}
    return rows


def stats(values) -> dict:
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "min": min(v), "max": max(v), "median": statistics.median(v)}


def nearest_train_iou(data: str, grids: np.ndarray) -> np.ndarray:
    from gan3d.data import prepared as datasets
    from gan3d.eval.metrics import iou_distance_matrix

    train = datasets.load(data).select(split="train")
    return 1.0 - iou_distance_matrix(grids, train).min(axis=1).astype(np.float64)


def summarize(data: str, out: Path, n: int) -> dict:
    times = read_times(out / "times.tsv")
    interp = read_json(out / "interp" / "interpolation.json")
    arith = read_json(out / "arith" / "arithmetic.json")
    dims = read_json(out / "dims" / "dimensions.json")
    neur = read_json(out / "neurons" / "neurons.json")
    names = [f"test{i:02d}" for i in range(n)]
    inv = [read_json(out / "inv" / name / "invert.json") for name in names]
    near = nearest_train_iou(data, test_grids(data, n))
    ranked = dims["dimensions"]
    per_chair = [
        {"target": name, "test_index": i, "iou": j["iou"], "nearest_train_iou": float(near[i]), "target_voxels": j["target_voxels"],
         "reconstruction_voxels": j["reconstruction_voxels"], "seconds": j["seconds"], "wall_seconds": times[f"invert {name}"]["wall_seconds"]}
        for i, (name, j) in enumerate(zip(names, inv))
    ]
    return {
        "checkpoint": interp["checkpoint"],
        "step": interp["step"],
        "data": data,
        "interpolation": {
            "method": interp["method"], "steps": interp["steps"], "voxels": interp["voxels"],
            "consecutive_iou": interp["consecutive_iou"], "mean_consecutive_iou": interp["mean_consecutive_iou"],
            "min_consecutive_iou": interp["min_consecutive_iou"], "end_iou": interp["end_iou"],
            "nearest_train_iou": interp["nearest_train_iou"], "mean_nearest_train_iou": interp["mean_nearest_train_iou"],
        },
        "arithmetic": {"voxels": arith["voxels"], "result_norm": arith["result_norm"]},
        "dimensions": {
            "bases": dims["bases"], "values": dims["values"], "forward_passes": dims["forward_passes"], "base_voxels": dims["base_voxels"],
            "top": [{k: r[k] for k in ("rank", "dim", "mean_changed", "max_changed", "first_base_changed")} for r in ranked[:8]],
            "median_mean_changed": statistics.median(r["mean_changed"] for r in ranked),
            "least": {k: ranked[-1][k] for k in ("dim", "mean_changed", "max_changed")},
            "swept": len(ranked),
        },
        "neurons": {
            "layer": neur["layer"], "layer_shape": neur["layer_shape"], "n_shapes": neur["n_shapes"], "top": neur["top"],
            "random_sets": neur["random_sets"], "random_mean_pairwise_iou": neur["random_mean_pairwise_iou"],
            "top_mean_pairwise_iou": neur["top_mean_pairwise_iou"], "selectivity_ratio": neur["selectivity_ratio"],
            "units": [{"unit": u["unit"], "mean_pairwise_iou": u["mean_pairwise_iou"], "ratio_to_random": u["ratio_to_random"]} for u in neur["units"]],
        },
        "inversion": {
            "starts": inv[0]["starts"], "iters": inv[0]["iters"], "lr": inv[0]["lr"], "count": n,
            "iou": stats(c["iou"] for c in per_chair),
            "nearest_train_iou": stats(near),
            "better_than_nearest_train": sum(c["iou"] > c["nearest_train_iou"] for c in per_chair),
            "wall_seconds": stats(c["wall_seconds"] for c in per_chair),
            "per_chair": per_chair,
        },
        "analysis_seconds": {"interpolate": interp["seconds"], "arithmetic": arith["seconds"], "dimensions": dims["seconds"],
                             "neurons": neur["seconds"], "invert_total": round(sum(j["seconds"] for j in inv), 2)},
        "wall_seconds": {**{k: v["wall_seconds"] for k, v in times.items() if not k.startswith("invert ")},
                         "invert_total": round(sum(c["wall_seconds"] for c in per_chair), 3)},
        "loadavg_1min": {k: v["loadavg_1min"] for k, v in times.items()},
    }


def f3(x: float) -> str:
    return f"{x:.3f}"


def markdown(s: dict) -> str:
    it, di, ne, iv, w, a = s["interpolation"], s["dimensions"], s["neurons"], s["inversion"], s["wall_seconds"], s["analysis_seconds"]
    loads = list(s["loadavg_1min"].values())
    lines = [
        f"# gan3d explore on `{s['checkpoint']}` (step {s['step']}), data `{s['data']}`",
        "",
        f"## Interpolation (seed 0 -> 1, {it['steps']} frames, {it['method']})",
        "",
        f"- consecutive-frame IoU: {', '.join(map(f3, it['consecutive_iou']))} (mean {f3(it['mean_consecutive_iou'])}, min {f3(it['min_consecutive_iou'])})",
        f"- IoU of the two ends: {f3(it['end_iou'])}",
        f"- each frame's nearest-training IoU: {', '.join(map(f3, it['nearest_train_iou']))} (mean {f3(it['mean_nearest_train_iou'])})",
        f"- voxels per frame: {', '.join(map(str, it['voxels']))}",
        "",
        "## Arithmetic (seed 0 - seed 1 + seed 2)",
        "",
        "- voxels: " + ", ".join(f"{k} {v}" for k, v in s["arithmetic"]["voxels"].items()),
        "",
        f"## Dimensions ({di['bases']} bases x {di['swept']} dimensions x {len(di['values'])} values in [{di['values'][0]:g}, {di['values'][-1]:g}]; base 0 has {di['base_voxels']} voxels)",
        "",
        "| rank | dim | mean changed | max changed | on base 0 |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {r['rank']} | {r['dim']} | {r['mean_changed']:.0f} | {r['max_changed']} | {r['first_base_changed']} |" for r in di["top"]],
        "",
        f"- median dimension: {di['median_mean_changed']:.0f} voxels (mean over bases); least: dimension {di['least']['dim']}, {di['least']['mean_changed']:.0f}",
        "",
        f"## Neurons (D block {ne['layer']}, {ne['layer_shape'][0]} channels at {ne['layer_shape'][1]}^3; top {ne['top']} of {ne['n_shapes']} training shapes)",
        "",
        f"- mean pairwise IoU of a unit's top {ne['top']}: {f3(ne['top_mean_pairwise_iou'])}; of {ne['random_sets']} random sets: {f3(ne['random_mean_pairwise_iou'])} (ratio {ne['selectivity_ratio']:.2f})",
        "",
        "| unit | " + " | ".join(str(u["unit"]) for u in ne["units"]) + " |",
        "| --- |" + " --- |" * len(ne["units"]),
        "| top IoU | " + " | ".join(f3(u["mean_pairwise_iou"]) for u in ne["units"]) + " |",
        "| / random | " + " | ".join(f"{u['ratio_to_random']:.2f}" for u in ne["units"]) + " |",
        "",
        f"## Inversion ({iv['count']} test shapes, {iv['starts']} starts x {iv['iters']} Adam steps, lr {iv['lr']:g})",
        "",
        "- IoU at 0.5: mean {mean:.3f}, min {min:.3f}, max {max:.3f}, median {median:.3f}".format(**iv["iou"]),
        "- nearest training shape of the same targets: mean {mean:.3f}, min {min:.3f}, max {max:.3f}, median {median:.3f}".format(**iv["nearest_train_iou"]),
        f"- inversion beats the nearest training shape on {iv['better_than_nearest_train']} of {iv['count']}",
        "",
        "| target | inversion IoU | nearest training IoU | target voxels | wall s |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {c['target']} | {f3(c['iou'])} | {f3(c['nearest_train_iou'])} | {c['target_voxels']} | {c['wall_seconds']:.1f} |" for c in iv["per_chair"]],
        "",
        "## Times (wall: the whole command, with start-up and writing; analysis: the seconds its JSON reports)",
        "",
        "| command | wall s | analysis s |",
        "| --- | --- | --- |",
        *[f"| {k} | {w[k]:.1f} | {a[k]:.1f} |" for k in ("interpolate", "arithmetic", "dimensions", "neurons")],
        f"| invert x {iv['count']} | {w['invert_total']:.1f} (per shape {iv['wall_seconds']['min']:.1f}-{iv['wall_seconds']['max']:.1f}, median {iv['wall_seconds']['median']:.1f}) | {a['invert_total']:.1f} |",
        "",
        f"1-minute load average after each command: {min(loads):.2f} to {max(loads):.2f}",
        "",
    ]
    return "\n".join(lines)


def inversion_picture(out: Path, n: int, size: int = 104) -> None:
    from gan3d.render.raster import render_voxels, save_png, tile

    pics, labels = [], []
    for i in range(min(n, PICTURE_CHAIRS)):
        f = np.load(out / "inv" / f"test{i:02d}" / "invert.npz")
        j = read_json(out / "inv" / f"test{i:02d}" / "invert.json")
        pics += [render_voxels(f["target"], size=size), render_voxels(f["reconstruction"], size=size)]
        labels += [f"test {i}", f"G(z) {j['iou']:.2f}"]
    save_png(tile(pics, ncols=8, labels=labels), out / "inversions.png")


def main(argv: list[str]) -> None:
    if len(argv) != 4 or argv[0] not in ("targets", "summary") or not argv[3].isdigit() or int(argv[3]) < 1:
        fail("usage: collect.py targets DATA FOLDER N | collect.py summary DATA OUTDIR N")
    cmd, data, where, n = argv[0], argv[1], Path(argv[2]), int(argv[3])
    if cmd == "targets":
        write_targets(data, where, n)
        return
    from gan3d.fileio import atomic_open

    s = summarize(data, where, n)
    inversion_picture(where, n)
    with atomic_open(where / "summary.json", "w") as f:
        json.dump(s, f, indent=2)
        f.write("\n")
    with atomic_open(where / "summary.md", "w") as f:
        f.write(markdown(s))


if __name__ == "__main__":
    main(sys.argv[1:])
