#!/usr/bin/env bash
# One command from a fresh clone: installs the Debian packages gift needs, builds it in release mode
# and runs the main job: `gift train` with no arguments (a small model from scratch on the built-in
# 4x4 Sudoku task with the GIFT objective, about two minutes on 2 cores, ending with the test accuracy
# beside the untrained model's). Extra arguments go to
# `gift train` (e.g. --objective sft, --out runs/mine).
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install-deps.sh
swift build -c release
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(nproc)}"
OUT="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
.build/release/gift train --out "$OUT" "$@"
echo "loss plot: $OUT/loss.svg"
