#!/usr/bin/env bash
# Check gan3d on a GPU in one command: the tests marked `cuda` (tests/test_cuda.py), then every
# benchmark briefly with --device cuda, then a summary (one line per part, with the figures).
#   usage: bash scripts/gpu_check.sh            (exit 0: all passed, 1: a part failed, 2: no CUDA)
# Choose the GPUs with CUDA_VISIBLE_DEVICES; bench_ddp needs two (it is skipped with one).
# Logs of every part go to $GPU_CHECK_LOGS (default: a new temporary folder, printed at the end).
# To try the script itself on a machine without a GPU: GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESETS=tiny
# GPU_CHECK_DDP_PRESET=tiny (the cuda tests then skip and the benchmarks run on the CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PRESETS=${GPU_CHECK_PRESETS:-tiny cpu32 gpu64 paper64}
DDP_PRESET=${GPU_CHECK_DDP_PRESET:-cpu32}
LOGS=${GPU_CHECK_LOGS:-$(mktemp -d -t gan3d-gpu-check.XXXXXX)}
mkdir -p "$LOGS"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # before cuBLAS starts: deterministic resume

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null) || {
  echo "gpu_check: $PY cannot import torch (run scripts/setup.sh, or set PYTHON)" >&2; exit 2; }
if [ "$DEVICE" != cpu ] && [ "$GPUS" = 0 ]; then
  echo "gpu_check: CUDA is not available to $PY ($("$PY" -c 'import torch; print("torch", torch.__version__)')); install a CUDA build of torch" >&2
  exit 2
fi
"$PY" -c "import torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0; print(f'gan3d GPU check: torch {torch.__version__}, CUDA {torch.version.cuda}, {n} GPU(s)' + ''.join(f'; cuda:{i} {torch.cuda.get_device_name(i)}' for i in range(n)))" | tee "$LOGS/header.txt"

SUMMARY=()
FAILED=0
part() {  # name log-file grep-pattern command...: run, keep the log, note OK/FAILED and the figures
  local name=$1 log=$LOGS/$2 pattern=$3; shift 3
  echo "-- $name: $*"
  "$@" > "$log" 2>&1
  local rc=$?
  local figures
  figures=$(grep -E "$pattern" "$log" | sed 's/^/      /')
  if [ $rc -eq 0 ]; then SUMMARY+=("OK      $name"); else SUMMARY+=("FAILED  $name (exit $rc; see $log)"); FAILED=1; fi
  [ -n "$figures" ] && SUMMARY+=("$figures")
}

part "pytest -m cuda" pytest.txt "^(FAILED|ERROR|SKIPPED)|[0-9]+ (passed|failed|skipped|deselected)" \
  "$PY" -m pytest -q -rs -m cuda -p no:cacheprovider
# 64^3 presets at batch 32 (gpu64's recipe batch; paper64's own 100 may not fit a small GPU)
# shellcheck disable=SC2086
part "bench_train" bench_train.txt "^torch|best achieved" \
  "$PY" benchmarks/bench_train.py --device "$DEVICE" --presets $PRESETS --seconds 3 --steps 3 --paper-batch 32
part "bench_vaegan" bench_vaegan.txt "^torch|samples/s|ratio" \
  "$PY" benchmarks/bench_vaegan.py --device "$DEVICE" --seconds 6 --rounds 2
part "bench_data" bench_data.txt "ratio|does not apply" \
  "$PY" benchmarks/bench_data.py --device "$DEVICE"
if [ "$DEVICE" = cpu ] || [ "$GPUS" -ge 2 ]; then
  part "bench_ddp" bench_ddp.txt "^torch|^\(|ratio" \
    "$PY" benchmarks/bench_ddp.py --device "$DEVICE" --procs 2 --preset "$DDP_PRESET" --steps 12 --log-every 3
else
  SUMMARY+=("SKIPPED bench_ddp (nccl over 2 GPUs; this machine has $GPUS)")
fi

echo
echo "== summary =="
printf '%s\n' "${SUMMARY[@]}"
echo "logs: $LOGS"
exit $FAILED
