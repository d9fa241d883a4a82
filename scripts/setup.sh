#!/usr/bin/env bash
# Set up gan3d in ./.venv from a fresh clone. Idempotent: a second run only checks.
# PyTorch: installs the tested CPU build (torch==2.13.0) unless the venv already has a torch.
# A CUDA user can pre-install their own build in .venv, or set GAN3D_TORCH="torch==X+cuYYY".
# --browser also installs Debian's Chromium and ChromeDriver when they are missing (as root, with
# apt-get), for the gallery's browser tests; without them those tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --browser) BROWSER=1 ;;
    *) echo "scripts/setup.sh: unknown option '$arg' (the only option is --browser)" >&2; exit 2 ;;
  esac
done
if [ "$BROWSER" = 1 ] && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; then
      echo "scripts/setup.sh: apt-get could not install chromium chromium-driver: the gallery's browser tests will skip"
    fi
  else
    echo "scripts/setup.sh: chromium/chromedriver missing and not root with apt-get: the gallery's browser tests will skip"
  fi
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
  "$VPY" -m pip install -q "${GAN3D_TORCH:-torch==2.13.0}"
fi
if ! "$VPY" -c "import gan3d, pytest, selenium, sklearn, matplotlib, plotly, tensorboard" 2>/dev/null || [ pyproject.toml -nt .venv/.gan3d-installed ]; then
  "$VPY" -m pip install -q -e ".[test,eval,plot,gallery,tensorboard]"
  touch .venv/.gan3d-installed
fi
"$VPY" -c "import torch, gan3d; print(f'gan3d {gan3d.__version__} ready: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
