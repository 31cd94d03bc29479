#!/usr/bin/env bash
# Run perf_analyzer against a running tritonserver for one model at concurrency 1, 2 and 4; write CSV + logs.
#
#   perf/run_perf_analyzer.sh MODEL [options] [-- extra perf_analyzer args]
#
#   --protocol http|grpc|both   (default http)
#   --host HOST                 (default 127.0.0.1)   --http-port N (8000)   --grpc-port N (8001)
#   --inputs FILE               (default perf/inputs/MODEL.json; see perf/make_inputs.py)
#   --out DIR                   (default perf/results): DIR/MODEL_PROTOCOL.csv (one row per concurrency),
#                               DIR/MODEL_PROTOCOL_cN.log (perf_analyzer's own report)
#   --concurrency "1 2 4"       concurrency levels, one perf_analyzer run each
#   --requests N                fixed number of measured requests per level, times the concurrency
#                               (default: 4 for voice_clone/t2s/sovits_decode, whose requests take seconds;
#                               0 = perf_analyzer's own stabilised time windows of --interval-ms)
#   --interval-ms MS            measurement window when --requests 0 (default 5000)
#   --warmup N                  unmeasured requests first (default 2, at concurrency 2: both instances of a
#                               2-instance model load their caches)
#   --composing "a,b"           --bls-composing-models: server-side breakdown of the models voice_clone calls.
#                               Every model listed must be called in every window, or perf_analyzer stops with
#                               "failed to find the requested model version". Default for voice_clone: bert,t2s,
#                               sovits_decode (the reference is cached after the warm-up); with an inputs file
#                               named *newref* (a new reference per request) also ssl,vq_encode,ref_encoder
#
# First run: creates .venv-pa (tritonclient==2.51.0, the last manylinux wheel that ships bin/perf_analyzer;
# a separate venv because the project venv has a newer tritonclient) and links the two shared libraries the
# binary needs (libb64.so.0d, libcudart.so.12) from the nvidia-pytriton wheel in .venv. Needs PyPI once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PA_VENV="${PA_VENV:-$ROOT/.venv-pa}"
PROJECT_VENV="${PROJECT_VENV:-$ROOT/.venv}"
PA_VERSION="2.51.0"
SLOW_MODELS=" voice_clone t2s sovits_decode "
SLOW_REQUESTS=4
BLS_COMPOSING_CACHED="bert,t2s,sovits_decode"
BLS_COMPOSING_NEWREF="ssl,vq_encode,ref_encoder,bert,t2s,sovits_decode"

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "run_perf_analyzer: error: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || usage 2
case "$1" in -h|--help) usage 0 ;; esac
MODEL="$1"; shift
PROTOCOL=http HOST=127.0.0.1 HTTP_PORT=8000 GRPC_PORT=8001
INPUTS="$ROOT/perf/inputs/$MODEL.json" OUT="$ROOT/perf/results" LEVELS="1 2 4"
REQUESTS="" INTERVAL_MS=5000 WARMUP=2 COMPOSING="-"
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --protocol) PROTOCOL="$2"; shift 2 ;;
    --host) HOST="$2"; shift 2 ;;
    --http-port) HTTP_PORT="$2"; shift 2 ;;
    --grpc-port) GRPC_PORT="$2"; shift 2 ;;
    --inputs) INPUTS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --concurrency) LEVELS="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --interval-ms) INTERVAL_MS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --composing) COMPOSING="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
if [[ $COMPOSING == - ]]; then
  COMPOSING=""
  if [[ $MODEL == voice_clone ]]; then
    if [[ $(basename "$INPUTS") == *newref* ]]; then COMPOSING="$BLS_COMPOSING_NEWREF"; else COMPOSING="$BLS_COMPOSING_CACHED"; fi
  fi
fi
if [[ -z $REQUESTS ]]; then
  if [[ $SLOW_MODELS == *" $MODEL "* ]]; then REQUESTS=$SLOW_REQUESTS; else REQUESTS=0; fi
fi
case "$PROTOCOL" in http|grpc) PROTOCOLS=("$PROTOCOL") ;; both) PROTOCOLS=(http grpc) ;;
  *) die "--protocol must be http, grpc or both" ;; esac
