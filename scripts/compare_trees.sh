#!/usr/bin/env bash
# Behaviour check for refactors: run the same deterministic tiny 3D-GAN and 3D-VAE-GAN trainings
# (with instance noise, eval, a resume) from two source trees and compare checkpoints tensor by
# tensor and stats.jsonl line by line (timing fields dropped).
#   usage: scripts/compare_trees.sh OLD_TREE NEW_TREE [WORKDIR]
# Each tree is a checkout of gan3d (its src/ is put first on PYTHONPATH); the venv is this repo's.
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); work=${3:-$(mktemp -d)}
py=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
export OMP_NUM_THREADS=1
mkdir -p "$work"
run() {  # tree name args...
  local tree=$1 name=$2; shift 2
  (cd "$work" && PYTHONPATH="$tree/src" "$py" -m gan3d "$@" > "$work/$name.out" 2>&1)
}
for side in old new; do
  tree=$old; [ $side = new ] && tree=$new
  d="$work/$side"; mkdir -p "$d"
  run "$tree" "$side-prep" data prepare builtin --out "$d/b16.npz" --resolution 16 --builtin-count 12
  run "$tree" "$side-gan" train --preset tiny --data "$d/b16.npz" --out "$d" --run-name gan --steps 30 --log-every 5 \
      --snapshot-every 10 --eval-every 10 --eval-samples 8 --instance-noise 0.1 --mode-seeking 0.1 --deterministic true --quiet
  run "$tree" "$side-gan-resume" train --resume "$d/gan" --steps 40 --quiet
  run "$tree" "$side-render" data render "$d/b16.npz" --out "$d/pairs" --views 2 --size 32 --random-background --random-color
  run "$tree" "$side-vae" train --model vaegan --preset tiny --pairs "$d/pairs" --out "$d" --run-name vae --steps 20 \
      --log-every 5 --snapshot-every 10 --instance-noise 0.1 --deterministic true --quiet
done
"$py" - "$work" <<'PY'
import json, sys
from pathlib import Path
import torch
work = Path(sys.argv[1])
bad = 0
def same(a, b, where):
    global bad
    if isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)):
            print("DIFF", where); bad += 1
    elif isinstance(a, dict):
        if set(a) != set(b):
            print("KEYS", where, sorted(set(a) ^ set(b))); bad += 1
        for k in a:
            if k in b and k not in ("gan3d_version",):
                same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            print("LEN", where); bad += 1
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif a != b:
        print("VALUE", where, a, b); bad += 1
for run in ("gan", "vae"):
    for f in ("checkpoint.pt", "snapshot.pt"):
        a = torch.load(work / "old" / run / f, weights_only=True)
        b = torch.load(work / "new" / run / f, weights_only=True)
        for k in ("train_config", "vaegan_config"):  # paths differ between the two work folders
            for d in (a, b):
                if k in d:
                    # paths differ between the two work folders; tensorboard is a field issue 8 added (off)
                    d[k] = {kk: vv for kk, vv in d[k].items() if kk not in ("data", "out", "pairs") and not (kk == "tensorboard" and vv is False)}
        same(a, b, f"{run}/{f}")
    strip = lambda l: {k: v for k, v in json.loads(l).items() if k not in ("time", "samples_per_s")}
    sa = [strip(l) for l in (work / "old" / run / "stats.jsonl").read_text().splitlines()]
    sb = [strip(l) for l in (work / "new" / run / "stats.jsonl").read_text().splitlines()]
    if sa != sb:
        print("STATS DIFFER", run, len(sa), len(sb)); bad += 1
    print(f"{run}: checkpoint.pt, snapshot.pt, stats.jsonl ({len(sa)} lines) compared")
print("IDENTICAL" if bad == 0 else f"{bad} DIFFERENCES")
sys.exit(1 if bad else 0)
PY
