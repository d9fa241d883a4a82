#!/usr/bin/env bash
# Every `gan3d explore` analysis of docs/explore/README.md on one checkpoint, then a summary.
#   usage: docs/explore/make.sh CHECKPOINT DATA OUTDIR
# CHECKPOINT: a run folder, a snapshot.pt or a shipped model name (e.g. chair); DATA: a prepared
# .npz with train and test splits at G's resolution. Writes one folder per analysis under OUTDIR,
# OUTDIR/times.tsv (wall seconds per command) and OUTDIR/summary.json + OUTDIR/summary.md.
# Environment: GAN3D and PYTHON (default: this repo's .venv), INVERT_COUNT (test shapes to invert,
# default 20). Set OMP_NUM_THREADS yourself; the times in the README were taken with 2 on an idle machine.
set -euo pipefail
fail() { echo "make.sh: error: $*" >&2; exit 2; }
[ $# -eq 3 ] || fail "usage: docs/explore/make.sh CHECKPOINT DATA OUTDIR"
ckpt=$1; data=$2; out=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
GAN3D=${GAN3D:-$root/.venv/bin/gan3d}
PYTHON=${PYTHON:-$root/.venv/bin/python}
n=${INVERT_COUNT:-20}
[ -x "$GAN3D" ] || command -v "$GAN3D" >/dev/null || fail "GAN3D=$GAN3D is not an executable (run scripts/setup.sh, or set GAN3D)"
[ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null || fail "PYTHON=$PYTHON is not an executable (run scripts/setup.sh, or set PYTHON)"
[ -f "$data" ] || fail "$data: no such dataset file"
[[ $n =~ ^[1-9][0-9]*$ ]] || fail "INVERT_COUNT must be a positive integer, got '$n'"
if [ -e "$out" ] && [ ! -d "$out" ]; then fail "$out: exists and is not a folder"; fi
mkdir -p "$out"
times="$out/times.tsv"
printf 'name\tseconds\tloadavg_1min\n' > "$times.tmp"

timed() {  # NAME COMMAND...: run it, append its wall time and the 1-minute load average
  local name=$1; shift
  local t0 ms
  t0=$(date +%s%N)
  "$@"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s\t%d.%03d\t%s\n' "$name" $((ms / 1000)) $((ms % 1000)) "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo nan)" >> "$times.tmp"
}

timed interpolate "$GAN3D" explore interpolate --checkpoint "$ckpt" --from 0 --to 1 --steps 8 --data "$data" --out "$out/interp"
timed arithmetic "$GAN3D" explore arithmetic --checkpoint "$ckpt" --a 0 --b 1 --c 2 --out "$out/arith"
timed dimensions "$GAN3D" explore dimensions --checkpoint "$ckpt" --out "$out/dims"
timed neurons "$GAN3D" explore neurons --checkpoint "$ckpt" --data "$data" --out "$out/neurons"
# the first $n test shapes of DATA, each as a bool (R,R,R) .npy, then one inversion each
"$PYTHON" "$here/collect.py" targets "$data" "$out/targets" "$n"
for i in $(seq 0 $((n - 1))); do
  name=$(printf 'test%02d' "$i")
  timed "invert $name" "$GAN3D" explore invert --checkpoint "$ckpt" --target "$out/targets/$name.npy" --starts 4 --iters 100 --out "$out/inv/$name"
done
mv "$times.tmp" "$times"
"$PYTHON" "$here/collect.py" summary "$data" "$out" "$n"
echo "make.sh: wrote $out/summary.md and $out/summary.json"
