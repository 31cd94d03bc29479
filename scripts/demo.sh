#!/usr/bin/env bash
# The main job on the built-in default: set up, write demo checkpoints (random weights in the upstream
# file formats), export them into a Triton model repository, start tritonserver + the gateway, send the
# seed's example request to POST /v1/voice-clone, write output.wav, stop everything.
#   scripts/demo.sh [tiny|full]      (default tiny: about a minute; full: real GPT-SoVITS v2 sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-tiny}
scripts/setup.sh
CKPT=artifacts/demo-$SIZE
REPO=artifacts/repository-$SIZE
.venv/bin/gsv-triton demo-checkpoints --size "$SIZE" --version v2 --seed 0 --out "$CKPT"
.venv/bin/gsv-triton export --gpt "$CKPT/gpt.ckpt" --sovits "$CKPT/sovits.pth" \
  --hubert "$CKPT/chinese-hubert-base" --bert "$CKPT/chinese-roberta-wwm-ext-large" --out "$REPO"
echo "[demo] model repository written to $REPO"
.venv/bin/python -m gsv_cli.demo --model-repository "$REPO" --out output.wav