[[ -f $INPUTS ]] || die "no input data $INPUTS (generate it: .venv/bin/python perf/make_inputs.py --repo REPO)"

# --- .venv-pa: perf_analyzer and its two shared libraries ------------------------------------------------
PA_BIN="$PA_VENV/bin/perf_analyzer"
PA_LIBS="$PA_VENV/palibs"
if [[ ! -x $PA_BIN ]]; then
  echo "setting up $PA_VENV (tritonclient==$PA_VERSION with bin/perf_analyzer) ..." >&2
  PYTHON="${PYTHON:-python3.11}"
  command -v "$PYTHON" >/dev/null || PYTHON=python3
  "$PYTHON" -m venv "$PA_VENV"
  "$PA_VENV/bin/pip" install --quiet --no-deps "tritonclient==$PA_VERSION"
  [[ -x $PA_BIN ]] || die "tritonclient==$PA_VERSION installed no bin/perf_analyzer (needs the manylinux x86_64 wheel)"
fi
if [[ ! -e $PA_LIBS/libb64.so.0d || ! -e $PA_LIBS/libcudart.so.12 ]]; then
  SP="$("$PROJECT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  VENDORED="$SP/nvidia_pytriton.libs"
  [[ -d $VENDORED ]] || die "$VENDORED not found: install the project with the serve extra (nvidia-pytriton)"
  mkdir -p "$PA_LIBS"
  b64=("$VENDORED"/libb64-*.so.0d) cudart=("$VENDORED"/libcudart-*.so.12*)
  [[ -e ${b64[0]} && -e ${cudart[0]} ]] || die "libb64/libcudart not found in $VENDORED"
  ln -sf "${b64[0]}" "$PA_LIBS/libb64.so.0d"
  ln -sf "${cudart[0]}" "$PA_LIBS/libcudart.so.12"
fi
pa() { LD_LIBRARY_PATH="$PA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PA_BIN" "$@"; }

# --- runs ----------------------------------------------------------------------------------------------
mkdir -p "$OUT"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $(pa --version 2>&1 | head -1), model $MODEL, inputs $INPUTS" >&2
for proto in "${PROTOCOLS[@]}"; do
  if [[ $proto == http ]]; then URL="$HOST:$HTTP_PORT"; else URL="$HOST:$GRPC_PORT"; fi
  COMMON=(-m "$MODEL" -u "$URL" -i "$proto" --input-data "$INPUTS")
  [[ -n $COMPOSING ]] && COMMON+=(--bls-composing-models "$COMPOSING")
  if [[ $WARMUP -gt 0 ]]; then
    echo "[$proto] warm-up: $WARMUP request(s)" >&2
    pa "${COMMON[@]}" --concurrency-range "$(( WARMUP < 2 ? WARMUP : 2 ))" --request-count "$WARMUP" \
      "${EXTRA[@]}" > "$OUT/${MODEL}_${proto}_warmup.log" 2>&1 \
      || { tail -20 "$OUT/${MODEL}_${proto}_warmup.log" >&2; die "warm-up failed"; }
  fi
  CSV="$OUT/${MODEL}_${proto}.csv"
  rm -f "$CSV"
  for c in $LEVELS; do
    LOG="$OUT/${MODEL}_${proto}_c${c}.log"
    if [[ $REQUESTS -gt 0 ]]; then
      MEASURE=(--request-count "$(( REQUESTS * c ))")
    else
      MEASURE=(--measurement-interval "$INTERVAL_MS")
    fi
    echo "[$proto] concurrency $c, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$LOG" >&2
    pa "${COMMON[@]}" --concurrency-range "$c" "${MEASURE[@]}" -f "$OUT/.part.csv" "${EXTRA[@]}" 2>&1 | tee -a "$LOG" >&2 \
      || die "perf_analyzer failed at concurrency $c (see $LOG)"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG" >&2
    if [[ ! -f $CSV ]]; then head -1 "$OUT/.part.csv" > "$CSV"; fi
    tail -n +2 "$OUT/.part.csv" >> "$CSV"
    rm -f "$OUT/.part.csv"
  done
  echo "wrote $CSV" >&2
done
