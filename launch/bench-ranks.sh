#!/usr/bin/env bash
# Data-parallel scaling on this machine, measured side by side in one run: `gift bench` with
# 1 rank x 1 thread, then 2 ranks x 1 thread, on the same preset; prints both and the ratio of
# examples per second. Usage: launch/bench-ranks.sh [preset] [objective] [steps] [gemm: auto|openblas|onednn]
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-small}; OBJ=${2:-sft}; STEPS=${3:-4}; GEMM=${4:-auto}
[ -x .build/release/gift ] || swift build -c release
ROOT=(); [ "$(id -u)" -eq 0 ] && ROOT=(--allow-run-as-root)
ARGS=(bench --preset "$PRESET" --objective "$OBJ" --steps "$STEPS" --warmup 1 --gemm "$GEMM")
one=$(OPENBLAS_NUM_THREADS=1 .build/release/gift "${ARGS[@]}" | tail -1)
two=$(mpirun "${ROOT[@]}" -np 2 --bind-to none -x OPENBLAS_NUM_THREADS=1 -x OMPI_MCA_pml=ob1 \
      .build/release/gift "${ARGS[@]}" | tail -1)
echo "1 rank  x 1 thread: $one"
echo "2 ranks x 1 thread: $two"
python3 - "$one" "$two" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"examples_per_s_1rank": a["examples_per_s"], "examples_per_s_2ranks": b["examples_per_s"],
                  "speedup": round(b["examples_per_s"] / a["examples_per_s"], 3), "comm_wait_s_2ranks": b["comm_wait_s"]}))
PY
