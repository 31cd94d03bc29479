#!/usr/bin/env bash
# Create .venv and install gsv-triton with everything the exporter, Triton and the gateway need.
# Idempotent: a second run only checks. torch comes pinned (==2.13.0, the CPU wheel) through the
# "export" extra, so no step can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.gsv-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing gsv-triton and its dependencies (a few minutes on a fresh machine)"
  .venv/bin/pip install -q -e ".[export,serve,gateway,dev]"
  touch "$stamp"
fi
# System tools of the deployment tests: kubectl renders the Kustomize overlays (tests/test_deploy.py), HAProxy
# balances two Triton replicas (tests/test_scale_out.py), Chromium is the browser Playwright drives on the web
# page (tests/test_web_page.py), with a CJK font for its screenshots. Debian's packages; CI runs as root.
missing=()
command -v kubectl >/dev/null || missing+=(kubectl)
command -v chromium >/dev/null || missing+=(chromium)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] installing ${missing[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] the deployment and web page tests need ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
  fi
fi
# Triton's Python-backend stub silently corrupts tensors under numpy 2: refuse to go on with it.
.venv/bin/python - <<'PY'
import numpy, sys
if int(numpy.__version__.split(".")[0]) >= 2:
    sys.exit(f"[setup] numpy {numpy.__version__} found in .venv; gsv-triton needs numpy<2 for Triton")
PY
echo "[setup] ready: $(.venv/bin/python -c 'import torch, onnxruntime, numpy; print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}")')"
